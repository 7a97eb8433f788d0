"""``clusterimage load``: every image of a bundle into the store (podman's spelling)."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage._humanize import count, human_size
from clusterimage.bundle import LoadedImage
from clusterimage.cli._common import CopyProgress, JsonOutput, info, print_json
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    NO_FLAGS,
    Jobs,
    RegistryCommand,
    RegistryFlags,
    with_registry_flags,
)


def register(app: typer.Typer) -> None:
    @app.command("load", cls=RegistryCommand)
    @with_registry_flags
    def load(
        input: Annotated[
            str,
            typer.Option(
                "--input",
                "-i",
                metavar="FILE",
                help="The bundle: an oci-archive, docker-archive or OCI layout folder "
                "(told by content), or - for standard input.",
            ),
        ] = "-",
        to: Annotated[
            str | None,
            typer.Option(
                "--to",
                metavar="HOST[:PORT][/PREFIX]",
                help="Load into this registry instead of the store, each image under its own "
                "path (as registry copy puts it).",
            ),
        ] = None,
        jobs: Jobs = DEFAULT_JOBS,
        registry: RegistryFlags = NO_FLAGS,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet",
                "-q",
                help="Print only the digest of each image loaded: no progress, no status lines.",
            ),
        ] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Load every image of a bundle into the store (or a registry: --to); prints the names.

        Images the bundle names keep their names (a docker-archive's RepoTags, an OCI
        archive's ref names when they are whole references); the others are stored untagged.
        Blobs the store has already are not copied again; an interrupted load resumes.

        Examples:

          clusterimage load -i bundle.tar

          docker save nginx:1.25 | clusterimage load

          clusterimage load -i ./bundle --json

          clusterimage load -i app-v1.tar && clusterimage load -i app-v2-delta.tar

          clusterimage load -i app-v2-delta.tar --to sealos.hub:5000 --tls-verify=false

        A delta bundle (save --delta-from) leaves out layers its base holds: they must be in
        the store (or, with --to, the registry) already. That is checked before anything is
        written; the missing blobs are named otherwise, and nothing is loaded.
        """
        from clusterimage import bundle

        ctx = registry.context(jobs=jobs)

        def loaded(image: LoadedImage) -> None:
            if quiet and not json_output:
                typer.echo(str(image.result.digest))
            elif not json_output:
                typer.echo(f"Loaded image: {image.name or image.result.digest}")

        with CopyProgress(enabled=False if quiet or json_output else None) as progress:
            result = bundle.load(input, ctx, to=to, on_event=progress, on_image=loaded)
        if json_output:
            print_json(result.to_dict())
        elif result.delta is not None and not quiet:
            delta = result.delta
            info(
                f"Delta on {', '.join(delta.bases)}: {count(delta.count, 'blob')} "
                f"({human_size(delta.bytes)}) left out of the bundle were found in "
                f"{to or 'the store'}"
            )
