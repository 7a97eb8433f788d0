"""oci.mutate: an image from parts, canonical and consistent."""

from __future__ import annotations

import json

import pytest

from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.mutate import ImageParts, assemble
from clusterimage.oci.platform import Platform


def _parts(**changes: object) -> ImageParts:
    layer = Descriptor(mt.OCI_LAYER_GZIP, Digest.of(b"layer"), 5)
    values: dict[str, object] = {
        "platform": Platform("linux", "arm64", "v8"),
        "layers": [layer],
        "diff_ids": [Digest.of(b"tar")],
        "container": {"Env": ["A=1"], "Cmd": ["run"]},
        "history": [{"created_by": "COPY . ."}],
        "created": "1970-01-01T00:00:00Z",
        "author": "me",
        "annotations": {"k": "v"},
    }
    values.update(changes)
    return ImageParts(**values)  # type: ignore[arg-type]


def test_the_manifest_names_the_config_and_both_are_canonical() -> None:
    config, manifest = assemble(_parts())
    assert manifest.config.digest == config.digest and manifest.config.size == config.size
    assert manifest.annotations == {"k": "v"}
    data = json.loads(config.raw)
    assert list(data) == ["created", "author", "architecture", "os", "variant", "config",
                          "rootfs", "history"]  # fmt: skip
    assert data["rootfs"]["diff_ids"] == [str(Digest.of(b"tar"))]
    assert config.raw == json.dumps(data, separators=(",", ":")).encode()
    again_config, again_manifest = assemble(_parts())
    assert (again_config.digest, again_manifest.digest) == (config.digest, manifest.digest)


def test_optional_parts_are_left_out_and_a_count_mismatch_is_refused() -> None:
    config, manifest = assemble(_parts(author=None, created=None, annotations=None))
    data = json.loads(config.raw)
    assert "author" not in data and "created" not in data and "annotations" not in manifest.data
    with pytest.raises(ValueError, match="1 layers but 0 diff_ids"):
        assemble(_parts(diff_ids=[]))
