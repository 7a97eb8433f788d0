"""``clusterimage build`` options end to end: -q, --json, --dry-run, tags, cache, platform."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

pytestmark = pytest.mark.integration

EXAMPLE = REPO_ROOT / "Kubefile.examples" / "nginx-manifests"


def _index(store: Path) -> dict[str, str]:
    data = json.loads((store / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in data["manifests"]
        if m.get("annotations")
    }


def test_quiet_prints_only_the_digest_and_tags_every_ref(ci_home: Path) -> None:
    result = run_cli("build", "-q", "-t", "a.example/app:v1", "-t", "app:latest", EXAMPLE)
    digest = result.stdout.strip()
    assert digest.startswith("sha256:") and "\n" not in digest
    assert result.stderr == ""
    names = _index(ci_home / "store")
    assert names == {"a.example/app:v1": digest, "localhost/app:latest": digest}


def test_progress_goes_to_stderr_and_the_digest_to_stdout(ci_home: Path) -> None:
    result = run_cli("build", "-t", "app:v1", EXAMPLE)
    assert result.stdout.strip().startswith("sha256:")
    assert "STEP 1/6: FROM scratch" in result.stderr
    assert "Successfully tagged localhost/app:v1" in result.stderr
    # Each written layer in human units, as podman prints sizes (issue 12), not a byte count.
    written = re.findall(r"^--> sha256:[0-9a-f]{64} \((.+)\)$", result.stderr, re.MULTILINE)
    assert len(written) == 1 + 3
    for detail in written:
        assert re.fullmatch(r"\d+(\.\d+)? (B|kB|MB|GB), \d+ entr(y|ies)", detail), detail
    again = run_cli("build", "-t", "app:v1", EXAMPLE)
    # manifests/, then registry/ as one layer per embedded image (3): every one reused
    assert again.stderr.count("--> Using cache") == 1 + 3
    assert again.stdout == result.stdout


def test_json_output(ci_home: Path) -> None:
    first = json.loads(run_cli("build", "--json", "-t", "app:v1", EXAMPLE).stdout)
    assert first["engine"] == "native"
    assert first["tags"] == ["localhost/app:v1"]
    assert first["type"] == "application" and first["version"] == "v1beta1"
    # manifests/, then registry/ as one layer per embedded image (3)
    assert [layer["cached"] for layer in first["layers"]] == [False] * 4
    assert first["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    second = json.loads(run_cli("build", "--json", "-t", "app:v1", EXAMPLE).stdout)
    assert [layer["cached"] for layer in second["layers"]] == [True] * 4
    assert second["digest"] == first["digest"]
    third = json.loads(run_cli("build", "--json", "--no-cache", "-t", "app:v1", EXAMPLE).stdout)
    assert [layer["cached"] for layer in third["layers"]] == [False] * 4
    assert third["digest"] == first["digest"]


def _layer_names(store: Path, layer: dict[str, str]) -> set[str]:
    raw = (store / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
    if layer["mediaType"].endswith("+gzip"):
        raw = gzip.decompress(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {name.rstrip("/") for name in tar.getnames()}


def test_copy_dot_splits_registry_into_one_layer_per_image_as_well(
    tmp_path: Path, ci_home: Path
) -> None:
    """`COPY . .` (128 of the corpus's 258 Kubefiles) brings registry/ with the rest of the
    context: it splits as `COPY registry registry` does, each image's blobs stored as they are
    (not gzipped again), so an edit elsewhere leaves every image's layer as it was."""
    ctx = tmp_path / "ctx"
    shutil.copytree(EXAMPLE, ctx)
    kubefile = (ctx / "Kubefile").read_text()
    two_copies = "COPY manifests manifests\nCOPY registry registry\n"
    assert two_copies in kubefile
    (ctx / "Kubefile").write_text(kubefile.replace(two_copies, "COPY . .\n"))
    first = json.loads(run_cli("build", "--json", "-t", "app:v1", ctx).stdout)
    manifest = json.loads(run_cli("inspect", "-t", "manifest", "app:v1").stdout)
    layers = manifest["layers"]
    # The 3 embedded images, then everything else.
    assert [layer["mediaType"] for layer in layers] == [
        "application/vnd.oci.image.layer.v1.tar"
    ] * 3 + ["application/vnd.oci.image.layer.v1.tar+gzip"]
    config = json.loads(run_cli("inspect", "-t", "config", "app:v1").stdout)
    history = [h["created_by"] for h in config["history"] if not h.get("empty_layer")]
    assert all("(image " in h for h in history[:3]) and history[3].endswith("(other files)")
    store = ci_home / "store"
    names = [_layer_names(store, layer) for layer in layers]
    assert {"Kubefile", "manifests/service.yaml", "images/shim/extra-images.txt"} <= names[3]
    blobs = "registry/docker/registry/v2/blobs"
    assert not any(n.startswith(f"{blobs}/sha256/") for n in names[3])
    for image_layer in names[:3]:
        assert any(n.startswith(f"{blobs}/sha256/") for n in image_layer)
        assert "Kubefile" not in image_layer and "manifests" not in image_layer
    # One layer per image: no blob file is in two of them.
    files = [n for layer in names[:3] for n in layer if n.endswith("/data")]
    assert len(files) == len(set(files))
    # An edit outside registry/ rebuilds the other files' layer only.
    service = ctx / "manifests" / "service.yaml"
    service.write_text(service.read_text() + "# edited\n")
    second = json.loads(run_cli("build", "--json", "-t", "app:v2", ctx).stdout)
    assert [layer["cached"] for layer in first["layers"]] == [False] * 4
    assert [layer["cached"] for layer in second["layers"]] == [True] * 3 + [False]
    again = json.loads(run_cli("inspect", "-t", "manifest", "app:v2").stdout)["layers"]
    assert again[:3] == layers[:3] and again[3] != layers[3]


def test_dry_run_writes_nothing_and_warns_about_missing_sources(
    tmp_path: Path, ci_home: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kubefile").write_text("FROM scratch\nCOPY charts charts\nCOPY registry registry\n")
    text = run_cli("build", "--dry-run", "-t", "app:v1", ctx)
    assert "missing in context: charts" in text.stdout
    plan_run = run_cli("build", "--dry-run", "--json", ctx)
    plan = json.loads(plan_run.stdout)
    assert plan["missingSources"][0]["source"] == "charts"
    # A linter reading only stderr (or parsing --json from stdout) still sees the warning.
    assert plan_run.stderr.splitlines() == [
        f"warning: {ctx / 'Kubefile'}:2: COPY source 'charts' not found in the build context"
    ]
    assert plan["copiesRegistry"] is True
    assert list(ci_home.iterdir()) == []
    (ctx / "Kubefile").write_text("FROM scratch\nCOPY charts\n")
    bad = run_cli("build", "--dry-run", ctx, check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ")
    assert list(ci_home.iterdir()) == []


def test_build_args_labels_env_platform(tmp_path: Path, ci_home: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kubefile").write_text(
        'FROM scratch\nARG VERSION=0\nLABEL version="${VERSION}"\nENV A=1\nCOPY Kubefile /\n'
    )
    result = run_cli(
        "build", "--json", "-t", "app:v2",
        "--build-arg", "VERSION=2", "--label", "team=infra", "--env", "B=2",
        "--platform", "linux/arm64", ctx,
    )  # fmt: skip
    data = json.loads(result.stdout)
    assert data["platform"] == "linux/arm64"
    store = ci_home / "store"
    manifest = json.loads((store / "blobs/sha256" / data["digest"].split(":")[1]).read_text())
    config = json.loads((store / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    assert config["architecture"] == "arm64" and config["os"] == "linux"
    assert config["config"]["Labels"] == {"version": "2", "team": "infra"}
    assert config["config"]["Env"][-2:] == ["A=1", "B=2"]


def test_kubefile_selection_and_ignore_file(tmp_path: Path, ci_home: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "keep").mkdir(parents=True)
    (ctx / "keep" / "a.yaml").write_text("a")
    (ctx / "keep" / "b.log").write_text("b")
    (ctx / "Sealfile").write_text("FROM scratch\nCOPY . .\n")
    (ctx / ".dockerignore").write_text("*.log\n**/*.log\nSealfile\n")
    other = tmp_path / "Other.kubefile"
    other.write_text("FROM scratch\nCOPY keep /k\n")
    data = json.loads(run_cli("build", "--json", ctx).stdout)
    assert data["tags"] == []
    entries = json.loads(run_cli("build", "--dry-run", "--json", "-f", other, ctx).stdout)
    assert entries["kubefile"].endswith("Other.kubefile")
    store = ci_home / "store"
    manifest = json.loads((store / "blobs/sha256" / data["digest"][7:]).read_text())
    blob = (store / "blobs/sha256" / manifest["layers"][0]["digest"][7:]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        names = set(tar.getnames())
    assert names == {"keep", "keep/a.yaml", ".dockerignore", "registry"}
