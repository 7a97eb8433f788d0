"""Applying a layer to a folder, safely: what ``unpack`` does for each layer of each image.

OCI semantics: members in order, later over earlier; ``.wh.NAME`` removes NAME, and
``.wh..wh..opq`` empties its folder of what earlier layers put there. Confined to the root:
every folder on a member's way is opened relative to the one before it without following a
symbolic link (``O_NOFOLLOW``), so no write ever goes through a link, whatever an earlier member
or layer left there; names that climb out (``..``) or are absolute are errors, as are hard links
to something outside the root. Owners are kept when running as root, modes and mtimes always;
device nodes need root.

Unpacking again over the same folder is cheap: a file that is already there is compared with the
member as it streams past and written only from the first byte that differs, so an unchanged
file is read but never written, and one cut short by a killed unpack is finished.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from clusterimage.errors import LayerError

_CHUNK: Final = 1 << 20
WHITEOUT: Final = ".wh."
OPAQUE: Final = ".wh..wh..opq"


@dataclass
class ExtractStats:
    files: int = 0
    bytes: int = 0
    kept: int = 0  # files already there, not written again
    removed: int = 0  # whiteouts applied


@dataclass
class _State:
    root_fd: int
    owners: bool
    written: set[str] = field(default_factory=set)  # paths this layer made (opaque keeps them)
    dir_modes: list[tuple[str, int, int]] = field(default_factory=list)  # applied last


def clean_name(name: str, where: str) -> str | None:
    """A member's path relative to the root; None for the root itself; LayerError when it
    climbs out or is absolute."""
    if name.startswith("/") or ".." in name.split("/"):
        raise LayerError(f"{where}: member {name!r} points outside the folder")
    cleaned = posixpath.normpath(name)
    return None if cleaned == "." else cleaned


def extract_layer(
    tar: tarfile.TarFile,
    root: Path,
    *,
    where: str,
    owners: bool | None = None,
    route: Callable[[str], Path | None] | None = None,
) -> ExtractStats:
    """Apply the layer read from ``tar`` (a stream) to ``root``. ``route`` may send a member to
    another root (the runtime's merged registry) or, returning None, skip it."""
    root.mkdir(parents=True, exist_ok=True)
    stats = ExtractStats()
    keep_owners = os.geteuid() == 0 if owners is None else owners
    states: dict[Path, _State] = {}
    try:
        for member in tar:
            name = clean_name(member.name, where)
            if name is None:
                continue
            target_root = root
            if route is not None:
                routed = route(name)
                if routed is None:
                    continue
                target_root = routed
            state = states.get(target_root)
            if state is None:
                target_root.mkdir(parents=True, exist_ok=True)
                state = _State(_open_dir(target_root), keep_owners)
                states[target_root] = state
            _apply(tar, member, name, state, stats, where)
        for state in states.values():
            _finish_dirs(state)
    except tarfile.TarError as exc:
        raise LayerError(f"{where}: not a readable layer ({exc})") from None
    finally:
        for state in states.values():
            os.close(state.root_fd)
    return stats


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


@contextlib.contextmanager
def _parent(state: _State, name: str, where: str) -> Iterator[tuple[int, str]]:
    """The folder ``name`` goes in, opened without following links (made when missing), and
    the last part of ``name``."""
    parts = name.split("/")
    fd = os.dup(state.root_fd)
    try:
        for index, part in enumerate(parts[:-1]):
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    below = "/".join(parts[: index + 1])
                    raise LayerError(
                        f"{where}: member {name!r} would be written through {below!r}, which is "
                        "not a folder (a symbolic link or a file)"
                    ) from None
                raise
            os.close(fd)
            fd = child
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _remove(fd: int, base: str) -> bool:
    try:
        st = os.lstat(base, dir_fd=fd)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        child = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        try:
            _empty(child)
        finally:
            os.close(child)
        os.rmdir(base, dir_fd=fd)
    else:
        os.unlink(base, dir_fd=fd)
    return True


def _empty(fd: int, keep: Callable[[str], bool] = lambda _: False) -> None:
    for entry in os.listdir(fd):
        if not keep(entry):
            _remove(fd, entry)


def _apply(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    name: str,
    state: _State,
    stats: ExtractStats,
    where: str,
) -> None:
    base = posixpath.basename(name)
    if base == OPAQUE:
        folder = posixpath.dirname(name)
        with _parent(state, f"{folder}/x" if folder else "x", where) as (fd, _):
            prefix = f"{folder}/" if folder else ""
            _empty(fd, keep=lambda entry: f"{prefix}{entry}" in state.written)
        return
    if base.startswith(WHITEOUT):
        with _parent(state, name, where) as (fd, last):
            if _remove(fd, last[len(WHITEOUT) :]):
                stats.removed += 1
        return
    with _parent(state, name, where) as (fd, last):
        state.written.add(name)
        if member.isdir():
            try:
                st = os.lstat(last, dir_fd=fd)
                if not stat.S_ISDIR(st.st_mode):
                    _remove(fd, last)
                    os.mkdir(last, 0o755, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(last, 0o755, dir_fd=fd)
            state.dir_modes.append((name, member.mode, int(member.mtime)))
            _own(fd, last, member, state)
            return
        if member.isfile():
            _file(tar, member, fd, last, state, stats)
            return
        _remove(fd, last)
        if member.issym():
            os.symlink(member.linkname, last, dir_fd=fd)
        elif member.islnk():
            target = clean_name(member.linkname, where)
            if target is None:
                raise LayerError(f"{where}: hard link {name!r} to the folder itself")
            with _parent(state, target, where) as (source_fd, source_last):
                try:
                    os.link(
                        source_last, last, src_dir_fd=source_fd, dst_dir_fd=fd,
                        follow_symlinks=False,
                    )  # fmt: skip
                except FileNotFoundError:
                    raise LayerError(
                        f"{where}: hard link {name!r} to {member.linkname!r}, which is not there"
                    ) from None
            stats.files += 1
            return
        elif member.isfifo():
            os.mkfifo(last, member.mode & 0o7777, dir_fd=fd)
        elif member.ischr() or member.isblk():
            if os.geteuid() != 0:
                return  # a device node needs root: left out, as umoci --rootless does
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            os.mknod(last, kind | (member.mode & 0o7777), device, dir_fd=fd)
        else:
            return
        _own(fd, last, member, state)
        if not member.issym():
            os.chmod(last, member.mode & 0o7777, dir_fd=fd)
        _mtime(fd, last, member)


def _file(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    fd: int,
    last: str,
    state: _State,
    stats: ExtractStats,
) -> None:
    try:
        st = os.lstat(last, dir_fd=fd)
    except FileNotFoundError:
        st = None
    if st is not None and (not stat.S_ISREG(st.st_mode) or st.st_nlink > 1):
        # Never write into another kind of file, nor into one another name shares.
        _remove(fd, last)
        st = None
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(last, flags, 0o600, dir_fd=fd)
    try:
        source = tar.extractfile(member)
        same = _patch(source, out) if source is not None else st is None or st.st_size == 0
        if st is None or st.st_size != member.size:
            os.ftruncate(out, member.size)
            same = same and st is not None
        if state.owners:
            os.fchown(out, member.uid, member.gid)
        os.fchmod(out, member.mode & 0o7777)
        mtime = int(member.mtime) * 10**9
        os.utime(out, ns=(mtime, mtime))
    finally:
        os.close(out)
    if same and st is not None:
        stats.kept += 1
    else:
        stats.files += 1
        stats.bytes += member.size


def _patch(source: IO[bytes], out: int) -> bool:
    """Make ``out`` hold ``source``'s bytes, writing only from the first byte that differs (an
    unpack again over the same folder reads but does not write). True when nothing differed."""
    offset = 0
    same = True
    while data := source.read(_CHUNK):
        if same and os.pread(out, len(data), offset) == data:
            offset += len(data)
            continue
        same = False
        view = memoryview(data)
        while view:
            written = os.pwrite(out, view, offset)
            view = view[written:]
            offset += written
    return same


def _own(fd: int, last: str, member: tarfile.TarInfo, state: _State) -> None:
    if state.owners:
        os.chown(last, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)


def _mtime(fd: int, last: str, member: tarfile.TarInfo) -> None:
    with contextlib.suppress(OSError, NotImplementedError):
        ns = int(member.mtime) * 10**9
        os.utime(last, ns=(ns, ns), dir_fd=fd, follow_symlinks=False)


def _finish_dirs(state: _State) -> None:
    """Folder modes and mtimes last: a read-only folder would refuse what goes in it, and
    every write in a folder moves its mtime."""
    for name, mode, mtime in reversed(state.dir_modes):
        parent, _, last = name.rpartition("/")
        fd = os.dup(state.root_fd)
        try:
            for part in parent.split("/") if parent else []:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
            os.chmod(last, mode & 0o7777, dir_fd=fd)
            with contextlib.suppress(OSError):
                os.utime(last, ns=(int(mtime) * 10**9, int(mtime) * 10**9), dir_fd=fd)
        except FileNotFoundError:
            pass  # removed by a later whiteout of the same layer
        finally:
            os.close(fd)
