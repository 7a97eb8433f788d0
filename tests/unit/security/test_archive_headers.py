"""Tar metadata headers (PAX, GNU long names) are read into memory whole: a bounded size.

A layer or ADD archive whose PAX header claims gigabytes of zeros compresses to kilobytes, and
Python's tarfile would hold the whole header in memory. Go's archive/tar, which Docker and
containers/image use, refuses such headers above 1 MiB; so does clusterimage.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from clusterimage.build.archive import read_archive
from clusterimage.build.fstree import Content, FsTree, stat_key
from clusterimage.errors import KubefileError
from clusterimage.layers.tarsafe import open_tar

HUGE = 64 << 20


def _record(keyword: str, size: int) -> bytes:
    """One PAX record ``LEN keyword=value\\n`` of exactly ``size`` bytes."""
    fixed = len(f" {keyword}=\n")
    digits = len(str(size))
    value = b"x" * (size - fixed - digits)
    return f"{size} {keyword}=".encode() + value + b"\n"


def _file(name: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 2
    return info.tobuf(format=tarfile.USTAR_FORMAT) + b"hi".ljust(tarfile.BLOCKSIZE, b"\0")


def _archive(header_type: bytes, size: int, *, after_a_file: bool = False) -> bytes:
    """A gzip tar: one metadata header of ``size`` bytes, then a small regular file."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as gz:
        if after_a_file:
            gz.write(_file("first"))
        meta = tarfile.TarInfo("././@PaxHeader" if header_type == tarfile.XHDTYPE else "././@Long")
        meta.type, meta.size = header_type, size
        gz.write(meta.tobuf(format=tarfile.USTAR_FORMAT))
        if header_type == tarfile.XHDTYPE:
            gz.write(_record("comment", size))
        else:
            gz.write(b"a" * (size - 1) + b"\0")
        gz.write(b"\0" * (-size % tarfile.BLOCKSIZE))
        gz.write(_file("file"))
        gz.write(b"\0" * tarfile.BLOCKSIZE * 2)
    return out.getvalue()


@pytest.mark.parametrize("header_type", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_huge_metadata_header_is_refused_without_reading_it_into_memory(
    header_type: bytes,
) -> None:
    raw = _archive(header_type, HUGE)
    assert len(raw) < HUGE // 100  # the bomb is small
    tracemalloc.start()
    try:
        with pytest.raises(tarfile.TarError, match="header"), open_tar(io.BytesIO(raw)) as tar:
            for _ in tar:
                pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < HUGE // 4


def _read(path: Path, raw: bytes) -> FsTree | None:
    path.write_bytes(raw)
    st = path.stat()
    return read_archive(
        Content(path, st.st_size, stat_key=stat_key(st)),
        path.parent / "staging",
        label=path.name,
        error=lambda message: KubefileError(message, "Kubefile", 3),
    )


def test_add_of_an_archive_with_a_huge_metadata_header(tmp_path: Path) -> None:
    # First: not readable as a tar, so not an archive (as Docker's IsArchive says); ADD copies
    # the file as it is. Later: an archive that cannot be read, an error at the ADD's line.
    assert _read(tmp_path / "first.tar.gz", _archive(tarfile.XHDTYPE, HUGE)) is None
    with pytest.raises(KubefileError, match="PAX header of"):
        _read(tmp_path / "later.tar.gz", _archive(tarfile.XHDTYPE, HUGE, after_a_file=True))


def test_metadata_headers_of_ordinary_size_still_work() -> None:
    raw = _archive(tarfile.XHDTYPE, 64 << 10)
    with open_tar(io.BytesIO(raw)) as tar:
        assert [m.name for m in tar] == ["file"]


def _sparse_archive(extension_blocks: int) -> bytes:
    """A gzip tar of one old-GNU sparse member with ``extension_blocks`` extension blocks of 21
    entries each (tarfile keeps every entry in a list)."""
    info = tarfile.TarInfo("sparse")
    info.type, info.size = tarfile.GNUTYPE_SPARSE, 0
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[482] = 1  # isextended
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header[:512])
    extension = bytearray(tarfile.BLOCKSIZE)
    for i in range(21):
        extension[i * 24 : i * 24 + 24] = b"%011o\0%011o\0" % (1, 1)
    extension[504] = 1
    last = bytearray(extension)
    last[504] = 0
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(header)
        for _ in range(extension_blocks - 1):
            gz.write(extension)
        gz.write(last)
        gz.write(b"\0" * tarfile.BLOCKSIZE * 2)
    return out.getvalue()


def test_a_sparse_header_with_endless_extensions_is_refused() -> None:
    raw = _sparse_archive(4096)  # 2 MiB of extensions; 200k of them took 258 MiB before
    with pytest.raises(tarfile.TarError, match="sparse"), open_tar(io.BytesIO(raw)) as tar:
        for _ in tar:
            pass
    with open_tar(io.BytesIO(_sparse_archive(100))) as tar:
        assert [m.name for m in tar] == ["sparse"]
