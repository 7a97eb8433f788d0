"""Filling registry/ (issue 9): the warning when nothing copies it, one-line errors that name
the image and where it was named, a killed build that leaves the cache whole, and
``registry save`` without a build."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterimage.transports.registry_dir import walk
from tests.conftest import REPO_ROOT, run_cli
from tests.fixtures.mirror import Mirror
from tests.fixtures.registry import Registry
from tests.helpers.images import big_bytes, make_big_image

pytestmark = pytest.mark.integration

NGINX = "docker.io/library/nginx:1.25.3-alpine"  # one of the images the mirror holds


def _context(root: Path, kubefile: str, manifest: str) -> Path:
    (root / "manifests").mkdir(parents=True)
    (root / "Kubefile").write_text(kubefile)
    (root / "manifests" / "app.yaml").write_text(manifest)
    return root


def test_a_kubefile_that_copies_no_registry_while_images_were_found_is_warned(
    tmp_path: Path, ci_home: Path, image_mirror: Mirror
) -> None:
    context = _context(
        tmp_path / "ctx",
        "FROM scratch\nCOPY manifests manifests\n",
        f"spec:\n  containers:\n    - image: {NGINX}\n",
    )
    result = run_cli("build", context, "-t", "localhost/nocopy:v1")
    assert "1 image found for registry/" in result.stderr, result.stderr


def test_a_missing_image_is_one_line_naming_it_and_its_line_and_nothing_is_stored(
    tmp_path: Path, ci_home: Path, image_mirror: Mirror
) -> None:
    context = _context(
        tmp_path / "ctx",
        "FROM scratch\nCOPY . .\n",
        f"a:\n  image: {NGINX}\nb:\n  image: docker.io/library/nginx:9.9-missing\n",
    )
    result = run_cli("build", context, "-t", "localhost/missing:v1", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "manifests/app.yaml:4" in lines[0] and "nginx:9.9-missing" in lines[0]
    store = ci_home / "store" / "index.json"
    assert not store.exists() or "localhost/missing" not in store.read_text()


def test_registry_save_fills_a_folder_without_a_build(
    tmp_path: Path, ci_home: Path, image_mirror: Mirror
) -> None:
    context = REPO_ROOT / "Kubefile.examples" / "nginx-manifests"
    out = tmp_path / "registry"
    saved = json.loads(run_cli("registry", "save", context, "--registry-dir", out, "--json").stdout)
    names = {(e.repository, e.tag): str(e.digest) for e in walk(out)}
    assert {f"{r}:{t}": d for (r, t), d in names.items()} == saved["images"]
    assert (
        saved["images"]["library/busybox:1.36.1"]
        == image_mirror.digests["docker.io/library/busybox:1.36.1"]
    )
    again = json.loads(run_cli("registry", "save", context, "--registry-dir", out, "--json").stdout)
    assert again["fetched"] == 0 and again["images"] == saved["images"]


def test_a_build_killed_while_fetching_leaves_the_cache_whole_and_the_next_completes(
    tmp_path: Path, ci_home: Path, registry_factory: Callable[..., Registry]
) -> None:
    big = registry_factory()
    layout = tmp_path / "big"
    make_big_image(layout, big_bytes(96 << 20), ref="big")
    run_cli("copy", f"oci:{layout}:big", f"docker://{big.host}/library/big:v1")
    conf = tmp_path / "registries.conf"
    conf.write_text(
        f'[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
        f'[[registry.mirror]]\nlocation = "{big.host}"\ninsecure = true\n'
    )
    context = _context(
        tmp_path / "ctx", "FROM scratch\nCOPY . .\n", "image: docker.io/library/big:v1\n"
    )
    env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}
    cache = ci_home / "cache" / "images"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clusterimage",
            "build",
            "-q",
            "-t",
            "localhost/big:v1",
            str(context),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uploads = cache / "docker" / "registry" / "v2" / "_uploads"
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if uploads.is_dir() and any(p.stat().st_size > (4 << 20) for p in uploads.iterdir()):
            break
        time.sleep(0.005)
    assert process.poll() is None, "the build finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Every blob the cache shows is whole; nothing half-written is linked anywhere.
    for data in (cache / "docker" / "registry" / "v2" / "blobs").rglob("data"):
        assert "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest() == (
            f"sha256:{data.parent.name}"
        )
    result = run_cli(
        "build",
        "-q",
        "-t",
        "localhost/big:v1",
        context,
        env={"CONTAINERS_REGISTRIES_CONF": str(conf)},
    )
    assert result.stdout.startswith("sha256:")
    assert [(e.repository, e.tag) for e in walk(cache)] == [("docker.io/library/big", "v1")]


def test_registry_holds_the_build_platform_only_unless_all(
    tmp_path: Path, ci_home: Path, registry_factory: Callable[..., Registry]
) -> None:
    from tests.helpers.images import make_index_layout

    source = registry_factory()
    multi = make_index_layout(tmp_path / "multi", ref="v3")
    run_cli("copy", "--all", multi.transport_ref, f"docker://{source.host}/team/multi:v3")
    context = _context(
        tmp_path / "ctx", "FROM scratch\nCOPY . .\n", f"image: {source.host}/team/multi:v3\n"
    )
    arm = json.loads(
        run_cli(
            "build", context, "-t", "localhost/arm:v1", "--platform", "linux/arm64", "--json"
        ).stdout
    )
    assert arm["images"] == {"team/multi:v3": multi.images["linux/arm64"].manifest.digest}
    every = json.loads(
        run_cli("build", context, "-t", "localhost/all:v1", "--all", "--json").stdout
    )
    assert every["images"] == {"team/multi:v3": multi.index.digest}
