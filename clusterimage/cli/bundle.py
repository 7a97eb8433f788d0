"""``clusterimage bundle ...``: check bundles (what ``save`` writes) before and after carrying."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterimage._humanize import count
from clusterimage.cli._common import JsonOutput, error, print_json

bundle_app = typer.Typer(
    name="bundle",
    help="Bundles: check one end to end.\n\nExamples:\n\n  clusterimage bundle verify site.tar",
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
    """
    from clusterimage import bundle
    from clusterimage.cli._registry_options import registry_context

    result = bundle.verify(path, registry_context())
    if json_output:
        print_json(result.to_dict())
    elif result.ok:
        typer.echo(
            f"ok: {count(result.images, 'image')}, {count(result.blobs, 'blob')}, "
            f"{count(result.bytes, 'byte')} verified "
            f"({result.format.value})"
        )
    else:
        for problem in result.problems:
            error(problem)
    if not result.ok:
        raise typer.Exit(1)
