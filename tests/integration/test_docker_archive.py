"""docker-archive against the real tools: docker load reads our multi-image archive, and every
image and tag of what docker save writes (symlinked layers included) copies into our store;
skopeo reads ours and we read skopeo's; an image from a registry keeps its config and image ID
through docker save and our store, and only its manifest digest changes (as documented).
Hostile archives fail in one line, exit 1, with nothing written anywhere else."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.docker_archive import (
    Member,
    file_member,
    legacy_members,
    link_member,
    saved_image,
    write_tar,
)
from tests.fixtures.dockerd import DockerDaemon
from tests.fixtures.oci_layout import OciImage, layer_tar, make_oci_layout
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    isolated_auth,  # noqa: F401 - fixture
    one_line_error,
    skopeo,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]

A = {"a.txt": b"layer a\n"}
B = {"b.txt": b"layer b\n"}


def _images(tmp_path: Path) -> dict[str, OciImage]:
    """Two small images; y repeats its own layer and one of x, which docker save links."""
    return {
        "localhost/da/x:v1": make_oci_layout(
            tmp_path / "x", ref="v1", layers=[A], labels={"n": "x"}
        ),
        "localhost/da/y:v1": make_oci_layout(
            tmp_path / "y", ref="v1", layers=[B, A, B], labels={"n": "y"}
        ),
    }


def _copy(src: str, dst: str, *flags: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(run_cli("copy", "-q", "--json", *flags, src, dst).stdout)
    return result


def _config(ref: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(run_cli("inspect", "-t", "config", ref).stdout)
    return result


def _docker_image(dockerd: DockerDaemon, ref: str) -> tuple[str, list[str]]:
    out = dockerd.cli("image", "inspect", "--format", "{{.Id}} {{json .RootFS.Layers}}", ref)
    image_id, layers = out.stdout.strip().split(" ", 1)
    return image_id, json.loads(layers)


def _store_refs(store: Path) -> set[str]:
    index = json.loads((store / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in index["manifests"]
        if "annotations" in m
    }


def test_docker_loads_our_multi_image_archive_and_we_copy_every_image_docker_saves(
    tmp_path: Path, store_dir: Path, dockerd: DockerDaemon
) -> None:
    images = _images(tmp_path)
    for ref, image in images.items():
        _copy(image.transport_ref, f"store:{ref}")
    ours = tmp_path / "ours.tar"
    run_cli("save", "-m", "--format", "docker-archive", "-o", ours, *images)
    loaded = dockerd.cli("load", "-i", str(ours)).stdout
    for ref, image in images.items():
        assert f"Loaded image: {ref}" in loaded
        assert _docker_image(dockerd, ref) == (image.config.digest, list(image.diff_ids))

    dockerd.cli("tag", "localhost/da/x:v1", "localhost/da/x:v2")
    tags = [*images, "localhost/da/x:v2"]
    theirs = tmp_path / "theirs.tar"
    dockerd.cli("save", "-o", str(theirs), *tags)
    with tarfile.open(theirs) as tar:
        names = {member.name: member for member in tar}
    if "index.json" not in names:  # Docker before 25: a layer written twice is a symlink
        assert any(member.issym() for member in names.values())

    for tag in tags:
        copied = _copy(f"docker-archive:{theirs}:{tag}", f"store:{tag}")
        assert copied["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        image = images[tag.replace(":v2", ":v1")]
        config = _config(tag)
        assert config["rootfs"] == {"type": "layers", "diff_ids": list(image.diff_ids)}
        assert config["config"] == {"Labels": {"n": tag.split("/")[-1][0]}}
    assert _store_refs(store_dir) >= set(tags)
    assert run_cli("fsck").returncode == 0


def test_a_registry_image_keeps_its_id_through_docker_save_and_our_store(
    tmp_path: Path, registry: Registry, dockerd: DockerDaemon
) -> None:
    """The docstring's promise: the manifest digest changes (plain tars gzipped anew), the
    config digest, which is the image ID, does not."""
    image = make_oci_layout(tmp_path / "app", ref="v1", layers=[A, B])
    remote = f"{registry.host}/da/app"
    pushed = _copy(image.transport_ref, f"docker://{remote}:v1")
    dockerd.cli("pull", f"{remote}:v1")
    saved = tmp_path / "saved.tar"
    dockerd.cli("save", "-o", str(saved), f"{remote}:v1")

    loaded = _copy(f"docker-archive:{saved}", "store:localhost/da/app:v1")
    assert loaded["digest"] != pushed["digest"]
    manifest = json.loads(run_cli("inspect", "-t", "manifest", "localhost/da/app:v1").stdout)
    assert manifest["config"]["digest"] == image.config.digest
    back = _copy("store:localhost/da/app:v1", f"docker://{remote}:back")
    assert back["digest"] == loaded["digest"]
    dockerd.cli("pull", f"{remote}:back")
    assert _docker_image(dockerd, f"{remote}:back") == _docker_image(dockerd, f"{remote}:v1")


def test_skopeo_reads_our_archive_and_we_read_skopeos(tmp_path: Path, store_dir: Path) -> None:
    image = make_oci_layout(tmp_path / "app", ref="v1", layers=[A, B])
    ours = tmp_path / "ours.tar"
    copied = _copy(image.transport_ref, f"docker-archive:{ours}:localhost/da/app:v1")
    raw = skopeo("inspect", "--raw", f"docker-archive:{ours}").encode()
    # containers/image labels the plain tars ".tar.gzip" (its schema2 layer constant); with
    # the label that says what they are, its manifest is ours byte for byte.
    relabelled = raw.replace(b'rootfs.diff.tar.gzip"', b'rootfs.diff.tar"')
    assert "sha256:" + hashlib.sha256(relabelled).hexdigest() == copied["digest"]
    skopeo("copy", f"docker-archive:{ours}", f"oci:{tmp_path / 'by-skopeo'}:v1")
    # (skopeo writes the config anew as an OCI config: compare what it describes)
    by_skopeo = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path / 'by-skopeo'}:v1"))
    assert by_skopeo["rootfs"]["diff_ids"] == list(image.diff_ids)

    theirs = tmp_path / "skopeo.tar"  # with skopeo's legacy folders of symlinks beside
    skopeo("copy", image.transport_ref, f"docker-archive:{theirs}:localhost/da/app:v1")
    _copy(f"docker-archive:{theirs}:localhost/da/app:v1", "store:localhost/da/app:v1")
    assert _config("localhost/da/app:v1")["rootfs"]["diff_ids"] == list(image.diff_ids)  # type: ignore[index]


# -- hostile archives ---------------------------------------------------------------------------


def _one_image(layer: str, extra: list[Member]) -> list[Member]:
    image = saved_image(["x:v1"], [A])
    manifest = [{"Config": "c.json", "RepoTags": ["x:v1"], "Layers": [layer]}]
    return [
        file_member("c.json", image.config),
        file_member("manifest.json", json.dumps(manifest).encode()),
        *extra,
    ]


def _whole() -> list[Member]:
    return legacy_members([saved_image(["x:v1"], [A])])


HOSTILE: dict[str, tuple[list[Member], str]] = {
    "member-climbing-up": ([*_whole(), file_member("../evil", b"x")], "points outside the archive"),
    "absolute-member": ([*_whole(), file_member("/tmp/evil", b"x")], "points outside the archive"),
    "symlink-out": (_one_image("l.tar", [link_member("l.tar", "../secret")]), "points outside"),
    "hardlink-out": (
        _one_image("l.tar", [link_member("l.tar", "/etc/passwd", tarfile.LNKTYPE)]),
        "points outside",
    ),
    "missing-layer": (
        _one_image("gone/layer.tar", []),
        "layer gone/layer.tar is not in the archive",
    ),
    "layer-path-climbing": (
        _one_image("../../secret", []),
        "layer ../../secret points outside the archive",
    ),
    "diff-id-mismatch": (
        _one_image("l.tar", [file_member("l.tar", layer_tar(B))]),
        "layer l.tar: blob sha256:",
    ),
}


def _outside(tmp_path: Path, home: Path) -> list[str]:
    """Every path below ``tmp_path`` but the CLUSTERIMAGE_HOME the commands write into."""
    return sorted(str(p) for p in tmp_path.rglob("*") if not p.is_relative_to(home))


@pytest.mark.parametrize("kind", [*HOSTILE, "truncated"])
def test_a_hostile_archive_fails_in_one_line_and_writes_nothing(
    kind: str, tmp_path: Path, ci_home: Path, store_dir: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "secret").write_bytes(layer_tar(A))
    archive = work / "bad.tar"
    if kind == "truncated":
        whole = write_tar(tmp_path / "whole.tar", _whole()).read_bytes()
        archive.write_bytes(whole[: len(whole) // 2])
        message = "truncated"
    else:
        members, message = HOSTILE[kind]
        write_tar(archive, members)
    before = _outside(tmp_path, ci_home)
    for target in ("store:localhost/da/bad:v1", f"docker-archive:{work / 'out.tar'}:bad:v1"):
        result = run_cli("copy", "-q", f"docker-archive:{archive}", target, check=False)
        assert result.returncode == 1
        assert message in one_line_error(result.stderr)
    assert _outside(tmp_path, ci_home) == before
    assert not store_dir.exists() or not _store_refs(store_dir)
