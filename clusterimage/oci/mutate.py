"""Making an image from parts: a config and a manifest, as go-containerregistry's ``mutate``
package does, for the code that writes images of its own (the native builder, ``merge``).

The documents come out canonical (compact JSON, keys in the order written here), so the same
parts give the same digests on any machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageManifest
from clusterimage.oci.platform import Platform


@dataclass(frozen=True)
class ImageParts:
    platform: Platform
    layers: Sequence[Descriptor]  # in order, as the manifest lists them
    diff_ids: Sequence[Digest]  # one per layer: the digest of its uncompressed tar
    container: Mapping[str, Any] = field(default_factory=dict)  # the config's "config" object
    history: Sequence[Mapping[str, Any]] = ()
    created: str | None = None
    author: str | None = None
    annotations: Mapping[str, str] | None = None  # on the manifest


def assemble(parts: ImageParts) -> tuple[ImageConfig, ImageManifest]:
    """The config and the manifest that name it, made from ``parts``."""
    if len(parts.layers) != len(parts.diff_ids):
        raise ValueError(f"{len(parts.layers)} layers but {len(parts.diff_ids)} diff_ids")
    data: dict[str, Any] = {}
    if parts.created is not None:
        data["created"] = parts.created
    if parts.author:
        data["author"] = parts.author
    data["architecture"] = parts.platform.architecture
    data["os"] = parts.platform.os
    if parts.platform.variant:
        data["variant"] = parts.platform.variant
    data["config"] = dict(parts.container)
    data["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in parts.diff_ids]}
    data["history"] = [dict(h) for h in parts.history]
    config = ImageConfig.build(data)
    descriptor = Descriptor(mt.OCI_CONFIG, config.digest, config.size)
    annotations = dict(parts.annotations) if parts.annotations else None
    manifest = ImageManifest.build(descriptor, list(parts.layers), annotations=annotations)
    return config, manifest
