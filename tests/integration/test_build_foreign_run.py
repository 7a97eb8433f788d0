"""A one-platform build whose RUN this machine cannot run (another architecture, no
binfmt_misc handler) fails as a several-platform build does: one line naming the RUN line,
the platform and binfmt_misc, before buildah is started, and nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterimage.build.engine import cannot_run
from clusterimage.oci.platform import Platform
from tests.conftest import run_cli


def test_one_foreign_platform_with_run_is_refused_before_building(
    tmp_path: Path, ci_home: Path
) -> None:
    foreign = next(
        (
            p
            for p in ("linux/arm64", "linux/s390x", "linux/ppc64le")
            if cannot_run(Platform.parse(p))
        ),
        None,
    )
    if foreign is None:
        pytest.skip("this machine runs arm64, s390x and ppc64le programs (binfmt_misc)")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kubefile").write_text('FROM scratch\nCOPY Kubefile /k\nRUN ["/bin/true"]\n')
    result = run_cli("build", "--platform", foreign, "-t", "localhost/run:v1", context, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Kubefile:3" in result.stderr and foreign in result.stderr
    assert "binfmt_misc" in result.stderr
    assert "STEP" not in result.stderr  # buildah never started
    store = ci_home / "store" / "index.json"
    assert not store.exists() or "localhost/run:v1" not in store.read_text()
