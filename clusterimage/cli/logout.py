"""``clusterimage logout``: forget the credentials ``login`` stored."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage.cli._common import JsonOutput, print_json
from clusterimage.cli._registry_options import AuthFile
from clusterimage.errors import ClusterImageError, UsageError


def register(app: typer.Typer) -> None:
    @app.command("logout")
    def logout(
        registry: Annotated[
            str | None, typer.Argument(metavar="REGISTRY", help="host[:port] to log out of.")
        ] = None,
        all_registries: Annotated[
            bool, typer.Option("--all", "-a", help="Remove the credentials of every registry.")
        ] = False,
        authfile: AuthFile = None,
        json_output: JsonOutput = False,
    ) -> None:
        """Remove the credentials stored for a registry (or all of them with --all).

        Only the file `login` writes changes; credentials that `docker login` stored in
        ~/.docker/config.json stay (use `docker logout`).

        Examples:

          clusterimage logout registry.example.com

          clusterimage logout --all
        """
        from clusterimage.remote import credentials

        if (registry is None) == (not all_registries):
            raise UsageError("logout: name a REGISTRY or use --all (not both)")
        removed = credentials.remove(registry, auth_file=authfile)
        path = credentials.default_write_path(authfile)
        if registry is not None and not removed:  # a failure whatever the output format
            key = credentials.registry_of(registry)
            elsewhere = credentials.known_elsewhere(key, auth_file=authfile)
            if elsewhere is not None:
                raise ClusterImageError(
                    f"not logged in to {key} in {path}; the credentials in {elsewhere} were "
                    "stored by another tool (use its logout, e.g. `docker logout`)"
                )
            raise ClusterImageError(f"not logged in to {key}")
        if json_output:
            print_json({"removed": removed, "authfile": str(path)})
            return
        if all_registries:
            typer.echo("Removed login credentials for all registries")
            return
        assert registry is not None
        typer.echo(f"Removed login credentials for {credentials.registry_of(registry)}")
