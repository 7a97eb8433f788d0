"""Listings of layer blobs in every compression, and member bodies read and hashed."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest
import zstandard

from clusterimage.layers.listing import list_layer, member_path
from clusterimage.layers.tarsafe import read_member, stream_tar

BODY = b"key: value\n"
DIGEST = f"sha256:{hashlib.sha256(BODY).hexdigest()}"
EMPTY = f"sha256:{hashlib.sha256().hexdigest()}"


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo("etc/")
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o750, 1, 2
        tar.addfile(folder)
        conf = tarfile.TarInfo("etc/app.conf")
        conf.size, conf.mode = len(BODY), 0o4640
        tar.addfile(conf, io.BytesIO(BODY))
        link = tarfile.TarInfo("etc/same.conf")
        link.type, link.linkname = tarfile.LNKTYPE, "etc/app.conf"
        tar.addfile(link)
        sym = tarfile.TarInfo("etc/alias")
        sym.type, sym.linkname = tarfile.SYMTYPE, "app.conf"
        tar.addfile(sym)
        null = tarfile.TarInfo("dev/null")
        null.type, null.devmajor, null.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(null)
        tar.addfile(tarfile.TarInfo("etc/.wh.old"))
    return buffer.getvalue()


COMPRESSORS = {
    "none": lambda data: data,
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


class _Unseekable(io.RawIOBase):
    """A registry response as the listing sees it: read only, never rewound."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        return self._data.read(n)


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_a_stream_that_cannot_seek_lists_as_a_file_does(compression: str) -> None:
    # The head that tells the compression is read once and given back: nothing is spooled.
    data = COMPRESSORS[compression](_tar())
    assert list_layer(_Unseekable(data)) == list_layer(io.BytesIO(data))  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_records_of_a_blob_in_any_compression(compression: str) -> None:
    blob = io.BytesIO(COMPRESSORS[compression](_tar()))
    records = list_layer(blob)
    assert records == [
        ["etc", "dir", 0o750, 1, 2, 0, "", 0, 0],  # tarfile drops the trailing slash
        ["etc/app.conf", "file", 0o4640, 0, 0, 11, "", 0, 0, DIGEST],
        ["etc/same.conf", "hardlink", 0o644, 0, 0, 0, "etc/app.conf", 0, 0],
        ["etc/alias", "symlink", 0o644, 0, 0, 0, "app.conf", 0, 0],
        ["dev/null", "char", 0o644, 0, 0, 0, "", 1, 3],
        ["etc/.wh.old", "file", 0o644, 0, 0, 0, "", 0, 0, EMPTY],
    ]


def test_member_paths_never_climb_above_the_root() -> None:
    assert member_path("./etc//app.conf") == "etc/app.conf"
    assert member_path("/etc/app.conf") == "etc/app.conf"
    assert member_path("../../etc/passwd") == "etc/passwd"
    assert member_path("a/../../b") == "b"
    assert member_path("./") is None and member_path("/") is None and member_path("..") is None


def test_read_member_hashes_and_copies_the_body() -> None:
    out = io.BytesIO()
    with stream_tar(io.BytesIO(_tar())) as tar:
        member = next(m for m in tar if m.isreg())
        digest = read_member(tar, member, out)
    assert out.getvalue() == BODY
    assert digest == DIGEST


def test_a_body_cut_short_is_a_read_error() -> None:
    data = _tar()
    cut = data[: 512 * 2 + 5]  # the folder, the file's header and 5 bytes of its body
    with stream_tar(io.BytesIO(cut)) as tar, pytest.raises(tarfile.ReadError):
        for member in tar:
            if member.isreg():
                read_member(tar, member)
