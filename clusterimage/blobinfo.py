"""What pushes learnt about blobs, kept across runs: where blobs were last seen on registries
(so a push can mount instead of uploading), and what recompressing a layer produced (so a
re-push with ``--compression-format`` need not recompress it again).

containers/image keeps the same knowledge (its "blob info cache"): after pushing an image to
``reg/a``, pushing it to ``reg/b`` mounts every blob from ``reg/a``; and it remembers which
compressed variants of a layer exist. Stored in SQLite (stdlib, safe for several processes at
once). It is only a hint: every failure here is ignored, and every answer is checked against
the destination before it is used.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from clusterimage.errors import InvalidDigest
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS locations (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (digest, registry, repository)
)
""",
    # (source blob, target compression) -> the blob recompressing it produced.
    """
CREATE TABLE IF NOT EXISTS recompressed (
    source TEXT NOT NULL,
    compression TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (source, compression)
)
""",
    "CREATE INDEX IF NOT EXISTS locations_seen ON locations (seen)",
    "CREATE INDEX IF NOT EXISTS recompressed_seen ON recompressed (seen)",
)
_KEEP_PER_BLOB = 16
# Rows not refreshed for this long go when a process first writes the cache, so the file stays
# bounded by recent activity (the index on ``seen`` keeps that cheap when nothing is old).
# Forgetting only costs one upload (or recompression) that a mount could have saved.
MAX_AGE = 90 * 24 * 3600.0
_MAX_PENDING = 512  # statements held before they are written anyway


class BlobInfoCache:
    """Two small persistent maps: digest → [(registry, repository)], most recent first; and
    (source digest, compression) → the recompressed blob's descriptor."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken = path is None
        # Writes wait here and go in one transaction (at the next read, or at close): a pull
        # records every blob it fetches, and one transaction per blob cost ~3 ms each, taken
        # in turn by the blob workers under the lock.
        self._pending: list[tuple[str, tuple[object, ...]]] = []
        self._pruned = False

    def _conn(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._db is None:
            assert self._path is not None
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self._path, timeout=5.0, check_same_thread=False, isolation_level=None
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    db.execute(statement)
            except (sqlite3.Error, OSError):
                self._broken = True
                return None
            self._db = db
        return self._db

    def _write(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        with self._lock:
            if self._broken:
                return
            self._pending.extend(statements)
            if len(self._pending) >= _MAX_PENDING:
                self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        statements, self._pending = self._pending, []
        db = self._conn()
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            if not self._pruned:
                # Once per process, with its first writes.
                self._pruned = True
                cutoff = time.time() - MAX_AGE
                for table in ("locations", "recompressed"):
                    db.execute(f"DELETE FROM {table} WHERE seen < ?", (cutoff,))
            for sql, params in statements:
                db.execute(sql, params)
            db.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def flush(self) -> None:
        """Write what was recorded so far (close does it too)."""
        with self._lock:
            self._flush_locked()

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        with self._lock:
            self._flush_locked()  # read what this process recorded, too
            db = self._conn()
            if db is None:
                return []
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.Error:
                return []

    def record(self, digest: Digest, registry: str, repository: str) -> None:
        self._write(
            (
                "INSERT OR REPLACE INTO locations VALUES (?, ?, ?, ?)",
                (str(digest), registry, repository, time.time()),
            ),
            (
                "DELETE FROM locations WHERE digest = ? AND rowid NOT IN ("
                "SELECT rowid FROM locations WHERE digest = ? ORDER BY seen DESC LIMIT ?)",
                (str(digest), str(digest), _KEEP_PER_BLOB),
            ),
        )

    def forget(self, digest: Digest, registry: str, repository: str) -> None:
        self._write(
            (
                "DELETE FROM locations WHERE digest = ? AND registry = ? AND repository = ?",
                (str(digest), registry, repository),
            )
        )

    def repositories(self, digest: Digest, registry: str, *, limit: int = 3) -> list[str]:
        """Repositories of ``registry`` that had ``digest``, most recently seen first."""
        rows = self._query(
            "SELECT repository FROM locations WHERE digest = ? AND registry = ? "
            "ORDER BY seen DESC LIMIT ?",
            (str(digest), registry, limit),
        )
        return [str(r[0]) for r in rows]

    def record_recompressed(self, source: Digest, compression: str, result: Descriptor) -> None:
        """Remember that ``source`` compressed with ``compression`` gave ``result``."""
        row = (str(source), compression, str(result.digest), result.size, result.media_type)
        self._write(
            ("INSERT OR REPLACE INTO recompressed VALUES (?, ?, ?, ?, ?, ?)", (*row, time.time()))
        )

    def recompressed(self, source: Digest, compression: str) -> Descriptor | None:
        """What recompressing ``source`` with ``compression`` gave last time (``None``: not
        known, or a row that does not make sense, such as one edited by hand)."""
        rows = self._query(
            "SELECT digest, size, media_type FROM recompressed "
            "WHERE source = ? AND compression = ?",
            (str(source), compression),
        )
        if not rows:
            return None
        digest, size, media_type = rows[0]
        if not (isinstance(size, int) and size > 0 and isinstance(media_type, str)):
            return None
        if mt.layer_compression(media_type) != compression:
            return None
        try:
            return Descriptor(media_type, Digest.parse(str(digest)), size)
        except InvalidDigest:
            return None

    def close(self) -> None:
        with self._lock:
            self._flush_locked()
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
