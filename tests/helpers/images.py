"""Small deterministic images beyond tests/fixtures/oci_layout.py: multi-platform indexes and
images with one big layer. Written with json/hashlib only, independent of clusterimage's code."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.oci_layout import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    REF_NAME,
    Blob,
    OciImage,
    make_oci_layout,
    sha256_digest,
)

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class OciIndexImage:
    layout: Path
    ref: str
    index: Blob
    images: dict[str, OciImage]  # by "os/arch"

    @property
    def transport_ref(self) -> str:
        return f"oci:{self.layout}:{self.ref}"


def write_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def set_index_entries(layout: Path, entries: list[dict[str, object]]) -> None:
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    (layout / "index.json").write_text(json.dumps(index, indent=2))


def make_index_layout(
    layout: Path, *, ref: str = "latest", platforms: tuple[str, ...] = ("amd64", "arm64")
) -> OciIndexImage:
    """An OCI layout whose entry ``ref`` is an index of one small image per architecture."""
    images: dict[str, OciImage] = {}
    for arch in platforms:
        image = make_oci_layout(
            layout,
            ref=f"tmp-{arch}",
            architecture=arch,
            layers=({f"{arch}.txt": f"built for {arch}\n".encode()},),
        )
        images[f"linux/{arch}"] = image
    manifests = [
        {
            **image.manifest.descriptor(),
            "platform": {"architecture": key.split("/")[1], "os": "linux"},
        }
        for key, image in images.items()
    ]
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    index = Blob(OCI_INDEX, write_blob(layout, raw), len(raw))
    set_index_entries(layout, [{**index.descriptor(), "annotations": {REF_NAME: ref}}])
    return OciIndexImage(layout, ref, index, images)


def big_bytes(size: int, seed: int = 7) -> bytes:
    """``size`` deterministic, incompressible bytes."""
    return random.Random(seed).randbytes(size)


def make_raw_image(layout: Path, layers: list[bytes], *, ref: str) -> tuple[str, list[str]]:
    """An image of ``layers`` (uncompressed blobs; their content does not matter to the store
    or to registries) in ``layout`` under ``ref``, the layout's only entry. Returns (manifest
    digest, layer digests)."""
    descs = [Blob(OCI_LAYER, write_blob(layout, data), len(data)) for data in layers]
    config_raw = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [d.digest for d in descs]},
        }
    ).encode()
    config = Blob(OCI_CONFIG, write_blob(layout, config_raw), len(config_raw))
    manifest_raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [d.descriptor() for d in descs],
        }
    ).encode()
    manifest = write_blob(layout, manifest_raw)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": manifest,
        "size": len(manifest_raw),
        "annotations": {REF_NAME: ref},
    }
    set_index_entries(layout, [entry])
    return manifest, [d.digest for d in descs]


def make_big_image(layout: Path, data: bytes, *, ref: str = "big") -> tuple[str, str]:
    """An image whose only layer is ``data``. Returns (manifest digest, layer digest)."""
    manifest, layers = make_raw_image(layout, [data], ref=ref)
    return manifest, layers[0]
