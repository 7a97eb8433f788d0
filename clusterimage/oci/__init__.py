"""The OCI domain model: digests, descriptors, manifests, configs, platforms, references."""

from clusterimage.oci import mediatypes
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import REF_NAME_ANNOTATION, Descriptor
from clusterimage.oci.digest import Digest, Hasher, VerifyingReader
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest, parse_manifest
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference

__all__ = [
    "REF_NAME_ANNOTATION",
    "Descriptor",
    "Digest",
    "Hasher",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "Manifest",
    "Platform",
    "Reference",
    "VerifyingReader",
    "mediatypes",
    "parse_manifest",
]
