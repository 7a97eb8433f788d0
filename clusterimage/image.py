"""The one way to read an image: a source and a platform give a manifest and a verified config.

go-containerregistry's ``remote.Image`` / ``Index.Image(platform)`` in a few functions: every
command that looks inside an image (inspect, create, the builder's base images, merge) and the
copy engine's platform choice go through here, so a platform is chosen one way, a config is
read with one size limit, and no config is trusted before its digest is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from clusterimage.errors import DigestMismatch, ImageNotFound, ManifestError
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest
from clusterimage.oci.platform import Platform
from clusterimage.transports.base import ImageSource

#: Configs larger than this are refused before they are read (distribution caps manifests at
#: 4 MiB; a config with every label and the history of a long build stays far below).
MAX_CONFIG_SIZE: Final = 8 << 20


@dataclass(frozen=True)
class ResolvedImage:
    """One platform's image: its manifest, its checked config, and the index it came from."""

    top: Manifest  # what the source names (an index, or the manifest itself)
    manifest: ImageManifest
    config: ImageConfig

    @property
    def index(self) -> ImageIndex | None:
        return self.top if isinstance(self.top, ImageIndex) else None

    @property
    def descriptor(self) -> Descriptor:
        return self.manifest.descriptor()

    @property
    def platform(self) -> Platform:
        return self.config.platform


def select_platform(
    index: ImageIndex,
    want: Platform,
    fetch: Callable[[Digest], Manifest],
    *,
    where: str,
    hint: str = "choose one with --platform",
) -> ImageManifest:
    """The image of ``index`` (nested indexes followed) for platform ``want``."""
    available: list[str] = []
    for entry in index.manifests:
        if entry.platform is None:
            continue
        available.append(str(entry.platform))
        if want.matches(entry.platform):
            child = fetch(entry.digest)
            if isinstance(child, ImageIndex):
                return select_platform(child, want, fetch, where=where, hint=hint)
            if isinstance(child, ImageManifest):
                return child
    listed = ", ".join(available) or "none"
    raise ImageNotFound(f"{where}: no image for platform {want} (available: {listed}); {hint}")


def read_config(source: ImageSource, desc: Descriptor, *, where: str) -> ImageConfig:
    """The config ``desc`` names, read bounded and checked against its digest and size."""
    if desc.size > MAX_CONFIG_SIZE:
        raise ManifestError(f"{where}: config of {desc.size} bytes (more than {MAX_CONFIG_SIZE})")
    with source.open_blob(desc) as stream:
        raw = stream.read(MAX_CONFIG_SIZE + 1)
    if len(raw) > MAX_CONFIG_SIZE:
        raise ManifestError(f"{where}: config larger than {MAX_CONFIG_SIZE} bytes")
    # Sources hand out plain streams: nothing read is trusted before it is checked.
    if Digest.of(raw, desc.digest.algorithm) != desc.digest or len(raw) != desc.size:
        raise DigestMismatch(f"{where}: config {desc.digest} does not match its digest")
    return ImageConfig.parse(raw, desc.media_type, where=f"{where}: config {desc.digest}")


def resolve(
    source: ImageSource, platform: Platform | None, *, where: str, top: Manifest | None = None
) -> ResolvedImage:
    """The image ``source`` holds for ``platform`` (None: this machine's), config checked."""
    top = top or source.get_manifest()
    manifest: Manifest = top
    if isinstance(top, ImageIndex):
        manifest = select_platform(
            top, platform or Platform.host(), source.get_manifest, where=where
        )
    if not isinstance(manifest, ImageManifest):
        raise ManifestError(f"{where}: not an image manifest ({manifest.media_type})")
    return ResolvedImage(top, manifest, read_config(source, manifest.config, where=where))
