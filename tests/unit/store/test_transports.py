"""The store: and oci: transports through the copy engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterimage.copy import CopyEvent, CopyOptions, copy_image
from clusterimage.errors import (
    DigestMismatch,
    ImageNotFound,
    InvalidReference,
    ManifestError,
    StoreError,
    TransportError,
)
from clusterimage.oci.digest import Digest
from clusterimage.store import Layout, Store
from clusterimage.transports import Context, parse
from clusterimage.transports.oci_layout import OciLayoutReference
from clusterimage.transports.store import StoreReference
from tests.fixtures.oci_layout import REF_NAME, OciImage, make_oci_layout
from tests.helpers.images import big_bytes, make_big_image


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(store_dir=tmp_path / "store")


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(tmp_path / "src", ref="v1")


def test_parse_and_format() -> None:
    ref = parse("oci:/tmp/x:docker.io/library/nginx:1.25")
    assert isinstance(ref, OciLayoutReference)
    assert ref.path == Path("/tmp/x")
    assert ref.name == "docker.io/library/nginx:1.25"
    assert str(ref) == "oci:/tmp/x:docker.io/library/nginx:1.25"
    assert str(parse("oci:rel/dir")) == "oci:rel/dir"
    store_ref = parse("nginx", default="store")
    assert isinstance(store_ref, StoreReference)
    assert str(store_ref) == "store:docker.io/library/nginx:latest"
    assert str(parse("store:abc123")) == "store:abc123"  # an ID stays as given
    with pytest.raises(TransportError, match="expected oci:DIR"):
        parse("oci:")
    with pytest.raises(TransportError, match="not a valid ref name"):
        parse("oci:/tmp/x:bad name")
    with pytest.raises(InvalidReference):
        parse("store:Not/Valid")


def test_oci_read_selection(tmp_path: Path, ctx: Context) -> None:
    layout = tmp_path / "layout"
    make_oci_layout(layout, ref="one", layers=({"f": b"1"},))
    only = OciLayoutReference(layout)
    assert only.top().ref_name == "one"  # the only image, without REF
    two = make_oci_layout(layout, ref="docker.io/library/two:latest", layers=({"f": b"2"},))
    with pytest.raises(ImageNotFound, match=r"holds 2 images.*one"):
        only.top()
    exact = parse(f"oci:{layout}:docker.io/library/two:latest")
    assert isinstance(exact, OciLayoutReference)
    assert str(exact.top().digest) == two.manifest.digest
    with pytest.raises(ImageNotFound, match="no image named 'two'"):
        OciLayoutReference(layout, "two").top()  # matched exactly, not normalised
    with pytest.raises(StoreError, match="not an OCI image layout"):
        OciLayoutReference(tmp_path / "missing").new_source(ctx)
    empty = tmp_path / "empty"
    Layout(empty)
    with pytest.raises(ImageNotFound, match="holds no image"):
        OciLayoutReference(empty).top()


def test_store_to_oci_and_back(image: OciImage, tmp_path: Path, ctx: Context) -> None:
    copy_image(parse(image.transport_ref), parse("store:app:1"), ctx)
    out = tmp_path / "out"
    result = copy_image(parse("store:app:1"), parse(f"oci:{out}:exported"), ctx)
    assert str(result.digest) == image.manifest.digest
    index = json.loads((out / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["annotations"] == {REF_NAME: "exported"}
    assert (out / "oci-layout").exists()
    # Writing the same name again replaces the entry; no name adds an unnamed one once.
    copy_image(parse("store:app:1"), parse(f"oci:{out}:exported"), ctx)
    copy_image(parse("store:app:1"), parse(f"oci:{out}"), ctx)
    copy_image(parse("store:app:1"), parse(f"oci:{out}"), ctx)
    entries = json.loads((out / "index.json").read_text())["manifests"]
    assert [e.get("annotations") for e in entries] == [{REF_NAME: "exported"}]
    for blob in [image.manifest.digest, *image.blob_digests()]:
        hex_part = blob.split(":")[1]
        src = image.layout / "blobs" / "sha256" / hex_part
        assert (out / "blobs" / "sha256" / hex_part).read_bytes() == src.read_bytes()


def test_store_transport_errors(image: OciImage, ctx: Context) -> None:
    with pytest.raises(TransportError, match="name the image"):
        parse("store:").new_source(ctx)
    with pytest.raises(TransportError, match="cannot name a new image"):
        copy_image(parse(image.transport_ref), parse(f"store:{image.manifest.digest}"), ctx)
    # Hex that is also a valid name names the image as a destination.
    copy_image(parse(image.transport_ref), parse("store:cafe"), ctx)
    assert str(parse("store:cafe")) == "store:cafe"
    assert [e.name for e in Store(ctx.store_dir or Path()).images()] == [
        "docker.io/library/cafe:latest"
    ]
    wrong = Digest.of(b"other")
    with pytest.raises(DigestMismatch, match="manifest digest"):
        copy_image(parse(image.transport_ref), parse(f"store:app@{wrong}"), ctx)
    with pytest.raises(ImageNotFound):
        copy_image(parse("store:missing:1"), parse(image.transport_ref), ctx)


def test_reading_a_missing_store_creates_nothing(image: OciImage, tmp_path: Path) -> None:
    ctx = Context(store_dir=tmp_path / "absent")
    with pytest.raises(StoreError, match="no store at"):
        copy_image(parse("store:app:1"), parse(f"oci:{tmp_path / 'out'}"), ctx)
    assert not (tmp_path / "absent").exists()
    copy_image(parse(image.transport_ref), parse("store:app:1"), ctx)  # writing creates it
    assert [e.name for e in Store(tmp_path / "absent").images()] == ["docker.io/library/app:1"]


def test_store_by_digest_and_untagged(image: OciImage, ctx: Context, tmp_path: Path) -> None:
    digest = image.manifest.digest
    copy_image(parse(image.transport_ref), parse(f"store:app@{digest}"), ctx)
    copy_image(parse(image.transport_ref), parse("store:"), ctx)
    store = Store(tmp_path / "store")
    assert [e.name for e in store.images()] == [f"docker.io/library/app@{digest}"]
    assert str(store.resolve(f"app@{digest}").digest) == digest


def test_bad_source_blob_leaves_nothing(image: OciImage, ctx: Context, tmp_path: Path) -> None:
    layer = image.layers[0].digest.split(":")[1]
    path = image.layout / "blobs" / "sha256" / layer
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(DigestMismatch):
        copy_image(parse(image.transport_ref), parse("store:app:1"), ctx)
    store = Store(tmp_path / "store")
    assert store.images() == []
    assert not store.has_blob(Digest.parse(image.layers[0].digest))
    assert store.fsck() == []


def test_copy_resumes_a_partial_blob(tmp_path: Path, ctx: Context) -> None:
    data = big_bytes(3 << 20)
    _, layer = make_big_image(tmp_path / "big", data, ref="big")
    digest = Digest.parse(layer)
    store = Store(tmp_path / "store")
    with store.blob_writer(digest, len(data)) as writer:
        writer.write(data[: 1 << 20])  # then the "connection drops"
    events: list[CopyEvent] = []
    result = copy_image(
        parse(f"oci:{tmp_path / 'big'}:big"),
        parse("store:big:1"),
        ctx,
        CopyOptions(on_event=events.append),
    )
    start = next(e for e in events if e.kind == "blob-start" and e.descriptor.digest == digest)
    assert start.done == 1 << 20
    config_size = next(e.descriptor.size for e in events if e.descriptor.digest != digest)
    assert result.bytes_copied == len(data) - (1 << 20) + config_size
    assert store.blob_path(digest).read_bytes() == data
    assert store.partial_size(digest) == 0
    assert store.fsck() == []


def test_copy_restarts_a_blob_whose_partial_is_damaged(tmp_path: Path, ctx: Context) -> None:
    # Bytes an interrupted write left that are not the blob's first bytes (they never reached
    # the disk intact): the copy must start that blob over, not fail nor publish them.
    data = big_bytes(3 << 20)
    _, layer = make_big_image(tmp_path / "big", data, ref="big")
    digest = Digest.parse(layer)
    store = Store(tmp_path / "store")
    store.ingest_dir.mkdir(parents=True, exist_ok=True)
    (store.ingest_dir / f"sha256-{digest.hex}").write_bytes(b"\0" * (1 << 20))
    copy_image(parse(f"oci:{tmp_path / 'big'}:big"), parse("store:big:1"), ctx)
    assert store.blob_path(digest).read_bytes() == data
    assert store.partial_size(digest) == 0
    assert store.fsck() == []


def test_tampered_source_manifest_is_refused(image: OciImage, ctx: Context) -> None:
    # Valid JSON under a name that is not its digest: it must not be read as the named manifest.
    path = image.layout / "blobs" / "sha256" / image.manifest.digest.split(":")[1]
    path.write_bytes(image.manifest_bytes.replace(b"{", b"{ ", 1))
    with pytest.raises(ManifestError, match="is corrupt: content hashes to"):
        copy_image(parse(image.transport_ref), parse("store:app:1"), ctx)
    assert Store(ctx.store_dir or Path()).images() == []
