"""``inspect`` prints podman's ``image inspect`` object: its keys, nested as podman nests them.

Three images cover what podman fills differently: an OCI image (labels, manifest annotations, a
history comment, every OCI config field), a docker-archive (a Docker schema2 config: comment,
docker_version, a health check) and a multi-platform index. Each is pulled by podman (4.3,
private ``--root``, vfs) and by clusterimage from the same files, and the two objects are
compared key by key, values included where both describe the same bytes. A second test checks
our key set against podman's ImageData key list without podman.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root, require_tool, run_cli, run_tool
from tests.fixtures.oci_layout import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REF_NAME,
    host_architecture,
    layer_tar,
    sha256_digest,
)
from tests.helpers.images import make_index_layout, set_index_entries, write_blob

# containers/podman pkg/inspect/inspect.go (and containers/common libimage/inspect.go, which
# podman 4.3 prints): ImageData's JSON keys in their order. Healthcheck is omitempty.
PODMAN_KEYS = (
    "Id",
    "Digest",
    "RepoTags",
    "RepoDigests",
    "Parent",
    "Comment",
    "Created",
    "Config",
    "Version",
    "Author",
    "Architecture",
    "Os",
    "Size",
    "VirtualSize",
    "GraphDriver",
    "RootFS",
    "Labels",
    "Annotations",
    "ManifestType",
    "User",
    "History",
    "NamesHistory",
    "Healthcheck",
)
PODMAN_OPTIONAL = {"Healthcheck"}
# README, Output conventions: podman keys we do not print, and the keys we add.
NOT_FILLED = {"GraphDriver", "NamesHistory"}
ADDITIONS = ("ManifestDigest", "Variant", "Index", "EmbeddedImages", "ClusterImageType")
# image-spec v1 ImageConfig and History (podman's Config and History entries).
OCI_CONFIG_FIELDS = {
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
}
ALWAYS_SHOWN = {"User", "Env", "Entrypoint", "Cmd", "WorkingDir", "Labels"}  # podman omits empty
OCI_HISTORY_FIELDS = {"created", "created_by", "author", "comment", "empty_layer"}
# Maps whose keys are data: compared as values (podman prints no labels as null, we as {}).
DATA_MAPS = {"Labels", "Annotations", "Config.Labels", "Config.ExposedPorts", "Config.Volumes"}
# Values that differ by design (README): Size counts the stored compressed blobs.
NOT_COMPARED = {"Size", "VirtualSize"}

NAME = "localhost/inspect/app:v1"
EMBEDDED = {"docker.io/library/nginx:1.25": "sha256:" + "ab" * 32}


@dataclass(frozen=True)
class Case:
    name: str  # the name both stores give the image
    podman_source: str  # what podman pulls
    ours: tuple[str, ...]  # our pull's arguments
    same_manifest: bool  # False: a docker-archive, whose layers we gzip (another digest)


def _oci_image(layout: Path) -> Case:
    """An OCI image with everything podman reads from one: annotations (our embedded-images
    record among them), labels, a history comment, author, docker_version, all OCI config
    fields."""
    tar = layer_tar({"etc/app.conf": b"a=1\n"})
    compressed = gzip.compress(tar, mtime=0)
    layer = write_blob(layout, compressed)
    config = {
        "created": "2024-05-01T10:00:00Z",
        "author": "ops@example.com",
        "docker_version": "24.0.7",  # podman reads it from an OCI config too
        "architecture": host_architecture(),
        "os": "linux",
        "config": {
            "User": "1000:1000",
            "ExposedPorts": {"8080/tcp": {}},
            "Env": ["PATH=/usr/bin", "MODE=prod"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["run"],
            "Volumes": {"/data": {}},
            "WorkingDir": "/opt/app",
            "Labels": {"sealos.io.type": "rootfs", "sealos.io.version": "v1"},
            "StopSignal": "SIGTERM",
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
        "history": [
            {"created": "2024-05-01T10:00:00Z", "created_by": "COPY . .", "comment": "first"},
            {"created": "2024-05-01T10:00:01Z", "created_by": "LABEL a=b", "empty_layer": True},
        ],
    }
    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": write_blob(layout, config_bytes),
            "size": len(config_bytes),
        },
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer, "size": len(compressed)}],
        "annotations": {
            "org.opencontainers.image.title": "app",
            "io.clusterimage.images": json.dumps(EMBEDDED),
        },
    }
    manifest_bytes = json.dumps(manifest).encode()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    set_index_entries(
        layout,
        [
            {
                "mediaType": OCI_MANIFEST,
                "digest": write_blob(layout, manifest_bytes),
                "size": len(manifest_bytes),
                "annotations": {REF_NAME: "v1"},
            }
        ],
    )
    return Case(NAME, f"oci:{layout}:v1", (f"oci:{layout}:v1", "--name", NAME), True)


def _docker_archive(path: Path) -> Case:
    """What `docker save` writes for an image with a Docker config: comment, docker_version,
    a health check and docker-only config fields (Hostname) podman's Config leaves out."""
    tar = layer_tar({"hello.txt": b"hi\n"})
    config = {
        "architecture": host_architecture(),
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "author": "someone",
        "docker_version": "24.0.7",
        "comment": "imported",
        "config": {
            "Hostname": "abc",
            "Env": ["PATH=/bin"],
            "Cmd": ["sh"],
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
        },
        "container_config": {"Hostname": "abc"},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "ADD file", "comment": "x"}],
    }
    config_bytes = json.dumps(config).encode()
    config_name = sha256_digest(config_bytes).split(":")[1] + ".json"
    name = "localhost/inspect/dock:v1"
    members = {
        config_name: config_bytes,
        "l1/layer.tar": tar,
        "manifest.json": json.dumps(
            [{"Config": config_name, "RepoTags": [name], "Layers": ["l1/layer.tar"]}]
        ).encode(),
    }
    with tarfile.open(path, "w") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return Case(name, f"docker-archive:{path}", (f"docker-archive:{path}",), False)


def _index(layout: Path) -> Case:
    make_index_layout(layout, ref="v1")
    name = "localhost/inspect/multi:v1"
    return Case(name, f"oci:{layout}:v1", ("--all", f"oci:{layout}:v1", "--name", name), True)


CASES: dict[str, Callable[[Path], Case]] = {
    "oci": lambda tmp: _oci_image(tmp / "oci"),
    "docker-archive": lambda tmp: _docker_archive(tmp / "docker.tar"),
    "index": lambda tmp: _index(tmp / "multi"),
}


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """podman with a private storage root (vfs, no events, no systemd): nothing it does
    touches the host's containers storage."""
    require_root("podman with its own storage root")
    # podman refuses a runroot of more than 50 characters: a short folder of its own.
    run_root = Path(tempfile.mkdtemp(prefix="ci-podman-"))
    base = [
        require_tool("podman"),
        "--root",
        str(tmp_path / "podman-root"),
        "--runroot",
        str(run_root / "run"),
        "--tmpdir",
        str(run_root / "tmp"),
        "--storage-driver",
        "vfs",
        "--events-backend",
        "none",
        "--cgroup-manager",
        "cgroupfs",
    ]

    def run(*args: str) -> str:
        return run_tool([*base, *args]).stdout

    yield run
    shutil.rmtree(run_root, ignore_errors=True)


def _ours(case: Case) -> dict[str, Any]:
    run_cli("pull", "-q", *case.ours)
    shown = json.loads(run_cli("inspect", case.name).stdout)
    assert isinstance(shown, dict)
    return shown


def _theirs(podman: Callable[..., str], case: Case) -> dict[str, Any]:
    image_id = podman("pull", "-q", case.podman_source).strip()
    # podman 4.3 names an oci: pull after the folder, whatever the ref: name it as we do.
    podman("untag", image_id)
    podman("tag", image_id, case.name)
    shown = json.loads(podman("image", "inspect", case.name))
    assert isinstance(shown, list) and len(shown) == 1
    return dict(shown[0])


def _compare(ours: Any, theirs: Any, path: str, problems: list[str]) -> None:
    """Record where ``ours`` differs from podman's ``theirs`` in keys, nesting or value."""
    if path in DATA_MAPS:
        if (ours or {}) != (theirs or {}):
            problems.append(f"{path}: {ours!r} != podman's {theirs!r}")
        return
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            problems.append(f"{path}: {type(ours).__name__}, podman has an object")
            return
        allowed_extra: set[str] = set()
        if path == "Config":  # shown even when empty, where podman omits them
            allowed_extra = {k for k in ALWAYS_SHOWN if ours.get(k) in ("", [], {})}
        elif path == "":
            allowed_extra = set(ADDITIONS)
        missing = set(theirs) - set(ours) - (NOT_FILLED if path == "" else set())
        extra = set(ours) - set(theirs) - allowed_extra
        if missing or extra:
            problems.append(f"{path or 'top'}: missing {sorted(missing)}, extra {sorted(extra)}")
        for key in set(theirs) & set(ours):
            if key not in NOT_COMPARED:
                _compare(ours[key], theirs[key], f"{path}.{key}".lstrip("."), problems)
    elif isinstance(theirs, list) and isinstance(ours, list) and len(ours) == len(theirs):
        for position, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _compare(a, b, f"{path}[{position}]", problems)
    elif ours != theirs:
        problems.append(f"{path}: {ours!r} != podman's {theirs!r}")


@pytest.mark.parametrize("kind", sorted(CASES))
def test_inspect_matches_podman_image_inspect(
    kind: str, tmp_path: Path, ci_home: Path, podman: Callable[..., str]
) -> None:
    case = CASES[kind](tmp_path)
    theirs = _theirs(podman, case)
    ours = _ours(case)
    assert theirs["Id"] == ours["Id"]  # the same image: its config
    if not case.same_manifest:
        # We gzip a docker-archive's layers, podman stores them as they are: the manifest
        # (Digest, RepoDigests) is another one; everything the config says is the same.
        for key in ("Digest", "RepoDigests"):
            assert ours[key] != theirs[key]
            theirs[key] = ours[key]
    problems: list[str] = []
    _compare(ours, theirs, "", problems)
    assert problems == []
    # podman's keys in podman's order, then ours.
    order = [key for key in PODMAN_KEYS if key in ours]
    assert list(ours) == order + list(ADDITIONS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_inspect_keys_are_podman_image_data_and_documented_additions(
    kind: str, tmp_path: Path, ci_home: Path
) -> None:
    """Without podman: the key list of its ImageData, less what we document as not filled,
    plus our documented additions; nested objects of the OCI spec's fields only."""
    case = CASES[kind](tmp_path)
    ours = _ours(case)
    expected = [k for k in PODMAN_KEYS if k not in NOT_FILLED and k not in PODMAN_OPTIONAL]
    if kind == "docker-archive":
        expected.append("Healthcheck")  # podman: a docker config's health check, when set
    assert list(ours) == expected + list(ADDITIONS)
    assert set(ours["RootFS"]) == {"Type", "Layers"}
    assert ALWAYS_SHOWN <= set(ours["Config"]) <= OCI_CONFIG_FIELDS
    assert all(set(entry) <= OCI_HISTORY_FIELDS for entry in ours["History"])
    assert ours["VirtualSize"] == ours["Size"] > 0
    assert ours["Parent"] == ""
    if kind == "oci":
        assert ours["RepoTags"] == [NAME]
        assert ours["RepoDigests"] == [f"localhost/inspect/app@{ours['Digest']}"]
        assert ours["ManifestDigest"] == ours["Digest"]
        assert (ours["Comment"], ours["Version"]) == ("first", "24.0.7")
        assert ours["Config"]["ExposedPorts"] == {"8080/tcp": {}}
        assert ours["EmbeddedImages"] == EMBEDDED
        assert ours["ClusterImageType"] == "rootfs"
        assert ours["Index"] is None and ours["Variant"] == ""
    elif kind == "docker-archive":
        assert (ours["Comment"], ours["Version"], ours["Author"]) == (
            "imported",
            "24.0.7",
            "someone",
        )
        assert ours["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 1000000000}
        assert "Hostname" not in ours["Config"]  # docker-only: not an OCI config field
        assert ours["EmbeddedImages"] == {} and ours["ClusterImageType"] == "application"
    else:
        index = ours["Index"]
        assert index["Digest"] == ours["Digest"] != ours["ManifestDigest"]
        assert index["Platforms"] == ["linux/amd64", "linux/arm64"]
        repo = "localhost/inspect/multi"
        assert ours["RepoDigests"] == sorted(
            [f"{repo}@{ours['Digest']}", f"{repo}@{ours['ManifestDigest']}"]
        )
