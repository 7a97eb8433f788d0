"""Changing a layer's compression during a copy (``--compression-format gzip|zstd``, and what a
transport demands: plain tars into a docker-archive, gzip out of one).

A layer is decompressed and compressed again in one streaming pass into a temporary file, hashed
as it is written, so the new descriptor is known when the file is complete. Only layers whose
compression differs are touched (never compress twice); configs stay as they are, since
``diff_ids`` name the uncompressed content. Manifests are rewritten with the new layer
descriptors — a Docker schema2 manifest becomes an OCI manifest when the target is zstd, which
schema2 cannot express — and indexes with the new manifest descriptors.
"""

from __future__ import annotations

import contextlib
import copy as _copy
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Protocol, cast

from clusterimage.errors import ClusterImageError, LayerError, ManifestError, UsageError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest, Hasher, VerifyingReader
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest, canonical_json

FORMATS = ("gzip", "zstd")  # what --compression-format takes
GZIP = "gzip"
UNCOMPRESSED = mt.UNCOMPRESSED_LAYERS
GZIP_LEVEL = 1  # isal: level 1 is several times faster than zlib -6 at a similar ratio
ZSTD_LEVEL = 3  # zstd's own default
_READ = 1 << 20
_LAYERS = mt.GZIP_LAYERS | mt.ZSTD_LAYERS | mt.UNCOMPRESSED_LAYERS


def check_format(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in FORMATS:
        raise UsageError(f"--compression-format: expected gzip or zstd, not {value!r}")
    return value


def needs_recompression(desc: Descriptor, target: str | None) -> bool:
    """Whether a blob is a layer whose compression is not ``target``."""
    if target is None or desc.urls or desc.media_type == mt.DOCKER_FOREIGN_LAYER:
        return False
    return desc.media_type in _LAYERS and mt.layer_compression(desc.media_type) != target


@dataclass(frozen=True)
class Recompressed:
    source: Descriptor
    digest: Digest
    size: int
    compression: str
    path: Path | None = None  # the temporary file holding the new blob; None: reused, no file

    def descriptor(self, *, docker: bool) -> Descriptor:
        media_type = mt.layer_media_type(self.compression, docker=docker)
        return replace(
            self.source, media_type=media_type, digest=self.digest, size=self.size, urls=None
        )


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def _decompressed(stream: _Readable, compression: str) -> Iterator[bytes]:
    if compression == "none":
        while data := stream.read(_READ):
            yield data
        return
    # Imported here: every command imports the copy engine, few recompress.
    import zstandard
    from isal import isal_zlib

    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(
            stream,  # type: ignore[arg-type]  # any object with read() works
            read_across_frames=True,
        )
        while data := reader.read(_READ):
            yield data
        return
    # gzip, possibly several members back to back (as pigz and some tools write).
    inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
    while data := stream.read(_READ):
        while data:
            out = inflater.decompress(data)
            if out:
                yield out
            if inflater.eof:
                data = inflater.unused_data
                inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
            else:
                data = b""
    tail = inflater.flush()
    if tail:
        yield tail


def zlib_error() -> type[Exception]:
    from isal import isal_zlib

    return cast(type[Exception], isal_zlib.error)  # its stubs call it an instance


def zstd_error() -> type[Exception]:
    import zstandard

    error: type[Exception] = zstandard.ZstdError
    return error


def _compressor(target: str) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    if target == "none":  # decompress only (a docker-archive holds plain tars)
        return (lambda data: data), (lambda: b"")
    import zstandard
    from isal import isal_zlib

    if target == "gzip":
        gz = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
        return gz.compress, gz.flush
    zs = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    return zs.compress, zs.flush


def recompress(
    stream: IO[bytes],
    source: Descriptor,
    target: str,
    tmp_dir: Path | None,
    progress: Callable[[int], None] | None = None,
) -> Recompressed:
    """Read ``source``'s blob from ``stream`` (verified against its digest), write it compressed
    with ``target`` into a temporary file under ``tmp_dir``; the caller deletes ``path``."""
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="recompress-", suffix=".blob", dir=tmp_dir)
    path = Path(name)
    try:
        hasher = Hasher()
        compress, flush = _compressor(target)
        verified = _Counting(VerifyingReader(stream, source.digest, source.size), progress)
        compression = mt.layer_compression(source.media_type)
        with os.fdopen(fd, "wb") as out:
            try:
                for data in _decompressed(verified, compression):
                    packed = compress(data)
                    if packed:
                        hasher.update(packed)
                        out.write(packed)
            except (ValueError, OSError, zlib_error(), zstd_error()) as exc:
                if isinstance(exc, ClusterImageError):
                    raise
                raise LayerError(
                    f"layer {source.digest}: not valid {compression} data ({exc})"
                ) from None
            # Drain to EOF so the source digest is checked even after the last compressed frame.
            while verified.read(_READ):
                pass
            packed = flush()
            hasher.update(packed)
            out.write(packed)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return Recompressed(source, hasher.digest(), hasher.size, target, path)


class _Counting:
    def __init__(self, stream: VerifyingReader, progress: Callable[[int], None] | None) -> None:
        self._stream = stream
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data and self._progress is not None:
            self._progress(len(data))
        return data

    def readable(self) -> bool:
        return True


def _oci_media_type(media_type: str) -> str:
    return {
        **mt.DOCKER_TO_OCI_LAYERS,
        mt.DOCKER_CONFIG: mt.OCI_CONFIG,
        mt.DOCKER_MANIFEST: mt.OCI_MANIFEST,
        mt.DOCKER_MANIFEST_LIST: mt.OCI_INDEX,
    }.get(media_type, media_type)


def rewrite_manifest(
    manifest: ImageManifest, replaced: dict[Digest, Recompressed]
) -> ImageManifest:
    """The manifest with recompressed layers in place of the originals (same order)."""
    layers = manifest.layers
    if not any(layer.digest in replaced for layer in layers):
        return manifest
    targets = {r.compression for d, r in replaced.items() if any(x.digest == d for x in layers)}
    docker = manifest.media_type == mt.DOCKER_MANIFEST and "zstd" not in targets
    data: dict[str, Any] = _copy.deepcopy(manifest.data)
    new_layers = []
    for layer in layers:
        if layer.digest in replaced:
            new = replaced[layer.digest].descriptor(docker=docker)
        elif docker:
            new = layer
        else:
            new = _with_media_type(layer, _oci_media_type(layer.media_type))
        new_layers.append(new.to_dict())
    data["layers"] = new_layers
    media_type = manifest.media_type
    if not docker and media_type == mt.DOCKER_MANIFEST:
        media_type = mt.OCI_MANIFEST
        config = manifest.config
        data["config"] = _with_media_type(config, _oci_media_type(config.media_type)).to_dict()
    if "mediaType" in data or media_type != manifest.media_type:
        data["mediaType"] = media_type
    return ImageManifest(canonical_json(data), media_type, data)


def rewrite_index(index: ImageIndex, replaced: dict[Digest, Manifest]) -> ImageIndex:
    """The index pointing at rewritten children (``replaced``: old digest → new manifest)."""
    entries = index.manifests
    if not any(entry.digest in replaced for entry in entries):
        return index
    any_oci = any(
        new.media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX)
        for old, new in replaced.items()
        if any(e.digest == old for e in entries)
    )
    media_type = index.media_type
    if media_type == mt.DOCKER_MANIFEST_LIST and any_oci:
        media_type = mt.OCI_INDEX
    data: dict[str, Any] = _copy.deepcopy(index.data)
    new_entries = []
    for entry in entries:
        child = replaced.get(entry.digest)
        if child is not None:
            entry = replace(
                entry, media_type=child.media_type, digest=child.digest, size=child.size
            )
        elif media_type != index.media_type:
            entry = _with_media_type(entry, _oci_media_type(entry.media_type))
        new_entries.append(entry.to_dict())
    data["manifests"] = new_entries
    if "mediaType" in data or media_type != index.media_type:
        data["mediaType"] = media_type
    return ImageIndex(canonical_json(data), media_type, data)


def _with_media_type(desc: Descriptor, media_type: str) -> Descriptor:
    return desc if media_type == desc.media_type else replace(desc, media_type=media_type)


def rewrite(
    top: Manifest, children: list[Manifest], replaced: dict[Digest, Recompressed]
) -> tuple[Manifest, list[Manifest]]:
    """Rewrite every manifest (children in their order, then the top) after recompression."""
    if not replaced:
        return top, children
    new_manifests: dict[Digest, Manifest] = {}

    def one(manifest: Manifest) -> Manifest:
        if isinstance(manifest, ImageManifest):
            return rewrite_manifest(manifest, replaced)
        if isinstance(manifest, ImageIndex):
            return rewrite_index(manifest, new_manifests)
        raise ManifestError(f"cannot rewrite manifest {manifest.digest}")

    out_children = []
    for child in children:
        new = one(child)
        if new.digest != child.digest:
            new_manifests[child.digest] = new
        out_children.append(new)
    return one(top), out_children
