"""``clusterimage bundle ...``: check bundles (what ``save`` writes) before and after carrying."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterimage._humanize import count, human_size
from clusterimage.cli._common import JsonOutput, error, info, print_json

bundle_app = typer.Typer(
    name="bundle",
    help="Bundles: check one end to end, or list what one holds (for deltas).\n\nExamples:"
    "\n\n  clusterimage bundle verify site.tar"
    "\n\n  clusterimage bundle inventory app-v1.tar > app-v1.inventory.json",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app)


@bundle_app.command("verify")
def verify(
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="An oci-archive, docker-archive or OCI layout.")
    ],
    json_output: JsonOutput = False,
) -> None:
    """Hash every manifest and blob of every image of a bundle; one line for the result.

    A damaged blob is named (with the image and what its content hashes to) and the command
    exits 1.

    Examples:

      clusterimage bundle verify bundle.tar

      clusterimage bundle verify ./bundle --json

    A delta bundle (save --delta-from) is said to be one: the blobs it leaves out are no
    damage, as long as they are exactly the ones its index names.
    """
    from clusterimage import bundle
    from clusterimage.cli._registry_options import registry_context

    result = bundle.verify(path, registry_context())
    if json_output:
        print_json(result.to_dict())
    elif result.ok:
        delta = result.delta
        omitted = (
            f"; a delta on {', '.join(delta.bases)}: {count(delta.count, 'blob')} "
            f"({human_size(delta.bytes)}) left out, for the store to have"
            if delta is not None
            else ""
        )
        typer.echo(
            f"ok: {count(result.images, 'image')}, {count(result.blobs, 'blob')}, "
            f"{human_size(result.bytes)} verified "
            f"({result.format.value}){omitted}"
        )
    else:
        for problem in result.problems:
            error(problem)
    if not result.ok:
        raise typer.Exit(1)


@bundle_app.command("inventory")
def inventory(
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="An oci-archive, docker-archive or OCI layout.")
    ],
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the inventory only, no status line.")
    ] = False,
) -> None:
    """Print what a bundle holds, as JSON: its images, and every blob it carries (manifests,
    configs, layers) with its size. Reads headers and manifests only, no layer.

    Small: a site that has the bundle sends it back, and `save --delta-from` it leaves out
    every layer the site has. The inventory's digest (sha256 of the JSON printed, without the
    newline that ends it; the JSON is canonical: sorted keys, no spaces) is what a delta bundle
    names as its base; it is shown on stderr.

    Examples:

      clusterimage bundle inventory app-v1.tar > app-v1.inventory.json

      clusterimage save -o app-v2-delta.tar --delta-from app-v1.inventory.json app:v2
    """
    import sys

    from clusterimage import bundle
    from clusterimage.cli._registry_options import registry_context

    result = bundle.inventory(path, registry_context())
    sys.stdout.buffer.write(result.raw() + b"\n")
    sys.stdout.flush()
    if not quiet:
        info(
            f"inventory {result.digest}: {count(len(result.data['images']), 'image')}, "
            f"{count(len(result.data['blobs']), 'blob')}"
        )
