"""The ``oci`` transport: ``oci:DIR[:REF]``, an OCI image layout folder, with skopeo's semantics.

REF is the ``org.opencontainers.image.ref.name`` of an ``index.json`` entry, taken literally (a
tag like ``v1`` or a whole reference). Reading without REF takes the layout's only image;
reading with REF matches the ref name exactly. Writing creates the layout when the folder is
missing or empty, and replaces the entry that had the same ref name. DIR ends at the first
colon, as in skopeo.

Several images go into one layout through :meth:`OciLayoutReference.new_writer` (``save
--format oci-dir``): each is named by its whole reference, so ``oci:DIR:REF`` reads it back.
Every image is visible once its own copy commits: a layout is a folder, not one file to rename.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from clusterimage.errors import ImageNotFound, InvalidReference, TransportError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.manifest import Manifest
from clusterimage.oci.reference import Reference
from clusterimage.store.layout import Layout
from clusterimage.transports import register
from clusterimage.transports._layout import LayoutDestination, LayoutSource
from clusterimage.transports.base import Context, ImageReference, ImageWriter

# The ref.name grammar of the OCI image spec (annotations.md); no library ships it.
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


class OciLayoutReference(ImageReference):
    transport = "oci"

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.name = name or None

    @classmethod
    def parse(cls, value: str) -> OciLayoutReference:
        directory, _, name = value.partition(":")
        if not directory:
            raise TransportError(f"invalid reference oci:{value}: expected oci:DIR[:REF]")
        if name and not _REF_NAME_RE.match(name):
            raise TransportError(f"invalid reference oci:{value}: {name!r} is not a valid ref name")
        return cls(Path(directory), name or None)

    def top(self, layout: Layout | None = None) -> Descriptor:
        """The index entry this reference reads."""
        layout = layout or Layout(self.path, create=False)
        entries = layout.entries()
        names = ", ".join(sorted({e.ref_name for e in entries if e.ref_name})) or "none"
        if self.name is not None:
            for entry in entries:
                if entry.ref_name == self.name:
                    return entry
            raise ImageNotFound(f"{self}: no image named {self.name!r} (ref names: {names})")
        if len(entries) == 1:
            return entries[0]
        if not entries:
            raise ImageNotFound(f"{self}: the layout holds no image")
        raise ImageNotFound(
            f"{self}: the layout holds {len(entries)} images; choose one with oci:DIR:REF "
            f"(ref names: {names})"
        )

    def new_source(self, ctx: Context) -> LayoutSource:
        layout = Layout(self.path, create=False)
        return LayoutSource(layout, self.top(layout))

    def new_destination(self, ctx: Context) -> OciLayoutDestination:
        return OciLayoutDestination(Layout(self.path, create=True), self.name)

    def docker_reference(self) -> Reference | None:
        """The ref name when it is a whole image reference (``v1`` alone is only a tag)."""
        return whole_reference(self.name)

    def list_images(self, ctx: Context) -> list[ImageReference]:
        entries = Layout(self.path, create=False).entries()
        named = [OciLayoutReference(self.path, e.ref_name) for e in entries if e.ref_name]
        if len(named) != len(entries):
            raise ImageNotFound(
                f"{self}: {len(entries) - len(named)} of its images "
                f"{'has' if len(entries) - len(named) == 1 else 'have'} no ref name; "
                "copy them one by one with oci:DIR:REF"
            )
        return list(named)

    def new_writer(self, ctx: Context) -> OciLayoutWriter:
        return OciLayoutWriter(self)

    def __str__(self) -> str:
        return f"oci:{self.path}" + (f":{self.name}" if self.name else "")


def whole_reference(name: str | None) -> Reference | None:
    """``name`` as a reference when it is a whole one (a ref name like ``v1`` is a tag)."""
    if not name or not any(c in name for c in "/:@"):
        return None
    try:
        return Reference.parse(name)
    except InvalidReference:
        return None


class OciLayoutWriter(ImageWriter):
    """Several images into one layout, each under its whole reference.

    A layout that does not exist yet is written into a hidden folder beside it and renamed into
    place at :meth:`commit`, so an interrupted save leaves nothing at the path; into an existing
    layout, each image becomes visible when its own copy commits, as with ``copy``.
    """

    def __init__(self, reference: OciLayoutReference) -> None:
        self._target = reference.path
        self._staging: Path | None = None
        self._layout: Layout | None = None

    def new_destination(self, name: Reference | None) -> OciLayoutDestination:
        if self._layout is None:
            root = self._target
            if not root.exists():
                parent = root.parent if str(root.parent) else Path(".")
                self._staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=parent))
                root = self._staging
            self._layout = Layout(root, create=True)
        return OciLayoutDestination(self._layout, str(name) if name is not None else None)

    def commit(self) -> None:
        if self._staging is not None:
            os.rename(self._staging, self._target)  # fails, keeping both, if one appeared
            self._staging = None

    def close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


class OciLayoutDestination(LayoutDestination):
    def __init__(self, layout: Layout, name: str | None) -> None:
        super().__init__(layout)
        self.name = name

    def name_top(self, manifest: Manifest) -> None:
        self.layout.set_ref(self.name, self.layout.describe(manifest))


register("oci", OciLayoutReference.parse)
