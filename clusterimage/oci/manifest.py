"""Image manifests and indexes (OCI and Docker schema2).

Each object keeps the exact bytes it was read from: its digest is of those bytes, and writing it
anywhere writes those bytes. Unknown fields survive because the raw bytes are what travels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from clusterimage.errors import ManifestError
from clusterimage.oci import jsonsafe
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest


def canonical_json(data: Any) -> bytes:
    """How we serialise what we create: compact, key order as given, UTF-8."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def json_object(raw: bytes, where: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; ManifestError naming ``where`` otherwise (nesting too
    deep included: see :mod:`clusterimage.oci.jsonsafe`)."""
    try:
        data = jsonsafe.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: not a JSON object")
    return data


@dataclass(frozen=True)
class _Document:
    raw: bytes
    media_type: str
    data: dict[str, Any] = field(repr=False, compare=False)

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.data.get("annotations") or {})

    def descriptor(self, **kwargs: Any) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, **kwargs)


@dataclass(frozen=True)
class ImageManifest(_Document):
    """An OCI image manifest or a Docker schema2 manifest."""

    @property
    def config(self) -> Descriptor:
        return Descriptor.from_dict(self.data.get("config"), "manifest config")

    @property
    def layers(self) -> list[Descriptor]:
        return [
            Descriptor.from_dict(d, f"manifest layer {i}")
            for i, d in enumerate(self.data.get("layers") or [])
        ]

    @property
    def blobs(self) -> list[Descriptor]:
        """Config first, then the layers: everything the manifest needs."""
        return [self.config, *self.layers]

    @classmethod
    def build(
        cls,
        config: Descriptor,
        layers: list[Descriptor],
        *,
        annotations: dict[str, str] | None = None,
        media_type: str = mt.OCI_MANIFEST,
    ) -> ImageManifest:
        data: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        data["config"] = config.to_dict()
        data["layers"] = [layer.to_dict() for layer in layers]
        if annotations:
            data["annotations"] = dict(annotations)
        return cls(canonical_json(data), media_type, data)


@dataclass(frozen=True)
class ImageIndex(_Document):
    """An OCI image index or a Docker manifest list."""

    @property
    def manifests(self) -> list[Descriptor]:
        return [
            Descriptor.from_dict(d, f"index entry {i}")
            for i, d in enumerate(self.data.get("manifests") or [])
        ]

    @classmethod
    def build(
        cls,
        manifests: list[Descriptor],
        *,
        annotations: dict[str, str] | None = None,
        media_type: str = mt.OCI_INDEX,
    ) -> ImageIndex:
        data: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
        data["manifests"] = [d.to_dict() for d in manifests]
        if annotations:
            data["annotations"] = dict(annotations)
        return cls(canonical_json(data), media_type, data)


Manifest = ImageManifest | ImageIndex


def parse_manifest(raw: bytes, media_type: str | None = None, where: str = "manifest") -> Manifest:
    """Parse manifest bytes; ``media_type`` is what the transport said (Content-Type), if anything.

    The document's own ``mediaType`` wins over a generic transport type; without either, the shape
    decides (``manifests`` → index, ``config`` → image manifest), as containers/image does.
    """
    data = json_object(raw, where)
    declared = data.get("mediaType")
    kind = declared if isinstance(declared, str) and declared else None
    if kind is None and media_type in mt.MANIFESTS:
        kind = media_type
    if kind is None:
        if data.get("schemaVersion") == 1:
            kind = mt.DOCKER_SCHEMA1
        elif "manifests" in data:
            kind = mt.OCI_INDEX
        elif "config" in data:
            kind = mt.OCI_MANIFEST
    if kind in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise ManifestError(f"{where}: Docker schema1 manifests are not supported")
    if kind in mt.INDEXES:
        if not isinstance(data.get("manifests"), list):
            raise ManifestError(f"{where}: index without a 'manifests' list")
        return ImageIndex(raw, kind, data)
    if kind in mt.IMAGE_MANIFESTS or (kind and "config" in data and "layers" in data):
        if not isinstance(data.get("config"), dict):
            raise ManifestError(f"{where}: manifest without a 'config' descriptor")
        return ImageManifest(raw, kind or mt.OCI_MANIFEST, data)
    raise ManifestError(f"{where}: unsupported manifest media type {kind or 'unknown'!r}")
