"""``registry-dir:``, distribution's filesystem storage, against the real thing: stock
docker-registry serves what we write with the digests we wrote, and we read what it wrote when
skopeo pushed to it. Two writers at once stay consistent; bad folders fail in one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterimage.transports.registry_dir import walk
from tests.conftest import REPO_ROOT, require_tool, run_cli, run_tool
from tests.fixtures.oci_layout import make_oci_layout
from tests.fixtures.registry import Registry
from tests.helpers.images import make_index_layout

pytestmark = pytest.mark.integration


def _digest(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _fill(root: Path, tmp_path: Path) -> dict[str, str]:
    """Several repositories, a tag, a digest-only manifest and a two-platform index, written
    with `clusterimage copy`; returns what to ask the registry for -> the digest we wrote."""
    app = make_oci_layout(tmp_path / "app", ref="v1", labels={"n": "app"})
    other = make_oci_layout(tmp_path / "other", ref="v2", layers=[{"o.txt": b"other\n"}])
    loose = make_oci_layout(tmp_path / "loose", ref="x", layers=[{"l.txt": b"loose\n"}])
    multi = make_index_layout(tmp_path / "multi", ref="v3")
    wanted = {}
    out = run_cli("copy", app.transport_ref, f"registry-dir:{root}:library/app:v1").stdout
    wanted["library/app:v1"] = out.strip()
    out = run_cli("copy", other.transport_ref, f"registry-dir:{root}:team/tools/other:v2").stdout
    wanted["team/tools/other:v2"] = out.strip()
    out = run_cli("copy", loose.transport_ref, f"registry-dir:{root}:library/app").stdout
    wanted[f"library/app@{out.strip()}"] = out.strip()
    out = run_cli("copy", "--all", multi.transport_ref, f"registry-dir:{root}:multi/arch:v3")
    wanted["multi/arch:v3"] = out.stdout.strip()
    for image in multi.images.values():
        wanted[f"multi/arch@{image.manifest.digest}"] = image.manifest.digest
    return wanted


def test_docker_registry_serves_what_we_wrote_with_our_digests(
    tmp_path: Path, ci_home: Path, registry_factory: Callable[..., Registry]
) -> None:
    skopeo = require_tool("skopeo")
    root = tmp_path / "registry"
    wanted = _fill(root, tmp_path)
    served = registry_factory(config={"storage": {"filesystem": {"rootdirectory": str(root)}}})
    for name, digest in wanted.items():
        raw = run_tool(
            [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{served.host}/{name}"]
        ).stdout
        assert _digest(raw) == digest, name
    # Pulling every image back through the registry checks every _layers link too (a stock
    # registry serves a blob only to a repository that links it).
    for n, name in enumerate(wanted):
        out = tmp_path / f"pulled-{n}"
        run_tool([skopeo, "copy", "--src-tls-verify=false", "--all",
                  f"docker://{served.host}/{name}", f"oci:{out}:x"])  # fmt: skip
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == wanted[name], name
    entries = {(e.repository, e.tag) for e in walk(root)}
    assert ("library/app", "v1") in entries and ("multi/arch", "v3") in entries
    digest_only = [e for e in walk(root) if e.tag is None]
    assert [(e.repository, str(e.digest)) for e in digest_only] == [
        ("library/app", wanted[next(k for k in wanted if k.startswith("library/app@"))])
    ]
    assert not (root / "docker/registry/v2/_uploads").exists()


def test_we_read_what_docker_registry_wrote_when_skopeo_pushed(
    tmp_path: Path, ci_home: Path, registry: Registry
) -> None:
    skopeo = require_tool("skopeo")
    image = make_oci_layout(tmp_path / "src", ref="v1")
    multi = make_index_layout(tmp_path / "multi", ref="v2")
    run_tool([skopeo, "copy", "--dest-tls-verify=false", image.transport_ref,
              f"docker://{registry.host}/pushed/app:v1"])  # fmt: skip
    run_tool([skopeo, "copy", "--all", "--dest-tls-verify=false", multi.transport_ref,
              f"docker://{registry.host}/pushed/multi:v2"])  # fmt: skip
    remote = run_tool(
        [
            skopeo,
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.host}/pushed/app:v1",
        ]
    ).stdout
    data = json.loads(
        run_cli("inspect", "-t", "manifest", f"registry-dir:{registry.root}:pushed/app:v1").stdout
    )
    assert data == json.loads(remote)
    got = run_cli("copy", f"registry-dir:{registry.root}:pushed/app:v1", f"oci:{tmp_path}/o:v1")
    assert got.stdout.strip() == _digest(remote)
    got = run_cli(
        "copy", "--all", f"registry-dir:{registry.root}:pushed/multi:v2", f"oci:{tmp_path}/m:v2"
    )
    assert got.stdout.strip() == multi.index.digest
    # walk() finds both tags and nothing digest-only (the index's children are its own).
    entries = [(e.repository, e.tag, str(e.digest)) for e in walk(registry.root)]
    assert entries == [
        ("pushed/app", "v1", _digest(remote)),
        ("pushed/multi", "v2", multi.index.digest),
    ]
    for image in multi.images.values():
        child = f"registry-dir:{registry.root}:pushed/multi@{image.manifest.digest}"
        got = run_cli("copy", child, f"oci:{tmp_path}/c:x")
        assert got.stdout.strip() == image.manifest.digest


_WORKER = """
import sys
from clusterimage import transports
from clusterimage.copy import copy_image
from clusterimage.transports.base import Context
layout, root, prefix = sys.argv[1:4]
order = range(20) if prefix == "a" else reversed(range(20))
for n in order:
    for repository in (f"{prefix}/img{n}", f"common/img{n}"):
        copy_image(
            transports.parse(f"oci:{layout}:img{n}"),
            transports.parse(f"registry-dir:{root}:{repository}:v1"),
            Context(jobs=4),
        )
"""


def test_two_writers_at_once_leave_every_tag_readable_and_every_blob_intact(
    tmp_path: Path, ci_home: Path
) -> None:
    """Two processes write 20 images each, every one into a repository of their own and into
    one both write (the same tags, links and blobs at once); all share one big layer."""
    layout = tmp_path / "images"
    shared = {"shared.bin": os.urandom(4 << 20)}
    digests = {}
    for n in range(20):
        image = make_oci_layout(
            layout, ref=f"img{n}", layers=[shared, {f"{n}.txt": f"{n}\n".encode()}]
        )
        digests[n] = image.manifest.digest
    root = tmp_path / "registry"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(layout), str(root), prefix],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
        )
        for prefix in ("a", "b")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()
    entries = walk(root)
    assert sorted((e.repository, e.tag, str(e.digest)) for e in entries) == sorted(
        (f"{prefix}/img{n}", "v1", digests[n]) for prefix in ("a", "b", "common") for n in range(20)
    )
    blobs = root / "docker/registry/v2/blobs/sha256"
    stored = list(blobs.glob("*/*/data"))
    assert len(stored) == 1 + 20 * 3  # the shared layer; each image's layer, config, manifest
    for data in stored:
        assert _digest(data.read_bytes()) == f"sha256:{data.parent.name}"
    assert not (root / "docker/registry/v2/_uploads").exists()
    for entry in entries:
        got = run_cli("copy", f"registry-dir:{root}:{entry.repository}:v1", f"oci:{tmp_path}/c:x")
        assert got.stdout.strip() == str(entry.digest)


def _one_line_error(args: list[str]) -> str:
    result = run_cli(*args, check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_link_to_a_missing_blob_or_holding_garbage_is_one_line(
    tmp_path: Path, ci_home: Path
) -> None:
    image = make_oci_layout(tmp_path / "src", ref="v1")
    root = tmp_path / "registry"
    run_cli("copy", image.transport_ref, f"registry-dir:{root}:app:v1")
    v2 = root / "docker/registry/v2"
    layer = image.layers[0].digest
    (v2 / "blobs/sha256" / layer[7:9] / layer[7:] / "data").unlink()
    line = _one_line_error(["copy", f"registry-dir:{root}:app:v1", f"oci:{tmp_path}/o:v1"])
    assert layer in line and "missing" in line
    (v2 / "repositories/app/_manifests/tags/v1/current/link").write_bytes(b"\x00garbage\xff")
    line = _one_line_error(["inspect", f"registry-dir:{root}:app:v1"])
    assert "current/link" in line and "not a digest link" in line


def test_nothing_is_read_or_written_through_a_link_out_of_the_folder(
    tmp_path: Path, ci_home: Path
) -> None:
    image = make_oci_layout(tmp_path / "src", ref="v1")
    root = tmp_path / "registry"
    outside = tmp_path / "outside"
    outside.mkdir()
    repositories = root / "docker/registry/v2/repositories"
    repositories.mkdir(parents=True)
    (repositories / "evil").symlink_to(outside)
    line = _one_line_error(["copy", image.transport_ref, f"registry-dir:{root}:evil:v1"])
    assert "symbolic link" in line
    assert list(outside.iterdir()) == []
    for name in ("../up", "a/../../up", "/etc/up", "UP"):
        line = _one_line_error(["copy", image.transport_ref, f"registry-dir:{root}:{name}:v1"])
        assert "not a repository name" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clusterimage-home",
        "outside",
        "registry",
        "src",
    ]
