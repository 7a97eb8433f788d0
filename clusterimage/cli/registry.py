"""``clusterimage registry ...``: registry folders (sealos's ``registry save`` spelling)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clusterimage._humanize import count
from clusterimage.cli._common import CopyProgress, JsonOutput, Quiet, info, print_json
from clusterimage.cli._registry_options import (
    NO_FLAGS,
    RegistryCommand,
    RegistryFlags,
    SelectPlatform,
    with_registry_flags,
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
@with_registry_flags
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
    registry: RegistryFlags = NO_FLAGS,
    quiet: Quiet = False,
    json_output: JsonOutput = False,
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

    ctx = registry.context(platform=platform)
    settings = EmbedSettings(
        platform=None if all_platforms else ctx.platform or Platform.host(),
        all_platforms=all_platforms,
        parallel=max_pull_procs,
        policy=pull,
    )
    items = items_for(discover(context), context)
    with CopyProgress(enabled=False if quiet or json_output else None) as progress:
        cache = image_cache(all_platforms, settings.platform)  # the cache builds use
        fetched = fetch(items, cache, ctx, settings, progress)
        images = lay_out(items, registry_dir, cache, ctx, settings, progress)
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
        typer.echo(str(digest) if quiet else f"{name} {digest}")
    if not quiet:
        info(f"Saved {count(len(images), 'image')} into {registry_dir} ({fetched} fetched)")


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


@registry_app.command("sync", cls=RegistryCommand)
@with_registry_flags
def sync(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SRC",
            help="A registry folder, a cluster image in the store (its registry/), or a "
            "registry (HOST[:PORT]).",
        ),
    ],
    destination: Annotated[
        str,
        typer.Argument(
            metavar="DST", help="A registry: HOST or HOST:PORT, optionally with a /PREFIX."
        ),
    ],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Images at once.")] = 4,
    registry: RegistryFlags = NO_FLAGS,
    platform: SelectPlatform = None,
    quiet: Quiet = False,
    json_output: JsonOutput = False,
) -> None:
    """Copy every repository, tag and digest-only manifest of SRC into the registry DST.

    What DST has already is skipped without a blob request; the rest copies in parallel,
    blobs DST holds elsewhere mounted. Unlike a sync that walks tags, manifests that no tag
    names (images pinned by digest) arrive too.

    Examples:

      clusterimage registry sync ./rootfs/registry sealos.hub:5000

      clusterimage registry sync localhost/apps/app:v1 127.0.0.1:5000 --tls-verify=false

      clusterimage registry sync 10.0.0.5:5000 127.0.0.1:5000/mirror --json
    """
    from clusterimage.runtime import sync as syncing

    syncing.check_destination(destination)
    ctx = registry.context()
    with CopyProgress(enabled=False if quiet or json_output else None) as progress:
        if Path(source).is_dir():
            items = syncing.folder_items(Path(source))
            result = syncing.sync(items, destination, ctx, parallel=jobs, on_event=progress)
        elif _is_registry(source):
            items = syncing.registry_items(source, ctx)
            result = syncing.sync(items, destination, ctx, parallel=jobs, on_event=progress)
        else:
            with syncing.image_items(_registry_files(source, platform)) as items:
                result = syncing.sync(items, destination, ctx, parallel=jobs, on_event=progress)
    if json_output:
        print_json(result.to_dict())
        return
    for name, digest in zip(result.copied, result.copied_digests, strict=True):
        typer.echo(str(digest) if quiet else name)
    if not quiet:
        info(
            f"Synced {count(len(result.copied), 'image')} into {destination} "
            f"({len(result.skipped)} there already; {count(result.blobs_copied, 'blob')} copied, "
            f"{result.blobs_mounted} mounted)"
        )


def _is_registry(source: str) -> bool:
    """HOST[:PORT] with nothing after it: a registry, not an image name."""
    host = source.split("/", 1)[0]
    return "/" not in source.rstrip("/") and ("." in host or ":" in host or host == "localhost")


@registry_app.command("copy", cls=RegistryCommand)
@with_registry_flags
def copy(
    image: Annotated[
        str, typer.Argument(metavar="IMAGE", help="An image: NAME, or TRANSPORT:REF.")
    ],
    destination: Annotated[
        str,
        typer.Argument(
            metavar="DST", help="A registry: HOST or HOST:PORT, optionally with a /PREFIX."
        ),
    ],
    registry: RegistryFlags = NO_FLAGS,
    quiet: Quiet = False,
) -> None:
    """Copy one image, every platform of it, into a registry under its own path (sealos's
    `registry copy`).

    Examples:

      clusterimage registry copy docker.io/library/nginx:1.25 sealos.hub:5000

      clusterimage registry copy store:localhost/app:v1 127.0.0.1:5000/apps --tls-verify=false
    """
    from clusterimage import transports
    from clusterimage.cli._transfer import run_copy
    from clusterimage.copy import CopyOptions
    from clusterimage.errors import UsageError
    from clusterimage.runtime import sync as syncing

    syncing.check_destination(destination)
    from clusterimage.transports.store import own_names

    src = transports.parse(image, default="docker")
    ctx = registry.context()
    # An image of the store goes under the name it is stored as (store:myapp:v1 is
    # localhost/myapp:v1 when built or tagged here), not under Docker's reading of the name.
    names = own_names(src, ctx)
    if len(names) > 1:
        listed = ", ".join(str(n) for n in names)
        raise UsageError(f"{image}: the image has several names ({listed}); copy one of them")
    if not names:
        raise UsageError(f"{image}: names no repository to copy it under; use `copy` instead")
    dst = transports.parse(syncing.rehomed(names[0], destination))
    run_copy(src, dst, ctx, CopyOptions(all_platforms=True), verb="Copied to", quiet=quiet)
