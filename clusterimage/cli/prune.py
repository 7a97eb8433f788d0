"""``clusterimage prune``: remove untagged images and every blob no image uses."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage._humanize import count, human_size
from clusterimage.cli._common import print_json, store_dir
from clusterimage.oci.descriptor import Descriptor
from clusterimage.store import GcResult, Store


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune(
        json_output: Annotated[
            bool,
            typer.Option("--json", help="Print JSON: {images, blobs, partialFiles, freed}."),
        ] = False,
    ) -> None:
        """Remove untagged images and every blob no image uses.

        Also removes the partial downloads that interrupted commands left behind. Waits for
        running imports.

        Examples:

          clusterimage prune

          clusterimage prune --json
        """
        store = Store.existing(store_dir())
        dangling: list[Descriptor] = []
        result = GcResult()
        if store is not None:  # None: nothing stored yet, so nothing to prune (nor to create)
            dangling = store.remove_dangling()
            result = store.gc()
        if json_output:
            print_json({"images": [str(d.digest) for d in dangling], **result.to_dict()})
            return
        for desc in dangling:
            typer.echo(f"Deleted: {desc.digest.hex}")
        for digest, size in result.blobs:
            typer.echo(f"Removed blob {digest} ({human_size(size)})")
        partial = ""
        if result.partial_files:
            partial = f", {count(result.partial_files, 'partial download')}"
        typer.echo(
            f"Freed {human_size(result.freed)}: {count(len(dangling), 'image')}, "
            f"{count(len(result.blobs), 'blob')}{partial}"
        )
