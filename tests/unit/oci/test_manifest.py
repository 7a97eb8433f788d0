"""Manifests, indexes, descriptors and configs keep their bytes and unknown fields."""

from __future__ import annotations

import json

import pytest

from clusterimage.errors import ManifestError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import REF_NAME_ANNOTATION, Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, parse_manifest
from clusterimage.oci.platform import Platform

CONFIG = Descriptor(mt.OCI_CONFIG, Digest.of(b"{}"), 2)
LAYER = Descriptor(mt.OCI_LAYER_GZIP, Digest.of(b"layer"), 5)


def test_raw_bytes_decide_the_digest() -> None:
    # Indented, with an unknown field: a re-serialisation would change the digest.
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": CONFIG.to_dict(),
            "layers": [LAYER.to_dict()],
            "x-unknown": {"kept": True},
        },
        indent=3,
    ).encode()
    manifest = parse_manifest(raw)
    assert isinstance(manifest, ImageManifest)
    assert manifest.raw == raw
    assert manifest.digest == Digest.of(raw)
    assert manifest.size == len(raw)
    assert manifest.data["x-unknown"] == {"kept": True}
    assert manifest.config == CONFIG
    assert manifest.layers == [LAYER]
    assert manifest.blobs == [CONFIG, LAYER]
    assert manifest.descriptor().digest == manifest.digest


def test_build_and_parse_round_trip() -> None:
    manifest = ImageManifest.build(CONFIG, [LAYER], annotations={"a": "b"})
    again = parse_manifest(manifest.raw)
    assert again == manifest
    assert again.annotations == {"a": "b"}
    platform = Platform("linux", "arm64")
    index = ImageIndex.build([manifest.descriptor(platform=platform)])
    parsed = parse_manifest(index.raw)
    assert isinstance(parsed, ImageIndex)
    assert parsed.manifests[0].platform == platform
    assert parsed.manifests[0].digest == manifest.digest


@pytest.mark.parametrize(
    ("data", "transport_type", "kind"),
    [
        ({"schemaVersion": 2, "config": CONFIG.to_dict(), "layers": []}, None, ImageManifest),
        ({"schemaVersion": 2, "manifests": []}, None, ImageIndex),
        ({"schemaVersion": 2, "manifests": []}, mt.DOCKER_MANIFEST_LIST, ImageIndex),
        (
            {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": CONFIG.to_dict()},
            mt.OCI_MANIFEST,
            ImageManifest,
        ),
    ],
)
def test_kind_from_media_type_or_shape(
    data: dict[str, object], transport_type: str | None, kind: type
) -> None:
    manifest = parse_manifest(json.dumps(data).encode(), transport_type)
    assert isinstance(manifest, kind)
    if "mediaType" in data:
        assert manifest.media_type == data["mediaType"]
    elif transport_type:
        assert manifest.media_type == transport_type


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"schemaVersion": 1, "fsLayers": []}', "schema1"),
        (json.dumps({"mediaType": mt.OCI_INDEX}).encode(), "'manifests'"),
        (json.dumps({"mediaType": mt.OCI_MANIFEST, "layers": []}).encode(), "'config'"),
        (b'{"schemaVersion": 2}', "unsupported manifest media type"),
    ],
)
def test_parse_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw)


def test_descriptor_round_trip_keeps_unknown_fields() -> None:
    data = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": str(Digest.of(b"m")),
        "size": 1,
        "annotations": {REF_NAME_ANNOTATION: "v1"},
        "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
        "urls": ["https://example.com/x"],
        "artifactType": "application/example",
        "data": "bQ==",  # embedded content (image-spec 1.1): part of the descriptor
        "x-extra": [1, 2],
    }
    desc = Descriptor.from_dict(data)
    assert desc.ref_name == "v1"
    assert desc.platform == Platform("linux", "arm", "v7")
    assert desc.to_dict() == data
    assert desc.with_annotations(None).annotations is None


@pytest.mark.parametrize(
    "data",
    [
        "nope",
        {"digest": str(Digest.of(b"")), "mediaType": mt.OCI_LAYER},
        {"digest": "sha256:short", "size": 1},
        {"digest": str(Digest.of(b"")), "size": -1},
        {"digest": str(Digest.of(b"")), "size": True},
        {"digest": str(Digest.of(b"")), "size": 1, "mediaType": 5},
        # Hand-edited or foreign JSON of the wrong shape: our error, never a TypeError.
        {"digest": str(Digest.of(b"")), "size": 1, "annotations": "x"},
        {"digest": str(Digest.of(b"")), "size": 1, "annotations": [1]},
        {"digest": str(Digest.of(b"")), "size": 1, "annotations": {"k": 1}},
        {"digest": str(Digest.of(b"")), "size": 1, "urls": "https://example.com/x"},
        {"digest": str(Digest.of(b"")), "size": 1, "artifactType": 5},
        {"digest": str(Digest.of(b"")), "size": 1, "platform": "linux/amd64"},
        {"digest": str(Digest.of(b"")), "size": 1, "platform": {"os": "linux", "os.features": 5}},
        {"digest": str(Digest.of(b"")), "size": 1, "platform": {"os": 1, "architecture": "x"}},
    ],
)
def test_descriptor_errors(data: object) -> None:
    with pytest.raises(ManifestError):
        Descriptor.from_dict(data)


def test_config_platform_of_the_wrong_shape_is_a_manifest_error() -> None:
    config = ImageConfig.parse(b'{"os": "linux", "architecture": "amd64", "os.features": 5}')
    with pytest.raises(ManifestError, match=r"os\.features"):
        _ = config.platform


def test_config_accessors() -> None:
    data = {
        "created": "2024-01-02T03:04:05.123456789Z",
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "config": {
            "Env": ["A=1", "B=x=y"],
            "Cmd": ["run"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Labels": {"sealos.io.type": "application"},
            "WorkingDir": "/app",
            "User": "1000",
        },
        "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(b"t"))]},
        "history": [{"created_by": "x"}],
    }
    raw = json.dumps(data, indent=1).encode()
    config = ImageConfig.parse(raw)
    assert config.raw == raw
    assert config.digest == Digest.of(raw)
    assert config.env_dict == {"A": "1", "B": "x=y"}
    assert config.cmd == ["run"]
    assert config.entrypoint == ["/bin/sh", "-c"]
    assert config.labels == {"sealos.io.type": "application"}
    assert config.working_dir == "/app"
    assert config.user == "1000"
    assert config.created == data["created"]
    assert config.platform == Platform("linux", "arm64", "v8")
    assert config.diff_ids == [Digest.of(b"t")]
    assert config.history == [{"created_by": "x"}]
    with pytest.raises(ManifestError):
        ImageConfig.parse(b"[1]")
    empty = ImageConfig.build({"architecture": "amd64", "os": "linux"})
    assert empty.env == [] and empty.cmd == [] and empty.created is None


@pytest.mark.parametrize(
    ("data", "accessor"),
    [
        ({"config": "x"}, "labels"),
        ({"config": {"Env": "A=1"}}, "env"),
        ({"config": {"Env": [1]}}, "env_dict"),
        ({"config": {"Cmd": 5}}, "cmd"),
        ({"config": {"Entrypoint": "/bin/sh"}}, "entrypoint"),
        ({"config": {"Labels": "x"}}, "labels"),
        ({"config": {"Labels": {"k": 1}}}, "labels"),
        ({"rootfs": []}, "diff_ids"),
        ({"rootfs": {"diff_ids": "sha256:x"}}, "diff_ids"),
        ({"history": {}}, "history"),
    ],
)
def test_config_of_the_wrong_shape_is_a_manifest_error(
    data: dict[str, object], accessor: str
) -> None:
    # Docker and Go refuse these (json.Unmarshal into []string / map[string]string), never
    # a TypeError here nor a string read as a list of characters.
    config = ImageConfig.parse(json.dumps(data).encode())
    with pytest.raises(ManifestError, match="image config"):
        getattr(config, accessor)
