"""``clusterimage create``: print the command line the runtime would run for an image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterimage import transports
from clusterimage.cli._common import print_json, store_dir
from clusterimage.errors import ImageNotFound, InvalidReference, ManifestError, UsageError
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.manifest import ImageIndex, ImageManifest
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.runtime.command import DEFAULT_CLUSTER, DEFAULT_DATA_ROOT, runtime_command
from clusterimage.transports.base import Context, ImageReference, ImageSource

_MAX_CONFIG = 16 * 1024 * 1024  # a config is JSON metadata; anything bigger is not one


def register(app: typer.Typer) -> None:
    @app.command()
    def create(
        image: Annotated[
            str,
            typer.Argument(
                metavar="REF",
                help="An image in the store, or TRANSPORT:REF (oci:DIR:TAG, docker://...).",
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
        json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Print the command line the runtime would run for image REF.

        ENTRYPOINT then CMD, without their /bin/sh and -c elements, each as
        `cd <workdir> && <cmd>`, joined with `; `, after `export K="V";` for each ENV entry.
        $(V), ${V} and $V are expanded from the image ENV overlaid by --env.

        Examples:

          clusterimage create localhost/nginx:v1

          clusterimage create localhost/nginx:v1 --env NAMESPACE=web --json

          clusterimage create oci:./layout:v1 --cluster prod
        """
        cluster_env = _parse_env(env or [])
        ref = transports.parse(image, default="store")
        ctx = Context(
            store_dir=store_dir(), platform=Platform.parse(platform) if platform else None
        )
        config = _read_config(ref, ctx, image)
        result = runtime_command(
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
        if json_output:
            print_json({"image": image, **result.to_dict()})
        else:
            typer.echo(result.command_line)


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
    its repository (sealos uses its mount's name there, which we do not have)."""
    # Transports that know a docker reference expose it as .reference (store, docker); layouts
    # and archives carry a ref name (.name) and a path (.path).
    reference = getattr(ref, "reference", None)
    if isinstance(reference, Reference):
        return reference.repository.rsplit("/", 1)[-1]
    name = getattr(ref, "name", None)
    if isinstance(name, str) and name:
        try:
            return Reference.parse(name).repository.rsplit("/", 1)[-1]
        except InvalidReference:
            if "/" not in name and ":" not in name:
                return name
    path = getattr(ref, "path", None)
    if path is not None and Path(path).name:
        return Path(path).name.split(":", 1)[0]
    return "app"


def _read_config(ref: ImageReference, ctx: Context, where: str) -> ImageConfig:
    with ref.new_source(ctx) as source:
        manifest = source.get_manifest()
        if isinstance(manifest, ImageIndex):
            manifest = _pick(manifest, source, ctx, where)
        desc = manifest.config
        if desc.size > _MAX_CONFIG:
            raise ManifestError(f"{where}: config blob of {desc.size} bytes is too large")
        with source.open_blob(desc) as stream:
            raw = stream.read(_MAX_CONFIG + 1)
        return ImageConfig.parse(raw, desc.media_type, f"{where}: config")


def _pick(index: ImageIndex, source: ImageSource, ctx: Context, where: str) -> ImageManifest:
    want = ctx.platform or Platform.host()
    for entry in index.manifests:
        if entry.platform is not None and want.matches(entry.platform):
            child = source.get_manifest(entry.digest)
            if isinstance(child, ImageIndex):
                return _pick(child, source, ctx, where)
            return child
    raise ImageNotFound(f"{where}: no image for platform {want} (choose one with --platform)")
