"""``clusterimage tag``: give an image in the store more names."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage.cli._common import StoredImage, store_dir
from clusterimage.oci.reference import Reference
from clusterimage.store import Store
from clusterimage.store.store import nothing_stored


def register(app: typer.Typer) -> None:
    @app.command("tag")
    def tag(
        source: Annotated[
            str, StoredImage(metavar="SRC", help="An image in the store: name, digest or ID.")
        ],
        targets: Annotated[
            list[str], typer.Argument(metavar="DST...", help="New names (references).")
        ],
    ) -> None:
        """Add one or more names to an image in the store (a name that existed moves).

        SRC is found as podman finds it: a name without a registry is localhost/NAME, else
        docker.io/library/NAME; an ID is a prefix of the image ID or of the manifest digest. A
        DST without a registry is stored as localhost/DST.

        Examples:

          clusterimage tag nginx:1.25 registry.example.com/web/nginx:1.25

          clusterimage tag 3f1d455bcb73 myapp:v1 myapp:latest   # localhost/myapp:v1, ...
        """
        # All valid before any change; a name without a registry is localhost/NAME, as in
        # podman and buildah, so a later `push NAME` cannot go to Docker Hub by accident.
        parsed = [Reference.parse_local(t) for t in targets]
        # The source must be in the store, so a missing store is never created, only reported.
        root = store_dir()
        store = Store.existing(root)
        if store is None:
            raise nothing_stored(source, root)
        desc = store.resolve(source)
        for ref in parsed:
            store.tag(desc, ref)
