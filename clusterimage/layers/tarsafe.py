"""Reading tar archives safely: metadata headers bounded as Go's archive/tar bounds them.

Every reader of a tar that came from elsewhere (layers, ADD archives, bundles) opens it with
:class:`BoundedTarInfo`, so a few kilobytes of input cannot make tarfile read gigabytes of
"header" into memory.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final, cast

import zstandard
from isal import igzip

from clusterimage.oci.digest import ReadThrough

_CHUNK: Final = 1 << 20
# Go's archive/tar (moby, containers/image) caps PAX and GNU long-name headers at 1 MiB.
MAX_METADATA_HEADER: Final = 1 << 20
_METADATA_HEADERS: Final = {
    tarfile.XHDTYPE: "PAX",
    tarfile.XGLTYPE: "PAX global",
    tarfile.SOLARIS_XHDTYPE: "PAX",
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link",
}


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a metadata header into memory whole, however large its size field says it
    is, and an old GNU sparse header's extension blocks as long as each says another follows:
    a few kilobytes of gzip could claim gigabytes of either. Refuse more than Go's limit
    (``_proc_member`` is tarfile's one dispatch point for every header it reads)."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        kind = _METADATA_HEADERS.get(self.type)
        if kind is not None and self.size > MAX_METADATA_HEADER:
            raise tarfile.HeaderError(
                f"a {kind} header of {self.size} bytes (more than {MAX_METADATA_HEADER})"
            )
        if self.type != tarfile.GNUTYPE_SPARSE:
            return super()._proc_member(tar)  # type: ignore[misc]
        stream = tar.fileobj
        tar.fileobj = _CappedReads(stream, MAX_METADATA_HEADER)  # type: ignore[assignment]
        try:
            return super()._proc_member(tar)  # type: ignore[misc]
        finally:
            tar.fileobj = stream


class _CappedReads:
    """``stream`` for the reads of one header's extension blocks: at most ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int) -> bytes:
        self._left -= size
        if self._left < 0:
            raise tarfile.HeaderError("a GNU sparse header with more than 1 MiB of extensions")
        data: bytes = self._stream.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, out: IO[bytes] | None = None) -> str:
    """``sha256:<hex>`` of a regular member's body, read from ``tar`` in large chunks and
    written to ``out`` when given; a body shorter than its header says is a ReadError
    (tarfile's own "unexpected end of data")."""
    source = tar.extractfile(member)
    if source is None:
        raise tarfile.ReadError(f"member {member.name!r} is not a regular file")
    hasher = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        hasher.update(chunk)
        if out is not None:
            out.write(chunk)
    return f"sha256:{hasher.hexdigest()}"


def stream_tar(stream: IO[bytes]) -> tarfile.TarFile:
    """A tar archive read as a stream, its metadata headers bounded (:class:`BoundedTarInfo`)."""
    return tarfile.open(fileobj=stream, mode="r|", tarinfo=BoundedTarInfo)


def open_indexed(path: Path) -> tarfile.TarFile:
    """A tar file opened for random access (members found by seeking past their bodies, which
    are never read), its metadata headers bounded."""
    return tarfile.open(path, mode="r:", tarinfo=BoundedTarInfo)


_MAGICS: Final = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def compression_of_head(head: bytes) -> str:
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "none"


@contextmanager
def decompressed(raw: IO[bytes], compression: str) -> Iterator[IO[bytes]]:
    """``raw`` (an open binary file) decompressed as ``compression`` says, as a stream."""
    if compression == "gzip":
        with igzip.IGzipFile(fileobj=raw, mode="rb") as gz:
            yield cast(IO[bytes], gz)
    elif compression == "bzip2":
        with bz2.BZ2File(raw, "rb") as stream:
            yield stream
    elif compression == "xz":
        with lzma.LZMAFile(raw, "rb") as stream:
            yield stream
    elif compression == "zstd":
        # closefd=False: ``raw`` stays the caller's to close, as with the other codecs.
        decompressor = zstandard.ZstdDecompressor()
        with decompressor.stream_reader(raw, read_across_frames=True, closefd=False) as stream:
            yield stream  # type: ignore[misc]
    else:
        yield raw


@contextmanager
def open_tar(raw: IO[bytes]) -> Iterator[tarfile.TarFile]:
    """A tar archive or layer blob (an open binary file, or a stream that cannot seek: a
    registry's), decompressed as its content says, read as a stream."""
    try:
        seekable = raw.seekable()
    except (AttributeError, ValueError):
        seekable = False
    if seekable:
        compression = compression_of_head(raw.read(8))
        raw.seek(0)
    else:  # peeked at through a buffer: nothing spooled to disk
        raw = io.BufferedReader(ReadThrough(raw), 1 << 20)
        compression = compression_of_head(raw.peek(8)[:8])
    with (
        decompressed(raw, compression) as stream,
        stream_tar(stream) as tar,
    ):
        yield tar
