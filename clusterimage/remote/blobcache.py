"""Where blobs were last seen on registries, so a push can mount instead of uploading.

containers/image keeps the same knowledge (its "blob info cache"): after pushing an image to
``reg/a``, pushing it to ``reg/b`` mounts every blob from ``reg/a``. Stored in SQLite (stdlib,
safe for several processes at once). It is only a hint: every failure here is ignored.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

from clusterimage.oci.digest import Digest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS locations (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (digest, registry, repository)
)
"""
_KEEP_PER_BLOB = 16


class BlobLocations:
    """A small persistent map digest → [(registry, repository)], most recent first."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken = path is None

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
                db.execute(_SCHEMA)
            except (sqlite3.Error, OSError):
                self._broken = True
                return None
            self._db = db
        return self._db

    def record(self, digest: Digest, registry: str, repository: str) -> None:
        with self._lock:
            db = self._conn()
            if db is None:
                return
            with contextlib.suppress(sqlite3.Error):
                db.execute(
                    "INSERT OR REPLACE INTO locations VALUES (?, ?, ?, ?)",
                    (str(digest), registry, repository, time.time()),
                )
                db.execute(
                    "DELETE FROM locations WHERE digest = ? AND rowid NOT IN ("
                    "SELECT rowid FROM locations WHERE digest = ? ORDER BY seen DESC LIMIT ?)",
                    (str(digest), str(digest), _KEEP_PER_BLOB),
                )

    def forget(self, digest: Digest, registry: str, repository: str) -> None:
        with self._lock:
            db = self._conn()
            if db is None:
                return
            with contextlib.suppress(sqlite3.Error):
                db.execute(
                    "DELETE FROM locations WHERE digest = ? AND registry = ? AND repository = ?",
                    (str(digest), registry, repository),
                )

    def repositories(self, digest: Digest, registry: str, *, limit: int = 3) -> list[str]:
        """Repositories of ``registry`` that had ``digest``, most recently seen first."""
        with self._lock:
            db = self._conn()
            if db is None:
                return []
            try:
                rows = db.execute(
                    "SELECT repository FROM locations WHERE digest = ? AND registry = ? "
                    "ORDER BY seen DESC LIMIT ?",
                    (str(digest), registry, limit),
                ).fetchall()
            except sqlite3.Error:
                return []
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
