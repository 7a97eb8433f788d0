"""``./scripts/quickstart.sh``, the first thing a newcomer runs, works end to end and offline:
it builds an example, shows it with ``images`` and ``create``, and leaves a clean store in the
``CLUSTERIMAGE_HOME`` it is given."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require_tool, run_tool

pytestmark = pytest.mark.integration

REF = "localhost/quickstart/offline:v1"


def test_quickstart_builds_and_shows_an_example(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "CLUSTERIMAGE_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "quickstart.sh")],
        cwd=tmp_path,  # the script finds the repository itself
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    digests = [line for line in out.splitlines() if line.startswith("sha256:")]
    assert len(digests) >= 2 and len(set(digests)) == 1  # built, rebuilt from cache, copied
    assert 'export NAMESPACE="tools"; cd ' in out and "kubectl apply -f manifests/" in out
    # The dry run lists what registry/ will hold; the manifest records it.
    assert "example/tools:v1  <- docker-archive:images/skopeo/tools.tar" in out
    assert "example/config:v1  <- oci-archive:images/skopeo/config.tar" in out
    start = out.index('{\n  "schemaVersion"')
    manifest = json.loads(out[start : out.index("\n}\n", start) + 2])
    carried = json.loads(manifest["annotations"]["io.clusterimage.images"])
    assert set(carried) == {"example/tools:v1", "example/config:v1"}
    # IMAGE ID is the config digest, as in podman and docker.
    rows = [line.split() for line in out.splitlines() if line.startswith("localhost/quickstart")]
    image_id = manifest["config"]["digest"][7:19]
    assert rows and rows[0][:3] == ["localhost/quickstart/offline", "v1", image_id]
    # Unpacked as the runtime lays it out, and its images served from the store.
    assert (home / "cluster" / "applications" / "offline" / "workdir").is_dir()
    registry = home / "cluster" / "rootfs" / "registry" / "docker" / "registry" / "v2"
    assert (registry / "repositories" / "example" / "tools").is_dir()
    assert "\nv1\n" in f"\n{out}"  # `tags` of example/tools, read from the served registry
    assert (home / "offline.tar").is_file()
    # v2 edits one manifest: diff names it, and the delta on v1's bundle carries what changed.
    assert "\n~ file manifests/tools.yaml\n" in out
    assert "(oci-archive); a delta on sha256:" in out
    assert (home / "offline-v2-delta.tar").stat().st_size * 4 < (
        home / "offline.tar"
    ).stat().st_size
    assert "Traceback" not in result.stderr
    assert f"$ clusterimage build -t {REF}" in result.stderr  # commands shown on stderr
    assert "Traceback" not in result.stderr

    store = home / "store"
    names = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in json.loads((store / "index.json").read_text())["manifests"]
    }
    assert names[REF] == digests[0]
    skopeo = require_tool("skopeo")
    exported = json.loads(run_tool([skopeo, "inspect", f"oci:{home / 'export'}:v1"]).stdout)
    assert exported["Digest"] == digests[0]
    assert exported["Labels"]["sealos.io.type"] == "application"


def test_quickstart_runs_in_a_fresh_clone_with_no_venv(tmp_path: Path) -> None:
    """What a newcomer does: clone, then run the script, with no .venv made beforehand (a check
    made where the package is already installed cannot see a missing install step)."""
    git = require_tool("git")
    clone = tmp_path / "clone"
    run_tool([git, "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(clone)])
    assert not (clone / ".venv").exists()
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    # The clone's own venv, not the one running the tests, must provide the command.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO_ROOT))
    )
    env.update(NO_COLOR="1", COLUMNS="200", CLUSTERIMAGE_HOME=str(tmp_path / "home"))
    result = subprocess.run(
        ["./scripts/quickstart.sh"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (clone / ".venv" / "bin" / "clusterimage").is_file()
    assert "Traceback" not in result.stderr
    index = json.loads((tmp_path / "home" / "store" / "index.json").read_text())
    names = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert REF in names
