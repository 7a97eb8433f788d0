"""The ``oci`` transport: ``oci:DIR[:REF]``, an OCI image layout folder, with skopeo's semantics.

REF is the ``org.opencontainers.image.ref.name`` of an ``index.json`` entry, taken literally (a
tag like ``v1`` or a whole reference). Reading without REF takes the layout's only image;
reading with REF matches the ref name exactly. Writing creates the layout when the folder is
missing or empty, and replaces the entry that had the same ref name. DIR ends at the first
colon, as in skopeo.
"""

from __future__ import annotations

import re
from pathlib import Path

from clusterimage.errors import ImageNotFound, TransportError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.manifest import Manifest
from clusterimage.store.layout import Layout
from clusterimage.transports import register
from clusterimage.transports._layout import LayoutDestination, LayoutSource
from clusterimage.transports.base import Context, ImageReference

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

    def __str__(self) -> str:
        return f"oci:{self.path}" + (f":{self.name}" if self.name else "")


class OciLayoutDestination(LayoutDestination):
    def __init__(self, layout: Layout, name: str | None) -> None:
        super().__init__(layout)
        self.name = name

    def name_top(self, manifest: Manifest) -> None:
        self.layout.set_ref(self.name, self.layout.describe(manifest))


register("oci", OciLayoutReference.parse)
