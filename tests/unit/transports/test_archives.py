"""oci-archive and docker-archive against hostile or broken tar files: every one a one-line
error, nothing extracted, nothing followed, nothing written outside the target."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from clusterimage.copy import copy_image
from clusterimage.errors import ClusterImageError, TransportError
from clusterimage.transports import parse
from clusterimage.transports.base import Context
from tests.fixtures.oci_layout import make_oci_layout


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A valid oci-archive of one small image, written by our own save path."""
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    path = tmp_path / "good.tar"
    copy_image(parse(image.transport_ref), parse(f"oci-archive:{path}:v1"), Context())
    return path


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(path) as tar:
        for info in tar:
            stream = tar.extractfile(info)
            out.append((info, stream.read() if stream is not None else None))
    return out


def _read_into(src: str, tmp_path: Path) -> None:
    copy_image(parse(src), parse(f"oci:{tmp_path / 'out'}:x"), Context())


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "blobs/../../evil"])
def test_a_member_that_climbs_out_is_refused(name: str, archive: Path, tmp_path: Path) -> None:
    bad = _tar(tmp_path / "bad.tar", [*_members(archive), _file(name, b"x")])
    with pytest.raises(TransportError, match="points outside the archive"):
        _read_into(f"oci-archive:{bad}", tmp_path)
    assert not (tmp_path.parent / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_blob_that_is_a_link_is_never_followed(
    kind: bytes, archive: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("outside")
    members = _members(archive)
    index = json.loads(next(d for i, d in members if i.name == "index.json") or b"")
    manifest_member = "blobs/sha256/" + index["manifests"][0]["digest"][7:]
    manifest = json.loads(next(d for i, d in members if i.name == manifest_member) or b"")
    layer = "blobs/sha256/" + manifest["layers"][0]["digest"][7:]
    swapped = [m for m in members if m[0].name != layer] + [_link(layer, str(secret), kind)]
    bad = _tar(tmp_path / "bad.tar", swapped)
    with pytest.raises(TransportError, match=f"member {layer} is a"):
        _read_into(f"oci-archive:{bad}", tmp_path)


def test_a_truncated_archive_is_one_line(archive: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[:1100])
    with pytest.raises(ClusterImageError) as caught:
        _read_into(f"oci-archive:{cut}", tmp_path)
    assert "\n" not in str(caught.value)


def _docker_archive(tmp_path: Path, layers: list[str], extra: list[tuple[str, bytes]]) -> Path:
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}})
    manifest = [{"Config": "c.json", "RepoTags": ["x:v1"], "Layers": layers}]
    members = [
        _file("c.json", config.encode()),
        _file("manifest.json", json.dumps(manifest).encode()),
        *(_file(n, d) for n, d in extra),
    ]
    return _tar(tmp_path / "docker.tar", members)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (["../../etc/passwd"], "points outside the archive"),
        (["/etc/passwd"], "points outside the archive"),
        (["missing/layer.tar"], "is not in the archive"),
    ],
)
def test_a_docker_manifest_naming_a_bad_layer_path_is_one_line(
    layers: list[str], message: str, tmp_path: Path
) -> None:
    bad = _docker_archive(tmp_path, layers, [])
    with pytest.raises(ClusterImageError, match=message):
        _read_into(f"docker-archive:{bad}", tmp_path)


def test_a_docker_layer_that_does_not_match_its_diff_id_fails(tmp_path: Path) -> None:
    bad = _docker_archive(tmp_path, ["layer.tar"], [("layer.tar", b"\0" * 1024)])
    with pytest.raises(ClusterImageError, match="sha256:0000"):
        _read_into(f"docker-archive:{bad}", tmp_path)
    index = tmp_path / "out" / "index.json"
    assert not index.exists() or json.loads(index.read_text())["manifests"] == []


def test_a_failed_write_leaves_nothing_at_the_target(tmp_path: Path) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    blob = next((tmp_path / "layout" / "blobs" / "sha256").iterdir())
    blob.write_bytes(blob.read_bytes() + b"tampered")
    target = tmp_path / "out" / "bundle.tar"
    target.parent.mkdir()
    with pytest.raises(ClusterImageError):
        copy_image(parse(image.transport_ref), parse(f"oci-archive:{target}"), Context())
    assert list(target.parent.iterdir()) == []
