"""The one way to read an image: a source and a platform give a manifest and a verified config.

go-containerregistry's ``remote.Image`` / ``Index.Image(platform)`` in a few functions: every
command that looks inside an image (inspect, create, the builder's base images, merge) and the
copy engine's platform choice go through here, so a platform is chosen one way, a config is
read with one size limit, and no config is trusted before its digest and size are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Final

from clusterimage.errors import DigestMismatch, ImageNotFound, ManifestError
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest
from clusterimage.oci.platform import Platform
from clusterimage.transports.base import Context, ImageReference, ImageSource

#: Configs larger than this are refused before they are read: containers/image's
#: MaxConfigBodySize, and what our archive readers take, so that any image we can read here
#: skopeo and our own save/load can read too.
MAX_CONFIG_SIZE: Final = 4 << 20

#: What select_platform tells to do when no image fits (copy's words: it has --all).
COPY_HINT: Final = "choose one with --platform or copy them all with --all"
#: What resolve tells: the commands that read one image have no --all.
_READ_HINT: Final = "choose one with --platform"


@dataclass(frozen=True)
class ResolvedImage:
    """One platform's image: its manifest, its checked config, and what the source named."""

    top: Manifest  # what the source names (an index, or the manifest itself)
    manifest: ImageManifest
    config: ImageConfig

    @property
    def index(self) -> ImageIndex | None:
        return self.top if isinstance(self.top, ImageIndex) else None

    @property
    def descriptor(self) -> Descriptor:
        """Of the image manifest (not of the index it was chosen from)."""
        return self.manifest.descriptor()

    @property
    def config_descriptor(self) -> Descriptor:
        return self.manifest.config

    @property
    def platform(self) -> Platform:
        """What the config says the image runs on."""
        return self.config.platform


def select_platform(
    index: ImageIndex,
    want: Platform,
    fetch: Callable[[Digest], Manifest],
    *,
    where: str,
    hint: str = COPY_HINT,
) -> ImageManifest:
    """The image of ``index`` for platform ``want``, nested indexes followed; ImageNotFound
    listing the platforms there are when none fits."""
    available: list[str] = []
    for entry in index.manifests:
        if entry.platform is None:
            continue
        available.append(str(entry.platform))
        if want.matches(entry.platform):
            child = fetch(entry.digest)
            if isinstance(child, ImageIndex):
                return select_platform(child, want, fetch, where=where, hint=hint)
            return child
    listed = ", ".join(available) or "none"
    raise ImageNotFound(f"{where}: no image for platform {want} (available: {listed}); {hint}")


def read_config(source: ImageSource, desc: Descriptor, *, where: str) -> ImageConfig:
    """The config ``desc`` names, read bounded and checked against its digest and size."""
    if desc.size > MAX_CONFIG_SIZE:
        raise ManifestError(
            f"{where}: config {desc.digest} of {desc.size} bytes (more than {MAX_CONFIG_SIZE})"
        )
    with source.open_blob(desc) as stream:
        raw = _read_at_most(stream, desc.size + 1)  # one more: a longer blob shows, unread
    # Sources hand out plain streams: nothing read is trusted before it is checked.
    if len(raw) != desc.size:
        why = f"not the {desc.size} bytes its manifest says"
    elif (actual := Digest.of(raw, desc.digest.algorithm)) != desc.digest:
        why = f"content is {actual}"
    else:
        return ImageConfig.parse(raw, desc.media_type, where=f"{where}: config {desc.digest}")
    raise DigestMismatch(f"{where}: config {desc.digest} does not match its digest ({why})")


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    """Up to ``limit`` bytes, to the end: a registry stream's read(n) gives one chunk."""
    parts: list[bytes] = []
    while limit > 0 and (chunk := stream.read(limit)):
        parts.append(chunk)
        limit -= len(chunk)
    return b"".join(parts)


def resolve(
    source: ImageSource,
    platform: Platform | None,
    *,
    where: str,
    top: Manifest | None = None,
) -> ResolvedImage:
    """The image ``source`` holds for ``platform`` (None: this machine's), its config checked.
    ``top``: the source's top manifest when the caller has read it already."""
    top = top or source.get_manifest()
    if isinstance(top, ImageIndex):
        want = platform or Platform.host()
        manifest = select_platform(top, want, source.get_manifest, where=where, hint=_READ_HINT)
    else:
        manifest = top
    return ResolvedImage(top, manifest, read_config(source, manifest.config, where=where))


def read_image(ref: ImageReference, ctx: Context, *, where: str | None = None) -> ResolvedImage:
    """:func:`resolve` for the image ``ref`` names, for ``ctx.platform``; the source is closed
    on return (what is returned needs no blob but the config)."""
    with ref.new_source(ctx) as source:
        return resolve(source, ctx.platform, where=where or str(ref))
