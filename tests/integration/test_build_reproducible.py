"""Reproducibility: the same Kubefile and context give the same manifest digest anywhere.

Two copies of each context in different folders, with different mtimes, inodes and owners of
the files, built by the CLI into two separate homes (no shared cache), give one digest; and a
rebuild into the first home, served from the cache, gives it again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

pytestmark = pytest.mark.integration

EXAMPLES = ("nginx-manifests", "multi-stage", "containerd-rootfs", "patch-binary")


def _copy(source: Path, dest: Path, mtime: int, uid: int) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    for path in [dest, *dest.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
        if os.geteuid() == 0:
            os.lchown(path, uid, uid)
    return dest


def _digest(context: Path, home: Path, *extra: str) -> str:
    result = run_cli(
        "build", "-q", "-t", "example.com/repro:v1", *extra, context,
        env={"CLUSTERIMAGE_HOME": str(home), "SOURCE_DATE_EPOCH": None},
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sha256:"), result.stdout
    return lines[0]


@pytest.mark.parametrize("example", EXAMPLES)
def test_two_copies_in_other_folders_build_the_same_digest(tmp_path: Path, example: str) -> None:
    source = REPO_ROOT / "Kubefile.examples" / example
    one = _copy(source, tmp_path / "a" / example, mtime=1_600_000_000, uid=0)
    two = _copy(source, tmp_path / "elsewhere" / "deeper" / "ctx", mtime=1_700_000_000, uid=4242)
    first = _digest(one, tmp_path / "home-a")
    second = _digest(two, tmp_path / "home-b")
    assert first == second
    assert _digest(one, tmp_path / "home-a") == first  # served from the cache
    assert _digest(two, tmp_path / "home-a") == first  # other folder, same cache


def test_timestamp_and_compression_are_part_of_the_identity(tmp_path: Path) -> None:
    source = REPO_ROOT / "Kubefile.examples" / "nginx-manifests"
    one = _copy(source, tmp_path / "one", mtime=1, uid=0)
    two = _copy(source, tmp_path / "two", mtime=2, uid=0)
    for extra in (("--timestamp", "1700000000"), ("--compression", "zstd")):
        assert _digest(one, tmp_path / "h1", *extra) == _digest(two, tmp_path / "h2", *extra)
    assert _digest(one, tmp_path / "h1") != _digest(one, tmp_path / "h1", "--timestamp", "1")
    with_epoch = run_cli(
        "build", "-q", "-t", "example.com/repro:v1", one,
        env={"CLUSTERIMAGE_HOME": str(tmp_path / "h1"), "SOURCE_DATE_EPOCH": "1700000000"},
    ).stdout.strip()  # fmt: skip
    assert with_epoch == _digest(one, tmp_path / "h2", "--timestamp", "1700000000")
