"""Manifest lists in the store (clusterimage.manifests): create, add, annotate, remove, rm,
push to a layout, format conversion, and the errors each gives."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from clusterimage import manifests
from clusterimage.copy import CopyOptions, copy_image
from clusterimage.errors import (
    ClusterImageError,
    ImageNotFound,
    ManifestError,
    UsageError,
)
from clusterimage.manifests import NotAList, PlatformFlags
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, canonical_json
from clusterimage.oci.platform import Platform
from clusterimage.store import Store
from clusterimage.transports import Context, parse
from tests.fixtures.oci_layout import OciImage, host_architecture, make_oci_layout
from tests.helpers.images import OciIndexImage, make_index_layout

REF_NAME = "org.opencontainers.image.ref.name"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def _ctx(store: Store) -> Context:
    return Context(store_dir=store.root)


def _image(tmp_path: Path, name: str, arch: str) -> OciImage:
    return make_oci_layout(
        tmp_path / f"src-{name}",
        ref=name,
        architecture=arch,
        layers=({f"{name}.txt": f"{name} for {arch}\n".encode()},),
    )


def _load(store: Store, image: OciImage, name: str) -> Digest:
    """Import an OCI layout image into the store under ``name`` (as `pull` would)."""
    return copy_image(parse(image.transport_ref), parse(f"store:{name}"), _ctx(store)).digest


def _entries(store: Store) -> dict[str, dict[str, Any]]:
    data = json.loads((store.root / "index.json").read_text())
    return {e.get("annotations", {}).get(REF_NAME, ""): e for e in data["manifests"]}


def _listed(store: Store, name: str) -> dict[str, Any]:
    """The list's index as stored, read from its blob (checked against its digest)."""
    entry = _entries(store)[name]
    raw = (store.root / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == entry["digest"]
    assert entry["mediaType"] == json.loads(raw)["mediaType"]
    data: dict[str, Any] = json.loads(raw)
    return data


# -- create -----------------------------------------------------------------------------------


def test_create_stores_an_empty_oci_index_under_localhost(store: Store) -> None:
    found = manifests.create(store, "mylist:v1", annotations={"org.example/k": "v"})
    assert found.name == "localhost/mylist:v1"
    assert _listed(store, "localhost/mylist:v1") == {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [],
        "annotations": {"org.example/k": "v"},
    }
    # Found again by its short name, as the other verbs and push look it up.
    assert manifests.find_list(store, "mylist:v1").digest == found.digest
    assert store.gc().blobs == []  # the list's blob is reachable: gc keeps it


def test_a_list_made_or_edited_counts_as_stored_then(store: Store, tmp_path: Path) -> None:
    # `images` lists newest stored first: a list must not sort by a config it does not have.
    made = manifests.create(store, "mylist:v1")
    times = store.stored_times()
    assert "localhost/mylist:v1" in times[str(made.digest)]
    _load(store, _image(tmp_path, "a", "amd64"), "localhost/a:v1")
    grown, _ = manifests.add(store, "mylist:v1", "a:v1", _ctx(store))
    assert grown.digest != made.digest
    assert "localhost/mylist:v1" in store.stored_times()[str(grown.digest)]


def test_create_refuses_an_existing_name_without_amend(store: Store, tmp_path: Path) -> None:
    manifests.create(store, "mylist")
    with pytest.raises(ClusterImageError, match="exists already; use --amend"):
        manifests.create(store, "mylist")
    image = _image(tmp_path, "a", "amd64")
    _load(store, image, "localhost/plain:v1")
    with pytest.raises(ClusterImageError, match="exists already"):
        manifests.create(store, "plain:v1")
    # --amend of an image (not a list) is refused too, and changes nothing.
    before = (store.root / "index.json").read_bytes()
    with pytest.raises(NotAList, match="plain:v1: is an image"):
        manifests.create(store, "plain:v1", amend=True)
    assert (store.root / "index.json").read_bytes() == before


def test_create_with_images_and_amend(store: Store, tmp_path: Path) -> None:
    amd, arm = _image(tmp_path, "a", "amd64"), _image(tmp_path, "b", "arm64")
    found = manifests.create(store, "app:v1", [amd.transport_ref], _ctx(store))
    assert found.digests() == [Digest.parse(amd.manifest.digest)]
    again = manifests.create(store, "app:v1", [arm.transport_ref], _ctx(store), amend=True)
    listed = _listed(store, "localhost/app:v1")["manifests"]
    assert [e["digest"] for e in listed] == [amd.manifest.digest, arm.manifest.digest]
    assert [e["platform"] for e in listed] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    assert again.digest != found.digest
    # Only the list is an entry of index.json: the images it names are reached through it.
    assert set(_entries(store)) == {"localhost/app:v1"}


# -- add --------------------------------------------------------------------------------------


def test_add_copies_the_image_in_and_gc_keeps_it(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, "a", host_architecture())
    manifests.create(store, "app")
    found, added = manifests.add(store, "app", image.transport_ref, _ctx(store))
    assert added == [Digest.parse(image.manifest.digest)]
    entry = found.index.data["manifests"][0]
    assert entry == {
        "mediaType": mt.OCI_MANIFEST,
        "digest": image.manifest.digest,
        "size": image.manifest.size,
        "platform": {"architecture": host_architecture(), "os": "linux"},
    }
    store.gc()
    for digest in [image.manifest.digest, *image.blob_digests()]:
        assert store.has_blob(Digest.parse(digest)), digest
    assert store.fsck() == []


def test_add_of_the_same_digest_replaces_the_entry(store: Store, tmp_path: Path) -> None:
    amd, arm = _image(tmp_path, "a", "amd64"), _image(tmp_path, "b", "arm64")
    _load(store, amd, "localhost/a:v1")
    manifests.create(store, "app")
    manifests.add(store, "app", "a:v1", annotations={"first": "1"})
    manifests.add(store, "app", arm.transport_ref, _ctx(store))
    found, _ = manifests.add(store, "app", "a:v1", annotations={"second": "2"})
    listed = found.index.data["manifests"]
    assert [e["digest"] for e in listed] == [arm.manifest.digest, amd.manifest.digest]
    assert listed[1]["annotations"] == {"second": "2"}  # replaced, not merged nor repeated


def test_create_with_one_image_named_twice_lists_it_once(store: Store, tmp_path: Path) -> None:
    """`manifest create app IMG IMG` (or IMG by two names): one entry, as podman's
    AddInstance keeps one per digest, not the same digest twice."""
    amd, arm = _image(tmp_path, "a", "amd64"), _image(tmp_path, "b", "arm64")
    _load(store, amd, "localhost/a:v1")
    found = manifests.create(
        store, "app", [amd.transport_ref, arm.transport_ref, "a:v1"], _ctx(store)
    )
    digests = [e["digest"] for e in found.index.data["manifests"]]
    assert digests == [arm.manifest.digest, amd.manifest.digest]  # the later one stays
    assert _listed(store, "localhost/app:latest")["manifests"] == found.index.data["manifests"]


def test_add_platform_flags_override_the_config(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, "a", "arm64")
    manifests.create(store, "app")
    flags = PlatformFlags.parse(
        arch="arm", variant="v7", os_version="10.0.1", features=["sse4,avx", "aes"]
    )
    found, _ = manifests.add(store, "app", image.transport_ref, _ctx(store), platform=flags)
    assert found.index.data["manifests"][0]["platform"] == {
        "architecture": "arm",
        "os": "linux",
        "variant": "v7",
        "os.version": "10.0.1",
        "features": ["sse4", "avx", "aes"],
    }


def test_add_from_an_index_takes_one_platform_or_all(store: Store, tmp_path: Path) -> None:
    multi: OciIndexImage = make_index_layout(tmp_path / "multi", ref="m")
    source = f"oci:{multi.layout}:m"
    manifests.create(store, "one")
    arm = multi.images["linux/arm64"].manifest.digest
    found, added = manifests.add(
        store, "one", source, _ctx(store), platform=PlatformFlags.parse(arch="arm64")
    )
    assert added == [Digest.parse(arm)]
    assert found.index.data["manifests"][0]["platform"] == {"architecture": "arm64", "os": "linux"}
    manifests.create(store, "every")
    found, added = manifests.add(store, "every", source, _ctx(store), all_images=True)
    assert [str(d) for d in added] == [i.manifest.digest for i in multi.images.values()]
    store.gc()
    assert store.fsck() == []  # every image of both lists is whole after gc
    with pytest.raises(UsageError, match="--all adds each image with its own platform"):
        manifests.add(
            store, "every", source, all_images=True, platform=PlatformFlags.parse(arch="arm64")
        )
    with pytest.raises(ImageNotFound, match=r"no image for platform linux/s390x.*--all"):
        manifests.add(store, "one", source, _ctx(store), platform=PlatformFlags.parse(arch="s390x"))


def test_concurrent_adds_lose_nothing(store: Store, tmp_path: Path) -> None:
    images = [_image(tmp_path, f"i{n}", "amd64") for n in range(4)]
    for n, image in enumerate(images):
        _load(store, image, f"localhost/i{n}:v1")
    manifests.create(store, "app")
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:  # a Store of its own, as another process would have
            manifests.add(Store(store.root), "app", f"i{n}:v1")
        except BaseException as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    listed = {e["digest"] for e in _listed(store, "localhost/app:latest")["manifests"]}
    assert listed == {image.manifest.digest for image in images}


# -- annotate, remove, rm ---------------------------------------------------------------------


def test_annotate_an_entry_and_the_index(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, "a", "amd64")
    _load(store, image, "localhost/a:v1")
    manifests.create(store, "app", ["a:v1"])
    found, digest = manifests.annotate(
        store,
        "app",
        image.manifest.digest,
        platform=PlatformFlags.parse(os_features=["win32k"], variant="v3"),
        annotations={"k": "v"},
    )
    assert str(digest) == image.manifest.digest
    entry = found.index.data["manifests"][0]
    assert entry["platform"] == {
        "architecture": "amd64",
        "os": "linux",
        "variant": "v3",
        "os.features": ["win32k"],
    }
    assert entry["annotations"] == {"k": "v"}
    # By the image's name in the store too; annotations merge.
    found, _ = manifests.annotate(store, "app", "a:v1", annotations={"k2": "v2"})
    assert found.index.data["manifests"][0]["annotations"] == {"k": "v", "k2": "v2"}
    found, none = manifests.annotate(store, "app", None, annotations={"top": "1"}, on_index=True)
    assert none is None and found.index.data["annotations"] == {"top": "1"}
    assert _listed(store, "localhost/app:latest") == found.index.data


def test_annotate_by_the_name_of_a_multi_platform_image(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed by its platforms' digests, a multi-platform image of the store is found by its
    name: the one platform a list holds, or this host's of several."""
    multi = make_index_layout(tmp_path / "multi", ref="m", platforms=("amd64", "arm64", "s390x"))
    options = CopyOptions(all_platforms=True)
    copy_image(
        parse(f"oci:{multi.layout}:m"), parse("store:localhost/multi:v1"), _ctx(store), options
    )
    arm = Digest.parse(multi.images["linux/arm64"].manifest.digest)
    manifests.create(store, "one")
    manifests.add(store, "one", "multi:v1", platform=PlatformFlags.parse(arch="arm64"))
    _, digest = manifests.annotate(store, "one", "multi:v1", annotations={"k": "v"})
    assert digest == arm
    manifests.create(store, "every")
    manifests.add(store, "every", "multi:v1", all_images=True)
    monkeypatch.setattr(
        manifests.Platform, "host", classmethod(lambda cls: Platform("linux", "arm64"))
    )
    found, digest = manifests.annotate(store, "every", "multi:v1", annotations={"k": "v"})
    assert digest == arm
    annotated = [e for e in found.index.data["manifests"] if e.get("annotations")]
    assert [e["digest"] for e in annotated] == [str(arm)]
    # Several platforms listed, none this host's: which one is meant is not guessed.
    manifests.remove(store, "every", str(arm))
    with pytest.raises(ImageNotFound, match=r"2 of its platforms are in the manifest list .*"
                       r"\(linux/amd64, linux/s390x\), none this host's"):  # fmt: skip
        manifests.annotate(store, "every", "multi:v1", annotations={"k": "v"})


def test_annotate_errors(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, "a", "amd64")
    other = _image(tmp_path, "b", "amd64")
    _load(store, image, "localhost/a:v1")
    _load(store, other, "localhost/b:v1")
    manifests.create(store, "app", ["a:v1"])
    with pytest.raises(ImageNotFound, match=r"not in the manifest list localhost/app:latest"):
        manifests.annotate(store, "app", "b:v1", annotations={"k": "v"})
    with pytest.raises(ImageNotFound, match="not in the manifest list"):
        manifests.annotate(store, "app", "sha256:" + "0" * 64, annotations={"k": "v"})
    with pytest.raises(ImageNotFound, match="neither a digest nor an image"):
        manifests.annotate(store, "app", "nosuch:v9", annotations={"k": "v"})
    with pytest.raises(UsageError, match="nothing to annotate"):
        manifests.annotate(store, "app", "a:v1")
    with pytest.raises(UsageError, match="only --annotation applies"):
        manifests.annotate(
            store, "app", None, on_index=True, platform=PlatformFlags.parse(arch="arm64")
        )


def test_remove_an_entry(store: Store, tmp_path: Path) -> None:
    amd, arm = _image(tmp_path, "a", "amd64"), _image(tmp_path, "b", "arm64")
    manifests.create(store, "app", [amd.transport_ref, arm.transport_ref], _ctx(store))
    found = manifests.remove(store, "app", amd.manifest.digest)
    assert [str(d) for d in found.digests()] == [arm.manifest.digest]
    with pytest.raises(ImageNotFound, match="not in the manifest list app"):
        manifests.remove(store, "app", amd.manifest.digest)
    with pytest.raises(UsageError, match="takes the digest of an entry"):
        manifests.remove(store, "app", "a:v1")
    # What left the list goes at the next gc; what stays is kept.
    store.gc()
    assert not store.has_blob(Digest.parse(amd.manifest.digest))
    assert store.has_blob(Digest.parse(arm.manifest.digest))


def test_rm_removes_the_list_not_the_images(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, "a", "amd64")
    _load(store, image, "localhost/a:v1")
    manifests.create(store, "app", ["a:v1"])
    manifests.create(store, "other")
    removed = manifests.delete(store, ["app"])
    assert removed[0][0] == "localhost/app:latest" and removed[0][1] is not None
    assert set(_entries(store)) == {"localhost/a:v1", "localhost/other:latest"}
    store.gc()
    assert store.fsck() == []
    # A name that is no list removes nothing, not even the lists named before it.
    with pytest.raises(NotAList):
        manifests.delete(store, ["other", "a:v1"])
    assert "localhost/other:latest" in _entries(store)


def test_rm_of_one_list_named_twice_removes_it_once(store: Store) -> None:
    """`manifest rm app app` or `manifest rm app localhost/app:latest`: one list, removed once
    and reported once (podman's rm dedupes), not removed and then "not known"."""
    manifests.create(store, "app")
    manifests.create(store, "keep")
    removed = manifests.delete(store, ["app", "localhost/app:latest", "app"])
    assert [name for name, _ in removed] == ["localhost/app:latest"]
    assert set(_entries(store)) == {"localhost/keep:latest"}


def test_two_empty_lists_share_a_digest_but_edit_apart(store: Store, tmp_path: Path) -> None:
    first = manifests.create(store, "one")
    second = manifests.create(store, "two")
    assert first.digest == second.digest
    image = _image(tmp_path, "a", "amd64")
    manifests.add(store, "one", image.transport_ref, _ctx(store))
    assert _listed(store, "localhost/two:latest")["manifests"] == []


# -- errors -----------------------------------------------------------------------------------


def test_lookup_errors(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match=r"nolist: manifest list not known \(tried"):
        manifests.find_list(store, "nolist")
    with pytest.raises(ImageNotFound, match="nothing is stored yet"):
        manifests.find_list(None, "nolist")
    image = _image(tmp_path, "a", "amd64")
    _load(store, image, "localhost/a:v1")
    with pytest.raises(NotAList, match=r"a:v1: is an image \(.*\), not a manifest list"):
        manifests.add(store, "a:v1", image.transport_ref)


@pytest.mark.parametrize("value", ["novalue", "=v", " k=v", ""])
def test_bad_annotation(value: str) -> None:
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        manifests.parse_annotations([value])


def test_annotation_values_may_hold_equals() -> None:
    assert manifests.parse_annotations(["a=b=c", "e="]) == {"a": "b=c", "e": ""}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"arch": "foo"}, "--arch 'foo': unknown"),
        ({"arch": "linux"}, "--arch 'linux': not an architecture"),
        ({"os": "arm64"}, "--os 'arm64': not an operating system"),
        ({"os": "l/x"}, "--os 'l/x': not an operating system"),
        ({"variant": "v 7"}, "--variant 'v 7': expected one word"),
    ],
)
def test_bad_platform_flags(flags: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        PlatformFlags.parse(**flags)  # type: ignore[arg-type]


def test_platform_flags_normalise() -> None:
    flags = PlatformFlags.parse(os="Linux", arch="aarch64")
    assert (flags.os, flags.arch) == ("linux", "arm64")
    assert str(flags.selection()) == "linux/arm64"


# -- push and formats -------------------------------------------------------------------------


def test_push_to_a_layout_with_and_without_images(store: Store, tmp_path: Path) -> None:
    amd, arm = _image(tmp_path, "a", "amd64"), _image(tmp_path, "b", "arm64")
    found = manifests.create(store, "app", [amd.transport_ref, arm.transport_ref], _ctx(store))
    out = tmp_path / "out"
    result = manifests.push(store, "app", parse(f"oci:{out}:v1"), _ctx(store))
    assert result.digest == found.digest
    assert (out / "blobs" / "sha256" / found.digest.hex).read_bytes() == found.index.raw
    for digest in [amd.manifest.digest, *amd.blob_digests(), *arm.blob_digests()]:
        assert (out / "blobs" / "sha256" / digest.split(":")[1]).is_file()
    only = tmp_path / "only"
    result = manifests.push(store, "app", parse(f"oci:{only}:v1"), _ctx(store), all_images=False)
    assert result.digest == found.digest
    assert {p.name for p in (only / "blobs" / "sha256").iterdir()} == {found.digest.hex}


def test_push_as_v2s2_converts_list_and_images(store: Store, tmp_path: Path) -> None:
    amd = _image(tmp_path, "a", "amd64")
    manifests.create(store, "app", [amd.transport_ref], _ctx(store))
    out = tmp_path / "out"
    result = manifests.push(
        store, "app", parse(f"oci:{out}:v1"), _ctx(store), fmt="v2s2", options=CopyOptions()
    )
    raw = (out / "blobs" / "sha256" / result.digest.hex).read_bytes()
    index = json.loads(raw)
    assert index["mediaType"] == mt.DOCKER_MANIFEST_LIST
    (entry,) = index["manifests"]
    assert entry["mediaType"] == mt.DOCKER_MANIFEST
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    child = json.loads((out / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes())
    assert child["config"]["mediaType"] == mt.DOCKER_CONFIG
    assert child["config"]["digest"] == amd.config.digest  # the same config bytes
    assert [layer["mediaType"] for layer in child["layers"]] == [mt.DOCKER_LAYER_GZIP]
    # The store's list is unchanged: conversion happens on the way out.
    assert manifests.find_list(store, "app").index.media_type == mt.OCI_INDEX
    with pytest.raises(UsageError, match="expected oci or v2s2"):
        manifests.push(store, "app", parse(f"oci:{out}:v2"), _ctx(store), fmt="docker")


def test_push_as_v2s2_with_zstd_is_refused_not_pushed_as_oci(store: Store, tmp_path: Path) -> None:
    """Schema2 cannot say zstd: the copy would rewrite every manifest as OCI, so the list that
    lands is not the v2s2 asked for. Refused before anything is written, as podman does."""
    amd = _image(tmp_path, "a", "amd64")
    manifests.create(store, "app", [amd.transport_ref], _ctx(store))
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=r"v2s2 cannot carry zstd"):
        manifests.push(
            store,
            "app",
            parse(f"oci:{out}:v1"),
            _ctx(store),
            fmt="v2s2",
            options=CopyOptions(compression_format="zstd"),
        )
    assert not out.exists()
    # gzip is what schema2 says: that push is v2s2 through and through.
    result = manifests.push(
        store,
        "app",
        parse(f"oci:{out}:v1"),
        _ctx(store),
        fmt="v2s2",
        options=CopyOptions(compression_format="gzip"),
    )
    index = json.loads((out / "blobs" / "sha256" / result.digest.hex).read_bytes())
    assert index["mediaType"] == mt.DOCKER_MANIFEST_LIST
    assert [e["mediaType"] for e in index["manifests"]] == [mt.DOCKER_MANIFEST]


def test_convert_refuses_what_v2s2_cannot_say() -> None:
    config = {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "1" * 64, "size": 2}
    layer = {"mediaType": mt.OCI_LAYER_ZSTD, "digest": "sha256:" + "2" * 64, "size": 3}
    data = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config, "layers": [layer]}
    manifest = ImageManifest(canonical_json(data), mt.OCI_MANIFEST, data)
    with pytest.raises(ManifestError, match="zstd layer cannot be written as v2s2"):
        manifests.convert_manifest(manifest, "v2s2")
    back = manifests.convert_manifest(manifest, "oci")
    assert back is manifest  # already OCI: the same bytes


def test_a_docker_list_turns_oci_when_annotated(store: Store, tmp_path: Path) -> None:
    image = _image(tmp_path, "a", "amd64")
    entry = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": image.manifest.digest,
        "size": image.manifest.size,
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    data = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [entry]}
    docker_list = ImageIndex(canonical_json(data), mt.DOCKER_MANIFEST_LIST, data)
    layout = image.layout
    (layout / "blobs" / "sha256" / docker_list.digest.hex).write_bytes(docker_list.raw)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append(
        {**docker_list.descriptor().to_dict(), "annotations": {REF_NAME: "list"}}
    )
    (layout / "index.json").write_text(json.dumps(index))
    copy_image(
        parse(f"oci:{layout}:list"),
        parse("store:localhost/dl:v1"),
        _ctx(store),
        CopyOptions(all_platforms=True),
    )
    assert manifests.find_list(store, "dl:v1").index.media_type == mt.DOCKER_MANIFEST_LIST
    found, _ = manifests.annotate(store, "dl:v1", image.manifest.digest, annotations={"k": "v"})
    assert found.index.media_type == mt.OCI_INDEX
    assert _listed(store, "localhost/dl:v1")["mediaType"] == mt.OCI_INDEX
