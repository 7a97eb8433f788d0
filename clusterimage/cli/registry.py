"""``clusterimage registry ...``: registry folders (sealos's ``registry save`` spelling)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from clusterimage.runtime.registryfiles import RegistryFiles

registry_app = typer.Typer(
    name="registry",
    help="Registry folders: fill one with a context's images, serve one.\n\nExamples:\n\n"
    "  clusterimage registry save . --registry-dir ./registry\n\n"
    "  clusterimage registry serve ./registry --address 127.0.0.1:5000",
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


@registry_app.command("serve")
def serve(
    source: Annotated[
        str,
        typer.Argument(
            metavar="DIR|IMAGE",
            help="A registry folder (holding docker/registry/v2), or a cluster image in the "
            "store whose registry/ to serve as it lies in its layers.",
        ),
    ],
    address: Annotated[
        str, typer.Option("--address", metavar="HOST:PORT", help="Where to listen.")
    ] = "127.0.0.1:5000",
    htpasswd: Annotated[
        Path | None,
        typer.Option("--htpasswd", metavar="FILE", help="Require these users (bcrypt or {SHA})."),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", metavar="FILE", help="Serve HTTPS: certificate.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="FILE", help="Serve HTTPS: its key.")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            metavar="builtin|distribution",
            help="builtin (this read-only server) or distribution (the stock registry on PATH, "
            "configured from the template in registry/, for a folder).",
        ),
    ] = "builtin",
    platform: SelectPlatform = None,
) -> None:
    """Serve a registry folder or a cluster image's registry/, read-only, over the OCI
    distribution API; stops cleanly on SIGTERM.

    Manifests by tag or digest, blobs with Range (sent with sendfile), _catalog and tags/list
    with pagination, distribution's error codes. Given an IMAGE, its registry/ is served from
    the store as it lies in the image's layers: nothing is unpacked.

    Examples:

      clusterimage registry serve ./rootfs/registry --address 127.0.0.1:5000

      clusterimage registry serve localhost/apps/app:v1 --address 0.0.0.0:5000

      clusterimage registry serve ./registry --htpasswd htpasswd --tls-cert c.pem --tls-key k.pem

      clusterimage registry serve ./registry --engine distribution
    """
    from clusterimage.cli._common import home_dir
    from clusterimage.errors import UsageError
    from clusterimage.runtime import serve as server

    options = server.ServeOptions(address, htpasswd, tls_cert, tls_key)
    path = Path(source)
    if engine == "distribution":
        if not path.is_dir():
            raise UsageError("--engine distribution serves a folder: unpack the image first")
        status = server.run_distribution(path, options, home_dir() / "tmp" / "registry-serve")
        raise typer.Exit(status)
    if engine != "builtin":
        raise UsageError(f"--engine {engine!r}: choose builtin or distribution")
    files = _registry_files(source, platform)
    server.run(files, options, lambda where: info(f"Serving {source} on {where}"))


def _registry_files(source: str, platform: str | None) -> RegistryFiles:
    from clusterimage.cli._common import store_dir
    from clusterimage.image import resolve
    from clusterimage.oci.platform import Platform
    from clusterimage.runtime.registryfiles import FolderFiles, ImageFiles
    from clusterimage.store import Store
    from clusterimage.store.store import nothing_stored
    from clusterimage.transports._layout import LayoutSource

    if Path(source).is_dir():
        return FolderFiles(Path(source))
    store = Store.existing(store_dir())
    if store is None:
        raise nothing_stored(source, store_dir())
    want = Platform.parse(platform) if platform else None
    image = resolve(LayoutSource(store, store.resolve(source)), want, where=source)
    return ImageFiles(store, image.manifest, source)
