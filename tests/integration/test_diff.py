"""``diff A B``: v1 and v2 of a cluster image where v2 changes one embedded image and one
manifest file; the diff names exactly those, and an image against itself prints nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.mirror import Mirror

pytestmark = pytest.mark.integration


KUBEFILE = 'FROM scratch\nCOPY . .\nCMD ["kubectl apply -f manifests/"]\n'
SIDECAR = "docker.io/library/busybox:1.36.1"


def _context(root: Path, image: str, replicas: int) -> Path:
    (root / "manifests").mkdir(parents=True)
    (root / "Kubefile").write_text(KUBEFILE)
    (root / ".dockerignore").write_text("Kubefile\n")
    app = f"replicas: {replicas}\nimage: {image}\nsidecar:\n  image: {SIDECAR}\n"
    (root / "manifests" / "app.yaml").write_text(app)
    (root / "manifests" / "service.yaml").write_text("kind: Service\n")
    return root


def test_diff_names_exactly_the_changed_image_and_file(
    tmp_path: Path, ci_home: Path, image_mirror: Mirror
) -> None:
    v1 = _context(tmp_path / "v1", "docker.io/library/nginx:1.25.3-alpine", 1)
    v2 = _context(tmp_path / "v2", "registry.k8s.io/pause:3.9", 2)
    run_cli("build", v1, "-t", "localhost/app:v1", "-q")
    run_cli("build", v2, "-t", "localhost/app:v2", "-q", "--label", "tier=web")
    data = json.loads(run_cli("diff", "localhost/app:v1", "localhost/app:v2", "--json").stdout)
    assert data["images"] == {
        "added": ["pause:3.9"],
        "removed": ["library/nginx:1.25.3-alpine"],
        "changed": [],
    }
    assert data["files"]["changed"] == ["manifests/app.yaml"]
    # registry/ files follow the images; no other file of the image changed.
    others = [
        p
        for p in data["files"]["added"] + data["files"]["removed"]
        if not p.startswith("registry/")
    ]
    assert others == []
    assert data["config"] == {"labels": {"a": {}, "b": {"tier": "web"}}}
    text = run_cli("diff", "localhost/app:v1", "localhost/app:v2").stdout
    assert "~ file manifests/app.yaml" in text and "+ image pause:3.9" in text
    same = run_cli("diff", "localhost/app:v1", "localhost/app:v1")
    assert same.returncode == 0 and same.stdout == ""
    # A merged image records no embedded images: both sides are then read from registry/'s
    # tag links, so the same images are not reported changed.
    run_cli("merge", "-q", "-t", "localhost/merged:v1", "localhost/app:v1", "localhost/app:v1")
    merged = json.loads(run_cli("diff", "localhost/app:v1", "localhost/merged:v1", "--json").stdout)
    assert merged["images"] == {"added": [], "removed": [], "changed": []}
    assert merged["files"] == {"added": [], "removed": [], "changed": []}
