"""The ``docker-archive`` transport: ``docker-archive:FILE[:REF]``, what ``docker save`` writes
and ``docker load`` reads.

FILE ends at the first colon. Reading, REF picks an image by one of its ``RepoTags``
(``nginx:1.25``, normalised as Docker does) or ``@N`` for the N-th ``manifest.json`` entry;
without REF the archive must hold one image. Both layouts are read through ``manifest.json``:
the legacy one (``<hex>.json`` configs, ``<hex>.tar`` or ``<id>/layer.tar`` layers) and the
OCI-layout one Docker 25 writes (``blobs/sha256/...``). Writing makes what skopeo writes:
``<hex>.json`` configs, ``<hex>.tar`` layers and ``manifest.json``, in a hidden temporary file
renamed into place once whole (see :mod:`clusterimage.transports._tararchive`); several
images share one file through :meth:`DockerArchiveReference.new_writer`.

Docker archives hold plain (uncompressed) tar layers, and no manifest: a source describes the
image with a Docker schema2 manifest made from the archive (layers ``...rootfs.diff.tar``, each
digest the config's diff_id), and the copy engine gzips each layer once on its way to a store
or registry. A destination takes layers decompressed and returns the schema2 manifest of what it
wrote. So the manifest digest changes across a round trip (gzip in a store, plain tar in the
archive), while the config, and with it the image ID and every diff_id, stays the same.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from clusterimage.errors import (
    BlobNotFound,
    ImageNotFound,
    InvalidReference,
    ManifestError,
    TransportError,
)
from clusterimage.oci import jsonsafe
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest, hash_stream
from clusterimage.oci.manifest import ImageManifest, Manifest
from clusterimage.oci.reference import Reference
from clusterimage.transports import register
from clusterimage.transports._tararchive import Member, TarIndex, TarWriter
from clusterimage.transports.base import (
    BlobKind,
    Context,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageWriter,
    ProgressFn,
)

_POSITION = re.compile(r"^@(\d+)$")
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class _Entry:
    """One ``manifest.json`` item."""

    config: str
    repo_tags: list[str]
    layers: list[str]


class DockerArchiveReference(ImageReference):
    transport = "docker-archive"

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.name = name or None

    @classmethod
    def parse(cls, value: str) -> DockerArchiveReference:
        path, _, name = value.partition(":")
        if not path:
            raise TransportError(
                f"invalid reference docker-archive:{value}: expected docker-archive:FILE[:REF]"
            )
        if name and not _POSITION.match(name):
            try:
                Reference.parse(name)
            except InvalidReference as exc:
                raise TransportError(f"invalid reference docker-archive:{value}: {exc}") from None
        return cls(Path(path), name or None)

    def new_source(self, ctx: Context) -> DockerArchiveSource:
        index = TarIndex.read(self.path, str(self))
        entries = _entries(index, str(self))
        return DockerArchiveSource(index, self._pick(entries), str(self))

    def new_destination(self, ctx: Context) -> ImageDestination:
        writer = DockerArchiveWriter(self.path)
        return _SoleDestination(writer, writer.new_destination(self.docker_reference()))

    def new_writer(self, ctx: Context) -> DockerArchiveWriter:
        return DockerArchiveWriter(self.path)

    def docker_reference(self) -> Reference | None:
        if self.name is None or _POSITION.match(self.name):
            return None
        return Reference.parse(self.name)

    def list_images(self, ctx: Context) -> list[ImageReference]:
        entries = _entries(TarIndex.read(self.path, str(self)), str(self))
        found: list[ImageReference] = []
        for position, entry in enumerate(entries):
            if not entry.repo_tags:
                found.append(DockerArchiveReference(self.path, f"@{position}"))
            for tag in entry.repo_tags:
                found.append(DockerArchiveReference(self.path, tag))
        return found

    def _pick(self, entries: list[_Entry]) -> _Entry:
        if self.name is None:
            if len(entries) == 1:
                return entries[0]
            raise ImageNotFound(
                f"{self}: the archive holds {len(entries)} images; choose one with "
                "docker-archive:FILE:NAME:TAG or docker-archive:FILE:@N"
            )
        position = _POSITION.match(self.name)
        if position is not None:
            number = int(position.group(1))
            if number >= len(entries):
                raise ImageNotFound(f"{self}: the archive holds {len(entries)} images")
            return entries[number]
        wanted = Reference.parse(self.name)
        for entry in entries:
            for tag in entry.repo_tags:
                with contextlib.suppress(InvalidReference):
                    if Reference.parse(tag) == wanted:
                        return entry
        tags = ", ".join(t for e in entries for t in e.repo_tags) or "none"
        raise ImageNotFound(f"{self}: no image tagged {self.name} (tags: {tags})")

    def __str__(self) -> str:
        return f"docker-archive:{self.path}" + (f":{self.name}" if self.name else "")


def _entries(index: TarIndex, where: str) -> list[_Entry]:
    raw = index.read_small("manifest.json", where)
    if raw is None:
        raise TransportError(f"{where}: no manifest.json: not a docker archive")
    try:
        data = jsonsafe.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise ManifestError(f"{where}: manifest.json lists no image")
    entries = []
    for position, item in enumerate(data):
        what = f"{where}: manifest.json item {position}"
        if not isinstance(item, dict):
            raise ManifestError(f"{what} is not an object")
        config, tags, layers = item.get("Config"), item.get("RepoTags") or [], item.get("Layers")
        if not isinstance(config, str) or not isinstance(layers, list):
            raise ManifestError(f"{what} lacks Config or Layers")
        if not all(isinstance(x, str) for x in [*tags, *layers]) or not isinstance(tags, list):
            raise ManifestError(f"{what}: RepoTags and Layers must be lists of strings")
        entries.append(_Entry(config, list(tags), list(layers)))
    return entries


class DockerArchiveSource(ImageSource):
    supports_ranges = True
    uncompressed_by_format = True

    def __init__(self, index: TarIndex, entry: _Entry, where: str) -> None:
        self._index = index
        self._where = where
        self._members: dict[Digest, Member] = {}
        self._manifest = self._describe(entry)

    def _member(self, name: str, what: str) -> Member:
        cleaned = name.removeprefix("./")
        if cleaned.startswith("/") or ".." in cleaned.split("/"):
            raise TransportError(f"{self._where}: {what} path {name!r} points outside the archive")
        member = self._index.get(cleaned, self._where)
        if member is None:
            raise BlobNotFound(f"{self._where}: {what} {name} is not in the archive")
        return member

    def _describe(self, entry: _Entry) -> ImageManifest:
        member = self._member(entry.config, "config")
        raw = self._index.read_small(member.name, self._where)
        assert raw is not None
        config = ImageConfig.parse(raw, mt.DOCKER_CONFIG, f"{self._where}: config {entry.config}")
        self._members[config.digest] = member
        diff_ids = config.diff_ids
        if len(diff_ids) != len(entry.layers):
            raise ManifestError(
                f"{self._where}: {len(entry.layers)} layers listed, the config has "
                f"{len(diff_ids)} diff_ids"
            )
        layers = []
        for path, diff_id in zip(entry.layers, diff_ids, strict=True):
            layer = self._member(path, "layer")
            with self._index.open(layer) as stream:
                head = stream.read(4)
            if head.startswith(_ZSTD):
                raise TransportError(f"{self._where}: layer {path} is zstd, which Docker lacks")
            if head.startswith(_GZIP):
                # A compressed layer (docker load takes them): its digest is its own.
                with self._index.open(layer) as stream:
                    digest = hash_stream(stream).digest()
                desc = Descriptor(mt.DOCKER_LAYER_GZIP, digest, layer.size)
            else:
                desc = Descriptor(mt.DOCKER_LAYER, diff_id, layer.size)
            self._members[desc.digest] = layer
            layers.append(desc)
        return ImageManifest.build(
            Descriptor(mt.DOCKER_CONFIG, config.digest, config.size),
            layers,
            media_type=mt.DOCKER_MANIFEST,
        )

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        if digest is not None and digest != self._manifest.digest:
            raise BlobNotFound(f"{self._where}: no manifest {digest}")
        return self._manifest

    @contextlib.contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        member = self._members.get(desc.digest)
        if member is None:
            raise BlobNotFound(f"{self._where}: blob {desc.digest} is not in the archive")
        with self._index.open(member, offset) as stream:
            yield stream


def repo_tag(reference: Reference) -> str:
    """How ``docker save`` writes a name: Docker Hub's short form (``nginx:1.25``)."""
    return reference.familiar()


class DockerArchiveWriter(ImageWriter):
    """Several images into one docker archive; blobs they share are written once."""

    def __init__(self, target: Path) -> None:
        self._tar = TarWriter(target)
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    @property
    def tar(self) -> TarWriter:
        return self._tar

    def new_destination(self, name: Reference | None) -> DockerArchiveDestination:
        if name is not None and name.tag is None:
            name = None  # a digest-only name is no RepoTag
        return DockerArchiveDestination(self, repo_tag(name) if name is not None else None)

    def add_entry(self, config: str, layers: list[str], tag: str | None) -> None:
        with self._lock:
            for entry in self._entries:
                if entry["Config"] == config and entry["Layers"] == layers:
                    if tag is not None and tag not in entry["RepoTags"]:
                        entry["RepoTags"].append(tag)
                    return
            self._entries.append(
                {"Config": config, "RepoTags": [tag] if tag else [], "Layers": layers}
            )

    def commit(self) -> None:
        with self._lock:
            data = json.dumps(self._entries, separators=(",", ":")).encode()
        self._tar.add_bytes("manifest.json", data)
        self._tar.commit()

    def close(self) -> None:
        self._tar.close()


def _config_member(digest: Digest) -> str:
    return f"{digest.hex}.json"


def _layer_member(digest: Digest) -> str:
    return f"{digest.hex}.tar"


class DockerArchiveDestination(ImageDestination):
    accepts_index = False
    layer_compression = "decompress"

    def __init__(self, writer: DockerArchiveWriter, tag: str | None) -> None:
        self._writer = writer
        self._tag = tag
        self._top: tuple[str, list[str]] | None = None

    def has_blob(self, desc: Descriptor) -> bool:
        tar = self._writer.tar
        return tar.has(_layer_member(desc.digest)) or tar.has(_config_member(desc.digest))

    def blob_scope(self) -> str:
        return f"docker-archive:{id(self._writer)}"

    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
        *,
        kind: BlobKind = "layer",
    ) -> None:
        if offset:
            raise TransportError(f"{self}: an archive cannot resume a blob")
        name = _config_member(desc.digest) if kind == "config" else _layer_member(desc.digest)
        self._writer.tar.add_blob(name, desc, stream, progress)

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        if not isinstance(manifest, ImageManifest):
            raise TransportError(f"{self}: holds no multi-platform image; choose --platform")
        config = manifest.config
        layers = [Descriptor(mt.DOCKER_LAYER, x.digest, x.size) for x in manifest.layers]
        stored = ImageManifest.build(
            Descriptor(mt.DOCKER_CONFIG, config.digest, config.size),
            layers,
            media_type=mt.DOCKER_MANIFEST,
        )
        self._top = (_config_member(config.digest), [_layer_member(x.digest) for x in layers])
        return stored

    def commit(self) -> None:
        if self._top is None:
            raise TransportError(f"{self}: no image was written")
        config, layers = self._top
        self._writer.add_entry(config, layers, self._tag)

    def __str__(self) -> str:
        return f"docker-archive:{self._writer.tar.target}"


class _SoleDestination(ImageDestination):
    """A destination that owns its archive: ``copy ... docker-archive:FILE`` writes one image."""

    accepts_index = False
    layer_compression = "decompress"

    def __init__(self, writer: DockerArchiveWriter, dest: DockerArchiveDestination) -> None:
        self._writer = writer
        self._dest = dest

    def has_blob(self, desc: Descriptor) -> bool:
        return self._dest.has_blob(desc)

    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
        *,
        kind: BlobKind = "layer",
    ) -> None:
        self._dest.put_blob(desc, stream, offset, progress, kind=kind)

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        return self._dest.put_manifest(manifest, top=top)

    def commit(self) -> None:
        self._dest.commit()
        self._writer.commit()

    def close(self) -> None:
        self._writer.close()

    def __str__(self) -> str:
        return str(self._dest)


register("docker-archive", DockerArchiveReference.parse)
