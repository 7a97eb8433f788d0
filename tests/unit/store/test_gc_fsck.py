"""Garbage collection and fsck of the store."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clusterimage.copy import CopyOptions, copy_image
from clusterimage.oci.digest import Digest
from clusterimage.store import Problem, Store, StoreBusy, StoreDamaged
from clusterimage.transports import Context, parse
from tests.fixtures.oci_layout import OciImage, make_oci_layout
from tests.helpers.images import make_index_layout


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(
        tmp_path / "src", ref="v1", layers=({"a": b"layer one"}, {"b": b"layer two"})
    )


def _import(store: Store, source: str, name: str, all_platforms: bool = False) -> Digest:
    ctx = Context(store_dir=store.root)
    options = CopyOptions(all_platforms=all_platforms)
    return copy_image(parse(source), parse(f"store:{name}"), ctx, options).digest


def _blobs(store: Store) -> set[str]:
    return {f"sha256:{p.name}" for p in (store.root / "blobs" / "sha256").iterdir()}


def test_gc_keeps_reachable_and_removes_the_rest(store: Store, image: OciImage) -> None:
    _import(store, image.transport_ref, "app:1")
    before = _blobs(store)
    assert before == {image.manifest.digest, *image.blob_digests()}
    stray = store.put_bytes(b"unreferenced")
    with store.blob_writer(Digest.of(b"partial data"), 12) as writer:
        writer.write(b"partial")
    result = store.gc()
    assert [d for d, _ in result.blobs] == [stray]
    assert result.partial_files == 1
    assert result.freed == len(b"unreferenced") + len(b"partial")
    assert _blobs(store) == before
    assert store.fsck() == []
    store.remove("app:1")
    result = store.gc()
    assert {str(d) for d, _ in result.blobs} == before
    assert _blobs(store) == set()


def test_gc_walks_indexes(store: Store, tmp_path: Path) -> None:
    multi = make_index_layout(tmp_path / "multi")
    _import(store, multi.transport_ref, "multi:1", all_platforms=True)
    expected = {multi.index.digest}
    for img in multi.images.values():
        expected |= {img.manifest.digest, *img.blob_digests()}
    assert _blobs(store) == expected
    assert store.gc().blobs == []
    assert store.fsck() == []


def test_gc_waits_for_writers(store: Store) -> None:
    # An import holds the guard from its first blob to its tag; gc must not run in between.
    with store.writing():
        unreferenced = store.put_bytes(b"not tagged yet")
        with pytest.raises(StoreBusy, match="in use"):
            store.gc(timeout=0)
    done = threading.Event()

    def hold() -> None:
        with store.writing():
            time.sleep(0.3)
        done.set()

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.05)
    store.gc(timeout=5)  # waits for the writer, then collects
    assert done.is_set()
    thread.join()
    assert not store.has_blob(unreferenced)


def test_stale_index_temp_is_removed(store: Store) -> None:
    stale = store.state_dir / "index.json.deadbeef.tmp"
    stale.write_text("{}")
    store.gc()
    assert not stale.exists()


def test_fsck_clean_store(store: Store, image: OciImage) -> None:
    _import(store, image.transport_ref, "app:1")
    report = store.fsck_report()
    assert report.ok
    assert report.blobs == 4
    assert report.images == 1


def test_fsck_names_a_corrupt_blob(store: Store, image: OciImage) -> None:
    _import(store, image.transport_ref, "app:1")
    layer = Digest.parse(image.layers[1].digest)
    path = store.blob_path(layer)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, other content
    [problem] = store.fsck()
    assert problem.kind == "corrupt-blob"
    assert problem.digest == layer
    assert str(layer) in str(problem)


def test_fsck_corrupt_manifest_is_reported_once(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "app:1")
    store.blob_path(digest).write_bytes(b"{broken")
    problems = store.fsck()
    assert [p.kind for p in problems] == ["corrupt-blob"]
    assert problems[0].digest == digest


def test_fsck_missing_and_wrong_size(store: Store, image: OciImage) -> None:
    _import(store, image.transport_ref, "app:1")
    config = Digest.parse(image.config.digest)
    store.blob_path(config).unlink()
    problems = store.fsck()
    assert [p.kind for p in problems] == ["missing-blob"]
    assert problems[0].ref == "docker.io/library/app:1"
    assert f"missing config blob {config}" in str(problems[0])


def test_fsck_stray_files_and_bad_names(store: Store, image: OciImage) -> None:
    _import(store, image.transport_ref, "app:1")
    (store.root / "blobs" / "sha256" / "not-a-digest").write_text("x")
    index_path = store.root / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"].append(
        {**index["manifests"][0], "annotations": {"org.opencontainers.image.ref.name": "v1"}}
    )
    index["manifests"].append(index["manifests"][0])
    index_path.write_text(json.dumps(index))
    kinds = sorted(p.kind for p in store.fsck())
    assert kinds == ["index", "index", "stray"]
    messages = " ".join(str(p) for p in store.fsck())
    assert "'v1' is not a full normalised reference" in messages
    assert "listed twice" in messages
    assert "not-a-digest" in messages


def test_fsck_bad_layout_files(store: Store) -> None:
    (store.root / "oci-layout").write_text("[]")
    [problem] = store.fsck()
    assert problem.kind == "layout"


def _fsck_in_time(store: Store) -> list[Problem]:
    # A FIFO hashed the plain way would block fsck forever: run it with a deadline.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(store.fsck).result(timeout=20)


def test_fsck_reports_blobs_that_are_not_regular_files(
    store: Store, image: OciImage, tmp_path: Path
) -> None:
    _import(store, image.transport_ref, "app:1")
    fifo = Digest.parse(image.layers[0].digest)
    linked = Digest.parse(image.layers[1].digest)
    dangling = Digest.parse(image.config.digest)
    store.blob_path(fifo).unlink()
    os.mkfifo(store.blob_path(fifo))
    # Right content behind the link, and still damage: the store writes regular files only.
    copy = tmp_path / "copy"
    copy.write_bytes(store.blob_path(linked).read_bytes())
    store.blob_path(linked).unlink()
    store.blob_path(linked).symlink_to(copy)
    store.blob_path(dangling).unlink()
    store.blob_path(dangling).symlink_to(tmp_path / "nowhere")
    (store.blob_path(fifo).parent / ("0" * 64)).mkdir()
    problems = _fsck_in_time(store)
    by_digest = {p.digest: p for p in problems if p.kind == "not-regular"}
    assert set(by_digest) == {fifo, linked, dangling}  # each once: no missing/size-mismatch too
    assert str(by_digest[fifo]) == f"blob {fifo} is not a regular file (a FIFO)"
    assert str(by_digest[linked]) == f"blob {linked} is not a regular file (a symlink)"
    assert [str(p) for p in problems if p.kind != "not-regular"] == [
        f"blobs/sha256/{'0' * 64}: not a blob (a directory)"
    ]
    assert store.fsck_report().blobs == 4


def test_fsck_and_gc_with_a_fifo_as_manifest(store: Store, image: OciImage) -> None:
    digest = _import(store, image.transport_ref, "app:1")
    store.blob_path(digest).unlink()
    os.mkfifo(store.blob_path(digest))
    [problem] = _fsck_in_time(store)
    assert (problem.kind, problem.digest) == ("not-regular", digest)
    # gc does not block on it either: it refuses, since what the image needs is unknown.
    with ThreadPoolExecutor(1) as pool, pytest.raises(StoreDamaged, match="not a regular"):
        pool.submit(store.gc).result(timeout=20)
    assert store.blob_path(digest).is_fifo()
    assert [e.digest for e in store.images()] == [digest]


def test_gc_removes_unused_links_and_fifos_not_their_targets(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"not ours")
    link, fifo, folder = (Digest.of(name.encode()) for name in ("link", "fifo", "folder"))
    store.blob_path(link).symlink_to(outside)
    os.mkfifo(store.blob_path(fifo))
    store.blob_path(folder).mkdir()
    result = store.gc()
    assert sorted(result.blobs) == sorted([(link, 0), (fifo, 0)])
    assert outside.read_bytes() == b"not ours"
    assert _blobs(store) == {str(folder)}  # not a blob: fsck reports it, gc leaves it


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_gc_keeps_everything_while_a_manifest_cannot_be_read(
    store: Store, image: OciImage, damage: str
) -> None:
    digest = _import(store, image.transport_ref, "app:1")
    before = _blobs(store)
    if damage == "corrupt":
        store.blob_path(digest).write_bytes(b"{not json")
    else:
        store.blob_path(digest).unlink()
    unused = store.blob_path(Digest.of(b"unused"))
    unused.write_bytes(b"unused")
    # The layers and config of app:1 are unreachable only because its manifest is damaged:
    # deleting them would turn a re-pull of one manifest into a full download.
    with pytest.raises(StoreDamaged, match=rf"app:1.*{digest}.*clusterimage fsck"):
        store.gc()
    assert before - {str(digest)} <= _blobs(store) and unused.exists()
    # Once the damaged image is removed, gc frees its blobs as usual.
    store.untag("app:1")
    store.remove_dangling()
    result = store.gc()
    assert _blobs(store) == set()
    assert {d for d, _ in result.blobs} >= {Digest.of(b"unused")}
