"""Files of a build context opened so that nothing outside the context can be reached.

``O_NOFOLLOW`` only guards a path's last component: a folder of the context swapped for a
symbolic link between the walk and the read would be followed. So every path is opened from
the context root's file descriptor one component at a time (``openat`` with ``O_NOFOLLOW``, and
``O_DIRECTORY`` for folders): a link anywhere on the way is an error, never followed, whatever
changes in the tree while the build runs. Python's ``os`` has no ``openat2(RESOLVE_BENEATH)``;
this is how it is done without it.

Files come in walk order, so :class:`Confined` keeps the folders of the last path open and most
opens are a single ``openat``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import TracebackType
from typing import Final

from clusterimage.errors import BuildError

DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a file must not block the open (fstat then refuses it).
FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def swapped_error(what: str) -> BuildError:
    return BuildError(
        f"{what}: it or a folder above it was replaced (by a symbolic link or another file) "
        "during the build; build again"
    )


def open_dir(name: str, dir_fd: int, what: str) -> int:
    """``name`` below ``dir_fd`` as a folder fd, never through a link."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise swapped_error(what) from None
        raise BuildError(f"cannot open {what}: {exc.strerror}") from None


class Confined:
    """Opens ``rel`` paths below roots, keeping the folders of the last one open; close it."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._names: list[str] = []  # the open folders below the root, top down
        self._fds: list[int] = []  # the root's fd, then one per name

    def __enter__(self) -> Confined:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._truncate(0)
        self._root = None

    def _truncate(self, depth: int) -> None:
        """Keep the root and the first ``depth - 1`` folders open (0: nothing)."""
        while len(self._fds) > depth:
            os.close(self._fds.pop())
        del self._names[max(depth - 1, 0) :]

    def parent(self, root: Path, rel: str, what: str) -> tuple[int, str]:
        """The fd of ``rel``'s folder (owned by this object) and ``rel``'s last name."""
        *folders, name = rel.split("/")
        if root != self._root:
            self.close()
            try:
                self._fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            except OSError as exc:
                raise BuildError(f"cannot open the folder {root}: {exc.strerror}") from None
            self._root = root
        same = 0
        for have, want in zip(self._names, folders, strict=False):
            if have != want:
                break
            same += 1
        self._truncate(same + 1)
        for folder in folders[same:]:
            self._fds.append(open_dir(folder, self._fds[-1], what))
            self._names.append(folder)
        return self._fds[-1], name

    def open(self, root: Path, rel: str, what: str) -> int:
        """A read-only fd on the file ``rel`` below ``root``; the caller closes it."""
        dir_fd, name = self.parent(root, rel, what)
        try:
            return os.open(name, FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise swapped_error(what) from None
            raise BuildError(f"cannot read {what}: {exc.strerror}") from None
