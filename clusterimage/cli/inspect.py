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
from clusterimage.image import resolve
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.manifest import ImageIndex, ImageManifest
from clusterimage.oci.platform import Platform
from clusterimage.transports._layout import LayoutSource
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
            found = resolve(source, want, where=str(ref), top=top)
            manifest, index, config = found.manifest, found.index, found.config
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
