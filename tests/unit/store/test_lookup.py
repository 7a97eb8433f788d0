"""Store lookups as podman's: short names try localhost/ first, image IDs are config digests,
and an ID prefix may be of either the config or the manifest digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterimage.copy import CopyOptions, copy_image
from clusterimage.errors import ImageNotFound, StoreError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageManifest
from clusterimage.store import AmbiguousImageID, ImageEntry, Store
from clusterimage.transports import Context, parse
from tests.fixtures.oci_layout import OciImage, make_oci_layout
from tests.helpers.images import make_index_layout


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def _image(tmp_path: Path, content: bytes) -> OciImage:
    return make_oci_layout(tmp_path / content.decode(), ref="v", layers=({"f": content},))


def _import(store: Store, image: OciImage, name: str) -> Digest:
    ctx = Context(store_dir=store.root)
    return copy_image(parse(image.transport_ref), parse(f"store:{name}"), ctx, CopyOptions()).digest


def _config(image: OciImage) -> Digest:
    return Digest.parse(image.config.digest)


# -- short names --------------------------------------------------------------------------------


def test_a_short_name_is_localhost_first_then_docker_hub(store: Store, tmp_path: Path) -> None:
    hub = _import(store, _image(tmp_path, b"hub"), "docker.io/library/app:v1")
    assert store.resolve("app:v1").digest == hub  # only Docker's: found as before
    assert store.resolve_named("app:v1")[1] == "docker.io/library/app:v1"
    local = _import(store, _image(tmp_path, b"local"), "localhost/app:v1")
    assert store.resolve("app:v1").digest == local  # both: localhost/ wins, as in podman
    assert store.resolve_named("app:v1")[1] == "localhost/app:v1"
    assert store.resolve("docker.io/library/app:v1").digest == hub  # qualified: itself only
    assert store.resolve("library/app:v1").digest == hub  # localhost/library/app: none
    result = store.remove("app:v1")
    assert result.untagged == ["localhost/app:v1"]
    assert store.resolve("app:v1").digest == hub


def test_a_name_not_found_says_what_was_tried(store: Store, tmp_path: Path) -> None:
    _import(store, _image(tmp_path, b"x"), "localhost/other:v1")
    with pytest.raises(ImageNotFound) as caught:
        store.resolve("myapp:v1")
    assert str(caught.value) == (
        "myapp:v1: image not known (tried localhost/myapp:v1, docker.io/library/myapp:v1)"
    )
    with pytest.raises(ImageNotFound) as caught:
        store.resolve("localhost/myapp")
    assert str(caught.value) == "localhost/myapp (localhost/myapp:latest): image not known"
    with pytest.raises(ImageNotFound) as caught:
        store.remove("myapp:v1")
    assert "tried localhost/myapp:v1, docker.io/library/myapp:v1" in str(caught.value)
    with pytest.raises(ImageNotFound) as caught:
        store.resolve("cafe12")  # a name, or an ID prefix: both were tried
    assert str(caught.value) == (
        "cafe12: image not known (tried localhost/cafe12:latest, "
        "docker.io/library/cafe12:latest, an image ID prefix)"
    )


def test_a_short_name_with_a_digest(store: Store, tmp_path: Path) -> None:
    digest = _import(store, _image(tmp_path, b"d"), "localhost/app:v1")
    assert store.resolve(f"app@{digest}").digest == digest
    assert store.resolve(f"localhost/app@{digest}").digest == digest
    with pytest.raises(ImageNotFound, match="tried localhost/other@"):
        store.resolve(f"other@{digest}")


def test_tag_and_untag_with_short_names(store: Store, tmp_path: Path) -> None:
    digest = _import(store, _image(tmp_path, b"t"), "quay.io/org/app:v1")
    assert str(store.tag("quay.io/org/app:v1", "myapp:v1")) == "localhost/myapp:v1"
    assert str(store.tag("myapp:v1", "docker.io/myapp:v1")) == "docker.io/library/myapp:v1"
    assert sorted(store.names(digest)) == [
        "docker.io/library/myapp:v1",
        "localhost/myapp:v1",
        "quay.io/org/app:v1",
    ]
    store.untag("myapp:v1")  # the localhost/ name, the first the store holds
    assert "localhost/myapp:v1" not in store.names(digest)
    store.untag("myapp:v1")  # now Docker's
    assert store.names(digest) == ["quay.io/org/app:v1"]
    with pytest.raises(ImageNotFound, match="localhost/myapp:v1: no image has this name"):
        store.untag("myapp:v1")


# -- image IDs ----------------------------------------------------------------------------------


def test_the_image_id_is_the_config_digest(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, b"id")
    digest = _import(store, image, "localhost/app:v1")
    [entry] = store.images()
    assert entry.digest == digest  # the manifest digest stays what --digests shows
    assert entry.image_id == _config(image) != digest
    assert entry.id == _config(image).hex
    assert store.image_id(store.resolve("app:v1")) == _config(image)
    # An entry made without a store has only its manifest digest to go by.
    assert ImageEntry(None, entry.descriptor).image_id == digest


def test_the_id_of_an_index_is_its_digest(store: Store, tmp_path: Path) -> None:
    multi = make_index_layout(tmp_path / "multi", ref="v1")
    ctx = Context(store_dir=store.root)
    options = CopyOptions(all_platforms=True)
    digest = copy_image(parse(multi.transport_ref), parse("store:multi:v1"), ctx, options).digest
    [entry] = store.images()
    assert entry.image_id == digest
    assert store.resolve(digest.hex[:12]).digest == digest


@pytest.mark.parametrize("form", ["hex", "sha256:"])
@pytest.mark.parametrize("length", [3, 12, 64])
def test_an_id_prefix_of_the_config_or_the_manifest(
    store: Store, tmp_path: Path, form: str, length: int
) -> None:
    image = _image(tmp_path, b"p")
    digest = _import(store, image, "localhost/app:v1")
    _import(store, _image(tmp_path, b"q"), "localhost/other:v1")
    for full in (_config(image), digest):
        prefix = full.hex[:length]
        if length == 3 and any(
            e.digest.hex.startswith(prefix) or e.image_id.hex.startswith(prefix)
            for e in store.images()
            if e.digest != digest
        ):
            continue  # the other image shares these 3 characters: covered below
        name = prefix if form == "hex" else f"sha256:{prefix}"
        found = store.resolve(name)
        assert found.digest == digest, name
        assert found.ref_name is None


def test_two_names_of_one_image_are_not_ambiguous(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, b"n")
    digest = _import(store, image, "localhost/app:v1")
    store.tag("app:v1", "app:v2")
    for prefix in (_config(image).hex[:12], digest.hex[:12]):
        assert store.resolve(prefix).digest == digest
    with pytest.raises(StoreError, match=f"image {_config(image).short} has several names"):
        store.remove(_config(image).hex[:12])  # by ID with two names: -f, as podman
    result = store.remove(_config(image).hex[:12], force=True)
    assert sorted(result.untagged) == ["localhost/app:v1", "localhost/app:v2"]
    assert result.deleted == digest
    assert result.image_id == _config(image)
    assert store.images() == []


def _two_manifests_one_config(store: Store) -> tuple[ImageManifest, ImageManifest]:
    """Two images (manifests) with one config, as a recompressed copy of an image is."""
    raw = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    config = Descriptor(mt.OCI_CONFIG, store.put_bytes(raw.encode()), len(raw))
    one = ImageManifest.build(config, [], annotations={"n": "1"})
    two = ImageManifest.build(config, [], annotations={"n": "2"})
    for n, doc in enumerate((one, two), 1):
        store.put_bytes(doc.raw, doc.digest)
        store.set_ref(f"localhost/m{n}:latest", doc.descriptor())
    return one, two


def test_a_prefix_of_two_images_is_ambiguous_and_lists_them(store: Store) -> None:
    one, two = _two_manifests_one_config(store)
    config = one.config.digest
    with pytest.raises(AmbiguousImageID) as caught:
        store.resolve(config.hex[:12])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{config.hex[:12]}: ambiguous image ID, matches 2 images: ")
    for name, doc in (("localhost/m1:latest", one), ("localhost/m2:latest", two)):
        assert f"{name} (ID {config.short}, manifest {doc.digest.short})" in message
    # One config: more of the ID cannot choose, even all of it; the hint says what can.
    assert message.endswith("they share one config; give a name or the manifest digest")
    with pytest.raises(AmbiguousImageID, match=r"give a name or the manifest digest$"):
        store.resolve(config.hex)
    # Each manifest digest still tells them apart; names are looked up before IDs.
    assert store.resolve(one.digest.hex[:12]).digest == one.digest
    assert store.resolve(two.digest.hex[:12]).digest == two.digest
    assert store.resolve("m2").digest == two.digest
    with pytest.raises(AmbiguousImageID):
        store.remove(config.hex[:12], force=True)
    assert len(store.images()) == 2  # nothing removed


def test_a_prefix_matching_one_images_manifest_and_anothers_config(store: Store) -> None:
    one, two = _two_manifests_one_config(store)
    # Give m1's manifest digest as "config" to a third image: the prefix then names two.
    third = ImageManifest.build(Descriptor(mt.OCI_CONFIG, one.digest, one.size), [])
    store.put_bytes(third.raw, third.digest)
    store.set_ref("localhost/m3:latest", third.descriptor())
    with pytest.raises(AmbiguousImageID, match="matches 2 images: ") as caught:
        store.resolve(one.digest.hex[:12])
    assert "localhost/m1:latest (ID" in str(caught.value)
    assert f"localhost/m3:latest (ID {one.digest.short}" in str(caught.value)
    assert store.resolve(two.digest.hex[:12]).digest == two.digest


def test_a_damaged_manifest_only_loses_its_config_id(store: Store, tmp_path: Path) -> None:
    good = _image(tmp_path, b"good")
    bad = _image(tmp_path, b"bad")
    good_digest = _import(store, good, "localhost/good:v1")
    bad_digest = _import(store, bad, "localhost/bad:v1")
    store.blob_path(bad_digest).write_bytes(b"{damaged")  # no longer hashes to its name
    assert store.resolve(_config(good).hex[:12]).digest == good_digest
    with pytest.raises(ImageNotFound):
        store.resolve(_config(bad).hex[:12])  # its config digest cannot be read any more
    assert store.resolve(bad_digest.hex[:12]).digest == bad_digest  # its manifest digest can
    bad_entry = next(e for e in store.images() if e.digest == bad_digest)
    assert bad_entry.image_id == bad_digest  # the ID images shows falls back
    store.blob_path(bad_digest).unlink()  # missing: the same, read by a fresh Store
    assert Store.open(store.root).resolve(_config(good).hex[:12]).digest == good_digest


def test_names_read_no_manifest_and_prefixes_read_each_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = [_image(tmp_path, bytes([ord("a") + i])) for i in range(4)]
    for n, image in enumerate(images):
        _import(store, image, f"localhost/app:{n}")
    fresh = Store.open(store.root)  # nothing cached yet
    reads: list[Digest] = []
    real = Store.get_manifest

    def counting(self: Store, digest: Digest, media_type: str | None = None) -> object:
        reads.append(digest)
        return real(self, digest, media_type)

    monkeypatch.setattr(Store, "get_manifest", counting)
    for n in range(4):
        fresh.resolve(f"app:{n}")
    assert reads == []  # a name lookup reads no manifest
    fresh.resolve(_config(images[2]).hex[:12])
    assert len(reads) == 4 and len(set(reads)) == 4
    fresh.resolve(_config(images[3]).hex[:12])
    assert len(reads) == 4  # configs are known now: no second read
