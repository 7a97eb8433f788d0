"""Garbage collection: remove blobs that nothing in ``index.json`` reaches, and stale writes."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from clusterimage.errors import StoreError
from clusterimage.oci.digest import Digest
from clusterimage.store.layout import Layout
from clusterimage.store.walk import walk

GC_TIMEOUT = 60.0


class StoreDamaged(StoreError):
    """The store has a missing or unreadable manifest, so gc cannot tell what is in use."""


@dataclass
class GcResult:
    """What a gc removed."""

    blobs: list[tuple[Digest, int]] = field(default_factory=list)  # (digest, size)
    partial_files: int = 0  # interrupted writes in the ingest folder
    partial_bytes: int = 0

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.blobs) + self.partial_bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "blobs": [{"digest": str(d), "size": s} for d, s in self.blobs],
            "partialFiles": self.partial_files,
            "freed": self.freed,
        }


def collect(layout: Layout, timeout: float = GC_TIMEOUT) -> GcResult:
    """Remove every blob the index does not reach and every partial write.

    Holds the layout exclusively (no import or build may run meanwhile), waiting at most
    ``timeout`` seconds for running ones; raises StoreBusy after that.
    """
    result = GcResult()
    with layout.exclusive(timeout):
        found = walk(layout)
        if found.unresolved:
            # Deleting what an unreadable manifest needs would turn a repair (pull the
            # manifest again) into a full download, or lose layers that exist nowhere else.
            more = len(found.unresolved) - 1
            also = f" (and {more} more)" if more else ""
            raise StoreDamaged(
                f"{layout.root}: gc removes nothing while a manifest cannot be read: "
                f"{found.unresolved[0]}{also}; run `clusterimage fsck`, then remove (rmi) or "
                "pull the damaged image again"
            )
        live = found.reachable
        for path, digest in layout.iter_blobs():
            if digest is None or digest in live:
                continue  # fsck reports stray files; gc only removes what it understands
            try:
                info = path.lstat()  # an unused symlink or FIFO goes too, never what it points at
                if stat.S_ISDIR(info.st_mode):
                    continue  # not a blob, and fsck reports it
                path.unlink()
            except FileNotFoundError:
                continue
            size = info.st_size if stat.S_ISREG(info.st_mode) else 0
            result.blobs.append((digest, size))
        # No writer holds the guard now, so every ingest file is abandoned.
        if layout.ingest_dir.is_dir():
            for path in sorted(layout.ingest_dir.iterdir()):
                try:
                    size = path.stat().st_size
                    path.unlink()
                except (FileNotFoundError, IsADirectoryError):
                    continue
                result.partial_files += 1
                result.partial_bytes += size
        with layout.locked_index():
            for path in layout.stale_index_temps():
                path.unlink(missing_ok=True)
    return result
