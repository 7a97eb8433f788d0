"""Checking a layout: every blob re-hashed, every reference complete, the layout files sane."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from clusterimage.errors import BlobNotFound, StoreError
from clusterimage.oci.digest import Digest, hash_stream
from clusterimage.store.blobs import special_kind
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
        damaged = _check_blobs(layout, report, jobs or min(4, os.cpu_count() or 1))
        try:
            result = walk(layout, skip=frozenset(damaged))
        except StoreError as exc:
            report.problems.append(Problem("index", str(exc)))
            return report
    report.images = result.images
    report.problems.extend(result.problems)
    return report


def _check_blobs(layout: Layout, report: FsckReport, jobs: int) -> set[Digest]:
    """Re-hash every blob; returns the digests whose file is damaged (walk must not parse them)."""
    damaged: set[Digest] = set()
    named: list[Digest] = []
    for path, digest in layout.iter_blobs():
        where = path.relative_to(layout.root)
        try:
            kind = special_kind(path.lstat().st_mode)
        except FileNotFoundError:
            continue  # removed meanwhile (the writing guard keeps gc out, not rmi of a name)
        if digest is None or kind == "a directory":
            why = "a directory" if kind == "a directory" else "name is not a digest"
            report.problems.append(Problem("stray", f"{where}: not a blob ({why})"))
        elif kind is not None:
            # The store writes regular files only: a symlink is damage even when its target
            # holds the right bytes (reads follow it; see Layout.open_blob), and hashing a FIFO
            # or a device would block or never end.
            damaged.add(digest)
            report.problems.append(
                Problem("not-regular", f"blob {digest} is not a regular file ({kind})", digest)
            )
        else:
            named.append(digest)
    report.blobs = len(named) + len(damaged)

    def actual(digest: Digest) -> Digest | str | None:
        try:
            with layout.open_blob(digest) as stream:
                return hash_stream(stream, digest.algorithm).digest()
        except BlobNotFound:
            return None
        except StoreError as exc:  # swapped for a FIFO since the lstat, or unreadable
            return str(exc)

    # hashlib releases the GIL, so threads hash several blobs at once.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for digest, got in zip(named, pool.map(actual, named), strict=True):
            if isinstance(got, str):
                damaged.add(digest)
                report.problems.append(Problem("not-regular", got, digest))
            elif got is not None and got != digest:
                damaged.add(digest)
                report.problems.append(
                    Problem(
                        "corrupt-blob", f"blob {digest} is corrupt: content hashes to {got}", digest
                    )
                )
    return damaged
