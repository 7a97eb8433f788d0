"""``clusterimage registry ...``: registry folders (sealos's ``registry save`` spelling)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterimage.cli._common import CopyProgress, info, print_json
from clusterimage.cli._registry_options import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    AuthFile,
    CertDir,
    Creds,
    RegistryCommand,
    Retry,
    SelectPlatform,
    Timeout,
    TlsVerify,
    registry_context,
)
from clusterimage.pull import PullPolicy

registry_app = typer.Typer(
    name="registry",
    help="Registry folders: fill one with a context's images.\n\nExamples:\n\n"
    "  clusterimage registry save . --registry-dir ./registry",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app)


@registry_app.command("save", cls=RegistryCommand)
def save(
    context: Annotated[
        Path,
        typer.Argument(help="The build context whose images to save (default: this folder)."),
    ] = Path("."),
    registry_dir: Annotated[
        Path,
        typer.Option(
            "--registry-dir",
            metavar="DIR",
            help="The registry folder to fill (distribution's layout; created when missing).",
        ),
    ] = Path("registry"),
    platform: SelectPlatform = None,
    all_platforms: Annotated[
        bool, typer.Option("--all", help="Keep every platform of each image.")
    ] = False,
    max_pull_procs: Annotated[
        int, typer.Option("--max-pull-procs", min=1, help="Images fetched at once.")
    ] = 5,
    pull: Annotated[
        PullPolicy,
        typer.Option("--pull", help="missing (default), always or never: as `build --pull`."),
    ] = PullPolicy.missing,
    retry: Retry = DEFAULT_RETRIES,
    timeout: Timeout = DEFAULT_TIMEOUT,
    creds: Creds = None,
    authfile: AuthFile = None,
    tls_verify: TlsVerify = None,
    cert_dir: CertDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Discover the images a build context names and save them into a registry folder.

    What `build` puts in registry/, without a build: charts/, manifests/, images/shim/ and
    images/skopeo/tar.txt, less .sealignore. Images already in DIR are kept; blobs come from
    the image cache (hard links) when they are there.

    Examples:

      clusterimage registry save . --registry-dir ./registry

      clusterimage registry save ./app --registry-dir /srv/registry --platform linux/arm64

      clusterimage registry save ./app --registry-dir out --all --json
    """
    from clusterimage.build.runner import image_cache
    from clusterimage.images import discover
    from clusterimage.images.embed import EmbedSettings, fetch, items_for, lay_out
    from clusterimage.oci.platform import Platform

    ctx = registry_context(
        tls_verify=tls_verify,
        cert_dir=cert_dir,
        authfile=authfile,
        creds=creds,
        retry=retry,
        timeout=timeout,
        platform=platform,
    )
    settings = EmbedSettings(
        platform=None if all_platforms else ctx.platform or Platform.host(),
        all_platforms=all_platforms,
        parallel=max_pull_procs,
        policy=pull,
    )
    items = items_for(discover(context), context)
    with CopyProgress(enabled=False if quiet or json_output else None) as progress:
        fetched = fetch(items, image_cache(), ctx, settings, progress)
        images = lay_out(items, registry_dir, image_cache(), ctx, settings, progress)
    if json_output:
        print_json(
            {
                "registryDir": str(registry_dir),
                "fetched": fetched,
                "images": {name: str(digest) for name, digest in sorted(images.items())},
            }
        )
        return
    for name, digest in sorted(images.items()):
        typer.echo(f"{name} {digest}")
    if not quiet:
        info(f"Saved {len(images)} image(s) into {registry_dir} ({fetched} fetched)")
