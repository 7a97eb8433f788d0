"""``clusterimage diff``: what changed between two cluster images."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage.cli._common import JsonOutput, StoredImage, print_json
from clusterimage.cli._registry_options import (
    NO_FLAGS,
    RegistryCommand,
    RegistryFlags,
    SelectPlatform,
    with_registry_flags,
)


def register(app: typer.Typer) -> None:
    @app.command("diff", cls=RegistryCommand)
    @with_registry_flags
    def diff(
        first: Annotated[str, StoredImage(metavar="A", help="An image: NAME or TRANSPORT:REF.")],
        second: Annotated[str, StoredImage(metavar="B", help="The image to compare with A.")],
        platform: SelectPlatform = None,
        registry: RegistryFlags = NO_FLAGS,
        json_output: JsonOutput = False,
    ) -> None:
        """Show what changed from image A to image B: files added, removed and changed (read
        from the layers' listings, nothing unpacked), embedded images added, removed and
        changed (name -> digest), and config changes (labels, env, entrypoint, cmd, type).

        Prints nothing and exits 0 when the images are the same.

        Examples:

          clusterimage diff localhost/app:v1 localhost/app:v2

          clusterimage diff oci-archive:site-v1.tar docker://registry.example.com/app:v2 --json
        """
        from clusterimage import transports
        from clusterimage.runtime.diff import diff as run_diff

        ctx = registry.context(platform=platform)
        a = transports.parse(first, default="store")
        b = transports.parse(second, default="store")
        result = run_diff(a, b, ctx, ctx.platform)
        if json_output:
            print_json(result.to_dict())
            return
        for kind, changes in (("file", result.files), ("image", result.images)):
            for mark, paths in (
                ("+", changes.added),
                ("-", changes.removed),
                ("~", changes.changed),
            ):
                for path in paths:
                    typer.echo(f"{mark} {kind} {path}")
        for key, values in result.config.items():
            typer.echo(f"~ config {key}: {values['a']!r} -> {values['b']!r}")
