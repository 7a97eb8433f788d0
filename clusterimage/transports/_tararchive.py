"""Tar files that hold images (oci-archive, docker-archive): read by member offsets, written as
one stream, shared by both transports.

Reading never unpacks: :class:`TarIndex` walks the headers once (bodies are skipped by seeking)
and remembers where each member's bytes are, so a blob is streamed straight from its offset,
with its own file handle per reader (blobs are read by several threads at once). Members whose
names climb out of the archive (``../``, absolute) or that are links are never followed: a
link where a blob or document should be is an error naming it.

Writing streams: :class:`TarWriter` appends members to a hidden temporary file beside the
target (blobs as they arrive, each header carrying the size its descriptor announced, the body
hashed while it is written) and renames it into place at :meth:`TarWriter.commit`, or into an
open binary stream the caller owns (standard output: no rename, nothing taken back). A blob
whose bytes do not match its digest has already gone into the stream, so the whole archive
fails and nothing appears at the target. A blob whose transfer breaks off is cut back off a
file (the copy engine may try it again); a stream cannot be cut, so there it spoils the whole.
Blobs are written one at a time (a lock): a tar is one sequential stream, and measured from a
local store (1 GiB, 4 layers, 4 jobs) hashing and the disk are the limit, not the waiting.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from clusterimage.errors import ClusterImageError, DigestMismatch, TransportError
from clusterimage.layers.tarsafe import open_indexed
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.store.blobs import fsync_dir
from clusterimage.transports.base import ProgressFn

DOCUMENT_LIMIT: Final = 4 << 20  # index.json, manifest.json, manifests and configs
_CHUNK: Final = 1 << 20
_BLOCK: Final = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class Member:
    name: str  # cleaned: no leading ./ or /
    offset: int  # of its data in the file
    size: int
    kind: str  # "file", "dir", "symlink", "hardlink" or "other"
    link: str = ""  # a link's target, as its header names it


class TarIndex:
    """Where each member of a tar file is; :meth:`open` streams one."""

    def __init__(self, path: Path, members: dict[str, Member]) -> None:
        self.path = path
        self.members = members

    @classmethod
    def read(cls, path: Path, where: str) -> TarIndex:
        """Index ``path``; ``where`` names it in errors (``oci-archive:FILE``)."""
        members: dict[str, Member] = {}
        try:
            size = path.stat().st_size
            with open_indexed(path) as tar:
                for info in tar:
                    name = _clean(info.name, where)
                    if name is None:
                        continue
                    if info.isfile() and info.offset_data + info.size > size:
                        raise TransportError(f"{where}: truncated in member {name}")
                    members[name] = Member(
                        name, info.offset_data, info.size, _kind(info), info.linkname
                    )
                # tarfile ends quietly at a cut or damaged header past the first; Go's
                # archive/tar (skopeo, docker) refuses it, and so do we.
                if not _ends_cleanly(tar, size):
                    raise TransportError(f"{where}: truncated or damaged at byte {tar.offset}")
        except FileNotFoundError:
            raise TransportError(f"{where}: no such file") from None
        except IsADirectoryError:
            raise TransportError(f"{where}: a folder, not an archive") from None
        except (tarfile.TarError, EOFError) as exc:
            raise TransportError(f"{where}: not a readable tar archive ({exc})") from None
        if not members:
            raise TransportError(f"{where}: an empty archive")
        return cls(path, members)

    def get(self, name: str, where: str) -> Member | None:
        """The regular file member ``name``; None when absent; an error when it is a link or
        anything but a regular file (never followed)."""
        member = self.members.get(name)
        if member is not None and member.kind != "file":
            raise TransportError(f"{where}: member {name} is a {member.kind}, not a file")
        return member

    def read_small(self, name: str, where: str, limit: int = DOCUMENT_LIMIT) -> bytes | None:
        member = self.get(name, where)
        if member is None:
            return None
        if member.size > limit:
            raise TransportError(f"{where}: member {name} is larger than {limit} bytes")
        with self.open(member) as stream:
            data = stream.read()
        if len(data) != member.size:
            raise TransportError(f"{where}: truncated in member {name}")
        return data

    @contextlib.contextmanager
    def open(self, member: Member, offset: int = 0) -> Iterator[IO[bytes]]:
        with open(self.path, "rb") as raw:
            raw.seek(member.offset + offset)
            yield _Window(raw, member.size - offset)  # type: ignore[misc]


def _ends_cleanly(tar: tarfile.TarFile, size: int) -> bool:
    """Whether the archive ends where tarfile stopped: at the end of the file, or at a zero
    block (the end-of-archive marker)."""
    left = size - tar.offset
    if left == 0:
        return True
    assert tar.fileobj is not None
    tar.fileobj.seek(tar.offset)
    return bool(left >= _BLOCK and tar.fileobj.read(_BLOCK) == bytes(_BLOCK))


class _Window(io.RawIOBase):
    """At most ``size`` bytes of ``raw`` from where it stands."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        super().__init__()
        self._raw = raw
        self._left = max(size, 0)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._raw.read(n)
        self._left -= len(data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _clean(name: str, where: str) -> str | None:
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if name.startswith("/") or ".." in name.split("/"):
        raise TransportError(f"{where}: member {name!r} points outside the archive")
    return cleaned or None


def _kind(info: tarfile.TarInfo) -> str:
    if info.isfile():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "other"


def blob_member(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


class TarWriter:
    """A tar file written as a stream into a temporary file, renamed into place at commit; or
    into ``target`` itself when it is an open binary stream (its owner closes it; ``target``
    then reads ``-`` in messages)."""

    def __init__(self, target: Path | IO[bytes]) -> None:
        self._temp: Path | None = None
        if isinstance(target, Path):
            self.target = target
            self._file, self._temp = self._create_temp(target)
        else:
            self.target = Path("-")
            self._file = target
        self._lock = threading.Lock()
        self._dirs: set[str] = set()
        self.written: set[str] = set()
        self.failed: str | None = None
        # What a write after a failure raises: the failure's own kind, so that whichever
        # thread of a copy reports first, the cause is what the user sees.
        self._failure: type[ClusterImageError] = TransportError

    @staticmethod
    def _create_temp(target: Path) -> tuple[IO[bytes], Path]:
        if target.is_dir():
            raise TransportError(f"{target}: a folder; name the archive file to write")
        if not target.parent.is_dir():
            raise TransportError(f"{target}: no folder {target.parent} to write it in")
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        return os.fdopen(fd, "wb"), Path(name)

    def has(self, name: str) -> bool:
        with self._lock:
            return name in self.written

    def add_bytes(self, name: str, data: bytes) -> None:
        with self._lock:
            self._check()
            if name in self.written:
                return
            self._header(name, len(data))
            self._file.write(data)
            self._pad(len(data))
            self.written.add(name)

    def add_blob(
        self,
        name: str,
        desc: Descriptor,
        stream: IO[bytes],
        progress: ProgressFn | None = None,
    ) -> None:
        """Append ``stream`` as member ``name``: its header says ``desc.size`` bytes, and the
        body must hash to ``desc.digest``. Else the archive is spoilt (DigestMismatch)."""
        with self._lock:
            self._check()
            if name in self.written:
                return
            self._parents(name)
            start = self._file.tell() if self._temp is not None else None
            self._header(name, desc.size)
            hasher = desc.digest.hasher()
            done = 0
            try:
                while done < desc.size:
                    data = stream.read(min(_CHUNK, desc.size - done))
                    if not data:
                        break
                    hasher.update(data)
                    self._file.write(data)
                    done += len(data)
                    if progress is not None:
                        progress(len(data))
                extra = stream.read(1)
            except BaseException:
                if start is None:
                    self.failed = f"writing {name} broke off"
                else:  # cut it off: the archive stays whole, and the blob may come again
                    self._file.seek(start)
                    self._file.truncate()
                raise
            if done != desc.size or extra or hasher.digest() != desc.digest:
                self.failed = f"blob {desc.digest} did not match its digest"
                self._failure = DigestMismatch
                raise DigestMismatch(
                    f"blob {desc.digest}: the bytes read do not match its digest and size "
                    f"({done}{'+' if extra else ''} of {desc.size} bytes)"
                )
            self._pad(desc.size)
            self.written.add(name)

    def commit(self) -> None:
        with self._lock:
            self._check()
            self._file.write(b"\0" * (2 * _BLOCK))
            self._file.flush()
            self.failed = "committed"
            if self._temp is None:
                return
            # mkstemp made it 0600; an archive is meant to be read by others (cp, scp, docker).
            os.fchmod(self._file.fileno(), 0o644)
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self.target)
            fsync_dir(self.target.parent)

    def close(self) -> None:
        with self._lock:
            if self._temp is None:  # the caller's stream: theirs to close
                self.failed = self.failed or "closed"
                return
            if not self._file.closed:
                self._file.close()
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()

    def _check(self) -> None:
        if self.failed is not None:
            error = self._failure(f"{self.target}: cannot write more: {self.failed}")
            error.consequence = True
            raise error

    def _parents(self, name: str) -> None:
        parent = posixpath.dirname(name)
        if parent and parent not in self._dirs:
            self._directory(parent)

    def _header(self, name: str, size: int) -> None:
        self._parents(name)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        info.uname = info.gname = ""
        self._file.write(info.tobuf(format=tarfile.PAX_FORMAT))

    def _directory(self, name: str) -> None:
        self._parents(name)
        info = tarfile.TarInfo(name + "/")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = 0
        self._file.write(info.tobuf(format=tarfile.PAX_FORMAT))
        self._dirs.add(name)

    def _pad(self, size: int) -> None:
        remainder = size % _BLOCK
        if remainder:
            self._file.write(b"\0" * (_BLOCK - remainder))
