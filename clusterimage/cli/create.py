"""``clusterimage create``: print the command line the runtime would run for an image."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage import transports
from clusterimage.cli._common import JsonOutput, StoredImage, print_json
from clusterimage.cli._registry_options import (
    NO_FLAGS,
    RegistryCommand,
    RegistryFlags,
    with_registry_flags,
)
from clusterimage.errors import UsageError
from clusterimage.image import read_image
from clusterimage.runtime.command import DEFAULT_CLUSTER, DEFAULT_DATA_ROOT, runtime_command
from clusterimage.transports.base import ImageReference


def register(app: typer.Typer) -> None:
    @app.command("create", cls=RegistryCommand)
    @with_registry_flags
    def create(
        images: Annotated[
            list[str],
            StoredImage(
                metavar="REF...",
                help="Images in the store, or TRANSPORT:REF (oci:DIR:TAG, docker://...), in "
                "the order the runtime runs them.",
            ),
        ],
        env: Annotated[
            list[str] | None,
            typer.Option(
                "--env",
                "-e",
                metavar="K=V",
                help="Cluster env overlaid on the image ENV (repeatable).",
            ),
        ] = None,
        cluster: Annotated[
            str, typer.Option("--cluster", "-c", help="Cluster name, part of the workdir.")
        ] = DEFAULT_CLUSTER,
        workdir: Annotated[
            str | None,
            typer.Option(
                "--workdir",
                help="Directory the commands run in (default: where the runtime mounts the "
                "image: <data-root>/<cluster>/rootfs, or .../applications/<name>/workdir).",
            ),
        ] = None,
        data_root: Annotated[
            str, typer.Option("--data-root", help="The runtime's data directory.")
        ] = DEFAULT_DATA_ROOT,
        platform: Annotated[
            str | None,
            typer.Option(
                "--platform", metavar="OS/ARCH[/VARIANT]", help="Platform to pick from an index."
            ),
        ] = None,
        json_output: JsonOutput = False,
        registry: RegistryFlags = NO_FLAGS,
    ) -> None:
        """Print the command line the runtime would run for each image, in the order given.

        ENTRYPOINT then CMD, without their /bin/sh and -c elements, each as
        `cd <workdir> && <cmd>`, joined with `; `, after `export K="V";` for each ENV entry.
        $(V), ${V} and $V are expanded from the image ENV overlaid by --env. Several images
        (as `sealos run A B C` takes them): one line each, in order; --json gives a list.

        Examples:

          clusterimage create localhost/nginx:v1

          clusterimage create localhost/kubernetes:v1.27 localhost/openebs:v3 localhost/app:v1

          clusterimage create localhost/nginx:v1 --env NAMESPACE=web --json

          clusterimage create oci:./layout:v1 --cluster prod

          clusterimage create docker://127.0.0.1:5000/apps/nginx:v1 --tls-verify=false
        """
        cluster_env = _parse_env(env or [])
        # An image may come from a registry (docker://...): the same flags as inspect and pull.
        ctx = registry.context(platform=platform)
        results: list[dict[str, object]] = []
        for image in images:
            ref = transports.parse(image, default="store")
            # Checked against its digest: the command line is built from what it says.
            config = read_image(ref, ctx, where=image).config
            command = runtime_command(
                env=config.env,
                entrypoint=config.entrypoint,
                cmd=config.cmd,
                labels=config.labels,
                cluster_env=cluster_env,
                cluster=cluster,
                app_name=_app_name(ref),
                workdir=workdir,
                data_root=data_root,
                where=image,
            )
            results.append({"image": image, **command.to_dict()})
        if json_output:
            print_json(results[0] if len(results) == 1 else results)
            return
        for result in results:
            typer.echo(str(result["commandLine"]))


def _parse_env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--env {item!r}: expected K=V")
        env[key] = value
    return env


def _app_name(ref: ImageReference) -> str:
    """The folder name of an application under the cluster's data: the last path component of
    its repository (sealos uses its mount's name there, which we do not have); ``app`` for an
    image that names no repository."""
    reference = ref.docker_reference()
    return reference.repository.rsplit("/", 1)[-1] if reference is not None else "app"
