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
from clusterimage.layers.whiteout import is_opaque, is_whiteout, whiteout_target

_CHUNK: Final = 1 << 20
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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
            _finish_dirs(state, where)
    except tarfile.TarError as exc:
        raise LayerError(f"{where}: not a readable layer ({exc})") from None
    finally:
        for state in states.values():
            os.close(state.root_fd)
    return stats


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _walk(state: _State, name: str, folders: list[str], where: str, *, create: bool) -> int | None:
    """An fd on the folder ``folders`` (the parts of a path below the root), each opened
    relative to the one before without following a link. Missing folders are made when
    ``create``; otherwise a missing folder, or one that is a link or a file, gives None (nothing
    there to change). With ``create``, a link or a file on the way is a LayerError naming the
    member ``name``."""
    fd = os.dup(state.root_fd)
    for index, part in enumerate(folders):
        try:
            child = _open_folder(fd, part, create=create)
        except OSError as exc:
            os.close(fd)
            blocked = exc.errno in (errno.ELOOP, errno.ENOTDIR)
            if not create and (blocked or exc.errno == errno.ENOENT):
                return None
            if blocked:
                below = "/".join(folders[: index + 1])
                raise LayerError(
                    f"{where}: member {name!r} would be written through {below!r}, which is "
                    "not a folder (a symbolic link or a file)"
                ) from None
            raise
        os.close(fd)
        fd = child
    return fd


def _open_folder(fd: int, part: str, *, create: bool) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
        os.mkdir(part, 0o755, dir_fd=fd)
        return os.open(part, _DIR_FLAGS, dir_fd=fd)


@contextlib.contextmanager
def _parent(state: _State, name: str, where: str) -> Iterator[tuple[int, str]]:
    """The folder ``name`` goes in, opened without following links (made when missing), and
    the last part of ``name``."""
    parts = name.split("/")
    fd = _walk(state, name, parts[:-1], where, create=True)
    assert fd is not None
    try:
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _remove(fd: int, base: str) -> bool:
    try:
        st = os.lstat(base, dir_fd=fd)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        child = os.open(base, _DIR_FLAGS, dir_fd=fd)
        try:
            _empty(child)
        finally:
            os.close(child)
        os.rmdir(base, dir_fd=fd)
    else:
        os.unlink(base, dir_fd=fd)
    return True


def _empty(fd: int) -> None:
    for entry in os.listdir(fd):
        _remove(fd, entry)


def _clear_lower(fd: int, prefix: str, written: set[str]) -> None:
    """Remove what is in the folder ``fd`` (``prefix`` below the root) but what this layer
    wrote; a folder this layer wrote into is cleared the same way, as it may hold older files."""
    for entry in os.listdir(fd):
        path = f"{prefix}{entry}"
        if path not in written:
            _remove(fd, entry)
            continue
        try:
            child = os.open(entry, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            continue  # a file or a link of this layer
        try:
            _clear_lower(child, f"{path}/", written)
        finally:
            os.close(child)


def _apply(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    name: str,
    state: _State,
    stats: ExtractStats,
    where: str,
) -> None:
    if is_whiteout(name):
        _whiteout(name, state, stats, where)
        return
    with _parent(state, name, where) as (fd, last):
        state.written.add(name)
        state.written.update(_ancestors(name))  # folders made on the way count as this layer's
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
            _hardlink(member, name, fd, last, state, where)
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


def _whiteout(name: str, state: _State, stats: ExtractStats, where: str) -> None:
    """``.wh.NAME`` removes NAME, the opaque marker empties its folder of what earlier layers
    left; a folder that is missing (or a link) holds nothing to remove. AUFS metadata
    (``.wh..wh.*``) is skipped."""
    try:
        hidden = whiteout_target(name)
    except LayerError as exc:
        raise LayerError(f"{where}: {exc}") from None
    if hidden is None and not is_opaque(name):
        return
    folder = posixpath.dirname(name)
    fd = _walk(state, name, folder.split("/") if folder else [], where, create=False)
    if fd is None:
        return
    try:
        if hidden is not None:
            if _remove(fd, posixpath.basename(hidden)):
                stats.removed += 1
        else:
            prefix = f"{folder}/" if folder else ""
            _clear_lower(fd, prefix, state.written)
    finally:
        os.close(fd)


def _hardlink(
    member: tarfile.TarInfo, name: str, fd: int, last: str, state: _State, where: str
) -> None:
    """``last`` in ``fd`` as another name of the member's link target, found below the root
    without following a link (the target itself may be one: it is linked, not followed)."""
    try:
        target = clean_name(member.linkname, where)
    except LayerError:
        raise LayerError(
            f"{where}: hard link {name!r} to {member.linkname!r} points outside the folder"
        ) from None
    if target is None:
        raise LayerError(f"{where}: hard link {name!r} to the folder itself")
    folder, _, base = target.rpartition("/")
    source_fd = _walk(state, name, folder.split("/") if folder else [], where, create=False)
    try:
        if source_fd is None:
            raise FileNotFoundError
        os.link(base, last, src_dir_fd=source_fd, dst_dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        raise LayerError(
            f"{where}: hard link {name!r} to {member.linkname!r}, which is not there"
        ) from None
    except OSError as exc:  # a folder (EPERM), another file system (EXDEV)
        raise LayerError(
            f"{where}: hard link {name!r} to {member.linkname!r}: {exc.strerror}"
        ) from None
    finally:
        if source_fd is not None:
            os.close(source_fd)


def _ancestors(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:index]) for index in range(1, len(parts))]


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
    try:
        out = os.open(last, flags, 0o600, dir_fd=fd)
    except PermissionError:
        if st is None:
            raise
        # A read-only file an earlier unpack left (not running as root): replaced.
        _remove(fd, last)
        st = None
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


def _finish_dirs(state: _State, where: str) -> None:
    """Folder modes and mtimes last: a read-only folder would refuse what goes in it, and
    every write in a folder moves its mtime. Each folder is opened again without following a
    link: a later member of the layer may have replaced it by one (its target is left alone)."""
    for name, mode, mtime in reversed(state.dir_modes):
        fd = _walk(state, name, name.split("/"), where, create=False)
        if fd is None:
            continue  # removed or replaced by a later member of the same layer
        try:
            os.fchmod(fd, mode & 0o7777)
            with contextlib.suppress(OSError):
                os.utime(fd, ns=(int(mtime) * 10**9, int(mtime) * 10**9))
        finally:
            os.close(fd)
