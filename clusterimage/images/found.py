"""What discovery found: each image once, with every place it was seen, and the checks that
two images never claim one path in ``registry/``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clusterimage.errors import DiscoveryError
from clusterimage.images.sightings import Origin, Sighting, stored_path
from clusterimage.images.tarlist import ArchiveImage
from clusterimage.oci.reference import Reference


@dataclass(frozen=True)
class FoundImage:
    """An image to pull: its normalised reference and where it was seen, in scan order."""

    reference: Reference
    origins: tuple[Origin, ...]

    @property
    def stored_path(self) -> str:
        """Repository path without the host, with tag and/or digest: ``library/nginx:1.25``."""
        return stored_path(self.reference)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "storedPath": self.stored_path,
            "origins": [origin.to_json() for origin in self.origins],
        }


@dataclass(frozen=True)
class Discovery:
    """The images a build context needs. ``images`` are pulled, ``archives`` read from the
    context; ``ignored`` are what ``.sealignore`` left out."""

    images: tuple[FoundImage, ...] = ()
    archives: tuple[ArchiveImage, ...] = ()
    ignored: tuple[FoundImage, ...] = ()
    warnings: tuple[str, ...] = ()
    charts_rendered: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "images": [image.to_json() for image in self.images],
            "archives": [archive.to_json() for archive in self.archives],
            "ignored": [image.to_json() for image in self.ignored],
            "warnings": list(self.warnings),
            "chartsRendered": self.charts_rendered,
        }


def merge(sightings: Iterable[Sighting]) -> list[FoundImage]:
    """One image per reference, its origins in the order seen; a ``name:tag`` also seen pinned
    as ``name:tag@digest`` merges into the pinned one, which then decides what the tag holds."""
    origins: dict[Reference, list[Origin]] = {}
    for sighting in sightings:
        seen = origins.setdefault(sighting.reference, [])
        if sighting.origin not in seen:
            seen.append(sighting.origin)
    pinned = {_tag_only(ref): ref for ref in origins if ref.tag and ref.digest}
    for ref in [ref for ref in origins if ref in pinned]:
        origins[pinned[ref]].extend(o for o in origins.pop(ref) if o not in origins[pinned[ref]])
    return sorted(
        (FoundImage(ref, tuple(found)) for ref, found in origins.items()),
        key=lambda image: (image.stored_path, str(image.reference)),
    )


def check_paths(images: Iterable[FoundImage], archives: Iterable[ArchiveImage]) -> None:
    """Fail when two sources would write one tag (or digest) of one repository: sealos lets
    the last copy win silently; we name both."""
    claimed: dict[tuple[str, str], tuple[str, str]] = {}
    for image in images:
        _claim(claimed, image.reference, str(image.reference), _where(image.origins))
    for archive in archives:
        source = f"{archive.transport}:{archive.path}"
        _claim(claimed, archive.name, source, str(archive.origin))


def _claim(
    claimed: dict[tuple[str, str], tuple[str, str]], ref: Reference, source: str, where: str
) -> None:
    # The tag is what a second source would overwrite; a digest-only image is keyed by digest.
    key = (ref.repository, ref.tag if ref.tag is not None else str(ref.digest))
    if key not in claimed:
        claimed[key] = (source, where)
        return
    other, other_where = claimed[key]
    path = f"{key[0]}:{key[1]}" if ref.tag is not None else f"{key[0]}@{key[1]}"
    raise DiscoveryError(
        f"two images would be stored as {path}: {other} ({other_where}) and {source} ({where}); "
        "keep one, or leave one out in .sealignore"
    )


def _tag_only(ref: Reference) -> Reference:
    return ref.with_tag(ref.tag) if ref.tag else ref


def _where(origins: tuple[Origin, ...]) -> str:
    return ", ".join(str(origin) for origin in origins)
