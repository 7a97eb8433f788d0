"""Checking a layout: every blob re-hashed, every reference complete, the layout files sane."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from clusterimage.errors import BlobNotFound, StoreError
from clusterimage.oci.digest import Digest, hash_stream
from clusterimage.store.blobs import (
    forget_verified,
    fsync_dir,
    special_kind,
    stamp_verified,
    verified_as_is,
)
from clusterimage.store.layout import Layout
from clusterimage.store.walk import Problem, Walk, _visit_manifest, walk


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


def check(layout: Layout, jobs: int | None = None, *, trust_stamps: bool = False) -> FsckReport:
    """Re-hash every blob and walk every entry of ``index.json``. ``trust_stamps``: a blob
    whose verification stamp still matches is not hashed again (the check after a repair,
    right after a full one stamped every sound blob)."""
    report = FsckReport()
    problem = layout.layout_problem()
    if problem is not None:
        report.problems.append(Problem("layout", problem))
        return report
    with layout.writing():  # keeps gc from removing blobs while we read them
        jobs = jobs or min(4, os.cpu_count() or 1)
        damaged = _check_blobs(layout, report, jobs, trust_stamps)
        try:
            result = walk(layout, skip=frozenset(damaged))
        except StoreError as exc:
            report.problems.append(Problem("index", str(exc)))
            return report
    report.images = result.images
    report.problems.extend(result.problems)
    return report


def _check_blobs(layout: Layout, report: FsckReport, jobs: int, trust_stamps: bool) -> set[Digest]:
    """Re-hash every blob; returns the digests whose file is damaged (walk must not parse them)."""
    damaged: set[Digest] = set()
    named: list[Digest] = []
    vouched: set[Digest] = set()  # stamped as they are: not hashed again (trust_stamps)
    for path, digest in layout.iter_blobs():
        where = path.relative_to(layout.root)
        try:
            info = path.lstat()
            kind = special_kind(info.st_mode)
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
            if trust_stamps and verified_as_is(path, info, digest):
                vouched.add(digest)
    report.blobs = len(named) + len(damaged)

    def actual(digest: Digest) -> Digest | str | None:
        if digest in vouched:
            return digest
        try:
            with layout.open_blob(digest) as stream:
                before = os.fstat(stream.fileno())
                got = hash_stream(stream, digest.algorithm).digest()
                if got == digest:  # the next pull need not read it again
                    stamp_verified(stream.fileno(), digest, before)
                return got
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
                # Damage that left the mtime alone (bit rot, a restored timestamp) must not
                # keep a pull trusting the blob: the stamp goes, the next pull re-hashes it.
                forget_verified(layout.blob_path(digest))
                report.problems.append(
                    Problem(
                        "corrupt-blob", f"blob {digest} is corrupt: content hashes to {got}", digest
                    )
                )
    return damaged


# -- repairing ----------------------------------------------------------------------------------

REPAIR_TIMEOUT = 60.0  # seconds repair waits for running imports, as gc does

_REMOVABLE = frozenset({"corrupt-blob", "not-regular"})


@dataclass
class RepairReport:
    """What ``fsck --repair`` did: the damaged blobs it removed (digest, why) and the images
    that now lack one of them (each to be pulled, loaded or built again)."""

    removed: list[tuple[Digest, str]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # image names (or digests, unnamed)

    def to_dict(self) -> dict[str, object]:
        return {
            "removed": [{"digest": str(d), "problem": why} for d, why in self.removed],
            "incomplete": [
                {"image": name, "restore": restore_hint(name)} for name in self.incomplete
            ],
        }


def restore_hint(image: str) -> str:
    """How a person gets the blobs of ``image`` back: the store knows no image's source, but a
    registry name is where it came from; a localhost/ name was built or loaded here."""
    if image.startswith("sha256:") or image.startswith("localhost/"):
        return "build or load it again"
    return f"clusterimage pull {image}"


def repair(layout: Layout, report: FsckReport, timeout: float = REPAIR_TIMEOUT) -> RepairReport:
    """Remove the blobs ``report`` found damaged (wrong content, not a regular file), so the
    next pull, load or build writes them again instead of trusting the file there. Nothing is
    fetched: the store does not know where an image came from. Waits up to ``timeout``
    seconds for running imports (StoreBusy after that), as gc does."""
    damaged = {p.digest: p.message for p in report.problems if p.kind in _REMOVABLE and p.digest}
    result = RepairReport()
    if not damaged:
        return result
    # Held alone, as gc holds it: an import running now trusts the blobs it found in the
    # store until it names its image, and must not lose one of them. StoreBusy after timeout.
    with layout.exclusive(timeout):
        needs = _needs_by_image(layout)
        for digest in damaged:
            # The report may be minutes old (fsck hashed the whole store first): a pull may
            # have fetched the blob again meanwhile, and a sound blob must not go.
            why = blob_damage(layout, digest, trust_stamp=False)
            if why is None:
                continue
            path = layout.blob_path(digest)
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # removed meanwhile
            except IsADirectoryError:
                continue  # a directory under blobs/ is a stray, not a blob: left to the user
            result.removed.append((digest, why))
        if result.removed:
            fsync_dir(layout.blob_path(result.removed[0][0]).parent)
    gone = {digest for digest, _ in result.removed}
    result.incomplete = [name for name, blobs in needs if blobs & gone]
    return result


def _needs_by_image(layout: Layout) -> list[tuple[str, set[Digest]]]:
    """Each image of the index (its name, else its digest) with every blob it reaches."""
    out = []
    for entry in layout.entries():
        label = entry.ref_name or str(entry.digest)
        one = Walk()
        _visit_manifest(layout, entry, label, "image", one, set(), frozenset())
        out.append((label, one.reachable))
    return out


def blob_damage(
    layout: Layout, digest: Digest, size: int | None = None, *, trust_stamp: bool = True
) -> str | None:
    """Why the stored blob ``digest`` cannot be trusted (not a regular file, ``size`` bytes
    expected and others found, content hashing to another digest); None when it is sound or
    absent. Reads the whole blob unless its verification stamp shows no write since it was
    last hashed (see :data:`~clusterimage.store.blobs.VERIFIED_XATTR`) and ``trust_stamp``."""
    try:
        info = layout.blob_path(digest).lstat()
    except FileNotFoundError:
        return None
    kind = special_kind(info.st_mode)
    if kind is not None:
        return f"blob {digest} is not a regular file ({kind})"
    if size is not None and size >= 0 and info.st_size != size:
        return f"blob {digest} is {info.st_size} bytes, the manifest says {size}"
    path = layout.blob_path(digest)
    if trust_stamp and verified_as_is(path, info, digest):
        return None
    try:
        with layout.open_blob(digest) as stream:
            before = os.fstat(stream.fileno())
            got = hash_stream(stream, digest.algorithm).digest()
            if got == digest:
                stamp_verified(stream.fileno(), digest, before)
    except BlobNotFound:
        return None
    except StoreError as exc:  # swapped for something else since the lstat
        return str(exc)
    return None if got == digest else f"blob {digest} is corrupt: content hashes to {got}"


def remove_blob(layout: Layout, digest: Digest) -> None:
    """Remove a damaged blob so the next writer of ``digest`` stores it afresh (a writer that
    finds the file there keeps it, trusting the content-addressed name)."""
    path = layout.blob_path(digest)
    try:
        if path.is_dir() and not path.is_symlink():
            raise StoreError(f"{path} is a directory where a blob belongs: remove it")
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
