"""The deterministic layer writer: entries → tar → compressor → blob sink, in one streaming pass.

Determinism (DESIGN.md, Layers): entries in directory-walk order, PAX/USTAR headers as Go's
archive/tar writes them for Docker and buildah (``ustar\\0`` magic, PAX records only for long or
non-ASCII names), uid/gid as given (0 unless ``--chown``), uname/gname empty, every mtime = the
build timestamp, no atime/ctime, hard links kept as links. gzip through python-isal with a header
of mtime 0, no file name, OS 255 (what Go's compress/gzip writes too); zstd through zstandard.

One pass: the calling thread reads files and hashes the tar stream (``diff_id``) and each file (for
the build cache); a second thread compresses, hashes the compressed stream (the blob digest) and
writes it to the sink. isal, zstandard and hashlib release the GIL, so both cores work. The queue
between them is bounded: a blob is never held whole in memory.

Entries are anything shaped as :class:`Entry` (the builder's ``fstree.Node``); the caller says
how a file's bytes are opened (``open_file``), so confinement stays the caller's business.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import zstandard
from isal import isal_zlib

from clusterimage.errors import LayerError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest, Hasher

COMPRESSIONS: Final = ("gzip", "zstd", "none")
GZIP_LEVEL: Final = 1  # isal level 1: as fast as 2 with the same ratio here; 3 is half as fast
ZSTD_LEVEL: Final = 3  # zstd's default; what containers/image writes

_CHUNK: Final = 1 << 20
_DIRECT: Final = 64 << 10  # file chunks at least this big go to the queue without a copy
_QUEUE_DEPTH: Final = 8
_BLOCK: Final = tarfile.BLOCKSIZE
_TYPES: Final = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


class BlobSink(Protocol):
    """Where the compressed layer goes (a store blob writer, a file, a hash-only sink)."""

    def write(self, data: bytes, /) -> Any: ...


class Body(Protocol):
    """A regular file's bytes: their size, and their digest once known (the writer fills it in
    while it streams them when it is None)."""

    @property
    def size(self) -> int: ...

    digest: str | None


class Entry(Protocol):
    """One member of the layer."""

    @property
    def kind(self) -> str: ...  # file, dir, symlink, char, block, fifo

    @property
    def mode(self) -> int: ...

    @property
    def uid(self) -> int: ...

    @property
    def gid(self) -> int: ...

    @property
    def content(self) -> Body | None: ...  # a file's bytes; entries sharing one are hard links

    @property
    def linkname(self) -> str: ...

    @property
    def devmajor(self) -> int: ...

    @property
    def devminor(self) -> int: ...


# Gives a read-only fd on a file's bytes, checked to be ``size`` bytes (entry path, body).
OpenFile = Callable[[str, Body], int]


def sort_key(path: str) -> tuple[str, ...]:
    """Order of a directory walk (parents first, siblings by name), as Docker writes layers."""
    return tuple(path.split("/"))


@dataclass(frozen=True)
class LayerResult:
    media_type: str
    diff_id: Digest  # digest of the uncompressed tar
    digest: Digest | None  # of the blob as written; None when the sink hashes it (hash_output)
    size: int  # bytes written to the sink
    entries: int  # tar entries written

    @property
    def descriptor(self) -> Descriptor:
        if self.digest is None:
            raise ValueError("the layer was written without hashing its output")
        return Descriptor(self.media_type, self.digest, self.size)


def _compressor(compression: str) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]] | None:
    if compression == "gzip":
        # wbits 31 = gzip wrapper; isal writes mtime 0, no name, OS 255: the same bytes anywhere.
        gz = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
        return gz.compress, gz.flush
    if compression == "zstd":
        zs = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0).compressobj()
        return zs.compress, zs.flush
    if compression == "none":
        return None
    raise LayerError(f"unknown compression {compression!r} (choose gzip, zstd or none)")


class _Compressing:
    """The second stage: a thread that compresses, hashes and writes what the first one queues."""

    def __init__(self, compression: str, sink: BlobSink, hash_output: bool) -> None:
        self._codec = _compressor(compression)
        self._sink = sink
        self._hash = hash_output and self._codec is not None
        self.hasher = Hasher()
        self.size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="layer-compress", daemon=True)
        self._thread.start()

    def _out(self, data: bytes) -> None:
        if data:
            # Uncompressed: the digest is the diff_id, hashed upstream.
            if self._hash:
                self.hasher.update(data)
            self.size += len(data)
            self._sink.write(data)

    def _run(self) -> None:
        ended = False
        try:
            while (chunk := self._queue.get()) is not None:
                if not self._abort.is_set():
                    self._out(self._codec[0](chunk) if self._codec else chunk)
            ended = True
            if self._codec is not None and not self._abort.is_set():
                self._out(self._codec[1]())
        except BaseException as exc:  # handed to the producer, which re-raises it
            self._error = exc
            self._abort.set()
            while not ended and self._queue.get() is not None:  # unblock the producer
                pass

    def put(self, chunk: bytes) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        self.put(None)  # type: ignore[arg-type]
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._abort.set()
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _TarStream:
    """The first stage: tar bytes in chunks, hashed (diff_id) before they are queued."""

    def __init__(self, downstream: _Compressing) -> None:
        self._down = downstream
        self._buf = bytearray()
        self.hasher = Hasher()

    def write(self, data: bytes) -> None:
        if len(data) >= _DIRECT:
            self.flush()
            self.hasher.update(data)
            self._down.put(data)
            return
        self._buf += data
        if len(self._buf) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            chunk = bytes(self._buf)
            self._buf.clear()
            self.hasher.update(chunk)
            self._down.put(chunk)


def _header(path: str, node: Entry, *, size: int, timestamp: int, link: str | None) -> bytes:
    info = tarfile.TarInfo(path + "/" if node.kind == "dir" else path)
    info.mode = node.mode & 0o7777
    info.uid, info.gid = node.uid, node.gid
    info.uname = info.gname = ""
    info.mtime = timestamp
    if link is not None:
        info.type, info.linkname = tarfile.LNKTYPE, link
    else:
        info.type = _TYPES[node.kind]
        info.linkname = node.linkname if node.kind == "symlink" else ""
        info.size = size
        info.devmajor, info.devminor = node.devmajor, node.devminor
    # Header encoding is tarfile's; PAX records appear only when a field needs them.
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _copy_content(path: str, content: Body, out: _TarStream, open_file: OpenFile) -> None:
    fd = open_file(path, content)
    want_digest = content.digest is None
    hasher = hashlib.sha256() if want_digest else None
    remaining = content.size
    try:
        while remaining > 0:
            chunk = os.read(fd, min(_CHUNK, remaining))
            if not chunk:
                raise LayerError(f"/{path} shrank while the layer was being written")
            remaining -= len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            out.write(chunk)
    finally:
        os.close(fd)
    pad = -content.size % _BLOCK
    if pad:
        out.write(b"\0" * pad)
    if hasher is not None:
        content.digest = f"sha256:{hasher.hexdigest()}"


def write_layer(
    entries: Iterable[tuple[str, Entry]],
    sink: BlobSink,
    *,
    compression: str = "gzip",
    timestamp: int = 0,
    hash_output: bool = True,
    open_file: OpenFile,
) -> LayerResult:
    """Write ``entries`` (path → node) as one layer blob to ``sink``.

    Paths are relative (``etc/app.conf``); the writer sorts them, so the order given does not
    matter. Regular files' :class:`Body` digests are filled in on the way when still unknown;
    ``open_file`` opens their bytes (it is given the entry's path and body).
    ``hash_output=False`` leaves the blob digest to a sink that hashes what it stores (the store's
    blob writer), so compressed bytes are not hashed twice.
    """
    ordered = sorted(entries, key=lambda item: sort_key(item[0]))
    for (a, _), (b, _) in itertools.pairwise(ordered):
        if a == b:
            raise LayerError(f"layer has /{a} twice")
    if timestamp < 0:
        raise LayerError(f"invalid timestamp {timestamp}: must be >= 0")
    compressing = _Compressing(compression, sink, hash_output)
    tar = _TarStream(compressing)
    first_path: dict[int, str] = {}  # id(Body) → path written as the file; later ones link
    try:
        for path, node in ordered:
            content = node.content if node.kind == "file" else None
            link = first_path.get(id(content)) if content is not None else None
            size = content.size if content is not None and link is None else 0
            tar.write(_header(path, node, size=size, timestamp=timestamp, link=link))
            if content is not None and link is None:
                first_path[id(content)] = path
                _copy_content(path, content, tar, open_file)
        # End of archive: two zero blocks, as Go's archive/tar writes (no record padding).
        tar.write(b"\0" * (2 * _BLOCK))
        tar.flush()
        compressing.finish()
    except BaseException:
        compressing.abort()
        raise
    diff_id = tar.hasher.digest()
    digest: Digest | None = None
    if compression == "none":
        digest = diff_id
    elif hash_output:
        digest = compressing.hasher.digest()
    media_type = mt.layer_media_type(compression)
    return LayerResult(media_type, diff_id, digest, compressing.size, len(ordered))
