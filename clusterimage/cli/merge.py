"""``clusterimage merge``: several images into one, at the layer level (sealos's spelling)."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage._humanize import count
from clusterimage.cli._common import JsonOutput, StoredImage, info, print_json, store_dir, warn
from clusterimage.images.layering import MOUNT_LAYER_LIMIT


def register(app: typer.Typer) -> None:
    @app.command("merge")
    def merge(
        images: Annotated[
            list[str],
            StoredImage(metavar="IMAGE...", help="Images in the store, in the order to lay out."),
        ],
        tag: Annotated[
            str,
            typer.Option(
                "--tag",
                "-t",
                metavar="REF",
                help="Name of the merged image (without a registry: localhost/REF).",
            ),
        ],
        platform: Annotated[
            str | None,
            typer.Option(
                "--platform",
                metavar="OS/ARCH[/VARIANT]",
                help="Which platform of multi-platform inputs (default: this machine's).",
            ),
        ] = None,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet", "-q", help="Print only the digest of the merged image: no status line."
            ),
        ] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Merge images into one whose layers are theirs in order: instant, no file copied.

        The config is merged as sealos merges: labels and ENV (later images win, PATH dropped),
        ENTRYPOINT and CMD concatenated, type rootfs if any input is. Unpacking the result
        gives what sealos's generated Sealfile (COPY --from each image) builds.

        Examples:

          clusterimage merge -t localhost/stack:v1 kubernetes:v1.27 openebs:v3 app:v1

          clusterimage merge -t localhost/stack:v1 --json rootfs:v1 app:v1
        """
        from clusterimage.oci.platform import Platform
        from clusterimage.oci.reference import Reference
        from clusterimage.runtime.merge import merge as run_merge
        from clusterimage.store import Store
        from clusterimage.store.store import nothing_stored

        target = Reference.parse_local(tag)  # no registry: localhost/NAME, as a build's
        chosen = Platform.parse(platform) if platform else None
        store = Store.existing(store_dir())
        if store is None:
            raise nothing_stored(images[0], store_dir())
        result = run_merge(store, images, target, chosen)
        if json_output:
            print_json(result.to_dict())
            return
        if result.layers > MOUNT_LAYER_LIMIT:  # even with -q: it is about the image
            warn(
                f"{target} has {result.layers} layers: docker and CRI-O mount at most "
                f'{MOUNT_LAYER_LIMIT} ("max depth exceeded"); sealos, buildah and podman '
                "(containers/storage) up to 500"
            )
        if not quiet:
            merged = count(len(images), "image")
            info(f"Merged {merged} into {target} ({count(result.layers, 'layer')})")
        typer.echo(str(result.manifest.digest))
