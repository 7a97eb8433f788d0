"""``clusterimage tags``: list the tags of a registry repository."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage.cli._common import JsonOutput, print_json
from clusterimage.cli._registry_options import (
    NO_FLAGS,
    RegistryCommand,
    RegistryFlags,
    with_registry_flags,
)
from clusterimage.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("tags", cls=RegistryCommand)
    @with_registry_flags
    def tags(
        repository: Annotated[
            str,
            typer.Argument(metavar="REPO", help="HOST/REPOSITORY (no tag; docker:// optional)."),
        ],
        registry: RegistryFlags = NO_FLAGS,
        json_output: JsonOutput = False,
    ) -> None:
        """List the tags of a repository in a registry, one a line (--json: a JSON list).

        Examples:

          clusterimage tags registry.example.com/apps/nginx

          clusterimage tags --json docker://localhost:5000/app
        """
        from clusterimage.oci.reference import Reference
        from clusterimage.remote.client import Registry
        from clusterimage.remote.repository import Repository
        from clusterimage.transports.docker import client_options

        name = repository.removeprefix("docker://").removeprefix("//")
        ref = Reference.parse(name, default_tag=False)
        if ref.tag is not None or ref.digest is not None:
            raise UsageError(f"tags: {repository}: name a repository, without tag or digest")
        ctx = registry.context()
        options = client_options(ctx, ctx.source)
        with Registry(ref.registry, options, repository=ref.repository) as client:
            found = list(Repository(client, ref.repository).tags())
        if json_output:
            print_json(found)
            return
        for tag in found:
            typer.echo(tag)
