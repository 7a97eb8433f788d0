"""Layers of the builder: :func:`clusterimage.layers.writer.write_layer` over the build's
:class:`~clusterimage.build.fstree.Node` entries, their files opened confined to the folders
they were walked from (:func:`open_content`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from clusterimage.build.confined import Confined
from clusterimage.build.fstree import Content, Node
from clusterimage.errors import BuildError
from clusterimage.layers import writer
from clusterimage.layers.writer import COMPRESSIONS, BlobSink, LayerResult

__all__ = ["COMPRESSIONS", "BlobSink", "LayerResult", "open_content", "write_layer"]


def open_content(content: Content, purpose: str, confined: Confined | None = None) -> int:
    """A read-only fd on ``content``'s file, checked to be the file the walk saw (a context file
    changed since is an error); ``purpose`` says what needs it, for messages. A context file is
    opened from its root one component at a time (through ``confined`` when given, which keeps
    the folders open for the next file)."""
    if content.path is None:
        raise BuildError(f"{purpose}: the file's bytes were not extracted before they were needed")
    if content.root is not None:
        what = f"{content.path} (for {purpose})"
        if confined is not None:
            fd = confined.open(content.root, content.rel, what)
        else:
            with Confined() as once:
                fd = once.open(content.root, content.rel, what)
    else:  # a file this build staged in its own folder
        try:
            fd = os.open(content.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise BuildError(
                f"cannot read {content.path} (for {purpose}): {exc.strerror}"
            ) from None
    st = os.fstat(fd)
    changed = not stat.S_ISREG(st.st_mode) or st.st_size != content.size
    if content.stat_key is not None:
        dev, ino, _size, mtime_ns, _ctime_ns = content.stat_key
        changed = changed or (st.st_dev, st.st_ino, st.st_mtime_ns) != (dev, ino, mtime_ns)
    if changed:
        os.close(fd)
        raise BuildError(f"{content.path} changed during the build (for {purpose}); build again")
    return fd


def write_layer(
    entries: Iterable[tuple[str, Node]],
    sink: BlobSink,
    *,
    compression: str = "gzip",
    timestamp: int = 0,
    hash_output: bool = True,
) -> LayerResult:
    """:func:`clusterimage.layers.writer.write_layer` of build entries: context files are
    opened through one :class:`Confined`, which keeps the folders of the last one open."""
    with Confined() as confined:

        def open_file(path: str, body: writer.Body) -> int:
            assert isinstance(body, Content)
            return open_content(body, f"/{path}", confined)

        return writer.write_layer(
            entries,
            sink,
            compression=compression,
            timestamp=timestamp,
            hash_output=hash_output,
            open_file=open_file,
        )
