"""``clusterimage inspect``: an image's summary, manifest or config as JSON, from any transport."""

from __future__ import annotations

import contextlib
import enum
import json
from typing import Annotated, Any

import typer

from clusterimage import transports
from clusterimage.cli import _template
from clusterimage.cli._common import complete_images, print_json
from clusterimage.cli._registry_options import (
    NO_FLAGS,
    RegistryCommand,
    RegistryFlags,
    with_registry_flags,
)
from clusterimage.errors import InvalidReference
from clusterimage.image import resolve
from clusterimage.images.embed import IMAGES_ANNOTATION
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.manifest import ImageIndex, ImageManifest
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.runtime.command import TYPE_LABELS, ImageTypeError, image_type
from clusterimage.transports._layout import LayoutSource
from clusterimage.transports.store import StoreReference


class InspectType(enum.StrEnum):
    image = "image"
    manifest = "manifest"
    config = "config"


def register(app: typer.Typer) -> None:
    @app.command("inspect", cls=RegistryCommand)
    @with_registry_flags
    def inspect(
        image: Annotated[
            str,
            typer.Argument(
                metavar="REF",
                help="An image in the store, or TRANSPORT:REF (oci:DIR:TAG, docker://...).",
                autocompletion=complete_images,
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
        format_: Annotated[
            str | None,
            typer.Option(
                "--format",
                "-f",
                metavar="TEMPLATE",
                help="A Go template over the JSON shown ({{.Digest}}, {{.Config.Labels}}, "
                '{{index .Config.Labels "k"}}, {{json .Config}}), or json.',
            ),
        ] = None,
        registry: RegistryFlags = NO_FLAGS,
    ) -> None:
        """Show an image as JSON: a summary (default), its manifest, or its config.

        The summary is podman's `image inspect` object (Id, Digest, RepoTags, Config, RootFS,
        History, ...), then ours: ManifestDigest, Variant, Index, EmbeddedImages,
        ClusterImageType.

        For a multi-platform image, --type manifest shows the index; image and config show the
        image for --platform (default: this machine's platform).

        Examples:

          clusterimage inspect nginx:1.25

          clusterimage inspect -t manifest oci:./layout:v1

          clusterimage inspect -t config --platform linux/arm64 docker.io/library/nginx

          clusterimage inspect --format '{{index .Config.Labels "sealos.io.type"}}' app:v1

          clusterimage inspect -t manifest --format '{{.config.digest}}' app:v1
        """
        # Parsed first: a bad template is a usage error before anything is fetched.
        template = _template.parse(format_) if format_ and not _template.is_json(format_) else None

        def show(data: Any) -> None:
            if template is None:
                print_json(data)
            else:
                typer.echo(template.render(data), nl=False)

        ref = transports.parse(image, default="store")
        want = Platform.parse(platform) if platform else None
        ctx = registry.context()
        ctx.platform = want
        with ref.new_source(ctx) as source:
            top = source.get_manifest()
            if type_ is InspectType.manifest:
                show(top.data)
                return
            found = resolve(source, want, where=str(ref), top=top)
            manifest, index, config = found.manifest, found.index, found.config
            if type_ is InspectType.config:
                show(config.data)
                return
            tags: list[str] = []
            repositories: list[str] = []  # for RepoDigests: a digest names no tag
            if isinstance(ref, StoreReference):
                assert isinstance(source, LayoutSource)
                # By the digest the image is stored under: top.digest is the sha256 of its
                # bytes, and a layout may name a manifest by sha512.
                tags = ref.existing_store(ctx).names(source.top.digest)
                for tag in tags:
                    with contextlib.suppress(InvalidReference):  # a name another tool wrote
                        repositories.append(Reference.parse(tag).name)
            else:
                named = ref.docker_reference()  # docker://REF, a layout's whole ref name
                if named is not None:
                    tags = [f"{named.name}:{named.tag}"] if named.tag else []
                    repositories = [named.name]
            summary = _summary(tags, repositories, manifest, config, index)
            show(summary)


def _summary(
    tags: list[str],
    repositories: list[str],
    manifest: ImageManifest,
    config: ImageConfig,
    index: ImageIndex | None,
) -> dict[str, Any]:
    """podman's ``image inspect`` object (libimage ImageData), its keys in its order, then
    ours (README, Output conventions). Not filled: GraphDriver (no storage driver here) and
    NamesHistory (the store forgets the names an image lost)."""
    layers = manifest.layers
    # podman's Digest is the one the image was pulled by: a list's, when it came from one.
    top = index.digest if index is not None else manifest.digest
    digests = [manifest.digest] + ([index.digest] if index is not None else [])
    docker = manifest.media_type == mt.DOCKER_MANIFEST
    size = manifest.size + manifest.config.size + sum(layer.size for layer in layers)
    history = [_history_entry(item) for item in config.history if isinstance(item, dict)]
    rootfs = config.data.get("rootfs")
    out: dict[str, Any] = {
        "Id": manifest.config.digest.hex,  # the image ID, as images and podman show it
        "Digest": str(top),
        "RepoTags": tags,
        # podman: every name's repository with every digest the image is known by (the
        # platform image's and, pulled through a list, the list's), sorted.
        "RepoDigests": sorted({f"{repo}@{digest}" for repo in repositories for digest in digests}),
        "Parent": "",  # podman's parent is a local image this one was built on: none here
        "Comment": _comment(config, history, docker),
        "Created": config.created,
        "Config": _config_section(config),
        "Version": _string(config.data.get("docker_version")),
        "Author": _string(config.data.get("author")),
        "Architecture": config.platform.architecture,
        "Os": config.platform.os,
        # The bytes the store holds for it: manifest, config and (compressed) layers, as
        # `images` counts them; podman counts layers unpacked.
        "Size": size,
        "VirtualSize": size,  # podman: always Size (docker's deprecated field)
        "RootFS": {
            "Type": _string(rootfs.get("type")) if isinstance(rootfs, dict) else "",
            "Layers": [str(diff_id) for diff_id in config.diff_ids],
        },
        # Maps, not structs, to --format: a key they lack is <no value>, as in podman.
        "Labels": _template.Map(config.labels),
        "Annotations": _template.Map(manifest.annotations),
        "ManifestType": manifest.media_type,
        "User": config.user,
        "History": history,
    }
    healthcheck = _healthcheck(config) if docker else None
    if healthcheck is not None:  # podman: only a docker image has one, and omits it empty
        out["Healthcheck"] = healthcheck
    # Ours (PascalCase too, one convention per document); always present.
    out["ManifestDigest"] = str(manifest.digest)  # this platform's, when Digest is a list's
    out["Variant"] = config.platform.variant or ""
    out["Index"] = _index_section(index)
    out["EmbeddedImages"] = _template.Map(_embedded_images(manifest))
    out["ClusterImageType"] = _cluster_image_type(config.labels)
    return out


# The fields of an OCI ImageConfig, which podman's Config is: a docker config's other fields
# (Hostname, Image, Healthcheck, ...) are not in podman's output either.
_OCI_CONFIG_FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
)
_HISTORY_FIELDS = ("created", "created_by", "author", "comment", "empty_layer")


def _config_section(config: ImageConfig) -> dict[str, Any]:
    """The config's ``config`` object as an OCI ImageConfig, with the usual fields filled in."""
    given = config.container_config
    # Shown even when empty (podman omits them), so that {{.Config.Labels}} and
    # {{.Config.Env}} work on any image.
    filled = {
        "User": config.user,
        "Env": config.env,
        "Entrypoint": config.entrypoint,
        "Cmd": config.cmd,
        "WorkingDir": config.working_dir,
        "Labels": _template.Map(config.labels),
    }
    section: dict[str, Any] = {}
    for key in _OCI_CONFIG_FIELDS:
        if key in filled:
            section[key] = filled[key]
        elif given.get(key) not in (None, "", [], {}, False):
            section[key] = given[key]
    return section


def _history_entry(item: dict[str, Any]) -> dict[str, Any]:
    """An OCI history entry as podman prints it: the spec's fields, empty ones left out."""
    return {key: item[key] for key in _HISTORY_FIELDS if item.get(key) not in (None, "", False)}


def _comment(config: ImageConfig, history: list[dict[str, Any]], docker: bool) -> str:
    """podman's Comment: a docker config's own ``comment``; an OCI image's first history
    entry's (the OCI config has no comment of its own)."""
    if docker:
        return _string(config.data.get("comment"))
    return _string(history[0].get("comment")) if history else ""


def _healthcheck(config: ImageConfig) -> Any:
    """A docker config's health check: in container_config or config, as podman reads it."""
    for section in ("container_config", "config"):
        value = config.data.get(section)
        if isinstance(value, dict) and value.get("Healthcheck"):
            return value["Healthcheck"]
    return None


def _index_section(index: ImageIndex | None) -> dict[str, Any] | None:
    """The multi-platform image this one was chosen from; None for a single image."""
    if index is None:
        return None
    platforms = [str(entry.platform) for entry in index.manifests if entry.platform]
    return {"Digest": str(index.digest), "MediaType": index.media_type, "Platforms": platforms}


def _embedded_images(manifest: ImageManifest) -> dict[str, str]:
    """The images ``registry/`` holds, as the build recorded them (name -> manifest digest);
    {} when the manifest records none (an image built elsewhere, or without images)."""
    recorded = manifest.annotations.get(IMAGES_ANNOTATION)
    if not recorded:
        return {}
    try:
        data = json.loads(recorded)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _cluster_image_type(labels: dict[str, str]) -> str:
    """rootfs, patch or application, as the runtime reads it (application without a type
    label); an unknown value is shown as it is, for `create` to refuse."""
    try:
        return image_type(labels)
    except ImageTypeError:
        return next(labels[key] for key in TYPE_LABELS if labels.get(key))


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
