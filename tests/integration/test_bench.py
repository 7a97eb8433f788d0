"""scripts/bench.py runs end to end (tiny sizes): the numbers in the closing notes come from it,
so it must keep working, and its JSON must carry what the goals are checked against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def _bench(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("command", ["push", "pull"])
def test_transfer_benchmark_runs_against_skopeo(command: str) -> None:
    require_tool("skopeo")
    require_tool("docker-registry")
    data = _bench(command, "--size", "8", "--layers", "2", "--rounds", "2", "--warmup", "1")
    assert data["command"] == command and data["layers"] == 2 and data["rounds"] == 2
    assert data["warmup_rounds"] == 1
    assert 8 * (1 << 20) <= data["image_bytes"] < 9 * (1 << 20)
    # Medians of the timed rounds only: the warm-up round is not in the lists.
    assert len(data["all"]["clusterimage"]) == len(data["all"]["skopeo"]) == 2
    assert data["ratio"] == pytest.approx(data["clusterimage_s"] / data["skopeo_s"])
    assert 0 < data["peak_rss_mib"] < 100
    if command == "push":
        assert len(data["all"]["repush"]) == 2 and data["repush_s"] > 0


def test_build_benchmark_runs_against_buildah() -> None:
    require_tool("buildah")
    data = _bench("build", "--size", "2")
    assert data["clusterimage"]["digest"].startswith("sha256:")
    assert data["ratio_cold"] > 0 and data["ratio_rebuild"] > 0
    assert "skipped" not in data["buildah"]


@pytest.mark.parametrize("command", ["save", "load"])
def test_bundle_benchmark_runs_against_skopeo(command: str) -> None:
    require_tool("skopeo")
    data = _bench(command, "--size", "8", "--layers", "2", "--rounds", "1", "--warmup", "0")
    assert data["command"] == command and len(data["all"]["clusterimage"]) == 1
    assert data["ratio"] == pytest.approx(data["clusterimage_s"] / data["skopeo_s"])
    assert 0 < data["peak_rss_mib"] < 100
    # Each blob is read once: the bytes read are the image's, give or take the archive's
    # headers and the interpreter's own files.
    assert 1.0 <= data["reads_per_image_byte"] < 3.0


def test_build_images_benchmark_runs_against_the_sealos_pipeline() -> None:
    require_tool("skopeo")
    require_tool("buildah")
    require_tool("docker-registry")
    data = _bench("build-images", "--images", "2", "--image-mib", "3", "--base-mib", "1",
                  "--binary-mib", "1")  # fmt: skip
    # 2 configs, 2 layers of their own and the base they share, once.
    assert data["clusterimage_blob_downloads"] == 5
    assert data["rebuild_blob_downloads"] == 0 and data["edited_rebuild_blob_downloads"] == 0
    assert data["ratio_cold"] == pytest.approx(
        data["clusterimage_cold_s"] / data["sealos_pipeline_s"]
    )


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("serve", ["--size", "8", "--clients", "2", "--rounds", "1"]),
        ("merge", ["--size", "4"]),
        ("unpack", ["--size", "8", "--layers", "2", "--rounds", "1"]),
    ],
)
def test_runtime_benchmarks_run(command: str, args: list[str]) -> None:
    require_tool("docker-registry" if command == "serve" else "umoci")
    data = _bench(command, *args)
    assert data["command"] == command
    if command == "serve":
        assert data["throughput_ratio"] > 0 and data["bytes"] > 8 * (1 << 20) * 0.9
    elif command == "merge":
        assert 0 < data["in_process_s"] < data["clusterimage_s"]
    else:
        assert data["ratio"] == pytest.approx(data["clusterimage_s"] / data["umoci_s"])


@pytest.mark.parametrize("copy_all", [False, True], ids=["copy-each", "copy-all"])
def test_delta_benchmark_measures_the_delta_against_a_full_save(copy_all: bool) -> None:
    require_tool("docker-registry")
    data = _bench("delta", "--images", "8", "--image-mib", "2", "--base-mib", "1",
                  "--binary-mib", "1", "--rounds", "1",
                  *(["--copy-all"] if copy_all else []))  # fmt: skip
    assert data["command"] == "delta" and len(data["all"]["delta_save"]) == 1
    assert data["copy_all"] is copy_all
    if copy_all:
        # `COPY . .` splits registry/ by image too: one image's own layer travels, and the
        # rest of the context (binary and the edited manifests: one layer), not everything.
        assert data["delta_bytes"] * 4 < data["full_bytes"], data
    else:
        # v2 shares 7 of its 8 image layers (and the binary's) with v1: only one image's own
        # layer, the manifests and the documents travel.
        assert data["delta_bytes"] * 6 < data["full_bytes"], data
    assert data["size_ratio"] == pytest.approx(data["delta_bytes"] / data["full_bytes"])
    assert data["save_ratio"] == pytest.approx(data["delta_save_s"] / data["full_save_s"])
    assert data["load_ratio"] == pytest.approx(data["delta_load_s"] / data["full_load_s"])
    assert 0 < data["inventory_bytes"] < 8 << 10
