"""oci-archive against the real tools: skopeo reads what we write and we read what skopeo and
buildah write, each with the same manifest digests; oci-image-tool and the OCI schemas accept
our archives unpacked; and a broken or hostile archive fails through the CLI in one line, exit
status 1, with nothing written outside the target."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from clusterimage.copy import copy_image
from clusterimage.transports import parse
from clusterimage.transports.base import Context
from tests.conftest import require_tool, run_cli, run_tool
from tests.fixtures import oci_archive as archives
from tests.fixtures.oci_layout import REF_NAME, OciImage, make_oci_layout
from tests.helpers.images import big_bytes, make_index_layout
from tests.helpers.oci_schemas import layout_errors, schema_errors

pytestmark = pytest.mark.integration


def _image(tmp_path: Path, name: str = "v1", **kwargs: object) -> OciImage:
    layers = kwargs.pop("layers", [{"etc/app.conf": b"key=value\n"}, {f"{name}.txt": b"own\n"}])
    return make_oci_layout(tmp_path / f"layout-{name}", ref=name, layers=layers, **kwargs)  # type: ignore[arg-type]


def _skopeo_digest(skopeo: str, ref: str) -> str:
    raw = run_tool([skopeo, "inspect", "--raw", ref]).stdout
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def _our_digest(src: str, tmp_path: Path) -> str:
    out = tmp_path / f"read-{len(list(tmp_path.iterdir()))}"
    return run_cli("copy", "--all", src, f"oci:{out}:x").stdout.strip()


def _pull_two(tmp_path: Path) -> dict[str, OciImage]:
    """Two images sharing a layer, in the store of the ``ci_home`` fixture."""
    made = {}
    for name in ("a", "b"):
        image = _image(tmp_path, name)
        ref = f"localhost/oa/{name}:v1"
        run_cli("pull", image.transport_ref, "--name", ref, "-q")
        made[ref] = image
    return made


def test_skopeo_reads_what_we_write_with_the_same_digests(tmp_path: Path, ci_home: Path) -> None:
    skopeo = require_tool("skopeo")
    image = _image(tmp_path)
    one = tmp_path / "one.tar"
    assert run_cli("copy", image.transport_ref, f"oci-archive:{one}:v1").stdout.strip() == (
        image.manifest.digest
    )
    assert _skopeo_digest(skopeo, f"oci-archive:{one}:v1") == image.manifest.digest
    run_tool([skopeo, "copy", "-q", f"oci-archive:{one}:v1", f"oci:{tmp_path / 'sk'}:v1"])
    (entry,) = json.loads((tmp_path / "sk" / "index.json").read_text())["manifests"]
    assert entry["digest"] == image.manifest.digest
    # A multi-platform index, every platform.
    multi = make_index_layout(tmp_path / "multi", ref="v1")
    both = tmp_path / "index.tar"
    run_cli("copy", "--all", multi.transport_ref, f"oci-archive:{both}:v1")
    assert _skopeo_digest(skopeo, f"oci-archive:{both}:v1") == multi.index.digest
    run_tool([skopeo, "copy", "-q", "--all", f"oci-archive:{both}", f"oci:{tmp_path / 'm'}:v1"])
    # Several images in one archive, each read by its ref name (a whole reference).
    images = _pull_two(tmp_path)
    bundle = tmp_path / "bundle.tar"
    run_cli("save", "-m", "-o", bundle, *images)
    entries = archives.index_entries(bundle)
    assert [e["annotations"] for e in entries] == [{REF_NAME: r} for r in images]
    for ref, made in images.items():
        assert _skopeo_digest(skopeo, f"oci-archive:{bundle}:{ref}") == made.manifest.digest


def test_we_read_what_skopeo_and_buildah_write_with_their_digests(tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    buildah = require_tool("buildah")
    image = _image(tmp_path)
    multi = make_index_layout(tmp_path / "multi", ref="v1")
    written = {
        "skopeo named": (image.transport_ref, f"oci-archive:{tmp_path / 's1.tar'}:v1"),
        "skopeo unnamed": (image.transport_ref, f"oci-archive:{tmp_path / 's2.tar'}"),
        "skopeo index": (multi.transport_ref, f"oci-archive:{tmp_path / 's3.tar'}:v1"),
    }
    for src, dst in written.values():
        run_tool([skopeo, "copy", "-q", "--all", src, dst])
    storage = [
        *("--root", str(tmp_path / "b-root"), "--runroot", str(tmp_path / "b-run")),
        *("--storage-driver", "vfs"),
    ]
    run_tool([buildah, *storage, "pull", "-q", image.transport_ref])
    (listed,) = json.loads(run_tool([buildah, *storage, "images", "--json"]).stdout)
    by_buildah = f"oci-archive:{tmp_path / 'b.tar'}:v1"
    run_tool([buildah, *storage, "push", "-q", listed["id"], by_buildah])
    written["buildah"] = ("", by_buildah)
    try:
        for what, (_, archive) in written.items():
            theirs = _skopeo_digest(skopeo, archive)
            assert _our_digest(archive, tmp_path) == theirs, what
    finally:
        run_tool([buildah, *storage, "rmi", "--all", "--force"], check=False)
    assert _our_digest(written["skopeo index"][1], tmp_path) == multi.index.digest


def test_our_archive_unpacked_passes_oci_image_tool_and_the_schemas(
    tmp_path: Path, ci_home: Path
) -> None:
    tool = require_tool("oci-image-tool")
    images = list(_pull_two(tmp_path))
    multi = make_index_layout(tmp_path / "multi", ref="v1")
    run_cli("pull", "--all", multi.transport_ref, "--name", "localhost/oa/multi:v1", "-q")
    bundle = tmp_path / "bundle.tar"
    run_cli("save", "-m", "-o", bundle, *images, "localhost/oa/multi:v1")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(bundle) as tar:
        tar.extractall(unpacked, filter="data")
    # --type image finds the layout (oci-image-tool 1.0.0-rc1 cannot walk a tar itself:
    # "end of walk", skopeo's archives included). Without --ref it checks every ref.
    result = run_tool([tool, "validate", "--type", "image", str(unpacked)])
    assert "Validation succeeded" in result.stdout + result.stderr
    assert layout_errors(json.loads((unpacked / "oci-layout").read_text())) == []
    index = json.loads((unpacked / "index.json").read_text())
    assert schema_errors(index, index["mediaType"]) == []
    pending, checked = [e["digest"] for e in index["manifests"]], 0
    while pending:
        document = json.loads((unpacked / archives.blob_member(pending.pop())).read_bytes())
        assert schema_errors(document, document["mediaType"]) == []
        checked += 1
        if "manifests" in document:
            pending += [child["digest"] for child in document["manifests"]]
        else:
            config = document["config"]
            raw = json.loads((unpacked / archives.blob_member(config["digest"])).read_bytes())
            assert schema_errors(raw, config["mediaType"]) == []
    assert checked == 2 + 1 + 2  # two images, an index and its two


def _one_error_line(result: object, *fragments: str) -> None:
    assert result.returncode == 1, result  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def good(tmp_path: Path) -> tuple[OciImage, Path]:
    image = _image(tmp_path, layers=[{"big": big_bytes(100_000)}])
    archive = tmp_path / "good.tar"
    copy_image(parse(image.transport_ref), parse(f"oci-archive:{archive}:v1"), Context())
    return image, archive


def _read_fails(bad: Path, tmp_path: Path, *fragments: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("copy", f"oci-archive:{bad}", f"oci:{tmp_path / 'out'}:x", check=False)
    _one_error_line(result, f"oci-archive:{bad}: ", *fragments)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == before
    assert not Path(archives.OUTSIDE).exists() and not (tmp_path.parent / "evil").exists()


@pytest.mark.parametrize("case", archives.HOSTILE_CASES)
def test_a_hostile_or_broken_archive_fails_in_one_line(
    case: str, good: tuple[OciImage, Path], tmp_path: Path
) -> None:
    image, archive = good
    change, _, message = archives.hostile(image)[case]
    _read_fails(archives.rewrite(archive, tmp_path / "bad.tar", change), tmp_path, message)


@pytest.mark.parametrize("cut", sorted(archives.TRUNCATIONS))
def test_a_truncated_archive_fails_in_one_line(
    cut: str, good: tuple[OciImage, Path], tmp_path: Path
) -> None:
    _, archive = good
    bad = tmp_path / "cut.tar"
    bad.write_bytes(archive.read_bytes()[: archives.TRUNCATIONS[cut](archive)])
    _read_fails(bad, tmp_path)


def test_a_save_whose_blob_does_not_match_leaves_nothing(tmp_path: Path) -> None:
    image = _image(tmp_path)
    layer = image.layout / archives.blob_member(image.layers[0].digest)
    layer.write_bytes(b"\0" * image.layers[0].size)
    target = tmp_path / "out" / "bundle.tar"
    target.parent.mkdir()
    result = run_cli("copy", image.transport_ref, f"oci-archive:{target}", check=False)
    _one_error_line(result, image.layers[0].digest)
    assert list(target.parent.iterdir()) == []
