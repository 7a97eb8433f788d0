"""``clusterimage rmi``: remove images (or names of images) from the local store."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage._humanize import human_size
from clusterimage.cli._common import StoredImage, info, store_dir, warn
from clusterimage.errors import ClusterImageError, UsageError
from clusterimage.store import Store, StoreBusy, StoreDamaged
from clusterimage.store.store import nothing_stored


def register(app: typer.Typer) -> None:
    @app.command("rmi")
    def rmi(
        images: Annotated[
            list[str] | None,
            StoredImage(metavar="[REF...]", help="Names, digests or image IDs."),
        ] = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force", "-f", help="Remove an image by ID even if it has several names."
            ),
        ] = False,
        all_images: Annotated[
            bool, typer.Option("--all", "-a", help="Remove every image.")
        ] = False,
    ) -> None:
        """Remove images from the local store.

        By name, the name goes, and the image with its last name (a name without a registry
        is localhost/NAME if the store has it, else docker.io/library/NAME). By ID (a prefix of
        the image ID or of the manifest digest, at least 3 hex) or digest, the image goes with
        all its names; an image with several names needs --force. Blobs no other
        image uses are freed right away (or by the next `prune` when the store is busy).

        Examples:

          clusterimage rmi nginx:1.25

          clusterimage rmi -f 3f1d455bcb73

          clusterimage rmi --all
        """
        names = list(images or [])
        if all_images and names:
            raise UsageError("rmi: give image names or --all, not both")
        if not all_images and not names:
            raise UsageError("rmi: name at least one image (or use --all)")
        root = store_dir()
        store = Store.existing(root)  # removing from a missing store creates none
        if store is None:
            _raise_first([nothing_stored(name, root) for name in names])
            return
        if all_images:
            seen: list[str] = []
            for entry in store.images():
                if str(entry.digest) not in seen:
                    seen.append(str(entry.digest))
            names, force = seen, True
        failures: list[ClusterImageError] = []
        removed = False
        for name in names:
            try:
                result = store.remove(name, force=force)
            except ClusterImageError as exc:
                failures.append(exc)
                continue
            removed = True
            for untagged in result.untagged:
                typer.echo(f"Untagged: {untagged}")
            if result.deleted is not None:
                # The image ID, as podman prints it (the config digest, not the manifest's).
                typer.echo(f"Deleted: {(result.image_id or result.deleted).hex}")
        if removed:  # nothing removed: nothing of ours to free (prune frees the rest)
            _free(store)
        _raise_first(failures)


def _raise_first(failures: list[ClusterImageError]) -> None:
    """One failure as it is; several as one line."""
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise ClusterImageError("; ".join(str(f) for f in failures))


def _free(store: Store) -> None:
    try:
        result = store.gc(timeout=0)
    except StoreBusy:
        warn("the store is in use; the next `clusterimage prune` frees the removed blobs")
        return
    except StoreDamaged as exc:
        warn(f"{exc}; the removed images' blobs stay until then")
        return
    if result.freed:
        info(f"freed {human_size(result.freed)}")
