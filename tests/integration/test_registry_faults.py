"""Faults between us and the registry (the fault proxy, a throttled relay, SIGKILL): pushes and
pulls survive dropped connections and 503s, fall back to chunks on 413, refuse a corrupted
byte without storing anything, and a killed pull resumes with only the missing bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_until
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    MiB,
    ingest_sizes,
    isolated_auth,  # noqa: F401 - fixture
    load,
    one_line_error,
    skopeo_digest,
    throttled,
    write_image,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]


def _fsck_ok() -> None:
    report = json.loads(run_cli("fsck", "--json").stdout)
    assert report["ok"] is True, report


def test_100mib_push_and_pull_through_drops_and_503s(
    registry: Registry,
    fault_proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
    store_dir: Path,
) -> None:
    proxy = fault_proxy_factory(
        registry,
        seed=7,  # rolls: ...5..5.D.55.. (503s and a drop among the first requests)
        drop_rate=0.05,
        error_rate=0.05,
        truncate_rate=0.05,
        retry_after=1,
        max_faults=12,
    )
    image = write_image(tmp_path / "src", [25 * MiB] * 4, seed=21)
    name = f"{proxy.host}/flaky/app:v1"
    load(image, name)
    started = time.monotonic()
    pushed = run_cli("push", name, "--retry", "5", "-q")
    assert pushed.stdout.strip() == image.manifest_digest
    direct = f"docker://{registry.host}/flaky/app:v1"
    assert skopeo_digest(direct, "--tls-verify=false") == image.manifest_digest
    pushed_faults = proxy.faults_injected
    assert pushed_faults > 0

    run_cli("rmi", name)
    run_cli("prune")  # the next pull must fetch every blob again
    proxy.reseed(31)  # rolls: DT..TT..T: a drop and truncated blob bodies
    pulled = run_cli("pull", name, "--retry", "5", "-q")
    assert pulled.stdout.strip() == image.manifest_digest
    assert proxy.faults_injected > 0
    kinds = {r.fault for r in proxy.snapshot() if r.fault}
    assert {"drop", "503"} <= kinds
    _fsck_ok()
    assert time.monotonic() - started < 60


def test_413_on_whole_blob_uploads_switches_to_chunks(
    registry: Registry, fault_proxy_factory: Callable[..., FaultProxy], tmp_path: Path
) -> None:
    proxy = fault_proxy_factory(
        registry, reject_monolithic=True, max_body=8 * MiB, chunk_min_length=3 * MiB
    )
    image = write_image(tmp_path / "src", [20 * MiB, 1000], seed=22)
    name = f"{proxy.host}/chunked/app:v1"
    load(image, name)
    pushed = run_cli("push", name, "-q")
    assert pushed.stdout.strip() == image.manifest_digest
    assert proxy.count(fault="413") >= 1
    patches = [r for r in proxy.snapshot() if r.method == "PATCH" and r.status == 202]
    assert len(patches) >= 3  # 20 MiB in chunks of at most 8 MiB
    assert all(r.bytes_in <= 8 * MiB for r in patches)
    # Every chunk but the last of a blob honours OCI-Chunk-Min-Length.
    assert sum(1 for r in patches if r.bytes_in < 3 * MiB) <= len(image.blob_digests)
    direct = f"docker://{registry.host}/chunked/app:v1"
    assert skopeo_digest(direct, "--tls-verify=false") == image.manifest_digest


def test_corrupted_byte_fails_the_pull_and_stores_nothing(
    registry: Registry,
    fault_proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
    store_dir: Path,
) -> None:
    image = write_image(tmp_path / "src", [3 * MiB, 10_000], seed=23)
    run_cli("copy", image.transport_ref, f"docker://{registry.host}/corrupt/app:v1")
    proxy = fault_proxy_factory(registry)
    bad = image.layer_digests[0]
    proxy.corrupt_blob(bad)
    failed = run_cli("pull", f"{proxy.host}/corrupt/app:v1", check=False)
    assert failed.returncode == 1
    line = one_line_error(failed.stderr)
    assert bad in line
    assert proxy.count(fault="corrupt") == 1  # not retried: a bad digest is not a network fault
    images = json.loads(run_cli("images", "--json").stdout)
    assert images == []
    blob = store_dir / "blobs" / "sha256" / bad.split(":", 1)[1]
    assert not blob.exists()
    assert not any(bad.split(":", 1)[1] in name for name in ingest_sizes(store_dir))
    _fsck_ok()


def test_killed_pull_resumes_with_only_the_missing_bytes(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image = write_image(tmp_path / "src", [25 * MiB] * 4, seed=24)
    run_cli("copy", image.transport_ref, f"docker://{registry.host}/resume/app:v1")
    with throttled(registry.host, rate=40 * MiB) as relay:
        name = f"{relay.host}/resume/app:v1"
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterimage", "pull", name, "-q"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(
                lambda: sum(ingest_sizes(store_dir).values()) >= 30 * MiB,
                timeout=30,
                interval=0.01,
                message="30 MiB of partial downloads",
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        kept = sum(ingest_sizes(store_dir).values())
        assert 30 * MiB <= kept < image.size
        wait_until(relay.idle, timeout=10, message="the killed pull's connections to end")
        relay.rate = 10_000 * MiB  # the rest at full speed
        relay.reset_count()
        mark = registry.log_mark()
        pulled = run_cli("pull", name, "-q")
        fetched = relay.bytes_down  # response bytes of the second pull, headers included
    assert pulled.stdout.strip() == image.manifest_digest
    gets = [e for e in registry.requests(mark) if e.method == "GET" and "/blobs/" in e.path]
    assert any(e.status == 206 for e in gets), gets  # resumed with Range
    assert fetched <= image.size - kept + 64 * 1024, (fetched, image.size, kept)
    assert ingest_sizes(store_dir) == {}
    _fsck_ok()
