"""The store: opening, names (tag, untag, rmi semantics), lookup by name, digest and ID."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterimage.copy import CopyOptions, copy_image
from clusterimage.errors import (
    BlobNotFound,
    ImageNotFound,
    InvalidReference,
    StoreError,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import REF_NAME_ANNOTATION, Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest
from clusterimage.oci.platform import Platform
from clusterimage.store import AmbiguousImageID, Store
from clusterimage.transports import Context, parse
from tests.fixtures.oci_layout import OciImage, host_architecture, make_oci_layout
from tests.helpers.images import make_index_layout


def _import(store: Store, source: str, name: str, all_platforms: bool = False) -> Digest:
    ctx = Context(store_dir=store.root)
    options = CopyOptions(all_platforms=all_platforms)
    return copy_image(parse(source), parse(f"store:{name}"), ctx, options).digest


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(tmp_path / "src", ref="v1", config={"Env": ["A=1"]}, labels={"k": "v"})


def _index(store: Store) -> list[dict[str, object]]:
    manifests: list[dict[str, object]] = json.loads((store.root / "index.json").read_text())[
        "manifests"
    ]
    return manifests


# -- opening --------------------------------------------------------------------------------


def test_create_and_open(tmp_path: Path) -> None:
    root = tmp_path / "a" / "store"
    store = Store(root)
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    }
    assert (root / "blobs" / "sha256").is_dir()
    assert store.images() == []
    assert Store.open(root).root == root
    empty = tmp_path / "empty"
    empty.mkdir()
    Store(empty)  # an empty folder becomes a store
    assert (empty / "oci-layout").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: (p / "file.txt").write_text("x"), "no oci-layout"),
        (lambda p: (p / "oci-layout").write_text("{"), "not valid JSON"),
        (lambda p: (p / "oci-layout").write_text('{"imageLayoutVersion": "2.0"}'), "unsupported"),
        (lambda p: (p / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}'), "missing"),
    ],
)
def test_not_a_layout(tmp_path: Path, setup: Callable[[Path], object], message: str) -> None:
    root = tmp_path / "dir"
    root.mkdir()
    setup(root)
    with pytest.raises(StoreError, match=f"not an OCI image layout.*{message}"):
        Store(root)


def test_open_requires_an_existing_layout(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store(tmp_path / "file")
    root = tmp_path / "bad-index"
    Store(root)
    (root / "index.json").write_text('{"schemaVersion": 2, "manifests": [{"digest": "x"}]}')
    with pytest.raises(StoreError, match="not an OCI image layout"):
        Store.open(root)


def test_existing_never_creates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERIMAGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLUSTERIMAGE_STORE", raising=False)
    # The default location, missing: a fresh install, nothing stored yet.
    assert Store.existing(tmp_path / "home" / "store") is None
    # Any other missing folder was chosen by someone: a typo must not read as empty.
    with pytest.raises(StoreError) as raised:
        Store.existing(tmp_path / "typo")
    assert str(raised.value) == (
        f"no store at {tmp_path / 'typo'} (a folder that does not exist); "
        "check --store or CLUSTERIMAGE_STORE"
    )
    empty = tmp_path / "empty"
    (empty / ".clusterimage").mkdir(parents=True)  # as a store being created has it
    assert Store.existing(empty) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert [p.name for p in empty.iterdir()] == [".clusterimage"]
    Store(tmp_path / "real")
    store = Store.existing(tmp_path / "real")
    assert store is not None and store.images() == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store.existing(tmp_path / "file")
    (empty / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match="no oci-layout"):
        Store.existing(empty)


# -- names ----------------------------------------------------------------------------------


def test_import_tags_with_full_reference_and_platform(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "app:v1")
    assert str(digest) == image.manifest.digest
    [entry] = _index(store)
    assert entry["annotations"] == {REF_NAME_ANNOTATION: "docker.io/library/app:v1"}
    assert entry["platform"] == {"architecture": host_architecture(), "os": "linux"}
    assert entry["digest"] == image.manifest.digest
    [listed] = store.images()
    assert listed.name == "docker.io/library/app:v1"
    assert listed.digest == digest
    assert listed.id == Digest.parse(image.config.digest).hex  # podman's IMAGE ID: the config
    assert store.image_id(listed.descriptor) == Digest.parse(image.config.digest)
    manifest = store.get_manifest(digest)
    assert isinstance(manifest, ImageManifest)
    assert manifest.raw == image.manifest_bytes
    config = store.get_config(manifest)
    assert config.env == ["A=1"]
    assert config.labels == {"k": "v"}


def test_resolve(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "quay.io/org/app:v1")
    for name in (
        "quay.io/org/app:v1",
        str(digest),
        digest.hex,
        digest.hex[:3],
        f"sha256:{digest.hex[:10]}",
        f"quay.io/org/app@{digest}",
        image.config.digest,  # the image ID (config digest), whole or a prefix
        Digest.parse(image.config.digest).hex[:12],
        f"sha256:{Digest.parse(image.config.digest).hex[:3]}",
    ):
        desc = store.resolve(name)
        assert desc.digest == digest, name
        assert desc.ref_name is None  # an image, not an index entry
    with pytest.raises(ImageNotFound, match=r"quay.io/org/app:v2: image not known"):
        store.resolve("quay.io/org/app:v2")
    with pytest.raises(
        ImageNotFound,
        match=r"^nginx: image not known \(tried localhost/nginx:latest, "
        r"docker.io/library/nginx:latest\)$",
    ):
        store.resolve("nginx")
    with pytest.raises(ImageNotFound):
        store.resolve("f" * 64)
    with pytest.raises(ImageNotFound):
        store.resolve(f"other/repo@{digest}")
    with pytest.raises(InvalidReference):
        store.resolve("Not A Ref")
    with pytest.raises(InvalidReference):
        store.resolve("")


def test_resolve_ambiguous_id_prefix(store: Store) -> None:
    # Make manifests until two digests share their first 3 hex characters (birthday bound).
    config = Descriptor(mt.OCI_CONFIG, Digest.of(b"{}"), 2)
    by_prefix: dict[str, ImageManifest] = {}
    for i in range(100_000):
        manifest = ImageManifest.build(config, [], annotations={"n": str(i)})
        first = by_prefix.setdefault(manifest.digest.hex[:3], manifest)
        if first is not manifest:
            break
    prefix = manifest.digest.hex[:3]
    for n, doc in enumerate((first, manifest)):
        store.put_bytes(doc.raw, doc.digest)
        store.set_ref(f"docker.io/library/m{n}:latest", doc.descriptor())
    with pytest.raises(AmbiguousImageID, match=f"{prefix}: ambiguous image ID"):
        store.resolve(prefix)
    assert store.resolve(manifest.digest.hex[:12]).digest == manifest.digest
    assert store.resolve(first.digest.hex[:12]).digest == first.digest
    with pytest.raises(ImageNotFound):
        store.resolve(prefix[:2])  # shorter than 3 hex characters: read as a name


def test_a_name_wins_over_an_image_id_prefix(store: Store, tmp_path: Path) -> None:
    # As in Docker and podman: a name that is also an ID prefix of another image is the name.
    one = make_oci_layout(tmp_path / "one", ref="a", layers=({"f": b"1"},))
    two = make_oci_layout(tmp_path / "two", ref="b", layers=({"f": b"2"},))
    d1 = _import(store, one.transport_ref, "app:1")
    d2 = _import(store, two.transport_ref, "other:1")
    prefix = d2.hex[:6]
    store.tag(d1.hex[:12], prefix)  # localhost/<prefix>:latest
    assert store.resolve(prefix).digest == d1
    assert store.resolve(f"sha256:{prefix}").digest == d2  # with its algorithm: an ID
    result = store.remove(prefix)  # removes the name, not the image whose ID starts so
    assert result.untagged == [f"localhost/{prefix}:latest"]
    assert result.deleted is None
    assert store.names(d2) == ["docker.io/library/other:1"]
    assert store.resolve(prefix).digest == d2  # the name is gone: now it is the ID prefix


def test_short_ref_names_of_a_foreign_layout_resolve_as_images_shows_them(
    store: Store, image: OciImage
) -> None:
    # skopeo copy ... oci:DIR:v1 names the entry "v1"; `images` shows it as the reference it
    # normalises to (docker.io/library/v1:latest), so that reference, or v1, must find it.
    digest = _import(store, image.transport_ref, "app:1")
    index_path = store.root / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"][0]["annotations"][REF_NAME_ANNOTATION] = "v1"
    index_path.write_text(json.dumps(index))
    [entry] = store.images()
    assert str(entry.reference) == "docker.io/library/v1:latest"
    for name in ("v1", "docker.io/library/v1:latest", "v1:latest"):
        assert store.resolve(name).digest == digest, name
    store.tag("v1", "app:2")
    assert sorted(store.names(digest)) == ["localhost/app:2", "v1"]
    result = store.remove("docker.io/library/v1")
    assert result.untagged == ["v1"]
    assert store.names(digest) == ["localhost/app:2"]


def test_a_manifest_stored_under_sha512(store: Store, image: OciImage) -> None:
    # A layout another tool wrote may name a manifest by its sha512 digest: tag and the size
    # shown must use that digest, not the sha256 of the same bytes (which is not stored).
    _import(store, image.transport_ref, "app:1")
    desc = Descriptor(
        mt.OCI_MANIFEST, Digest.of(image.manifest_bytes, "sha512"), image.manifest.size
    )
    store.put_bytes(image.manifest_bytes, desc.digest)
    store.set_ref("docker.io/library/app:512", desc)
    store.remove("app:1")
    store.gc()
    assert not store.has_blob(Digest.parse(image.manifest.digest))
    store.tag("app:512", "app:copy")
    assert sorted(store.names(desc.digest)) == [
        "docker.io/library/app:512",
        "localhost/app:copy",
    ]
    summary = store.summarize(store.resolve("app:copy"))
    assert summary.digest == desc.digest
    assert summary.size == image.manifest.size + image.config.size + image.layers[0].size
    assert store.fsck() == []


def test_tag_moves_names_and_untag_keeps_image(store: Store, tmp_path: Path) -> None:
    one = make_oci_layout(tmp_path / "one", ref="a", layers=({"f": b"1"},))
    two = make_oci_layout(tmp_path / "two", ref="b", layers=({"f": b"2"},))
    d1 = _import(store, one.transport_ref, "app:1")
    d2 = _import(store, two.transport_ref, "app:2")
    assert str(store.tag("app:1", "app:latest")) == "localhost/app:latest"
    assert store.resolve("app").digest == d1
    store.tag(store.resolve("app:2"), "app")  # re-tagging replaces: one entry per name
    assert store.resolve("app").digest == d2
    assert [e["annotations"] for e in _index(store)].count(
        {REF_NAME_ANNOTATION: "localhost/app:latest"}
    ) == 1
    assert sorted(store.names(d2)) == ["docker.io/library/app:2", "localhost/app:latest"]
    with pytest.raises(InvalidReference, match="digest"):
        store.tag("app:1", f"app@{d1}")
    with pytest.raises(ImageNotFound):
        store.tag("missing", "x")
    # untag: the last name goes, the image stays untagged
    store.untag("app:1")
    assert [e.name for e in store.images() if e.digest == d1] == [None]
    assert store.resolve(d1.hex[:12]).digest == d1
    store.tag(d1.hex[:12], "again:1")  # naming it replaces the untagged entry
    assert [e.name for e in store.images() if e.digest == d1] == ["localhost/again:1"]
    with pytest.raises(ImageNotFound):
        store.untag("app:1")


def test_tag_needs_the_manifest_blob(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "app:1")
    desc = store.resolve("app:1")
    store.blob_path(digest).unlink()
    with pytest.raises(BlobNotFound):
        store.set_ref("docker.io/library/other:1", desc)


def test_remove_like_podman_rmi(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "app:1")
    store.tag("app:1", "app:2")
    store.tag("app:1", "app:3")
    result = store.remove("app:3")  # by name: untag only
    assert result.untagged == ["localhost/app:3"]
    assert result.deleted is None
    with pytest.raises(StoreError, match="several names"):
        store.remove(digest.hex[:12])  # by ID with two names: needs force
    result = store.remove(digest.hex[:12], force=True)
    assert sorted(result.untagged) == ["docker.io/library/app:1", "localhost/app:2"]
    assert result.deleted == digest
    assert store.images() == []
    _import(store, image.transport_ref, "app:1")
    result = store.remove("app:1")  # the last name takes the image with it
    assert result.deleted == digest
    _import(store, image.transport_ref, "app:1")
    assert store.remove(str(digest)).deleted == digest  # one name: ID works without force
    with pytest.raises(ImageNotFound):
        store.remove("app:1")


def test_remove_dangling(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "app:1")
    store.untag("app:1")
    assert [d.digest for d in store.remove_dangling()] == [digest]
    assert store.images() == []


def test_index_image(store: Store, tmp_path: Path) -> None:
    multi = make_index_layout(tmp_path / "multi", ref="v1")
    digest = _import(store, multi.transport_ref, "multi:v1", all_platforms=True)
    assert str(digest) == multi.index.digest
    [entry] = store.images()
    assert entry.descriptor.media_type == "application/vnd.oci.image.index.v1+json"
    assert "platform" not in _index(store)[0]
    top = store.get_manifest(digest)
    assert isinstance(top, ImageIndex)
    arm = multi.images["linux/arm64"].manifest.digest
    child = store.resolve(arm)  # a child manifest, found through its index
    assert str(child.digest) == arm
    with pytest.raises(StoreError, match="part of the multi-platform image"):
        store.remove(arm)
    summary = store.summarize(entry.descriptor, Platform("linux", "arm64"))
    assert {str(p) for p in summary.platforms} == {"linux/amd64", "linux/arm64"}
    assert summary.created == "1970-01-01T00:00:00Z"
    expected = multi.index.size + sum(
        img.manifest.size + img.config.size + sum(layer.size for layer in img.layers)
        for img in multi.images.values()
    )
    assert summary.size == expected
    # Without --all only the host's image is kept, as a plain manifest.
    single = _import(store, multi.transport_ref, "multi:host")
    assert str(single) == multi.images[f"linux/{host_architecture()}"].manifest.digest


def test_summary_of_single_image(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "app:1")
    summary = store.summarize(store.resolve("app:1"))
    assert summary.digest == digest
    assert summary.size == image.manifest.size + image.config.size + image.layers[0].size
    assert summary.created == "1970-01-01T00:00:00Z"
    assert [str(p) for p in summary.platforms] == [f"linux/{host_architecture()}"]


def test_moving_the_last_name_leaves_the_image_untagged(store: Store, tmp_path: Path) -> None:
    old = make_oci_layout(tmp_path / "old", ref="a", layers=({"f": b"old"},))
    new = make_oci_layout(tmp_path / "new", ref="b", layers=({"f": b"new"},))
    d_old = _import(store, old.transport_ref, "app:1")
    d_new = _import(store, new.transport_ref, "app:1")  # a re-pull of the name, new content
    assert [(e.name, e.digest) for e in store.images()] == [
        ("docker.io/library/app:1", d_new),
        (None, d_old),  # podman's <none>: still there until prune
    ]
    assert store.resolve(d_old.hex[:8]).digest == d_old
    assert [d.digest for d in store.remove_dangling()] == [d_old]
    assert {str(d) for d, _ in store.gc().blobs} >= {str(d_old), old.config.digest}
    assert store.fsck() == []
