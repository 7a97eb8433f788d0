"""The ``store`` transport: ``store:REF``, the local image store.

As a source, REF is anything :meth:`Store.resolve` takes: a reference (``nginx`` is
``localhost/nginx:latest`` first, then ``docker.io/library/nginx:latest``; ``host/repo:tag``,
``repo@sha256:...``), a digest or an image-ID prefix. As a destination, REF
is the reference the image is tagged with, normalised (``nginx`` is
``docker.io/library/nginx:latest``); ``store:`` alone stores the image untagged. The store is
``Context.store_dir``, else :func:`clusterimage.paths.default_store`. Reading never creates it
(a missing store the user chose is an error); writing does.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from clusterimage.errors import DigestMismatch, InvalidReference, TransportError
from clusterimage.oci.manifest import Manifest
from clusterimage.oci.reference import Reference
from clusterimage.paths import default_store
from clusterimage.store import Store
from clusterimage.store.store import nothing_stored
from clusterimage.transports import register
from clusterimage.transports._layout import LayoutDestination, LayoutSource
from clusterimage.transports.base import Context, ImageReference

# What the store resolves as an ID or digest rather than as a name.
_ID_LIKE = re.compile(r"^(?:sha256:|sha512:)?[a-f0-9]{3,128}$")


class StoreReference(ImageReference):
    transport = "store"

    def __init__(self, name: str) -> None:
        self.name = name
        self.reference: Reference | None = None
        self.id_like = bool(_ID_LIKE.match(name))
        if name and not self.id_like:
            self.reference = Reference.parse(name)  # InvalidReference right away
        elif self.id_like and not name.startswith(("sha256:", "sha512:")):
            # "cafe" may be an ID prefix (as a source) or a name (as a destination).
            with contextlib.suppress(InvalidReference):
                self.reference = Reference.parse(name)

    @classmethod
    def parse(cls, value: str) -> StoreReference:
        return cls(value)

    def store(self, ctx: Context) -> Store:
        """The store, created when missing (to write into)."""
        return Store(store_root(ctx))

    def existing_store(self, ctx: Context) -> Store:
        """The store to read from, never created: see :meth:`Store.existing`."""
        root = store_root(ctx)
        store = Store.existing(root)
        if store is None:
            raise nothing_stored(self.name, root)
        return store

    def new_source(self, ctx: Context) -> LayoutSource:
        if not self.name:
            raise TransportError("store: name the image to read (store:NAME, a digest or an ID)")
        store = self.existing_store(ctx)
        desc, found = store.resolve_named(self.name)
        # From now on docker_reference() and str() name the image read: what it was found as
        # (myapp:v1 is localhost/myapp:v1 when built or tagged here), not Docker's guess; by
        # ID, its one name (an ID that also parses as a name, cafe, is no name of it).
        names = [found] if found is not None else sorted(set(store.names(desc.digest)))
        self.reference = None
        if len(names) == 1:
            with contextlib.suppress(InvalidReference):
                self.reference = Reference.parse(names[0])
        return LayoutSource(store, desc)

    def new_destination(self, ctx: Context) -> StoreDestination:
        if self.name and self.reference is None:
            raise TransportError(
                f"store:{self.name}: a digest or image ID cannot name a new image; use a reference"
            )
        return StoreDestination(self.store(ctx), self.reference)

    def docker_reference(self) -> Reference | None:
        return self.reference

    def __str__(self) -> str:
        if self.id_like or self.reference is None:
            return f"store:{self.name}"
        return f"store:{self.reference}"


class StoreDestination(LayoutDestination):
    """Writes into the store; the top manifest is tagged with the destination reference."""

    def __init__(self, store: Store, reference: Reference | None) -> None:
        super().__init__(store)
        self.store = store
        self.reference = reference

    def name_top(self, manifest: Manifest) -> None:
        ref = self.reference
        desc = self.store.describe(manifest)
        if ref is None:
            self.store.set_ref(None, desc)
        elif ref.digest is not None:
            if ref.digest != manifest.digest:
                raise DigestMismatch(
                    f"store:{ref}: the image's manifest digest is {manifest.digest}"
                )
            self.store.set_ref(str(ref), desc)
        else:
            self.store.tag(desc, ref)


def own_names(image: ImageReference, ctx: Context) -> list[Reference]:
    """The names ``image`` goes by when it is written elsewhere under its own name (``push``
    without DST, ``save``). An image of the store: the name it was found by (``myapp:v1`` ->
    ``localhost/myapp:v1`` when that is what the store holds), or, found by ID or digest,
    every name the image has. Another transport: the name its reference carries."""
    if not isinstance(image, StoreReference) or not image.name:
        reference = image.docker_reference()
        return [reference] if reference is not None else []
    store = image.existing_store(ctx)
    desc, found = store.resolve_named(image.name)
    names = [found] if found is not None else sorted(set(store.names(desc.digest)))
    out: list[Reference] = []
    for name in names:
        with contextlib.suppress(InvalidReference):  # a foreign layout's odd ref name
            out.append(Reference.parse(name))
    return out


def loaded_name(image: ImageReference) -> Reference | None:
    """The name ``load`` stores ``image`` of a bundle under: an OCI ref name without a
    registry (``myapp:v1``) is ``localhost/myapp:v1``, as podman's load (NormalizeName) stores
    it; a docker-archive's RepoTags keep Docker's rule, as ``docker save`` writes familiar
    names (``nginx:1.25`` for docker.io/library/nginx:1.25)."""
    from clusterimage.transports.oci_archive import OciArchiveReference
    from clusterimage.transports.oci_layout import OciLayoutReference

    reference = image.docker_reference()
    if reference is None or not isinstance(image, OciArchiveReference | OciLayoutReference):
        return reference
    return Reference.parse_local(image.name) if image.name is not None else reference


def store_root(ctx: Context) -> Path:
    return ctx.store_dir or default_store()


register("store", StoreReference.parse)
