"""``images/skopeo/tar.txt``: image archives in the context, one ``TRANSPORT:PATH@NAME`` a line.

TRANSPORT is ``docker-archive`` or ``oci-archive``; PATH is relative to ``images/skopeo/`` and
must stay inside the build context; NAME is the ``repository[:tag]`` to store the image under.
The archives themselves are read later, through the transport of the same name.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast

from clusterimage.errors import DiscoveryError, InvalidReference
from clusterimage.images.context_files import list_lines, relative
from clusterimage.images.sightings import FileOrigin, stored_path
from clusterimage.oci.reference import Reference

TAR_LIST: Final = Path("images", "skopeo", "tar.txt")
ArchiveTransport = Literal["docker-archive", "oci-archive"]
_TRANSPORTS: Final = ("docker-archive", "oci-archive")


@dataclass(frozen=True)
class ArchiveImage:
    """One tar.txt entry; ``path`` is relative to the context, normalised."""

    transport: ArchiveTransport
    path: str
    name: Reference
    origin: FileOrigin

    @property
    def stored_path(self) -> str:
        return stored_path(self.name)

    def source(self, context: Path) -> str:
        """The transport reference to read the archive from, e.g. ``docker-archive:/ctx/a.tar``."""
        return f"{self.transport}:{context / self.path}"

    def to_json(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "path": self.path,
            "name": str(self.name),
            "storedPath": self.stored_path,
            "origin": self.origin.to_json(),
        }


def read_tar_list(context: Path) -> list[ArchiveImage]:
    listing = context / TAR_LIST
    if not listing.is_file():
        return []
    return [
        _entry(context, text, FileOrigin(TAR_LIST.as_posix(), number))
        for number, text in list_lines(listing, context)
    ]


def _entry(context: Path, text: str, origin: FileOrigin) -> ArchiveImage:
    def fail(why: str) -> DiscoveryError:
        return DiscoveryError(f"{origin}: {why} in {text!r}")

    source, at, name = text.partition("@")
    transport, colon, path = source.partition(":")
    if not at or not colon or transport not in _TRANSPORTS:
        raise fail("expected docker-archive:PATH@NAME or oci-archive:PATH@NAME")
    if not path:
        raise fail("no archive PATH")
    try:
        reference = Reference.parse(name)
    except InvalidReference as exc:
        raise fail(f"NAME: {exc}") from None
    if reference.digest is not None:
        raise fail("NAME is the repository[:tag] to store the image under, it takes no digest")
    return ArchiveImage(
        cast(ArchiveTransport, transport), _inside(context, path, fail), reference, origin
    )


def _inside(context: Path, path: str, fail: Callable[[str], DiscoveryError]) -> str:
    """``path`` relative to the context; refused when it leaves it or is not a file."""
    if posixpath.isabs(path):
        raise fail("PATH must be relative to images/skopeo/, not absolute")
    joined = posixpath.normpath(posixpath.join(TAR_LIST.parent.as_posix(), path))
    if joined == ".." or joined.startswith("../"):
        raise fail("PATH leaves the build context")
    archive = context / joined
    # A link inside the context may still point out of it.
    if not archive.resolve().is_relative_to(context.resolve()):
        raise fail(f"PATH is a link to {archive.resolve()}, outside the build context")
    if not archive.is_file():
        raise fail(f"no archive at {relative(archive, context)}")
    return joined
