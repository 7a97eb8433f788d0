"""clusterimage.image: one platform choice, one bounded and verified config read."""

from __future__ import annotations

import json

import pytest

from clusterimage.errors import DigestMismatch, ImageNotFound, ManifestError
from clusterimage.image import MAX_CONFIG_SIZE, read_config, resolve, select_platform
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest
from clusterimage.oci.platform import Platform
from tests.unit.test_copy import MemoryPlace, MemorySource, _image


def _nested(place: MemoryPlace) -> tuple[ImageIndex, ImageManifest]:
    """An index whose arm64 entry is itself an index (as some registries nest variants)."""
    amd = _image(place, b"amd", arch="amd64")
    arm = _image(place, b"arm", arch="arm64")
    inner = ImageIndex.build([arm.descriptor(platform=Platform("linux", "arm64", "v8"))])
    place.add_manifest(inner)
    outer = ImageIndex.build(
        [
            amd.descriptor(platform=Platform("linux", "amd64")),
            inner.descriptor(platform=Platform("linux", "arm64")),
        ]
    )
    place.add_manifest(outer)
    place.top = outer.digest
    return outer, arm


def test_a_nested_index_is_followed_to_the_platform_asked_for() -> None:
    place = MemoryPlace()
    outer, arm = _nested(place)
    source = MemorySource(place)
    chosen = select_platform(
        outer, Platform.parse("linux/arm64"), source.get_manifest, where="memory:x"
    )
    assert chosen.digest == arm.digest
    found = resolve(source, Platform.parse("linux/arm64"), where="memory:x")
    assert found.index is not None and found.manifest.digest == arm.digest
    assert found.platform.architecture == "arm64"


def test_no_image_for_the_platform_lists_what_there_is() -> None:
    place = MemoryPlace()
    outer, _ = _nested(place)
    with pytest.raises(ImageNotFound, match=r"available: linux/amd64, linux/arm64\); choose"):
        select_platform(
            outer, Platform.parse("linux/s390x"), MemorySource(place).get_manifest, where="m"
        )


def test_a_config_is_never_trusted_before_its_digest_is_checked() -> None:
    place = MemoryPlace()
    manifest = _image(place, b"layer")
    place.top = manifest.digest
    config = manifest.config
    place.blobs[config.digest] = json.dumps({"architecture": "amd64", "os": "evil"}).encode()
    with pytest.raises(DigestMismatch, match=f"config {config.digest} does not match"):
        resolve(MemorySource(place), None, where="memory:x")


def test_an_oversized_config_is_refused_before_it_is_read() -> None:
    place = MemoryPlace()
    huge = Descriptor(mt.OCI_CONFIG, Digest.of(b"x"), MAX_CONFIG_SIZE + 1)
    with pytest.raises(ManifestError, match="more than"):
        read_config(MemorySource(place), huge, where="memory:x")
