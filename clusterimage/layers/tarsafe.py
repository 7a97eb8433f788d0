"""Reading tar archives safely: metadata headers bounded as Go's archive/tar bounds them.

Every reader of a tar that came from elsewhere (layers, ADD archives, bundles) opens it with
:class:`BoundedTarInfo`, so a few kilobytes of input cannot make tarfile read gigabytes of
"header" into memory.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import IO, Any, Final

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


def stream_tar(stream: IO[bytes]) -> tarfile.TarFile:
    """A tar archive read as a stream, its metadata headers bounded (:class:`BoundedTarInfo`)."""
    return tarfile.open(fileobj=stream, mode="r|", tarinfo=BoundedTarInfo)


def open_indexed(path: Path) -> tarfile.TarFile:
    """A tar file opened for random access (members found by seeking past their bodies, which
    are never read), its metadata headers bounded."""
    return tarfile.open(path, mode="r:", tarinfo=BoundedTarInfo)
