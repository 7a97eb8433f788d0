"""The context's ignore file is parsed once per build: the plan and the engine share the rules."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from clusterimage.build import buildah as buildah_module
from clusterimage.build.buildah import BuildahOptions
from clusterimage.build.dockerignore import IgnoreRules
from clusterimage.build.plan import plan_build
from clusterimage.cli.main import main
from clusterimage.store import Store

KUBEFILE = "FROM scratch\nCOPY . /app/\n"


def _context(root: Path) -> Path:
    root.mkdir()
    (root / "Kubefile").write_text(KUBEFILE)
    (root / ".dockerignore").write_text("secret.txt\n*.tmp\n")
    (root / "kept.yaml").write_text("kind: ConfigMap\n")
    (root / "secret.txt").write_text("left out\n")
    (root / "scratch.tmp").write_text("left out\n")
    return root


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every IgnoreRules.parse call, by source."""
    calls: list[str] = []
    real = IgnoreRules.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[IgnoreRules], text: str, source: str = ".dockerignore") -> IgnoreRules:
        calls.append(source)
        result: IgnoreRules = real(cls, text, source)
        return result

    monkeypatch.setattr(IgnoreRules, "parse", classmethod(counting))
    return calls


def test_a_build_parses_the_ignore_file_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    parses: list[str],
) -> None:
    context = _context(tmp_path / "ctx")
    home = tmp_path / "home"
    monkeypatch.setenv("CLUSTERIMAGE_HOME", str(home))
    monkeypatch.delenv("CLUSTERIMAGE_STORE", raising=False)
    main(["build", "-q", "-t", "example.com/app:v1", str(context)])
    digest = capsys.readouterr().out.strip()
    assert parses == [str(context / ".dockerignore")]
    # ...and the engine applied those very rules to what COPY . saw.
    store = Store(home / "store")
    desc = store.resolve("example.com/app:v1")
    assert str(desc.digest) == digest
    manifest = store.get_manifest(desc.digest, desc.media_type)
    layer = store.blob_path(manifest.layers[0].digest)  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.read_bytes()))) as tar:
        names = set(tar.getnames())
    assert names == {"app", "app/.dockerignore", "app/Kubefile", "app/kept.yaml", "app/registry"}


def test_buildah_context_uses_the_rules_it_is_given(tmp_path: Path, parses: list[str]) -> None:
    context = _context(tmp_path / "ctx")
    rules = IgnoreRules.load(context / ".dockerignore")
    parses.clear()
    run = object.__new__(buildah_module._Run)  # only what _materialise_context reads
    run.plan = plan_build(context, is_ignored=rules.ignored)
    run.options = BuildahOptions(ignore=rules)
    run.work = tmp_path / "work"
    run.work.mkdir()
    materialised = run._materialise_context()
    assert parses == []
    assert sorted(p.name for p in materialised.iterdir()) == [
        ".dockerignore",
        "Kubefile",
        "kept.yaml",
        "registry",
    ]
