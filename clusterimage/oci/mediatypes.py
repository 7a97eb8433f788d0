"""Media types of the OCI image spec and of Docker's schema2 formats."""

from __future__ import annotations

OCI_LAYOUT_VERSION = "1.0.0"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFESTS = IMAGE_MANIFESTS | INDEXES

# What we send in Accept when fetching a manifest: every format we can read.
ACCEPT_MANIFESTS = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)

GZIP_LAYERS = frozenset({OCI_LAYER_GZIP, DOCKER_LAYER_GZIP, DOCKER_FOREIGN_LAYER})
ZSTD_LAYERS = frozenset({OCI_LAYER_ZSTD})
UNCOMPRESSED_LAYERS = frozenset({OCI_LAYER, DOCKER_LAYER})

# Each OCI layer type and its Docker twin (containers/image's conversion between formats).
OCI_TO_DOCKER_LAYERS = {
    OCI_LAYER_GZIP: DOCKER_LAYER_GZIP,
    OCI_LAYER: DOCKER_LAYER,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: DOCKER_FOREIGN_LAYER,
}
DOCKER_TO_OCI_LAYERS = {docker: oci for oci, docker in OCI_TO_DOCKER_LAYERS.items()}


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_image_manifest(media_type: str) -> bool:
    return media_type in IMAGE_MANIFESTS


def layer_compression(media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none`` for a layer media type (unknown types count as ``none``)."""
    if media_type in GZIP_LAYERS or media_type.endswith("+gzip") or media_type.endswith(".gzip"):
        return "gzip"
    if media_type in ZSTD_LAYERS or media_type.endswith("+zstd"):
        return "zstd"
    return "none"


def layer_media_type(compression: str, *, docker: bool = False) -> str:
    """The layer media type for a compression (``gzip`` | ``zstd`` | ``none``)."""
    if docker:
        if compression == "gzip":
            return DOCKER_LAYER_GZIP
        if compression == "none":
            return DOCKER_LAYER
        raise ValueError("Docker schema2 has no zstd layer media type")
    return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]
