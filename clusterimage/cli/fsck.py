"""``clusterimage fsck``: re-hash every blob and check every image of the local store."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage._humanize import count
from clusterimage.cli._common import error, print_json, store_dir
from clusterimage.store import FsckReport, Store


def register(app: typer.Typer) -> None:
    @app.command("fsck")
    def fsck(
        json_output: Annotated[
            bool, typer.Option("--json", help="Print JSON: {ok, blobs, images, problems}.")
        ] = False,
    ) -> None:
        """Check the local store: re-hash every blob, check every image.

        Every image's manifests, config and layers must be present with the right sizes, and
        oci-layout and index.json must be sound.

        Prints one `error:` line per problem (naming the blob digest or the image) and exits 1;
        prints an `ok` summary otherwise.

        Examples:

          clusterimage fsck

          clusterimage --store ./layout fsck --json
        """
        store = Store.existing(store_dir())
        report = store.fsck_report() if store is not None else FsckReport()  # nothing stored
        if json_output:
            print_json(report.to_dict())
        elif report.ok:
            typer.echo(
                f"ok: {count(report.blobs, 'blob')}, {count(report.images, 'image')} checked"
            )
        else:
            for problem in report.problems:
                error(str(problem))
        if not report.ok:
            raise typer.Exit(1)
