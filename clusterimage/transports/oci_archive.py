"""The ``oci-archive`` transport: ``oci-archive:FILE[:REF]``, a tar of an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``), as skopeo, podman, buildah and ``sealos
save`` write it.

Syntax. FILE ends at the first colon, as in skopeo (``oci-archive:b.tar:docker.io/x/y:v1`` is
FILE ``b.tar``, REF ``docker.io/x/y:v1``). REF is an ``index.json`` entry's
``org.opencontainers.image.ref.name``, taken literally, that must match the OCI ref.name
grammar; or ``@N``, the N-th entry from 0 (an unnamed image). Reading without REF takes the
archive's only image. :meth:`OciArchiveReference.list_images` names each entry by its ref name,
or ``@N`` when it has none (or one that is not usable: shared with another entry, or outside the
grammar).

Reading never unpacks the tar: its headers are walked once (bounded PAX and long-name headers)
and each blob streams from its offset through a handle of its own, so several threads read at
once and a resumed transfer starts mid-blob. Members whose names climb out (``../``, absolute)
refuse the archive; links are never followed, and a link where a blob or document should be is
an error naming the member. Blobs are digest-checked by whoever receives them (manifests here).

Writing streams one tar, in order: ``oci-layout``, each blob as the copy delivers it (its header
carries the descriptor's size, the body is hashed on the way), manifests, and ``index.json``
last, into a hidden temporary file beside FILE that is fsynced and renamed into place at
commit; closing without a commit deletes it. A blob that does not match its digest spoils the
whole archive (its bytes are already in the stream): the copy fails and nothing appears at FILE.
REF becomes the ref name, literally (as skopeo writes it); without REF the entry has none.
:meth:`OciArchiveReference.new_writer` puts several images in one archive, each blob once, each
image named by its whole normalised reference (``docker.io/library/nginx:1.25``): what ``podman
save --format oci-archive`` writes for an image named by name (podman and sealos write one image
per oci-archive; ``-m`` is theirs for docker-archive only). :class:`OciArchiveWriter` also
writes into an open binary stream (standard output): no rename then, and a failed write leaves
a stream without ``index.json``, which no reader takes for an archive.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from clusterimage._humanize import count
from clusterimage.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    ManifestError,
    TransportError,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import Manifest, canonical_json, json_object, parse_manifest
from clusterimage.oci.reference import Reference
from clusterimage.transports import register
from clusterimage.transports._tararchive import TarIndex, TarWriter, blob_member
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
from clusterimage.transports.oci_layout import _REF_NAME_RE, whole_reference

REF_NAME = "org.opencontainers.image.ref.name"
_POSITION = re.compile(r"^@(\d+)$")


class OciArchiveReference(ImageReference):
    transport = "oci-archive"

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.name = name or None

    @classmethod
    def parse(cls, value: str) -> OciArchiveReference:
        path, _, name = value.partition(":")
        if not path:
            raise TransportError(
                f"invalid reference oci-archive:{value}: expected oci-archive:FILE[:REF]"
            )
        if name and not _usable_name(name) and not _POSITION.match(name):
            raise TransportError(
                f"invalid reference oci-archive:{value}: {name!r} is neither a valid ref name "
                "nor @N"
            )
        return cls(Path(path), name or None)

    def new_source(self, ctx: Context) -> OciArchiveSource:
        index = TarIndex.read(self.path, str(self))
        return OciArchiveSource(index, self._top(_entries(index, str(self))), str(self))

    def new_destination(self, ctx: Context) -> ImageDestination:
        writer = OciArchiveWriter(self.path)
        return SoleDestination(writer, writer.new_named(self.name))

    def new_writer(self, ctx: Context) -> OciArchiveWriter:
        return OciArchiveWriter(self.path)

    def docker_reference(self) -> Reference | None:
        return whole_reference(self.name)

    def list_images(self, ctx: Context) -> list[ImageReference]:
        entries = _entries(TarIndex.read(self.path, str(self)), str(self))
        names = [_ref_name(entry) for entry in entries]
        named_once = {n for n in names if n and names.count(n) == 1 and _usable_name(n)}
        return [
            OciArchiveReference(self.path, name if name in named_once else f"@{position}")
            for position, name in enumerate(names)
        ]

    def _top(self, entries: list[Descriptor]) -> Descriptor:
        names = ", ".join(sorted({n for e in entries if (n := _ref_name(e))})) or "none"
        if self.name is not None:
            position = _POSITION.match(self.name)
            if position is not None:
                number = int(position.group(1))
                if number >= len(entries):
                    held = count(len(entries), "image")
                    raise ImageNotFound(f"{self}: the archive holds {held}")
                return entries[number]
            for entry in entries:
                if _ref_name(entry) == self.name:
                    return entry
            raise ImageNotFound(f"{self}: no image named {self.name!r} (ref names: {names})")
        if len(entries) == 1:
            return entries[0]
        if not entries:
            raise ImageNotFound(f"{self}: the archive holds no image")
        raise ImageNotFound(
            f"{self}: the archive holds {len(entries)} images; choose one with "
            f"oci-archive:FILE:REF or oci-archive:FILE:@N (ref names: {names})"
        )

    def __str__(self) -> str:
        return f"oci-archive:{self.path}" + (f":{self.name}" if self.name else "")


def _ref_name(entry: Descriptor) -> str | None:
    return (entry.annotations or {}).get(REF_NAME)


def _usable_name(name: str) -> bool:
    return _REF_NAME_RE.match(name) is not None


def _entries(index: TarIndex, where: str) -> list[Descriptor]:
    layout = index.read_small("oci-layout", where)
    if layout is None:
        raise TransportError(f"{where}: no oci-layout file: not an OCI archive")
    raw = index.read_small("index.json", where)
    if raw is None:
        raise TransportError(f"{where}: no index.json: not an OCI archive")
    data = json_object(raw, f"{where}: index.json")
    manifests = data.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError(f"{where}: index.json has no manifests list")
    return [
        Descriptor.from_dict(m, f"{where}: index.json entry {i}") for i, m in enumerate(manifests)
    ]


class OciArchiveSource(ImageSource):
    supports_ranges = True

    def __init__(self, index: TarIndex, top: Descriptor, where: str) -> None:
        self._index = index
        self._top = top
        self._where = where

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        desc = self._top if digest is None else None
        wanted = digest or self._top.digest
        raw = self._index.read_small(blob_member(wanted), self._where)
        if raw is None:
            raise BlobNotFound(f"{self._where}: manifest {wanted} is not in the archive")
        if Digest.of(raw, wanted.algorithm) != wanted:
            raise DigestMismatch(f"{self._where}: manifest {wanted} does not match its digest")
        if desc is not None and desc.size != len(raw):
            raise DigestMismatch(
                f"{self._where}: manifest {wanted} has {len(raw)} bytes, index.json says "
                f"{desc.size}"
            )
        media_type = desc.media_type if desc is not None else None
        return parse_manifest(raw, media_type, where=f"{self._where}: manifest {wanted}")

    @contextlib.contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        member = self._index.get(blob_member(desc.digest), self._where)
        if member is None:
            raise BlobNotFound(f"{self._where}: blob {desc.digest} is not in the archive")
        if member.size != desc.size:
            raise DigestMismatch(
                f"{self._where}: blob {desc.digest} has {member.size} bytes, "
                f"its descriptor says {desc.size}"
            )
        with self._index.open(member, offset) as stream:
            try:
                yield stream
            except DigestMismatch as exc:
                # The receiver hashed the bytes (base.py's contract) but knows not where they
                # came from: name the archive.
                if str(exc).startswith(self._where):
                    raise
                raise DigestMismatch(f"{self._where}: {exc}") from None


class OciArchiveWriter(ImageWriter):
    """Several images into one OCI archive at ``target``, a path or an open binary stream
    (which the caller closes); blobs they share are written once."""

    def __init__(self, target: Path | IO[bytes]) -> None:
        self._tar = TarWriter(target)
        self._tar.add_bytes("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        #: Annotations of index.json itself (a delta bundle's base and omitted blobs).
        self.annotations: dict[str, str] = {}

    def new_destination(self, name: Reference | None) -> OciArchiveDestination:
        return self.new_named(str(name) if name is not None else None)

    def new_named(self, ref_name: str | None) -> OciArchiveDestination:
        return OciArchiveDestination(self, ref_name)

    def add_entry(self, entry: dict[str, Any]) -> None:
        with self._lock:
            name = (entry.get("annotations") or {}).get(REF_NAME)
            if name is not None:
                # A name written twice points at the last image, as in a layout.
                self._entries = [
                    e for e in self._entries if (e.get("annotations") or {}).get(REF_NAME) != name
                ]
            self._entries.append(entry)

    @property
    def tar(self) -> TarWriter:
        return self._tar

    def commit(self) -> None:
        with self._lock:
            index = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_INDEX,
                "manifests": self._entries,
            }
            if self.annotations:
                index["annotations"] = dict(self.annotations)
        self._tar.add_bytes("index.json", json.dumps(index, separators=(",", ":")).encode())
        self._tar.commit()

    def close(self) -> None:
        self._tar.close()


class OciArchiveDestination(ImageDestination):
    def __init__(self, writer: OciArchiveWriter, ref_name: str | None) -> None:
        self._writer = writer
        self._ref_name = ref_name
        self._top: Descriptor | None = None

    def has_blob(self, desc: Descriptor) -> bool:
        return self._writer.tar.has(blob_member(desc.digest))

    def blob_scope(self) -> str:
        return f"oci-archive:{id(self._writer)}"

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
        self._writer.tar.add_blob(blob_member(desc.digest), desc, stream, progress)

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        self._writer.tar.add_bytes(blob_member(manifest.digest), manifest.raw)
        if top:
            self._top = manifest.descriptor()
        return manifest

    def commit(self) -> None:
        if self._top is None:
            raise TransportError(f"{self}: no image was written")
        entry = self._top.to_dict()
        if self._ref_name is not None:
            entry["annotations"] = {REF_NAME: self._ref_name}
        self._writer.add_entry(entry)

    def __str__(self) -> str:
        return f"oci-archive:{self._writer.tar.target}"


register("oci-archive", OciArchiveReference.parse)
