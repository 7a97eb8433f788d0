"""``clusterimage tag``: give an image in the store more names."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage.cli._common import store_dir
from clusterimage.oci.reference import Reference
from clusterimage.store import Store


def register(app: typer.Typer) -> None:
    @app.command("tag")
    def tag(
        source: Annotated[
            str, typer.Argument(metavar="SRC", help="An image in the store: name, digest or ID.")
        ],
        targets: Annotated[
            list[str], typer.Argument(metavar="DST...", help="New names (references).")
        ],
    ) -> None:
        """Add one or more names to an image in the store (a name that existed moves).

        Examples:

          clusterimage tag nginx:1.25 registry.example.com/web/nginx:1.25

          clusterimage tag 3f1d455bcb73 myapp:v1 myapp:latest
        """
        store = Store(store_dir())
        parsed = [Reference.parse(t) for t in targets]  # all valid before any change
        desc = store.resolve(source)
        for ref in parsed:
            store.tag(desc, ref)
