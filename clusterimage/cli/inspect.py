"""``clusterimage inspect``: an image's summary, manifest or config as JSON, from any transport."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from clusterimage import transports
from clusterimage.cli._common import print_json
from clusterimage.cli._registry_options import (
    DEFAULT_RETRIES,
    AuthFile,
    CertDir,
    Creds,
    RegistryCommand,
    Retry,
    TlsVerify,
    registry_context,
)
from clusterimage.errors import DigestMismatch, ImageNotFound, ManifestError
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest
from clusterimage.oci.platform import Platform
from clusterimage.store.layout import MAX_CONFIG_SIZE
from clusterimage.transports._layout import LayoutSource
from clusterimage.transports.base import ImageSource
from clusterimage.transports.store import StoreReference


class InspectType(enum.StrEnum):
    image = "image"
    manifest = "manifest"
    config = "config"


def register(app: typer.Typer) -> None:
    @app.command("inspect", cls=RegistryCommand)
    def inspect(
        image: Annotated[
            str,
            typer.Argument(
                metavar="REF",
                help="An image in the store, or TRANSPORT:REF (oci:DIR:TAG, docker://...).",
            ),
        ],
        type_: Annotated[
            InspectType,
            typer.Option("--type", "-t", help="What to show: image (summary), manifest, config."),
        ] = InspectType.image,
        platform: Annotated[
            str | None,
            typer.Option(
                "--platform",
                metavar="OS/ARCH[/VARIANT]",
                help="The image of a multi-platform index to show (default: this machine's).",
            ),
        ] = None,
        retry: Retry = DEFAULT_RETRIES,
        creds: Creds = None,
        authfile: AuthFile = None,
        tls_verify: TlsVerify = None,
        cert_dir: CertDir = None,
    ) -> None:
        """Show an image as JSON: a summary (default), its manifest, or its config.

        For a multi-platform image, --type manifest shows the index; image and config show the
        image for --platform (default: this machine's platform).

        Examples:

          clusterimage inspect nginx:1.25

          clusterimage inspect -t manifest oci:./layout:v1

          clusterimage inspect -t config --platform linux/arm64 docker.io/library/nginx
        """
        ref = transports.parse(image, default="store")
        want = Platform.parse(platform) if platform else None
        ctx = registry_context(
            tls_verify=tls_verify, cert_dir=cert_dir, authfile=authfile, creds=creds, retry=retry
        )
        ctx.platform = want
        with ref.new_source(ctx) as source:
            top = source.get_manifest()
            if type_ is InspectType.manifest:
                print_json(top.data)
                return
            manifest, index = top, None
            if isinstance(top, ImageIndex):
                manifest, index = _for_platform(source, top, want or Platform.host(), str(ref))
            assert isinstance(manifest, ImageManifest)
            config = _read_config(source, manifest.config)
            if type_ is InspectType.config:
                print_json(config.data)
                return
            name = str(ref)
            tags: list[str] | None = None
            if isinstance(ref, StoreReference):
                assert isinstance(source, LayoutSource)
                # By the digest the image is stored under: top.digest is the sha256 of its
                # bytes, and a layout may name a manifest by sha512.
                tags = ref.existing_store(ctx).names(source.top.digest)
                if ref.id_like:  # asked by ID or digest: its first name is the better title
                    name = tags[0] if tags else ref.name
            summary = _summary(name.removeprefix("store:"), manifest, config, index)
            if tags is not None:
                summary["RepoTags"] = tags
            print_json(summary)


def _for_platform(
    source: ImageSource, index: ImageIndex, want: Platform, name: str
) -> tuple[ImageManifest, ImageIndex]:
    available = []
    for entry in index.manifests:
        if entry.platform is None:
            continue
        available.append(str(entry.platform))
        if want.matches(entry.platform):
            child = source.get_manifest(entry.digest)
            if isinstance(child, ImageIndex):
                return _for_platform(source, child, want, name)
            return child, index
    raise ImageNotFound(
        f"{name}: no image for platform {want} (available: {', '.join(available) or 'none'}); "
        "choose one with --platform"
    )


def _read_config(source: ImageSource, desc: Descriptor) -> ImageConfig:
    with source.open_blob(desc) as stream:
        raw = stream.read(MAX_CONFIG_SIZE + 1)
    if len(raw) > MAX_CONFIG_SIZE:
        raise ManifestError(f"config {desc.digest} is larger than {MAX_CONFIG_SIZE} bytes")
    # Sources hand out plain streams: check what we read before trusting it.
    if Digest.of(raw, desc.digest.algorithm) != desc.digest:
        raise DigestMismatch(f"config {desc.digest}: content does not match its digest")
    return ImageConfig.parse(raw, desc.media_type, where=f"config {desc.digest}")


def _summary(
    name: str, manifest: ImageManifest, config: ImageConfig, index: ImageIndex | None
) -> dict[str, Any]:
    platform = config.platform
    layers = manifest.layers
    out: dict[str, Any] = {
        "Name": name,
        "Digest": str(manifest.digest),
        "Id": manifest.digest.hex,
    }
    if index is not None:
        out["Index"] = {"Digest": str(index.digest), "MediaType": index.media_type}
    out.update(
        {
            "Created": config.created,
            "Architecture": platform.architecture,
            "Os": platform.os,
        }
    )
    if platform.variant:
        out["Variant"] = platform.variant
    out.update(
        {
            "Author": config.data.get("author") or "",
            "User": config.user,
            "Labels": config.labels,
            "Env": config.env,
            "Cmd": config.cmd,
            "Entrypoint": config.entrypoint,
            "WorkingDir": config.working_dir,
            "Layers": [str(layer.digest) for layer in layers],
            "Size": manifest.size + manifest.config.size + sum(layer.size for layer in layers),
            "MediaType": manifest.media_type,
            "ConfigDigest": str(manifest.config.digest),
            "Annotations": manifest.annotations,
        }
    )
    return out
