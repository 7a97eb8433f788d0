"""``clusterimage manifest ...``: make, edit and push manifest lists, with podman's verbs.

The work is in :mod:`clusterimage.manifests`; here are the flags, as podman spells them.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clusterimage.cli._common import JsonOutput, Quiet, StoredImage, info, print_json, store_dir
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    NO_FLAGS,
    CompressionFormat,
    DigestFile,
    Jobs,
    RegistryCommand,
    RegistryFlags,
    parse_bool,
    with_registry_flags,
)

if TYPE_CHECKING:
    from clusterimage.manifests import PlatformFlags
    from clusterimage.store import Store

manifest_app = typer.Typer(
    name="manifest",
    help="Manifest lists (image indexes): create, add, annotate, remove, inspect, rm, push."
    "\n\nA list lives in the store under its name, with every image it names, so `push` "
    "needs nothing else.\n\nExamples:"
    "\n\n  clusterimage manifest create localhost/app:v1 oci:./amd64:v1 oci:./arm64:v1"
    "\n\n  clusterimage manifest add app:v1 docker://registry.example.com/app:v1-s390x"
    "\n\n  clusterimage manifest push app:v1 docker://registry.example.com/app:v1",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app)


# -- shared flags -----------------------------------------------------------------------------

Annotation = Annotated[
    list[str] | None,
    typer.Option("--annotation", metavar="KEY=VALUE", help="Set an annotation (repeatable)."),
]
Os = Annotated[
    str | None, typer.Option("--os", metavar="OS", help="Override the OS the list records.")
]
Arch = Annotated[
    str | None,
    typer.Option("--arch", metavar="ARCH", help="Override the architecture the list records."),
]
Variant = Annotated[
    str | None,
    typer.Option("--variant", metavar="VARIANT", help="Override the architecture variant."),
]
OsVersion = Annotated[
    str | None,
    typer.Option("--os-version", metavar="VERSION", help="Override the OS version."),
]
Features = Annotated[
    list[str] | None,
    typer.Option("--features", metavar="F[,F...]", help="Override the platform's features."),
]


def _writable_store() -> Store:
    from clusterimage.store import Store

    return Store(store_dir())


def _existing_store() -> Store | None:
    from clusterimage.store import Store

    return Store.existing(store_dir())


def _store_of(name: str) -> Store:
    """The store a list ``name`` is edited in; without one, the error find_list gives (the
    manifest functions look the list up themselves, before anything is made)."""
    from clusterimage import manifests

    store = _existing_store()
    if store is None:
        manifests.find_list(None, name)  # raises ImageNotFound: nothing is stored yet
    assert store is not None
    return store


def _platform(**flags: Any) -> PlatformFlags:
    from clusterimage.manifests import PlatformFlags

    return PlatformFlags.parse(**flags)


# -- verbs ------------------------------------------------------------------------------------


@manifest_app.command("create", cls=RegistryCommand)
@with_registry_flags
def create(
    name: Annotated[str, StoredImage(metavar="LIST", help="The list's name (a tag).")],
    images: Annotated[
        list[str] | None,
        typer.Argument(metavar="[IMAGE...]", help="Images to add: store names or TRANSPORT:REF."),
    ] = None,
    all_images: Annotated[
        bool, typer.Option("--all", help="Add every image of an IMAGE that is itself a list.")
    ] = False,
    amend: Annotated[
        bool, typer.Option("--amend", "-a", help="Add to the list of that name if it exists.")
    ] = False,
    annotation: Annotation = None,
    registry: RegistryFlags = NO_FLAGS,
) -> None:
    """Create a manifest list in the store, empty or with IMAGEs; prints its digest.

    A LIST without a registry is stored as localhost/LIST, as podman stores it. An existing
    image or list of that name is kept and the command fails, unless --amend (then IMAGEs
    are added to that list). An IMAGE that is a list adds the image for this machine's
    platform, or with --all every one.

    Examples:

      clusterimage manifest create app:v1

      clusterimage manifest create app:v1 oci:./build-amd64:v1 oci:./build-arm64:v1

      clusterimage manifest create --all --amend app:v1 docker://registry.example.com/base:v3
    """
    from clusterimage import manifests

    annotations = manifests.parse_annotations(annotation)
    ctx = registry.context()
    found = manifests.create(
        _writable_store(),
        name,
        images or (),
        ctx,
        all_images=all_images,
        amend=amend,
        annotations=annotations,
    )
    typer.echo(str(found.digest))


@manifest_app.command("add", cls=RegistryCommand)
@with_registry_flags
def add(
    name: Annotated[str, StoredImage(metavar="LIST", help="A manifest list in the store.")],
    image: Annotated[
        str,
        typer.Argument(
            metavar="IMAGE",
            help="A store name, or TRANSPORT:REF (docker://, oci:, oci-archive:, "
            "docker-archive:, registry-dir:); a name not in the store is docker://NAME.",
        ),
    ],
    all_images: Annotated[
        bool, typer.Option("--all", help="IMAGE is a list: add every image of it.")
    ] = False,
    os: Os = None,
    arch: Arch = None,
    variant: Variant = None,
    os_version: OsVersion = None,
    features: Features = None,
    annotation: Annotation = None,
    registry: RegistryFlags = NO_FLAGS,
) -> None:
    """Add an image to a manifest list; prints the list's new digest.

    The image's manifest, config and layers are copied into the store when they come from
    elsewhere. Its platform is its config's (or what the list it came from says); --os,
    --arch, --variant, --os-version and --features override it, and choose the image to take
    from a list. An image already in the list (same digest) is replaced, not repeated.

    Examples:

      clusterimage manifest add app:v1 localhost/app:v1-amd64

      clusterimage manifest add app:v1 docker://registry.example.com/app:v1-arm64 --variant v8

      clusterimage manifest add --all app:v1 oci:./multi:v1

      clusterimage manifest add --arch arm64 app:v1 docker://registry.example.com/base:v3
    """
    from clusterimage import manifests

    annotations = manifests.parse_annotations(annotation)
    flags = _platform(os=os, arch=arch, variant=variant, os_version=os_version, features=features)
    ctx = registry.context()
    store = _store_of(name)
    found, added = manifests.add(
        store,
        name,
        image,
        ctx,
        all_images=all_images,
        platform=flags,
        annotations=annotations,
    )
    info(f"added {', '.join(d.short for d in added)} to {found.name}")
    typer.echo(str(found.digest))


@manifest_app.command("annotate")
def annotate(
    name: Annotated[str, StoredImage(metavar="LIST", help="A manifest list in the store.")],
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[IMAGE|DIGEST]",
            help="The entry: its manifest digest, or the name of the image in the store.",
        ),
    ] = None,
    os: Os = None,
    arch: Arch = None,
    variant: Variant = None,
    os_version: OsVersion = None,
    features: Features = None,
    os_features: Annotated[
        list[str] | None,
        typer.Option("--os-features", metavar="F[,F...]", help="Set the OS features."),
    ] = None,
    annotation: Annotation = None,
    index: Annotated[
        bool, typer.Option("--index", help="Set the --annotation values on the list itself.")
    ] = False,
) -> None:
    """Set an entry's platform or annotations (--index: the list's); prints the new digest.

    The entry is named by its manifest digest, or by the name of the image in the store.

    Examples:

      clusterimage manifest annotate --arch arm64 --variant v8 app:v1 sha256:59eec8837a4d...

      clusterimage manifest annotate --annotation org.example.tier=edge app:v1 localhost/app:arm

      clusterimage manifest annotate --index --annotation org.opencontainers.image.version=1 app:v1
    """
    from clusterimage import manifests

    annotations = manifests.parse_annotations(annotation)
    flags = _platform(
        os=os,
        arch=arch,
        variant=variant,
        os_version=os_version,
        features=features,
        os_features=os_features,
    )
    store = _store_of(name)
    found, _ = manifests.annotate(
        store, name, target, platform=flags, annotations=annotations, on_index=index
    )
    typer.echo(str(found.digest))


@manifest_app.command("remove")
def remove(
    name: Annotated[str, StoredImage(metavar="LIST", help="A manifest list in the store.")],
    digest: Annotated[str, typer.Argument(metavar="DIGEST", help="The entry's manifest digest.")],
) -> None:
    """Remove an entry from a manifest list; prints the list's new digest.

    Examples:

      clusterimage manifest remove app:v1 sha256:59eec8837a4d942cc19a52b8c09ea75121acc381...
    """
    from clusterimage import manifests

    store = _store_of(name)
    typer.echo(str(manifests.remove(store, name, digest).digest))


@manifest_app.command("inspect", cls=RegistryCommand)
@with_registry_flags
def inspect(
    name: Annotated[
        str,
        typer.Argument(
            metavar="LIST", help="A list in the store, else a registry's (or TRANSPORT:REF)."
        ),
    ],
    raw: Annotated[
        bool, typer.Option("--raw", help="The exact bytes (their sha256 is the digest).")
    ] = False,
    registry: RegistryFlags = NO_FLAGS,
) -> None:
    """Print a manifest list as JSON: the one in the store of that name, else (as podman) the
    manifest at NAME in its registry.

    Examples:

      clusterimage manifest inspect app:v1

      clusterimage manifest inspect --raw app:v1 | sha256sum

      clusterimage manifest inspect --tls-verify=false 127.0.0.1:5000/app:v1
    """
    from clusterimage import manifests

    ctx = registry.context()
    found = manifests.inspect(_existing_store(), name, ctx)
    if raw:
        sys.stdout.buffer.write(found.raw)
        sys.stdout.flush()
        return
    # Indented by four, as podman prints it.
    sys.stdout.write(json.dumps(found.data, indent=4) + "\n")
    sys.stdout.flush()


@manifest_app.command("rm")
def rm(
    names: Annotated[list[str], typer.Argument(metavar="LIST...", help="Lists in the store.")],
) -> None:
    """Remove manifest lists from the store (not the images they name: those that are
    images of the store stay; the rest go at the next prune).

    Examples:

      clusterimage manifest rm app:v1

      clusterimage manifest rm app:v1 app:v2
    """
    from clusterimage import manifests

    store = _store_of(names[0])  # delete checks every name before it removes any
    for removed, deleted in manifests.delete(store, names):
        typer.echo(f"Untagged: {removed}")
        if deleted is not None:
            typer.echo(f"Deleted: {deleted.hex}")


class _PushCommand(RegistryCommand):
    """``--all`` as podman takes it: bare (true) or ``--all=false``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        out: list[str] = []
        for position, arg in enumerate(args):
            if arg == "--":
                out.extend(args[position:])
                break
            out.append("--all=true" if arg == "--all" else arg)
        return super().parse_args(ctx, out)


@manifest_app.command("push", cls=_PushCommand)
@with_registry_flags
def push(
    name: Annotated[str, StoredImage(metavar="LIST", help="A manifest list in the store.")],
    destination: Annotated[
        str | None,
        typer.Argument(
            metavar="[DEST]",
            help="HOST/REPO[:TAG] (docker:// optional) or TRANSPORT:REF (default: LIST's name).",
        ),
    ] = None,
    all_images: Annotated[
        str,
        typer.Option(
            "--all",
            metavar="[=BOOL]",
            help="Push the images the list names too (default true); --all=false pushes the "
            "list only, which needs the images at DEST already.",
            show_default=False,
        ),
    ] = "true",
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="oci|v2s2",
            help="Write the list (and with --all its images) as OCI or Docker schema2 "
            "(default: as stored).",
        ),
    ] = None,
    remove_after: Annotated[
        bool, typer.Option("--rm", help="Remove the list from the store once it is pushed.")
    ] = False,
    digestfile: DigestFile = None,
    compression_format: CompressionFormat = None,
    registry: RegistryFlags = NO_FLAGS,
    jobs: Jobs = DEFAULT_JOBS,
    quiet: Quiet = False,
    json_output: JsonOutput = False,
) -> None:
    """Push a manifest list from the store, with its images; prints the list's digest.

    DEST defaults to the list's own name (localhost/app:v1 for a list created as app:v1).
    Blobs the registry has are skipped, others mounted or uploaded, several at once.

    Examples:

      clusterimage manifest push registry.example.com/app:v1

      clusterimage manifest push app:v1 docker://127.0.0.1:5000/app:v1 --tls-verify=false

      clusterimage manifest push --format v2s2 --rm --digestfile app.digest app:v1 ghcr.io/me/app:v1
    """
    from clusterimage import manifests, transports
    from clusterimage._humanize import count
    from clusterimage.cli._common import CopyProgress
    from clusterimage.cli._transfer import copy_options, write_digestfile
    from clusterimage.errors import UsageError

    every = parse_bool(all_images, "--all")
    if format_ is not None and format_ not in manifests.FORMATS:
        raise UsageError(f"--format {format_!r}: expected oci or v2s2")
    ctx = registry.context(jobs=jobs)
    options = copy_options(ctx, all_platforms=True, compression_format=compression_format)
    store = _existing_store()
    found = manifests.find_list(store, name)
    assert store is not None
    target = destination if destination is not None else found.name
    dst = transports.parse(target, default="docker")
    with CopyProgress(enabled=False if quiet or json_output else None) as progress:
        options.on_event = progress
        result = manifests.push(
            store, found.name, dst, ctx, all_images=bool(every), fmt=format_, options=options
        )
    if digestfile is not None:
        write_digestfile(digestfile, str(result.digest))
    if remove_after:
        manifests.delete(store, [found.name])
    if json_output:
        print_json({"source": found.name, "destination": str(dst), **result.to_dict()})
        return
    if not quiet:
        images = count(len(result.manifests) - 1, "image")
        what = f"{images} and the list" if every else "the list only"
        info(
            f"Pushed {found.name} to {dst}: {what}; {count(result.blobs_copied, 'blob')} copied, "
            f"{result.blobs_mounted} mounted, {result.blobs_skipped} already there"
        )
    typer.echo(str(result.digest))
