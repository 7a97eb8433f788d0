"""The ``docker-archive`` transport: ``docker-archive:FILE[:REF]``, what ``docker save`` writes
and ``docker load`` reads, one image or several in one tar file.

FILE ends at the first colon. Reading, REF picks an image by one of its ``RepoTags``
(``nginx:1.25``, compared normalised, so ``docker.io/library/nginx:1.25`` is the same) or by
``@N``, the N-th ``manifest.json`` entry (containers/image's syntax); without REF the archive
must hold one image. Writing, REF is the name the image is stored under (none: untagged).
Digests name no image in an archive: ``NAME@sha256:...`` is refused.

Format. ``manifest.json`` lists the images: ``[{"Config", "RepoTags", "Layers"}]``, paths of
members. Both layouts are read through it, by member offsets, never unpacked: the legacy one
(``<id>.json`` configs, ``<v1-id>/layer.tar`` or ``<hex>.tar`` layers; ``docker save`` makes a
layer it already wrote a symlink to the first copy) and the OCI-layout one Docker 25 writes
(``blobs/sha256/<hex>``, with ``index.json`` and ``oci-layout`` that are not needed). Symlinks
and hard links among members are followed inside the archive only; one that points outside,
as a path that does, is an error naming it. ``repositories`` is not read. Written is the
layout skopeo writes (``<hex>.json`` configs and ``<hex>.tar`` layers at the top, each once
however many images share it) less its legacy per-layer folders, which only Docker before 1.10
read, with ``manifest.json`` (RepoTags in Docker's short form, ``nginx:1.25``, as docker save
writes them) and ``repositories`` as Docker 25 writes it (name → tag → top layer), streamed into
a hidden file beside FILE and renamed into place once whole (see
:mod:`clusterimage.transports._tararchive`); blobs go in as they come, one at a time.
:meth:`DockerArchiveReference.new_writer` puts several images into one file.

Layers and digests. An archive holds no manifest: a source describes its image with the Docker
schema2 manifest containers/image makes (config ``...container.image.v1+json``, each layer's
digest its diff_id and size that of the tar, Go's field order), with one difference: skopeo
labels those plain tars ``...rootfs.diff.tar.gzip`` (its constant for schema2 layers), we label
them ``...rootfs.diff.tar``, what they are; so ``skopeo inspect --raw`` gives other bytes and
another digest for the same image. The copy engine gzips each plain layer once (python-isal)
on its way into the store or a registry; a plain layer that does not match its diff_id is
refused there, before anything becomes visible. A gzip layer inside an archive (docker loads
those) keeps its bytes and its media type; a bzip2, xz or zstd one is served decompressed.
Any compressed layer is checked against its diff_id when the source opens (one pass). A
destination takes every layer decompressed (``layer_compression = "decompress"``), one
platform only (``accepts_index = False``), and returns the manifest of what it wrote, as a
source reading the archive makes it, so a copy reports the digest a later read gives.

So the manifest digest changes across a round trip: an image pulled from a registry (gzip
layers) and saved to a docker archive holds plain tars; loaded back it is gzipped anew (isal
level 1, not the registry's compressor), so its manifest digest differs from the registry's.
The config, and with it the image ID and every diff_id, stays the same.
"""

from __future__ import annotations

import contextlib
import lzma
import posixpath
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from clusterimage._humanize import count
from clusterimage.errors import (
    BlobNotFound,
    ClusterImageError,
    DigestMismatch,
    ImageNotFound,
    InvalidReference,
    ManifestError,
    TransportError,
)
from clusterimage.layers.tarsafe import compression_of_head, decompressed
from clusterimage.oci import jsonsafe
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest, Hasher, ReadThrough
from clusterimage.oci.manifest import ImageManifest, Manifest, canonical_json
from clusterimage.oci.reference import Reference
from clusterimage.recompress import zlib_error, zstd_error
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
    SoleDestination,
)

_POSITION: Final = re.compile(r"^@(\d+)$")
_LINK_DEPTH: Final = 8  # links followed from one manifest.json path (docker save makes one)
_CHUNK: Final = 1 << 20
_CONFIGS: Final = frozenset({mt.DOCKER_CONFIG, mt.OCI_CONFIG})


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
                reference = Reference.parse(name)
            except InvalidReference as exc:
                raise TransportError(f"invalid reference docker-archive:{value}: {exc}") from None
            if reference.digest is not None:
                raise TransportError(
                    f"invalid reference docker-archive:{value}: images in a docker archive are "
                    "named NAME:TAG or @N, never by digest"
                )
        return cls(Path(path), name or None)

    def new_source(self, ctx: Context) -> DockerArchiveSource:
        index = TarIndex.read(self.path, str(self))
        entries = _entries(index, str(self))
        return DockerArchiveSource(index, self._pick(entries), str(self))

    def new_destination(self, ctx: Context) -> ImageDestination:
        if self.name is not None and _POSITION.match(self.name):
            raise TransportError(
                f"{self}: @N picks an image to read; name the image to write NAME:TAG"
            )
        writer = DockerArchiveWriter(self.path)
        return SoleDestination(writer, writer.new_destination(self.docker_reference()))

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
                raise ImageNotFound(f"{self}: the archive holds {count(len(entries), 'image')}")
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
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in [*tags, *layers]):
            raise ManifestError(f"{what}: RepoTags and Layers must be lists of strings")
        entries.append(_Entry(config, list(tags), list(layers)))
    return entries


def _schema2(config: Descriptor, layers: list[Descriptor]) -> ImageManifest:
    """The schema2 manifest of an image in a docker archive, in containers/image's shape (Go's
    field order: mediaType, size, digest); layers carry their own media types."""

    def described(desc: Descriptor) -> dict[str, Any]:
        return {"mediaType": desc.media_type, "size": desc.size, "digest": str(desc.digest)}

    data: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": described(config),
        "layers": [described(layer) for layer in layers],
    }
    return ImageManifest(canonical_json(data), mt.DOCKER_MANIFEST, data)


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Blob:
    what: str  # "layer PATH" or "config PATH", as manifest.json names it
    member: Member
    compression: str  # what open_blob undoes; "none": the member's bytes as they are


class DockerArchiveSource(ImageSource):
    supports_ranges = True
    uncompressed_by_format = True

    def __init__(self, index: TarIndex, entry: _Entry, where: str) -> None:
        self._index = index
        self._where = where
        self._blobs: dict[Digest, _Blob] = {}
        self._manifest = self._describe(entry)

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        if digest is not None and digest != self._manifest.digest:
            raise BlobNotFound(f"{self._where}: no manifest {digest}")
        return self._manifest

    @contextlib.contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        blob = self._blobs.get(desc.digest)
        if blob is None:
            raise BlobNotFound(f"{self._where}: blob {desc.digest} is not in the archive")
        try:
            with self._open(blob, offset) as stream:
                yield stream
        except DigestMismatch as exc:  # found by whoever read the stream: say which member
            raise DigestMismatch(f"{self._where}: {blob.what}: {exc}") from None

    @contextlib.contextmanager
    def _open(self, blob: _Blob, offset: int) -> Iterator[IO[bytes]]:
        if blob.compression == "none":
            with self._index.open(blob.member, offset) as stream:
                yield stream
            return
        with self._index.open(blob.member) as raw, decompressed(raw, blob.compression) as stream:
            while offset > 0:  # a resumed copy: decompressed bytes cannot be seeked to
                skipped = len(stream.read(min(offset, _CHUNK)))
                if not skipped:
                    break
                offset -= skipped
            yield stream

    def _describe(self, entry: _Entry) -> ImageManifest:
        member = self._resolve(entry.config, "config")
        raw = self._index.read_small(member.name, self._where)
        assert raw is not None  # _resolve found it
        what = f"{self._where}: config {entry.config}"
        config = ImageConfig.parse(raw, mt.DOCKER_CONFIG, what)
        try:
            diff_ids = config.diff_ids
        except ClusterImageError as exc:
            raise ManifestError(f"{what}: {exc}") from None
        self._blobs[config.digest] = _Blob(f"config {entry.config}", member, "none")
        if len(diff_ids) != len(entry.layers):
            raise ManifestError(
                f"{self._where}: manifest.json lists {count(len(entry.layers), 'layer')}, "
                f"config {entry.config} has {count(len(diff_ids), 'diff_id')}"
            )
        layers: list[Descriptor] = []
        described: dict[Digest, Descriptor] = {}
        paths: dict[str, Digest] = {}
        for path, diff_id in zip(entry.layers, diff_ids, strict=True):
            if diff_id in described:  # one layer twice (docker save links the second copy)
                layers.append(described[diff_id])
                continue
            layer = self._resolve(path, "layer")
            if paths.setdefault(layer.name, diff_id) != diff_id:
                raise ManifestError(f"{self._where}: layer {path} is listed for two diff_ids")
            described[diff_id] = self._layer(path, layer, diff_id)
            layers.append(described[diff_id])
        return _schema2(Descriptor(mt.DOCKER_CONFIG, config.digest, config.size), layers)

    def _layer(self, path: str, member: Member, diff_id: Digest) -> Descriptor:
        with self._index.open(member) as stream:
            compression = compression_of_head(stream.read(8))
        what = f"layer {path}"
        if compression == "none":
            desc = Descriptor(mt.DOCKER_LAYER, diff_id, member.size)
            self._blobs[diff_id] = _Blob(what, member, "none")
            return desc
        packed, plain = self._measure(path, member, compression, diff_id.hasher())
        if plain.digest() != diff_id:
            raise DigestMismatch(
                f"{self._where}: {what}: its {compression} content hashes to "
                f"{plain.digest()}, the config's diff_id is {diff_id}"
            )
        if compression == "gzip":  # kept as it is: schema2 has a media type for it
            desc = Descriptor(mt.DOCKER_LAYER_GZIP, packed.digest(), member.size)
            self._blobs[desc.digest] = _Blob(what, member, "none")
        else:
            desc = Descriptor(mt.DOCKER_LAYER, diff_id, plain.size)
            self._blobs[diff_id] = _Blob(what, member, compression)
        return desc

    def _measure(
        self, path: str, member: Member, compression: str, plain: Hasher
    ) -> tuple[Hasher, Hasher]:
        """Hashes of a compressed layer as stored and decompressed (into ``plain``), one pass."""
        packed = Hasher()
        try:
            with self._index.open(member) as raw:
                tee = ReadThrough(raw, packed)
                with decompressed(tee, compression) as stream:  # type: ignore[arg-type]
                    while data := stream.read(_CHUNK):
                        plain.update(data)
                tee.drain()  # bytes after the data still count in its digest
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib_error(), zstd_error()) as exc:
            raise TransportError(
                f"{self._where}: layer {path}: not valid {compression} data ({exc})"
            ) from None
        return packed, plain

    def _resolve(self, name: str, what: str) -> Member:
        """The regular file a ``manifest.json`` path names, through links that stay inside."""
        path = name
        for _ in range(_LINK_DEPTH):
            path = posixpath.normpath(path)
            if path.startswith("/") or path == ".." or path.startswith("../"):
                via = "" if path == posixpath.normpath(name) else f" (through a link to {path})"
                raise TransportError(
                    f"{self._where}: {what} {name} points outside the archive{via}"
                )
            member = self._index.members.get(path)
            if member is None:
                raise BlobNotFound(f"{self._where}: {what} {name} is not in the archive")
            if member.kind == "file":
                return member
            if member.kind == "symlink":
                path = posixpath.join(posixpath.dirname(path), member.link)
            elif member.kind == "hardlink":
                path = member.link  # named from the archive's root
            else:
                raise TransportError(f"{self._where}: {what} {name} is a {member.kind}, not a file")
        raise TransportError(f"{self._where}: {what} {name}: more than {_LINK_DEPTH} links")


# -- writing ------------------------------------------------------------------------------------


def _config_member(digest: Digest) -> str:
    return f"{digest.hex}.json"


def _layer_member(digest: Digest) -> str:
    return f"{digest.hex}.tar"


@dataclass
class _Image:
    config: Digest
    layers: list[Digest]
    tags: list[Reference] = field(default_factory=list)


class DockerArchiveWriter(ImageWriter):
    """Several images into one docker archive; blobs they share are written once, an image
    given twice is listed once with every tag, and a tag given twice names the later image
    (as ``docker tag`` would)."""

    def __init__(self, target: Path) -> None:
        self._tar = TarWriter(target)
        self._lock = threading.Lock()
        self._images: list[_Image] = []

    @property
    def tar(self) -> TarWriter:
        return self._tar

    def new_destination(self, name: Reference | None) -> DockerArchiveDestination:
        if name is not None and name.tag is None:
            name = None  # a digest-only name is no RepoTag
        return DockerArchiveDestination(self, name)

    def add_image(self, config: Digest, layers: list[Digest], tag: Reference | None) -> None:
        with self._lock:
            if tag is not None:
                for other in self._images:
                    other.tags = [t for t in other.tags if t != tag]
            image = next((i for i in self._images if i.config == config), None)
            if image is None:
                image = _Image(config, layers)
                self._images.append(image)
            if tag is not None:
                image.tags.append(tag)

    def commit(self) -> None:
        with self._lock:
            manifest, repositories = _manifest_json(self._images)
        self._tar.add_bytes("manifest.json", manifest)
        if repositories is not None:
            self._tar.add_bytes("repositories", repositories)
        self._tar.commit()

    def close(self) -> None:
        self._tar.close()


def _manifest_json(images: list[_Image]) -> tuple[bytes, bytes | None]:
    """``manifest.json``, and ``repositories`` as Docker 25 writes it (familiar name -> tag ->
    the hex of the top layer; None when no image is tagged)."""
    items: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        items.append(
            {
                "Config": _config_member(image.config),
                "RepoTags": [tag.familiar() for tag in image.tags],
                "Layers": [_layer_member(layer) for layer in image.layers],
            }
        )
        for tag in image.tags:
            if image.layers and tag.tag is not None:
                name = Reference(tag.registry, tag.repository).familiar()
                repositories.setdefault(name, {})[tag.tag] = image.layers[-1].hex
    return canonical_json(items), canonical_json(repositories) if repositories else None


class DockerArchiveDestination(ImageDestination):
    """One image of a :class:`DockerArchiveWriter`."""

    supported_manifest_types = None  # the archive keeps its own manifest, whatever it is given
    accepts_index = False
    layer_compression = "decompress"

    def __init__(self, writer: DockerArchiveWriter, tag: Reference | None) -> None:
        self._writer = writer
        self._tag = tag
        self._image: tuple[Digest, list[Digest]] | None = None

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
        if config.media_type not in _CONFIGS:
            raise TransportError(
                f"{self}: {config.media_type} is no container image config; "
                "a docker archive holds container images only"
            )
        layers = [_written_layer(layer, str(self)) for layer in manifest.layers]
        self._image = (config.digest, [layer.digest for layer in layers])
        return _schema2(Descriptor(mt.DOCKER_CONFIG, config.digest, config.size), layers)

    def commit(self) -> None:
        if self._image is None:
            raise TransportError(f"{self}: no image was written")
        self._writer.add_image(*self._image, self._tag)

    def __str__(self) -> str:
        return f"docker-archive:{self._writer.tar.target}"


def _written_layer(layer: Descriptor, where: str) -> Descriptor:
    """A layer as the archive holds it: a plain tar (the engine decompressed it), or gzip
    left as it came (a foreign layer)."""
    compression = mt.layer_compression(layer.media_type)
    if compression not in ("none", "gzip"):
        raise TransportError(f"{where}: layer {layer.digest} is {compression}, not a Docker layer")
    return Descriptor(mt.layer_media_type(compression, docker=True), layer.digest, layer.size)


register("docker-archive", DockerArchiveReference.parse)
