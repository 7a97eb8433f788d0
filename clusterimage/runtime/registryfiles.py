"""The files of a registry folder, wherever they are: a folder on disk, or the ``registry/`` of a
cluster image in the store, read from its layers where they lie (no unpacking).

Both give the same small view of distribution's storage (paths relative to
``docker/registry/v2``): read a small file, find a blob's bytes as (file, offset, size) so a
server can ``sendfile`` them, and list a folder. Names reaching here were checked against
distribution's grammar; the folder backend also refuses any path that leads out through a
symbolic link.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clusterimage.errors import ClusterImageError, TransportError
from clusterimage.layers.tarsafe import open_indexed
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.manifest import ImageManifest
from clusterimage.store import Store

V2 = "docker/registry/v2"
PREFIX = f"registry/{V2}/"  # where a cluster image holds it


@dataclass(frozen=True)
class Span:
    """Bytes of a file: ``path`` from ``offset``, ``size`` of them."""

    path: Path
    offset: int
    size: int


class RegistryFiles(Protocol):
    def span(self, rel: str) -> Span | None: ...

    def listdir(self, rel: str) -> list[str]: ...


def read_small(files: RegistryFiles, rel: str, limit: int) -> bytes | None:
    span = files.span(rel)
    if span is None or span.size > limit:
        return None
    with open(span.path, "rb") as stream:
        stream.seek(span.offset)
        return stream.read(span.size)


class FolderFiles:
    """A registry folder on disk (``DIR/docker/registry/v2``)."""

    def __init__(self, root: Path) -> None:
        self.base = root / V2
        if not self.base.is_dir():
            raise TransportError(f"{root}: no {V2} folder: not a registry folder")
        self._real = os.path.realpath(self.base)

    def _path(self, rel: str) -> Path | None:
        path = self.base / rel
        real = os.path.realpath(path)
        if real != self._real and not real.startswith(self._real + os.sep):
            return None  # a link out of the folder: as if missing
        return path

    def span(self, rel: str) -> Span | None:
        path = self._path(rel)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Span(path, 0, st.st_size)

    def listdir(self, rel: str) -> list[str]:
        path = self._path(rel)
        if path is None:
            return []
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []


class ImageFiles:
    """The ``registry/`` of an image in the store, from its uncompressed layers (a build writes
    the registry/ layer uncompressed: its blobs are compressed already), later layers over
    earlier ones, whiteouts honoured."""

    def __init__(self, store: Store, manifest: ImageManifest, name: str) -> None:
        self._files: dict[str, Span] = {}
        compressed = 0
        for layer in manifest.layers:
            if mt.layer_compression(layer.media_type) != "none":
                compressed += 1  # its members cannot be reached without decompressing it
                continue
            self._index(store.blob_path(layer.digest))
        if not self._files:
            why = f" ({compressed} compressed layers were not looked into)" if compressed else ""
            raise ClusterImageError(
                f"{name}: no registry/ in its uncompressed layers{why}; serve an unpacked copy "
                "(clusterimage unpack) instead"
            )
        self._dirs: dict[str, set[str]] = {}
        for rel in self._files:
            parts = rel.split("/")
            for depth in range(len(parts)):
                self._dirs.setdefault("/".join(parts[:depth]), set()).add(parts[depth])

    def _index(self, path: Path) -> None:
        with open_indexed(path) as tar:
            for info in tar:
                member = posixpath.normpath("/" + info.name).lstrip("/")
                base = posixpath.basename(member)
                if base.startswith(".wh."):
                    target = posixpath.join(posixpath.dirname(member), base[len(".wh.") :])
                    self._remove(target)
                elif member.startswith(PREFIX) and info.isfile():
                    self._files[member[len(PREFIX) :]] = Span(path, info.offset_data, info.size)

    def _remove(self, member: str) -> None:
        if not member.startswith(PREFIX):
            return
        rel = member[len(PREFIX) :]
        for key in [k for k in self._files if k == rel or k.startswith(rel + "/")]:
            del self._files[key]

    def span(self, rel: str) -> Span | None:
        return self._files.get(rel)

    def listdir(self, rel: str) -> list[str]:
        return sorted(self._dirs.get(rel.strip("/"), ()))
