"""``clusterimage push``: copy an image from the local store to a registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clusterimage.cli._common import JsonOutput, Quiet, StoredImage
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    NO_FLAGS,
    CompressionFormat,
    DigestFile,
    Jobs,
    RegistryCommand,
    RegistryFlags,
    with_registry_flags,
)
from clusterimage.errors import RegistryError, UsageError
from clusterimage.oci.reference import Reference

if TYPE_CHECKING:
    from clusterimage.transports.base import Context, ImageReference


def register(app: typer.Typer) -> None:
    @app.command("push", cls=RegistryCommand)
    @with_registry_flags
    def push(
        source: Annotated[
            str,
            StoredImage(
                metavar="SRC",
                help="An image in the store (name, ID or digest), or TRANSPORT:REF.",
            ),
        ],
        destination: Annotated[
            str | None,
            typer.Argument(
                metavar="[DST]",
                help="Where to push: HOST/REPO[:TAG] (docker:// optional) or TRANSPORT:REF "
                "(default: SRC's own name in its registry).",
            ),
        ] = None,
        all_platforms: Annotated[
            bool,
            typer.Option("--all", help="Push every platform of a multi-platform image."),
        ] = False,
        digestfile: DigestFile = None,
        compression_format: CompressionFormat = None,
        registry: RegistryFlags = NO_FLAGS,
        jobs: Jobs = DEFAULT_JOBS,
        quiet: Quiet = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Push an image from the store to a registry; prints the manifest digest.

        Blobs the registry has are skipped, blobs another repository of the same registry has
        are mounted, the rest stream up several at once; an interrupted push resumes.

        SRC is found as podman finds it: a name without a registry is localhost/NAME first,
        then docker.io/library/NAME; an ID is a prefix of the image ID or manifest digest.
        Without DST the image goes to the name it is stored under, so `push myapp:v1` of a
        built or tagged image goes to localhost/myapp:v1, never to Docker Hub.

        Examples:

          clusterimage push registry.example.com/apps/nginx:v1

          clusterimage push localhost/app:v1 docker://10.0.0.5:5000/app:v1 --tls-verify=false

          clusterimage push --all --digestfile app.digest ghcr.io/me/app:v1
        """
        from clusterimage import transports
        from clusterimage.cli._transfer import copy_options, run_copy

        src = transports.parse(source, default="store")
        ctx = registry.context(jobs=jobs)
        if destination is not None:
            dst = transports.parse(destination, default="docker")
        else:
            reference = _own_name(source, src, ctx)
            if reference is None:
                raise UsageError(f"push: {src} has no name to push to; give a DST")
            dst = transports.parse(f"docker://{reference}")
        options = copy_options(
            ctx, all_platforms=all_platforms, compression_format=compression_format
        )
        try:
            run_copy(
                src,
                dst,
                ctx,
                options,
                verb="Pushed",
                quiet=quiet,
                json_output=json_output,
                digestfile=digestfile,
            )
        except RegistryError as exc:
            ref = dst.docker_reference()
            if destination is not None or ref is None:
                raise
            # The registry came from the image's own name, which may never have been meant
            # as one (localhost/app:v1 is how builds name local images).
            raise RegistryError(
                f"{exc}; {source} names its registry as {ref.registry!r}: to push elsewhere "
                f"give a destination, e.g. `clusterimage push {source} "
                f"docker://REGISTRY/{ref.repository}:{ref.tag or 'latest'}`"
            ) from None


def _own_name(source: str, src: ImageReference, ctx: Context) -> Reference | None:
    """Where a push without DST goes: the name the store holds the image under (``myapp:v1``
    -> ``localhost/myapp:v1`` when that is what was built or tagged; by ID, its one name), or
    the name another transport's reference carries."""
    from clusterimage.transports.store import own_names

    names = own_names(src, ctx)
    if len(names) > 1:
        listed = ", ".join(str(n) for n in names)
        raise UsageError(
            f"push: {source} is the image named {listed}; push one of these names, or give a DST"
        )
    return names[0] if names else None
