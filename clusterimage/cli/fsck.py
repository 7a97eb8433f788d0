"""``clusterimage fsck``: re-hash every blob and check every image of the local store."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage._humanize import count
from clusterimage.cli._common import error, info, print_json, store_dir, warn
from clusterimage.store import FsckReport, Store
from clusterimage.store.fsck import RepairReport, repair, restore_hint


def register(app: typer.Typer) -> None:
    @app.command("fsck")
    def fsck(
        json_output: Annotated[
            bool,
            typer.Option(
                "--json",
                help="Print JSON: {ok, blobs, images, problems} (with --repair also "
                "{repaired: {removed, incomplete}}).",
            ),
        ] = False,
        fix: Annotated[
            bool,
            typer.Option(
                "--repair",
                help="Remove damaged blobs (wrong content, not a regular file) and name the "
                "images that need them, with the pull that restores each. Fetches nothing.",
            ),
        ] = False,
    ) -> None:
        """Check the local store: re-hash every blob, check every image.

        Every image's manifests, config and layers must be present with the right sizes, and
        oci-layout and index.json must be sound.

        Prints one `error:` line per problem (naming the blob digest or the image) and exits 1;
        prints an `ok` summary otherwise.

        With --repair, a damaged blob is removed (the store cannot know where to fetch it
        from) and fsck exits 1 while an image lacks it; `clusterimage pull IMAGE` then
        fetches it again. A plain pull repairs the image too: it re-hashes the stored blobs
        of the image it pulls that were written since last verified, or that fsck found bad.

        Examples:

          clusterimage fsck

          clusterimage fsck --repair; clusterimage pull registry.example.com/app:v1

          clusterimage --store ./layout fsck --json
        """
        store = Store.existing(store_dir())
        report = store.fsck_report() if store is not None else FsckReport()  # nothing stored
        repaired: RepairReport | None = RepairReport() if fix else None
        if fix and store is not None and not report.ok:
            repaired = repair(store, report)
            if repaired.removed:
                # What is left: the images missing those blobs. The first pass stamped every
                # sound blob, so this one hashes none of them again.
                report = store.fsck_report(trust_stamps=True)
        if json_output:
            data = report.to_dict()
            if repaired is not None:
                data["repaired"] = repaired.to_dict()
            print_json(data)
        else:
            if repaired is not None:
                for digest, why in repaired.removed:
                    info(f"removed {digest}: {why}")
                for image in repaired.incomplete:
                    warn(f"{image} is now incomplete; to restore it: {restore_hint(image)}")
            if report.ok:
                typer.echo(
                    f"ok: {count(report.blobs, 'blob')}, {count(report.images, 'image')} checked"
                )
            else:
                for problem in report.problems:
                    error(str(problem))
        if not report.ok:
            raise typer.Exit(1)
