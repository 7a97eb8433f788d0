"""Checking a layout: every blob re-hashed, every reference complete, the layout files sane."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from clusterimage.errors import StoreError
from clusterimage.oci.digest import Digest, hash_stream
from clusterimage.store.layout import Layout
from clusterimage.store.walk import Problem, walk


@dataclass
class FsckReport:
    problems: list[Problem] = field(default_factory=list)
    blobs: int = 0
    images: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "blobs": self.blobs,
            "images": self.images,
            "problems": [p.to_dict() for p in self.problems],
        }


def check(layout: Layout, jobs: int | None = None) -> FsckReport:
    """Re-hash every blob and walk every entry of ``index.json``."""
    report = FsckReport()
    problem = layout.layout_problem()
    if problem is not None:
        report.problems.append(Problem("layout", problem))
        return report
    with layout.writing():  # keeps gc from removing blobs while we read them
        corrupt = _check_blobs(layout, report, jobs or min(4, os.cpu_count() or 1))
        try:
            result = walk(layout, skip=frozenset(corrupt))
        except StoreError as exc:
            report.problems.append(Problem("index", str(exc)))
            return report
    report.images = result.images
    report.problems.extend(result.problems)
    return report


def _check_blobs(layout: Layout, report: FsckReport, jobs: int) -> set[Digest]:
    named: list[tuple[Path, Digest]] = []
    for path, digest in layout.iter_blobs():
        if digest is None:
            where = path.relative_to(layout.root)
            report.problems.append(Problem("stray", f"{where}: not a blob (name is not a digest)"))
        else:
            named.append((path, digest))
    report.blobs = len(named)

    def actual(item: tuple[Path, Digest]) -> Digest | None:
        path, digest = item
        try:
            with open(path, "rb") as stream:
                return hash_stream(stream, digest.algorithm).digest()
        except FileNotFoundError:
            return None

    corrupt: set[Digest] = set()
    # hashlib releases the GIL, so threads hash several blobs at once.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (_, digest), got in zip(named, pool.map(actual, named), strict=True):
            if got is not None and got != digest:
                corrupt.add(digest)
                report.problems.append(
                    Problem(
                        "corrupt-blob", f"blob {digest} is corrupt: content hashes to {got}", digest
                    )
                )
    return corrupt
