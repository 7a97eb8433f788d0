"""``clusterimage unpack``: images laid out in a folder as the cluster runtime lays them out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterimage._humanize import count
from clusterimage.cli._common import JsonOutput, StoredImage, info, print_json, store_dir, warn
from clusterimage.runtime.unpack import Layout


def register(app: typer.Typer) -> None:
    @app.command("unpack")
    def unpack(
        arguments: Annotated[
            list[str],
            StoredImage(metavar="IMAGE... DIR", help="Images in the store, then the folder."),
        ],
        layout: Annotated[
            Layout,
            typer.Option(
                "--layout",
                help="plain: one root, images in order; sealos: rootfs/, "
                "applications/<name>/workdir and one registry cache at rootfs/registry.",
            ),
        ] = Layout.plain,
        platform: Annotated[
            str | None,
            typer.Option(
                "--platform", metavar="OS/ARCH[/VARIANT]", help="Of multi-platform images."
            ),
        ] = None,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet", "-q", help="Print nothing but warnings and errors: no status lines."
            ),
        ] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Unpack images into DIR: their layers in order (OCI whiteouts applied), confined to
        DIR, owners kept when root; every image's registry/ merged into one registry cache.

        Unpacking again over the same DIR only writes what changed; an unpack that was killed
        is finished by the next one.

        Examples:

          clusterimage unpack localhost/app:v1 ./app

          clusterimage unpack --layout sealos kubernetes:v1.27 openebs:v3 app:v1 /data/default

          clusterimage unpack rootfs:v1 app:v1 ./out --json
        """
        from clusterimage.errors import UsageError
        from clusterimage.oci.platform import Platform
        from clusterimage.runtime.unpack import unpack as run_unpack
        from clusterimage.store import Store
        from clusterimage.store.store import nothing_stored

        if len(arguments) < 2:
            raise UsageError("unpack: give at least one image and the folder: IMAGE... DIR")
        *images, directory = arguments
        store = Store.existing(store_dir())
        if store is None:
            raise nothing_stored(images[0], store_dir())
        chosen = Platform.parse(platform) if platform else None
        result = run_unpack(
            store, images, Path(directory), layout=layout, platform=chosen,
            warn=None if json_output else warn,
        )  # fmt: skip
        if json_output:
            print_json(result.to_dict())
            return
        if not quiet:
            for image in result.images:
                info(
                    f"{image.name} ({image.type}) -> {Path(directory) / image.root}: "
                    f"{count(image.stats.files, 'file')} written, {image.stats.kept} already there"
                )
            info(f"registry cache: {Path(directory) / result.registry}")
