"""Processes sharing one store: concurrent imports and tags, and a writer killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from clusterimage.oci.digest import Digest
from clusterimage.store import Store
from tests.conftest import REPO_ROOT, run_cli, wait_until
from tests.fixtures.oci_layout import make_oci_layout
from tests.helpers.images import big_bytes, make_big_image

COUNT = 25  # imports per worker; each is followed by a tag: 50 store operations per worker


def _worker(*args: str | int | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.store_worker", *map(str, args)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_two_processes_import_and_tag_at_once(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shared = {"base/data.bin": big_bytes(1 << 20, seed=1)}  # one layer every image shares
    expected: dict[str, str] = {}
    for worker in ("0", "1"):
        for i in range(COUNT):
            image = make_oci_layout(
                source, ref=f"w{worker}-{i}", layers=(shared, {"id.txt": f"{worker}/{i}".encode()})
            )
            expected[f"localhost/w{worker}/img:{i}"] = image.manifest.digest
            expected[f"localhost/w{worker}/alias:{i}"] = image.manifest.digest
    store_dir = tmp_path / "store"
    go = tmp_path / "go"
    workers = [_worker("import", store_dir, source, w, COUNT, go) for w in ("0", "1")]
    go.touch()
    for proc in workers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "done"

    store = Store(store_dir)
    assert store.fsck() == []
    names = {e.name: str(e.digest) for e in store.images()}
    assert names == expected  # every tag present, each once, on the right image
    index = json.loads((store_dir / "index.json").read_text())
    assert len(index["manifests"]) == 4 * COUNT
    result = run_cli("--store", store_dir, "fsck")
    assert result.stdout.startswith("ok: ")


def test_sigkill_mid_blob_write_then_resume(tmp_path: Path) -> None:
    size = 24 << 20
    data = big_bytes(size)
    digest = Digest.of(data)
    store_dir = tmp_path / "store"
    writer = _worker("write", store_dir, size)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "started", writer.stderr
        store = Store(store_dir)
        wait_until(lambda: store.partial_size(digest) >= 3 << 20, timeout=20, message="data")
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate(timeout=20)
    assert writer.returncode == -signal.SIGKILL

    kept = store.partial_size(digest)
    assert 0 < kept < size
    assert not store.has_blob(digest)  # nothing half-written is visible
    assert store.fsck() == []
    fsck = run_cli("--store", store_dir, "fsck")
    assert fsck.stdout.startswith("ok: ")

    # The next import of an image with that layer resumes from the partial file.
    source = tmp_path / "source"
    manifest, layer = make_big_image(source, data, ref="big")
    assert layer == str(digest)
    pulled = run_cli("--store", store_dir, "pull", f"oci:{source}:big", "--name", "big:1", "--json")
    result = json.loads(pulled.stdout)
    assert result["digest"] == manifest
    manifest_doc = json.loads(store.blob_path(Digest.parse(manifest)).read_bytes())
    config_size = manifest_doc["config"]["size"]
    assert result["bytesCopied"] == size - kept + config_size
    assert store.partial_size(digest) == 0
    assert store.fsck() == []
    assert run_cli("--store", store_dir, "fsck").stdout.startswith("ok: ")
