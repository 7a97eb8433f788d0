"""The copy engine: the one loop that moves images between transports.

It reads the source's top manifest, picks what to copy (one platform or all of them), copies every
blob not already at the destination (several at once, each digest once), then writes child
manifests and finally the top manifest. Manifests travel as their exact bytes, so digests never
change unless a layer is deliberately recompressed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import IO, Literal

from clusterimage import recompress
from clusterimage.errors import ClusterImageError, TransferInterrupted, TransportError
from clusterimage.image import select_platform
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest
from clusterimage.oci.platform import Platform
from clusterimage.retry import RetryPolicy
from clusterimage.transports.base import (
    BlobKind,
    Context,
    ImageDestination,
    ImageReference,
    ImageSource,
)

# Waits between attempts of a broken blob transfer; the attempts are counted per transfer
# against ctx.retries, so only the delays come from here.
_RETRY = RetryPolicy()

# "blob-planned" goes out for every blob of the copy before any transfer starts (its size comes
# from the manifest), so a progress display knows the whole amount up front.
EventKind = Literal[
    "blob-planned", "blob-start", "blob-progress", "blob-done", "blob-skipped", "blob-mounted"
]
_FOUND: dict[str, EventKind] = {"skipped": "blob-skipped", "mounted": "blob-mounted"}


class _Cancelled(Exception):
    """Another blob of the copy failed: this one stops (its error is not the one to show)."""


@dataclass(frozen=True)
class CopyEvent:
    kind: EventKind
    descriptor: Descriptor
    done: int = 0  # bytes of this blob transferred so far (resumed bytes included)


@dataclass
class CopyOptions:
    """What one copy does; where and how (platform, parallel jobs, staging folder, registry
    settings) is the :class:`Context`'s."""

    all_platforms: bool = False
    on_event: Callable[[CopyEvent], None] | None = None
    # "gzip" | "zstd": recompress layers compressed otherwise (see clusterimage.recompress).
    compression_format: str | None = None
    # Asked about each blob the destination already has, before it is skipped: False means
    # the stored copy is damaged and was removed, so the blob is copied again (pull: one
    # command repairs a store whose blob went bad on disk).
    verify_existing: Callable[[Descriptor], bool] | None = None


@dataclass
class CopyResult:
    digest: Digest
    media_type: str
    size: int
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    blobs_recompressed: int = 0  # layers recompressed in this copy (not reused from earlier)
    bytes_copied: int = 0
    manifests: list[Digest] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "size": self.size,
            "blobsCopied": self.blobs_copied,
            "blobsSkipped": self.blobs_skipped,
            "blobsMounted": self.blobs_mounted,
            "blobsRecompressed": self.blobs_recompressed,
            "bytesCopied": self.bytes_copied,
            "manifests": [str(d) for d in self.manifests],
        }


def copy_image(
    src: ImageReference,
    dst: ImageReference,
    ctx: Context | None = None,
    options: CopyOptions | None = None,
) -> CopyResult:
    """Copy the image at ``src`` to ``dst``; returns what was written at the top."""
    ctx = ctx or Context()
    try:
        with src.new_source(ctx) as source:
            # Read before the destination is opened: a source that is missing or unreachable
            # must not leave an empty layout (or archive) behind.
            top = source.get_manifest()
            with dst.new_destination(ctx) as dest:
                return _copy(source, top, dest, ctx, options, str(src))
    finally:
        # Write what the copy learnt (one transaction); the cache reopens if used again.
        ctx.blob_info.close()


def copy_to(
    src: ImageReference,
    dest: ImageDestination,
    ctx: Context | None = None,
    options: CopyOptions | None = None,
) -> CopyResult:
    """Copy the image at ``src`` into an open destination (one image of a multi-image
    archive, say) and commit it; the caller closes ``dest``."""
    ctx = ctx or Context()
    with src.new_source(ctx) as source:
        return copy_from(source, source.get_manifest(), dest, ctx, options, str(src))


def copy_from(
    source: ImageSource,
    top: Manifest,
    dest: ImageDestination,
    ctx: Context,
    options: CopyOptions | None = None,
    name: str = "",
) -> CopyResult:
    """:func:`copy_to` from a source the caller opened and whose top manifest (``top``) it
    has read already: read once, not again by the copy."""
    try:
        return _copy(source, top, dest, ctx, options, name or str(source))
    finally:
        ctx.blob_info.close()


@dataclass(frozen=True)
class CopyJob:
    """One image of :func:`copy_many`."""

    source: ImageReference
    destination: ImageReference
    options: CopyOptions | None = None
    label: str | None = None  # what its errors start with (where the image was named)


def copy_many(jobs: Sequence[CopyJob], ctx: Context, *, parallel: int = 5) -> list[CopyResult]:
    """Copy several images at once (``parallel`` at a time, each with ``ctx.jobs`` blob
    workers), one result per job in order. Copies into one scope (see
    :meth:`ImageDestination.blob_scope`) fetch a blob they share once: the others wait for it
    and find it there. The first failure stops the rest and is raised."""
    flights = _Flights()
    results: list[CopyResult | None] = [None] * len(jobs)

    def one(index: int) -> None:
        job = jobs[index]
        try:
            with job.source.new_source(ctx) as source:
                top = source.get_manifest()
                with job.destination.new_destination(ctx) as dest:
                    results[index] = _copy(
                        source, top, dest, ctx, job.options, str(job.source), flights
                    )
        except ClusterImageError as exc:
            if job.label is None:
                raise
            raise _labelled(exc, job.label) from None

    try:
        with ThreadPoolExecutor(max(1, parallel), thread_name_prefix="image") as pool:
            futures = [pool.submit(one, index) for index in range(len(jobs))]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if failed:
                # Report a cause: not a copy stopped by another's failure, nor a refusal that
                # only follows from it (an archive the first failure spoilt).
                failed.sort(key=lambda e: (isinstance(e, _Cancelled), _is_consequence(e)))
                # The others stop at their next chunk (the pool's exit waits for them).
                flights.cancel()
                for future in futures:
                    future.cancel()
                raise failed[0]  # type: ignore[misc]
    finally:
        ctx.blob_info.close()
    return [result for result in results if result is not None]


def _labelled(exc: ClusterImageError, label: str) -> ClusterImageError:
    """``exc`` with ``label: `` before its message, of the same kind when it can be made."""
    message = f"{label}: {exc}"
    try:
        labelled = type(exc)(message)
    except TypeError:  # a kind whose constructor takes more than a message
        labelled = ClusterImageError(message)
    labelled.consequence = exc.consequence
    return labelled


def _is_consequence(error: BaseException | None) -> bool:
    return isinstance(error, ClusterImageError) and error.consequence


class _Flights:
    """Blobs in transfer, by (scope, digest): a second copier of the same blob into the same
    scope waits for the first, then finds it at its destination."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, Digest], threading.Lock] = {}
        self.cancelled = threading.Event()

    def hold(self, scope: str | None, digest: Digest) -> AbstractContextManager[object]:
        if scope is None:
            return contextlib.nullcontext()
        with self._lock:
            lock = self._held.setdefault((scope, digest), threading.Lock())
        return lock

    def cancel(self) -> None:
        self.cancelled.set()


def _copy(
    source: ImageSource,
    top: Manifest,
    dest: ImageDestination,
    ctx: Context,
    options: CopyOptions | None,
    name: str,
    flights: _Flights | None = None,
) -> CopyResult:
    copier = _Copier(source, dest, options or CopyOptions(), ctx, name, flights or _Flights())
    result = copier.run(top)
    dest.commit()
    return result


class _Copier:
    def __init__(
        self,
        source: ImageSource,
        dest: ImageDestination,
        options: CopyOptions,
        ctx: Context,
        name: str,
        flights: _Flights,
    ) -> None:
        self._source = source
        self._flights = flights
        self._scope = dest.blob_scope()
        self._dest = dest
        self._options = options
        self._ctx = ctx
        self._name = name
        self._lock = threading.Lock()
        self._failed = threading.Event()  # set when a blob fails: the others stop at once
        self._blob_errors: list[BaseException] = []  # in the order they happened
        self._result: CopyResult | None = None
        self._stats = {"copied": 0, "skipped": 0, "mounted": 0, "recompressed": 0, "bytes": 0}
        self._replaced: dict[Digest, recompress.Recompressed] = {}
        # What earlier recompressions produced (opened at first use).
        self._blob_info = ctx.blob_info
        self._configs: set[Digest] = set()

    def _target(self, desc: Descriptor) -> str | None:
        """The compression ``desc`` must have at the destination (None: as it is)."""
        if self._dest.layer_compression == "decompress":
            return "none"
        if self._options.compression_format is not None:
            return self._options.compression_format
        if self._source.uncompressed_by_format and desc.media_type in recompress.UNCOMPRESSED:
            return recompress.GZIP  # compressed once, on the way out of the archive
        return None

    def run(self, top: Manifest) -> CopyResult:
        if isinstance(top, ImageIndex) and not self._options.all_platforms:
            top = self._select_platform(top)
        if isinstance(top, ImageIndex) and not self._dest.accepts_index:
            raise TransportError(
                f"{self._dest}: holds no multi-platform image; choose one with --platform"
            )
        self._check_type(top)
        images: list[ImageManifest] = []
        children: list[Manifest] = []
        if isinstance(top, ImageIndex):
            self._collect_index(top, images, children)
        else:
            images.append(top)
        self._copy_blobs(images)
        if self._replaced:
            top, children = recompress.rewrite(top, children, self._replaced)
        stored = [self._dest.put_manifest(child, top=False) for child in children]
        top = self._dest.put_manifest(top, top=True)
        children = stored
        return CopyResult(
            digest=top.digest,
            media_type=top.media_type,
            size=top.size,
            blobs_copied=self._stats["copied"],
            blobs_skipped=self._stats["skipped"],
            blobs_mounted=self._stats["mounted"],
            blobs_recompressed=self._stats["recompressed"],
            bytes_copied=self._stats["bytes"],
            manifests=[m.digest for m in children] + [top.digest],
        )

    def _select_platform(self, index: ImageIndex) -> Manifest:
        return select_platform(
            index,
            self._ctx.platform or Platform.host(),
            self._source.get_manifest,
            where=self._name,
            hint="choose one with --platform or copy them all with --all",
        )

    def _collect_index(
        self, index: ImageIndex, images: list[ImageManifest], children: list[Manifest]
    ) -> None:
        for entry in index.manifests:
            child = self._source.get_manifest(entry.digest)
            if isinstance(child, ImageIndex):
                self._collect_index(child, images, children)
            else:
                images.append(child)
            children.append(child)

    def _copy_blobs(self, images: list[ImageManifest]) -> None:
        blobs: dict[Digest, Descriptor] = {}
        for image in images:
            for desc in image.blobs:
                blobs.setdefault(desc.digest, desc)
        if not blobs:
            return
        configs = {image.config.digest for image in images}
        self._configs = configs
        jobs = max(1, self._ctx.jobs)
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="blob") as pool:
            # Configs first (as skopeo): a few milliseconds each, where after the layers they
            # would be a tail once every worker is busy. Then layers largest first: the big
            # ones start at once, small ones fill in behind them.
            ordered = sorted(
                blobs.values(), key=lambda d: (d.digest not in configs, -d.size, str(d.digest))
            )
            for desc in ordered:
                self._emit("blob-planned", desc)
            futures: list[Future[None]] = [pool.submit(self._copy_blob_noting, d) for d in ordered]
            # Without a failure, wait returns once every future is done.
            try:
                _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            except BaseException:  # Ctrl-C: do not wait for every transfer to finish
                self._failed.set()
                raise
            if pending:
                # Transfers in flight stop at their next chunk (see _check), instead of the
                # pool's shutdown waiting for each to finish.
                self._failed.set()
            for future in pending:
                future.cancel()
        # The first failure in time is the cause; those after it (an archive the first one
        # spoilt refusing the next blob) would hide it, whatever order the futures are in.
        errors = [e for e in self._blob_errors if not _is_consequence(e)]
        if self._blob_errors:
            raise (errors or self._blob_errors)[0]
        self._check()  # another copy of copy_many failed: write no manifest over missing blobs

    def _copy_blob_noting(self, desc: Descriptor) -> None:
        try:
            self._copy_blob(desc)
        except _Cancelled:
            raise
        except BaseException as exc:
            with self._lock:
                self._blob_errors.append(exc)
            self._failed.set()  # the others stop at their next chunk, now
            raise

    def _check(self) -> None:
        if self._failed.is_set() or self._flights.cancelled.is_set():
            raise _Cancelled

    def _emit(self, kind: EventKind, desc: Descriptor, done: int = 0) -> None:
        if self._options.on_event is not None:
            self._options.on_event(CopyEvent(kind, desc, done))

    def _count(self, key: str, nbytes: int = 0) -> None:
        with self._lock:
            self._stats[key] += 1
            self._stats["bytes"] += nbytes

    def _at_destination(self, desc: Descriptor) -> str | None:
        """``"skipped"`` if the destination has ``desc``, ``"mounted"`` if it mounted it from
        another repository, else ``None`` (the bytes must be sent)."""
        if self._dest.has_blob(desc):
            verify = self._options.verify_existing
            if verify is None or verify(desc):
                return "skipped"
        if self._dest.try_mount(desc, self._source):
            return "mounted"
        return None

    def _check_type(self, manifest: Manifest) -> None:
        accepted = self._dest.supported_manifest_types
        if accepted is not None and manifest.media_type not in accepted:
            raise TransportError(
                f"{self._dest}: cannot store a {manifest.media_type} "
                f"(it takes {', '.join(sorted(accepted))})"
            )

    def _kind(self, desc: Descriptor) -> BlobKind:
        return "config" if desc.digest in self._configs else "layer"

    def _copy_blob(self, desc: Descriptor) -> None:
        self._check()
        target = self._target(desc)
        if desc.digest not in self._configs and recompress.needs_recompression(desc, target):
            assert target is not None
            self._copy_recompressed(desc, target)
            return
        # Another copy of copy_many sending the same blob into the same place: wait for it,
        # then find the blob there instead of fetching it a second time.
        with self._flights.hold(self._scope, desc.digest):
            self._check()
            found = self._at_destination(desc)
            if found is not None:
                self._count(found)
                self._emit(_FOUND[found], desc, desc.size)
                return
            first_offset = self._transfer(
                desc, self._source.open_blob, self._source.supports_ranges, desc
            )
        self._count("copied", desc.size - first_offset)
        self._emit("blob-done", desc, desc.size)

    def _copy_recompressed(self, desc: Descriptor, target: str) -> None:
        """Reuse the blob an earlier recompression of this layer produced when the destination
        has it (or mounts it); else recompress into a temporary file and copy that file.

        The cache only names a candidate: the destination must show it, else (a stale or
        edited entry) the layer is recompressed and the entry replaced. The reused descriptor
        carries the recorded digest and size, so the rewritten manifest is byte-identical to
        the one the first push wrote."""
        known = self._blob_info.recompressed(desc.digest, target)
        absent: Digest | None = None  # a digest just seen missing at the destination
        if known is not None:
            found = self._at_destination(known)
            absent = known.digest
            if found is not None:
                with self._lock:
                    self._replaced[desc.digest] = recompress.Recompressed(
                        desc, known.digest, known.size, target
                    )
                self._count(found)
                self._emit(_FOUND[found], desc, desc.size)
                return
        done = 0
        self._emit("blob-start", desc, 0)

        def progress(n: int) -> None:
            nonlocal done
            self._check()
            done += n
            self._emit("blob-progress", desc, done)

        with self._source.open_blob(desc, 0) as stream:
            result = recompress.recompress(stream, desc, target, self._ctx.tmp_dir, progress)
        path = result.path
        assert path is not None
        try:
            with self._lock:
                self._replaced[desc.digest] = result
                self._stats["recompressed"] += 1
            new = result.descriptor(docker=False)
            self._blob_info.record_recompressed(desc.digest, target, new)
            found = None if new.digest == absent else self._at_destination(new)
            if found is not None:
                self._count(found)
            else:

                @contextmanager
                def open_at(_desc: Descriptor, offset: int) -> Iterator[IO[bytes]]:
                    with open(path, "rb") as stream:
                        stream.seek(offset)
                        yield stream

                first_offset = self._transfer(new, open_at, True, None)
                self._count("copied", new.size - first_offset)
        finally:
            path.unlink(missing_ok=True)
        self._emit("blob-done", desc, desc.size)

    def _transfer(
        self,
        desc: Descriptor,
        open_at: Callable[[Descriptor, int], AbstractContextManager[IO[bytes]]],
        ranges: bool,
        shown: Descriptor | None,
    ) -> int:
        """Send ``desc``'s bytes (read through ``open_at``) to the destination; returns the
        offset the first attempt resumed from. Progress events go out for ``shown``."""
        done = 0
        started = False
        first_offset = 0

        def progress(n: int) -> None:
            nonlocal done
            self._check()
            done += n
            if shown is not None:
                self._emit("blob-progress", shown, done)

        # A transfer that breaks off (TransferInterrupted) is tried again, resuming at the
        # offset the destination reports (0: from the start), at most ctx.retries times.
        attempt = 0
        while True:
            offset = self._dest.blob_offset(desc) if ranges else 0
            if not 0 <= offset < max(desc.size, 1):
                offset = 0
            done = offset
            if shown is not None:
                self._emit("blob-progress" if started else "blob-start", shown, done)
            if not started:
                started, first_offset = True, offset
            try:
                with open_at(desc, offset) as stream:
                    self._dest.put_blob(desc, stream, offset, progress, kind=self._kind(desc))
                break
            except TransferInterrupted as exc:
                if attempt >= self._ctx.retries:
                    raise
                if self._failed.wait(_RETRY.delay(attempt, exc.retry_after)):
                    raise _Cancelled from None
                attempt += 1
        return first_offset
