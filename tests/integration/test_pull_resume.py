"""A pull interrupted half way (Ctrl-C, or a kill) keeps what arrived: the next pull asks for
the rest of the layer with a Range request and fetches only the missing bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_until
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    MiB,
    ingest_sizes,
    isolated_auth,  # noqa: F401 - fixture
    throttled,
    write_image,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]

LAYER = 32 * MiB


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_pull_resumes_the_partial_layer(
    sig: signal.Signals, registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image = write_image(tmp_path / "src", [LAYER], seed=40 + int(sig))
    layer = image.layer_digests[0]
    run_cli("copy", image.transport_ref, f"docker://{registry.host}/resume/big:v1")
    # 8 MiB/s: the layer takes ~4 s, time enough to interrupt it half way.
    with throttled(registry.host, rate=8 * MiB) as relay:
        name = f"{relay.host}/resume/big:v1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "clusterimage", "pull", name],
            env={**os.environ, "NO_COLOR": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(
                lambda: sum(ingest_sizes(store_dir).values()) >= LAYER // 2,
                timeout=30,
                interval=0.01,
                message="half the layer in the ingest folder",
            )
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if sig == signal.SIGINT:
            # Ctrl-C: the conventional 130, one line and no traceback.
            assert proc.returncode == 130, stderr
            assert "Traceback" not in stderr, stderr
        else:
            assert proc.returncode == -signal.SIGKILL
        kept = ingest_sizes(store_dir).get(layer.replace(":", "-"), 0)
        assert LAYER // 2 <= kept < LAYER, (kept, ingest_sizes(store_dir))
        assert not (store_dir / "blobs" / "sha256" / layer.split(":", 1)[1]).exists()

        wait_until(relay.idle, timeout=10, message="the first pull's connections to end")
        relay.rate = 10_000 * MiB  # the rest at full speed
        relay.reset_count()
        mark = registry.log_mark()
        pulled = run_cli("pull", name, "-q")
        fetched = relay.bytes_down  # response bytes of the second pull, headers included
    assert pulled.stdout.strip() == image.manifest_digest
    layer_gets = [
        e
        for e in registry.requests(mark)
        if e.method == "GET" and e.path.endswith(f"/blobs/{layer}")
    ]
    assert [e.status for e in layer_gets] == [206], layer_gets  # one ranged request
    missing = image.size - kept
    # Only the missing part travels (plus manifest, config and headers): well under the layer.
    assert fetched <= missing + 64 * 1024, (fetched, missing)
    assert fetched < LAYER * 3 // 4
    assert ingest_sizes(store_dir) == {}
    report = json.loads(run_cli("fsck", "--json").stdout)
    assert report["ok"] is True, report
