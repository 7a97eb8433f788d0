"""The copy engine against in-memory transports (unit level)."""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from clusterimage import recompress
from clusterimage.blobinfo import BlobInfoCache
from clusterimage.copy import CopyEvent, CopyJob, CopyOptions, CopyResult, copy_image, copy_many
from clusterimage.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    LayerError,
    TransportError,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest, check
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest, parse_manifest
from clusterimage.oci.platform import Platform
from clusterimage.transports.base import (
    BlobKind,
    Context,
    ImageDestination,
    ImageReference,
    ImageSource,
    ProgressFn,
)


class MemoryPlace:
    """A place holding blobs and manifests in dicts, plus the name of its top manifest."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.manifests: dict[Digest, bytes] = {}
        self.top: Digest | None = None
        self.partial: dict[Digest, bytes] = {}
        self.mountable: set[Digest] = set()
        self.opened: list[tuple[Digest, int]] = []
        self.order: list[str] = []
        self.kinds: dict[Digest, str] = {}

    def add_blob(self, data: bytes, media_type: str = mt.OCI_LAYER_GZIP) -> Descriptor:
        digest = Digest.of(data)
        self.blobs[digest] = data
        return Descriptor(media_type, digest, len(data))

    def add_manifest(self, manifest: Manifest) -> Descriptor:
        self.manifests[manifest.digest] = manifest.raw
        return manifest.descriptor()


class MemorySource(ImageSource):
    supports_ranges = True

    def __init__(self, place: MemoryPlace) -> None:
        self.place = place

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        key = digest or self.place.top
        assert key is not None
        return parse_manifest(self.place.manifests[key])

    @contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        if desc.digest not in self.place.blobs:
            raise BlobNotFound(f"blob {desc.digest} not found")
        self.place.opened.append((desc.digest, offset))
        yield io.BytesIO(self.place.blobs[desc.digest][offset:])


class MemoryDestination(ImageDestination):
    def __init__(self, place: MemoryPlace) -> None:
        self.place = place
        self._lock = threading.Lock()

    def has_blob(self, desc: Descriptor) -> bool:
        return desc.digest in self.place.blobs

    def blob_offset(self, desc: Descriptor) -> int:
        return len(self.place.partial.get(desc.digest, b""))

    def try_mount(self, desc: Descriptor, source: ImageSource) -> bool:
        if desc.digest in self.place.mountable:
            assert isinstance(source, MemorySource)
            self.place.blobs[desc.digest] = source.place.blobs[desc.digest]
            return True
        return False

    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
        *,
        kind: BlobKind = "layer",
    ) -> None:
        self.place.kinds[desc.digest] = kind
        data = self.place.partial.pop(desc.digest, b"")[:offset] + stream.read()
        hasher = desc.digest.hasher()
        hasher.update(data)
        check(desc.digest, desc.size, hasher)
        if progress:
            progress(len(data) - offset)
        with self._lock:
            self.place.blobs[desc.digest] = data
            self.place.order.append(f"blob {desc.digest.short}")

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        self.place.manifests[manifest.digest] = manifest.raw
        self.place.order.append(f"{'top' if top else 'child'} {manifest.digest.short}")
        if top:
            self.place.top = manifest.digest
        return manifest


class MemoryReference(ImageReference):
    transport = "memory"

    def __init__(self, place: MemoryPlace) -> None:
        self.place = place

    def new_source(self, ctx: Context) -> ImageSource:
        return MemorySource(self.place)

    def new_destination(self, ctx: Context) -> ImageDestination:
        return MemoryDestination(self.place)

    def __str__(self) -> str:
        return "memory:test"


def _image(place: MemoryPlace, *layers: bytes, arch: str = "amd64") -> ImageManifest:
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}})
    config_desc = place.add_blob(config.encode(), mt.OCI_CONFIG)
    manifest = ImageManifest.build(config_desc, [place.add_blob(x) for x in layers])
    place.add_manifest(manifest)
    return manifest


def _multiarch(place: MemoryPlace) -> ImageIndex:
    amd = _image(place, b"shared", b"amd64 only", arch="amd64")
    arm = _image(place, b"shared", b"arm64 only", arch="arm64")
    index = ImageIndex.build(
        [
            amd.descriptor(platform=Platform("linux", "amd64")),
            arm.descriptor(platform=Platform("linux", "arm64", "v8")),
        ]
    )
    place.add_manifest(index)
    place.top = index.digest
    return index


def test_single_image_copies_blobs_then_manifest_with_same_digest() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, b"layer one", b"layer two")
    src.top = manifest.digest
    result = copy_image(MemoryReference(src), MemoryReference(dst))
    assert result.digest == manifest.digest
    assert dst.manifests[manifest.digest] == manifest.raw
    assert set(dst.blobs) == {d.digest for d in manifest.blobs}
    assert dst.order[-1] == f"top {manifest.digest.short}"
    assert result.blobs_copied == 3 and result.blobs_skipped == 0


def test_config_first_then_layers_largest_first() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    # Every layer is larger than the config, so size alone would put the config last.
    manifest = _image(src, b"s" * 100, b"l" * 500, b"m" * 200)
    assert all(layer.size > manifest.config.size for layer in manifest.layers)
    src.top = manifest.digest
    copy_image(MemoryReference(src), MemoryReference(dst), Context(jobs=1))
    by_size = sorted(manifest.layers, key=lambda d: d.size, reverse=True)
    expected = [manifest.config, *by_size]
    assert dst.order[:-1] == [f"blob {d.digest.short}" for d in expected]


def test_existing_blobs_are_skipped_and_mounts_are_used() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, b"already there", b"mount me")
    src.top = manifest.digest
    dst.blobs[manifest.layers[0].digest] = b"already there"
    dst.mountable.add(manifest.layers[1].digest)
    events: list[CopyEvent] = []
    result = copy_image(
        MemoryReference(src), MemoryReference(dst), options=CopyOptions(on_event=events.append)
    )
    assert (result.blobs_copied, result.blobs_skipped, result.blobs_mounted) == (1, 1, 1)
    kinds = {e.descriptor.digest: e.kind for e in events if e.kind != "blob-progress"}
    assert kinds[manifest.layers[0].digest] == "blob-skipped"
    assert kinds[manifest.layers[1].digest] == "blob-mounted"
    assert kinds[manifest.config.digest] == "blob-done"


def test_index_selects_requested_platform() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    index = _multiarch(src)
    arm = index.manifests[1]
    result = copy_image(
        MemoryReference(src),
        MemoryReference(dst),
        Context(platform=Platform.parse("linux/arm64")),
    )
    assert result.digest == arm.digest
    assert dst.top == arm.digest
    assert index.digest not in dst.manifests
    assert Digest.of(b"amd64 only") not in dst.blobs


def test_index_without_match_names_available_platforms() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    _multiarch(src)
    with pytest.raises(ImageNotFound, match=r"linux/amd64, linux/arm64"):
        copy_image(
            MemoryReference(src),
            MemoryReference(dst),
            Context(platform=Platform.parse("linux/s390x")),
        )


def test_all_platforms_keeps_the_index_bytes_and_dedupes_blobs() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    index = _multiarch(src)
    result = copy_image(
        MemoryReference(src), MemoryReference(dst), options=CopyOptions(all_platforms=True)
    )
    assert result.digest == index.digest
    assert dst.manifests[index.digest] == index.raw
    # children first, index last
    assert [o.split()[0] for o in dst.order[-3:]] == ["child", "child", "top"]
    opened = [d for d, _ in src.opened]
    assert opened.count(Digest.of(b"shared")) == 1
    assert result.blobs_copied == 5  # 2 configs + shared + 2 arch layers


def test_resume_starts_at_destination_offset() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, b"0123456789" * 100)
    src.top = manifest.digest
    layer = manifest.layers[0]
    dst.partial[layer.digest] = b"0123456789" * 40
    copy_image(MemoryReference(src), MemoryReference(dst))
    assert (layer.digest, 400) in src.opened
    assert dst.blobs[layer.digest] == b"0123456789" * 100


def test_corrupt_source_fails_and_leaves_no_top_manifest() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, b"good bytes")
    src.top = manifest.digest
    src.blobs[manifest.layers[0].digest] = b"bad bytes!"
    with pytest.raises(DigestMismatch, match=str(manifest.layers[0].digest)):
        copy_image(MemoryReference(src), MemoryReference(dst))
    assert dst.top is None
    assert manifest.layers[0].digest not in dst.blobs


def test_missing_blob_error_propagates_from_worker_threads() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, *(f"layer {i}".encode() for i in range(10)))
    src.top = manifest.digest
    del src.blobs[manifest.layers[5].digest]
    with pytest.raises(BlobNotFound):
        copy_image(MemoryReference(src), MemoryReference(dst), Context(jobs=4))
    assert dst.top is None


# -- recompression remembered between copies ------------------------------------------------


def _zstd_copy(
    src: MemoryPlace, dst: MemoryPlace, cache: Path, events: list[CopyEvent] | None = None
) -> CopyResult:
    ctx = Context(blob_info=BlobInfoCache(cache), tmp_dir=cache.parent / "tmp")
    options = CopyOptions(
        compression_format="zstd",
        on_event=events.append if events is not None else None,
    )
    return copy_image(MemoryReference(src), MemoryReference(dst), ctx, options)


@pytest.fixture
def recompressions(monkeypatch: pytest.MonkeyPatch) -> list[Digest]:
    """The source digests of the layers recompressed (the real work is still done)."""
    calls: list[Digest] = []
    real = recompress.recompress

    def counting(stream: IO[bytes], source: Descriptor, *args: Any) -> recompress.Recompressed:
        calls.append(source.digest)
        return real(stream, source, *args)

    monkeypatch.setattr(recompress, "recompress", counting)
    return calls


def _gzip_image(src: MemoryPlace) -> ImageManifest:
    manifest = _image(src, gzip.compress(b"some layer content " * 2000, mtime=0))
    src.top = manifest.digest
    return manifest


def test_recompressed_layers_are_reused_not_recompressed_again(
    tmp_path: Path, recompressions: list[Digest]
) -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _gzip_image(src)
    layer = manifest.layers[0]
    cache = tmp_path / "cache.db"
    first = _zstd_copy(src, dst, cache)
    assert first.blobs_recompressed == 1 and recompressions == [layer.digest]
    pushed = parse_manifest(dst.manifests[first.digest])
    assert isinstance(pushed, ImageManifest)
    zstd_layer = pushed.layers[0]
    assert zstd_layer.media_type == mt.OCI_LAYER_ZSTD

    # Again to the same place: the recorded blob is there, so the layer is not even read.
    src.opened.clear()
    events: list[CopyEvent] = []
    second = _zstd_copy(src, dst, cache, events)
    assert second.digest == first.digest and recompressions == [layer.digest]
    assert (second.blobs_recompressed, second.blobs_skipped, second.blobs_copied) == (0, 2, 0)
    assert src.opened == []
    assert [e.kind for e in events if e.descriptor.digest == layer.digest] == [
        "blob-planned",
        "blob-skipped",
    ]

    # A place that can mount the recorded blob from elsewhere mounts it instead.
    other = MemoryPlace()
    other.mountable.add(zstd_layer.digest)
    src.blobs[zstd_layer.digest] = dst.blobs[zstd_layer.digest]  # where the mount comes from
    third = _zstd_copy(src, other, cache)
    assert third.digest == first.digest
    assert (third.blobs_mounted, third.blobs_recompressed) == (1, 0)
    assert other.manifests[third.digest] == dst.manifests[first.digest]


def test_a_stale_or_edited_recompression_record_falls_back_to_recompressing(
    tmp_path: Path, recompressions: list[Digest]
) -> None:
    src = MemoryPlace()
    layer = _gzip_image(src).layers[0]
    cache = tmp_path / "cache.db"
    first = _zstd_copy(src, MemoryPlace(), cache)
    recorded = BlobInfoCache(cache).recompressed(layer.digest, "zstd")
    assert recorded is not None and recorded.media_type == mt.OCI_LAYER_ZSTD

    # A destination without the recorded blob (stale for it): recompress, same result.
    fresh = MemoryPlace()
    assert _zstd_copy(src, fresh, cache).digest == first.digest
    assert len(recompressions) == 2

    # Entries pointing at a blob nobody has, or not even a digest: recompress, and the
    # entry is repaired so the next copy reuses the blob again.
    for bad in ("sha256:" + "0" * 64, "not-a-digest"):
        with sqlite3.connect(cache) as db:
            db.execute("UPDATE recompressed SET digest = ?", (bad,))
        result = _zstd_copy(src, fresh, cache)
        assert result.digest == first.digest and result.blobs_recompressed == 1
        assert BlobInfoCache(cache).recompressed(layer.digest, "zstd") == recorded
    assert _zstd_copy(src, fresh, cache).blobs_recompressed == 0

    # A cache file that is not a database at all is ignored, never an error.
    cache.unlink()
    cache.write_bytes(b"garbage" * 100)
    assert _zstd_copy(src, fresh, cache).blobs_recompressed == 1


class _SlowStream(io.RawIOBase):
    """1 KiB per 10 ms: a 1 MiB blob would take ~10 s. Each read is noted in ``reads``."""

    def __init__(self, data: bytes, reads: list[int]) -> None:
        self._data = io.BytesIO(data)
        self._reads = reads

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        time.sleep(0.01)
        self._reads.append(1)
        return self._data.read(1024)


class _SlowReference(MemoryReference):
    """A place whose blob ``slow`` reads as a :class:`_SlowStream`, and which takes blobs
    chunk by chunk with progress after each (where the copy stops a transfer it cancelled)."""

    def __init__(self, place: MemoryPlace, slow: Digest, reads: list[int]) -> None:
        super().__init__(place)
        self.slow, self.reads = slow, reads

    def new_source(self, ctx: Context) -> ImageSource:
        outer = self

        class Source(MemorySource):
            @contextmanager
            def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
                if desc.digest != outer.slow:
                    with super().open_blob(desc, offset) as stream:
                        yield stream
                    return
                data = self.place.blobs[desc.digest][offset:]
                yield _SlowStream(data, outer.reads)  # type: ignore[misc]

        return Source(self.place)

    def new_destination(self, ctx: Context) -> ImageDestination:
        class Destination(MemoryDestination):
            def put_blob(
                self,
                desc: Descriptor,
                stream: IO[bytes],
                offset: int = 0,
                progress: ProgressFn | None = None,
                *,
                kind: BlobKind = "layer",
            ) -> None:
                data = b""
                while chunk := stream.read(1 << 16):
                    data += chunk
                    if progress:
                        progress(len(chunk))
                super().put_blob(desc, io.BytesIO(data), offset, kind=kind)

        return Destination(self.place)


def test_a_failing_blob_stops_the_transfers_in_flight_promptly() -> None:
    """One blob failing must not leave the copy waiting for every other transfer to finish."""
    src, dst = MemoryPlace(), MemoryPlace()
    big = b"x" * (1 << 20)
    manifest = _image(src, big, b"missing layer")
    src.top = manifest.digest
    del src.blobs[manifest.layers[1].digest]
    reads: list[int] = []
    slow = manifest.layers[0].digest

    started = time.monotonic()
    with pytest.raises(BlobNotFound):
        copy_image(
            _SlowReference(src, slow, reads), _SlowReference(dst, slow, reads), Context(jobs=4)
        )
    assert time.monotonic() - started < 3
    settled = len(reads)
    time.sleep(0.1)
    assert len(reads) == settled  # nothing keeps reading after the copy failed
    assert dst.top is None and manifest.layers[0].digest not in dst.blobs


def test_the_failure_that_spoilt_the_destination_is_reported_not_what_followed() -> None:
    """A blob that fails can spoil the destination (an archive then refuses the next member).
    The copy reports that first failure, whichever blob comes first in the plan and even when
    the refusal is noted first."""
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, b"the layer")
    src.top = manifest.digest
    src.blobs[manifest.layers[0].digest] = b"other bytes"
    spoilt = threading.Event()

    class SpoilableDestination(MemoryDestination):
        def put_blob(
            self,
            desc: Descriptor,
            stream: IO[bytes],
            offset: int = 0,
            progress: ProgressFn | None = None,
            *,
            kind: BlobKind = "layer",
        ) -> None:
            if kind == "config":  # planned first; refuses once the layer spoilt the place
                assert spoilt.wait(5)
                refusal = DigestMismatch("archive: cannot write more: a blob did not match")
                refusal.consequence = True
                raise refusal
            try:
                super().put_blob(desc, stream, offset, progress, kind=kind)
            finally:
                spoilt.set()

    class Ref(MemoryReference):
        def new_destination(self, ctx: Context) -> ImageDestination:
            return SpoilableDestination(self.place)

    with pytest.raises(DigestMismatch) as caught:
        copy_image(Ref(src), Ref(dst), Context(jobs=2))
    assert "cannot write more" not in str(caught.value)
    assert str(manifest.layers[0].digest) in str(caught.value)
    assert dst.top is None


# -- what a destination accepts, and what a source's format forces --------------------------


class ArchiveLikeDestination(MemoryDestination):
    """Takes plain tar layers and no index, and stores its own rewrite of each manifest (as
    a docker-archive does): the copy must report the stored manifest's digest."""

    accepts_index = False
    layer_compression = "decompress"

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        data = json.loads(manifest.raw)
        data["annotations"] = {"stored.by": "archive"}
        stored = parse_manifest(json.dumps(data).encode(), manifest.media_type)
        return super().put_manifest(stored, top=top)


class ArchiveLikeSource(MemorySource):
    uncompressed_by_format = True


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_a_destination_that_wants_plain_layers_gets_them_decompressed_once() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, _gzip(b"layer one" * 1000), _gzip(b"layer two" * 1000))
    src.top = manifest.digest

    class Ref(MemoryReference):
        def new_destination(self, ctx: Context) -> ImageDestination:
            return ArchiveLikeDestination(self.place)

    result = copy_image(MemoryReference(src), Ref(dst), Context())
    stored = parse_manifest(dst.manifests[result.digest])
    assert isinstance(stored, ImageManifest)
    assert result.digest == dst.top != manifest.digest  # the stored one, not the source's
    assert [dst.blobs[layer.digest] for layer in stored.layers] == [
        b"layer one" * 1000,
        b"layer two" * 1000,
    ]
    assert {layer.media_type for layer in stored.layers} == {mt.OCI_LAYER}
    assert dst.kinds[stored.config.digest] == "config"
    assert {dst.kinds[layer.digest] for layer in stored.layers} == {"layer"}
    assert result.blobs_recompressed == 2


def test_a_destination_without_indexes_takes_one_platform_and_refuses_all() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    _multiarch(src)

    class NoIndex(MemoryDestination):
        accepts_index = False

    class Ref(MemoryReference):
        def new_destination(self, ctx: Context) -> ImageDestination:
            return NoIndex(self.place)

    arm = Context(platform=Platform.parse("linux/arm64"))
    result = copy_image(MemoryReference(src), Ref(dst), arm)
    stored = parse_manifest(dst.manifests[result.digest])
    assert isinstance(stored, ImageManifest)
    with pytest.raises(TransportError, match="holds no multi-platform image"):
        copy_image(
            MemoryReference(src), Ref(MemoryPlace()), options=CopyOptions(all_platforms=True)
        )


def test_plain_layers_of_an_archive_format_are_gzipped_once_on_the_way_out() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    plain = b"a plain tar layer" * 500
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = ImageManifest.build(
        src.add_blob(config, mt.OCI_CONFIG),
        [src.add_blob(plain, mt.OCI_LAYER), src.add_blob(_gzip(b"gz"), mt.OCI_LAYER_GZIP)],
    )
    src.add_manifest(manifest)
    src.top = manifest.digest

    class Ref(MemoryReference):
        def new_source(self, ctx: Context) -> ImageSource:
            return ArchiveLikeSource(self.place)

    result = copy_image(Ref(src), MemoryReference(dst), Context())
    stored = parse_manifest(dst.manifests[result.digest])
    assert isinstance(stored, ImageManifest)
    first, second = stored.layers
    assert (
        first.media_type == mt.OCI_LAYER_GZIP and gzip.decompress(dst.blobs[first.digest]) == plain
    )
    assert second == manifest.layers[1]  # already compressed: never compressed twice
    assert result.blobs_recompressed == 1
    # From an ordinary source, plain layers stay plain (a cluster image's registry/ layer).
    again = MemoryPlace()
    assert copy_image(MemoryReference(src), MemoryReference(again)).digest == manifest.digest


def test_a_layer_that_is_not_what_its_media_type_says_is_a_one_line_error() -> None:
    src = MemoryPlace()
    manifest = _image(src, b"not gzip at all")
    src.top = manifest.digest

    class Ref(MemoryReference):
        def new_destination(self, ctx: Context) -> ImageDestination:
            return ArchiveLikeDestination(self.place)

    with pytest.raises(LayerError, match=f"layer {manifest.layers[0].digest}: not valid gzip"):
        copy_image(MemoryReference(src), Ref(MemoryPlace()))


# -- several images at once -------------------------------------------------------------------


class ScopedDestination(MemoryDestination):
    def blob_scope(self) -> str:
        return f"memory:{id(self.place)}"


def test_copy_many_fetches_a_blob_that_images_share_once() -> None:
    src, dst = MemoryPlace(), MemoryPlace()
    shared = os.urandom(4 << 20)
    tops = [_image(src, shared, f"own layer {n}".encode()) for n in range(6)]

    def view(top: Digest) -> MemoryPlace:
        """The same blobs and manifests, another top: one image of a registry."""
        place = MemoryPlace()
        place.blobs, place.manifests, place.opened = src.blobs, src.manifests, src.opened
        place.top = top
        return place

    class Dest(MemoryReference):
        def new_destination(self, ctx: Context) -> ImageDestination:
            return ScopedDestination(self.place)

    jobs = [CopyJob(MemoryReference(view(top.digest)), Dest(dst)) for top in tops]
    results = copy_many(jobs, Context(jobs=2), parallel=6)
    assert [r.digest for r in results] == [top.digest for top in tops]
    assert [d for d, _ in src.opened].count(Digest.of(shared)) == 1
    distinct = {blob.digest for top in tops for blob in top.blobs}
    assert sum(r.blobs_copied for r in results) == len(distinct)
    assert all(dst.blobs[d] == src.blobs[d] for d in distinct)


def test_copy_many_stops_every_copy_at_the_first_failure() -> None:
    src = MemoryPlace()
    good = _image(src, b"fine layer")
    bad = _image(src, b"missing layer")
    del src.blobs[bad.layers[0].digest]
    jobs = []
    for top in (good, bad):
        place = MemoryPlace()
        place.blobs, place.manifests, place.top = src.blobs, src.manifests, top.digest
        jobs.append(CopyJob(MemoryReference(place), MemoryReference(MemoryPlace())))
    with pytest.raises(BlobNotFound, match=str(bad.layers[0].digest)):
        copy_many(jobs, Context())


def test_copy_many_writes_no_manifest_for_a_copy_the_failure_of_another_stopped() -> None:
    """The copy whose layer was still coming when another failed stops, and names no image
    over a layer it never finished; the error shown is the cause, not that stop."""
    src = MemoryPlace()
    slow = _image(src, b"s" * (1 << 20))
    bad = _image(src, b"missing layer")
    del src.blobs[bad.layers[0].digest]
    reads: list[int] = []
    layer = slow.layers[0].digest

    slow_place, bad_place = MemoryPlace(), MemoryPlace()
    slow_place.blobs, slow_place.manifests, slow_place.top = src.blobs, src.manifests, slow.digest
    bad_place.blobs, bad_place.manifests, bad_place.top = src.blobs, src.manifests, bad.digest
    slow_dest, bad_dest = MemoryPlace(), MemoryPlace()
    jobs = [
        CopyJob(_SlowReference(slow_place, layer, reads), _SlowReference(slow_dest, layer, reads)),
        CopyJob(MemoryReference(bad_place), MemoryReference(bad_dest)),
    ]
    started = time.monotonic()
    with pytest.raises(BlobNotFound, match=str(bad.layers[0].digest)):
        copy_many(jobs, Context())
    assert time.monotonic() - started < 3
    assert reads, "the slow layer was under way when the other copy failed"
    assert slow_dest.top is None and not slow_dest.manifests
    assert bad_dest.top is None
