"""``clusterimage pull``: copy an image from any transport into the local store."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage import transports
from clusterimage._humanize import count
from clusterimage.cli._common import CopyProgress, JsonOutput, info, print_json, warn
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    NO_FLAGS,
    Jobs,
    RegistryCommand,
    RegistryFlags,
    SelectPlatform,
    with_registry_flags,
)
from clusterimage.oci.reference import Reference
from clusterimage.pull import PullPolicy
from clusterimage.pull import pull as run_pull


def register(app: typer.Typer) -> None:
    @app.command("pull", cls=RegistryCommand)
    @with_registry_flags
    def pull(
        source: Annotated[
            str,
            typer.Argument(
                metavar="SRC",
                help="Where the image is: oci:DIR[:REF], docker://REF (a bare name means docker).",
            ),
        ],
        name: Annotated[
            str | None,
            typer.Option(
                "--name", metavar="REF", help="Store the image under this name (reference)."
            ),
        ] = None,
        platform: SelectPlatform = None,
        all_platforms: Annotated[
            bool, typer.Option("--all", help="Keep every platform of a multi-platform image.")
        ] = False,
        policy: Annotated[
            PullPolicy,
            typer.Option(
                "--policy",
                help="always: pull (only missing blobs travel); missing: only when the store "
                "has no image of that name for the platform; never: use the store's, fail "
                "without it.",
            ),
        ] = PullPolicy.always,
        registry: RegistryFlags = NO_FLAGS,
        jobs: Jobs = DEFAULT_JOBS,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet", "-q", help="Print only the image's digest: no progress, no status line."
            ),
        ] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Copy an image into the local store and name it.

        The name is --name, else the source's own: for oci:DIR:REF, REF when it is a whole
        image reference (nginx:1.25, quay.io/org/app:v1); a bare tag such as v1 needs --name.

        Examples:

          clusterimage pull oci:./layout:docker.io/library/nginx:1.25

          clusterimage pull oci:./layout:v1 --name localhost/myapp:v1

          clusterimage pull oci:./multiarch:app:v1 --all -q

          clusterimage pull registry.example.com/apps/nginx:v1 --policy missing

          clusterimage pull localhost:5000/app:v1 --tls-verify=false --creds ci:secret
        """
        src = transports.parse(source, default="docker")
        ctx = registry.context(platform=platform, jobs=jobs)
        with CopyProgress(enabled=False if quiet or json_output else None) as progress:
            outcome = run_pull(
                src,
                ctx,
                name=Reference.parse(name) if name else None,
                policy=policy,
                all_platforms=all_platforms,
                on_event=progress,
            )
        for message in outcome.warnings:
            warn(message)
        if json_output:
            print_json(outcome.to_dict())
            return
        if not quiet:
            if outcome.pulled:
                info(
                    f"Stored {outcome.name} ({count(outcome.result.blobs_copied, 'blob')} copied, "
                    f"{outcome.result.blobs_skipped} already present)"
                )
            else:
                info(f"{outcome.name} is in the store already (--policy {policy.value})")
        typer.echo(str(outcome.result.digest))
