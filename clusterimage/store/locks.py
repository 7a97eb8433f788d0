"""The locks a layout's private state folder holds.

- The index lock (``filelock``, exclusive) serialises every read-modify-write of ``index.json``.
- The gc guard is a shared/exclusive ``flock``: whoever adds blobs or references holds it shared
  for as long as those blobs may still be unreferenced, and garbage collection holds it exclusive,
  so gc never removes a blob that a running import is about to reference.

Both are ``flock`` locks, which the kernel releases when a process dies (even by SIGKILL).
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from clusterimage.errors import StoreError
from clusterimage.store.blobs import open_private

INDEX_LOCK_TIMEOUT = 120.0


class StoreBusy(StoreError):
    """Another process holds a lock of the store for longer than we are willing to wait."""


@contextmanager
def index_lock(path: Path, timeout: float = INDEX_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive index lock at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise StoreBusy(f"{path.parent.parent}: index.json is locked by another process") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # filelock opens with O_NOFOLLOW: say so as open_private
            raise StoreError(
                f"{path} is a symbolic link; a layout's private files never are: remove it"
            ) from None
        raise
    try:
        yield
    finally:
        lock.release()


class GcGuard:
    """Shared (writers) or exclusive (gc) hold on one lock file.

    Hand-written on ``fcntl.flock`` because filelock has no shared mode on a plain flock. The
    shared hold is re-entrant per instance: nested and concurrent holders in one process share one
    descriptor.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mutex = threading.Lock()
        self._holders = 0
        self._fd: int | None = None

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._mutex:
            if self._holders == 0:
                fd = self._open()
                try:
                    # Blocks while a gc runs; gc is bounded (it only unlinks).
                    fcntl.flock(fd, fcntl.LOCK_SH)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._holders += 1
        try:
            yield
        finally:
            with self._mutex:
                self._holders -= 1
                if self._holders == 0 and self._fd is not None:
                    os.close(self._fd)  # closing releases the flock
                    self._fd = None

    @contextmanager
    def exclusive(self, timeout: float) -> Iterator[None]:
        """Hold the guard alone; raise :class:`StoreBusy` after ``timeout`` seconds of waiting."""
        fd = self._open()
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreBusy(
                            f"{self._path.parent.parent}: the store is in use by another process "
                            "(an import or build is running); try again when it has finished"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _open(self) -> int:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        return open_private(self._path, 0o644)
