"""The local image store: an OCI image layout that skopeo, umoci and oci-image-tool read.

On disk (``$CLUSTERIMAGE_HOME/store`` by default, ``--store DIR`` to override)::

    oci-layout                      {"imageLayoutVersion": "1.0.0"}
    index.json                      one entry per name; org.opencontainers.image.ref.name is the
                                    FULL normalised reference (docker.io/library/nginx:latest),
                                    with the platform of single-platform images
    blobs/sha256/<hex>              manifests, configs, layers; visible only once verified
    .clusterimage/                  private working state, ignored by OCI tools:
        ingest/<alg>-<hex>          a blob write in progress (resumable), tmp-* when the digest
                                    is not known in advance
        index.lock, gc.lock         locks (flock: released when a process dies)
        index.json.*.tmp            index.json before its rename into place
        stored.json                 when each name was stored ({digest: {name: time}}), which
                                    `images` sorts by; never copied out with an image

Guarantees: a blob appears only after its digest and size were checked (temp file, fsync,
rename); ``index.json`` changes under a file lock by write-temp + fsync + rename, so processes
sharing a store never corrupt it; a write killed half-way leaves only its ingest file, which
the next write of the same blob resumes (``resume=True``) and gc removes.

Public API (what the build and remote code uses; keep it stable)::

    Store(root: Path, create: bool = True)      # missing/empty folder -> new store
    Store.open(path) -> Store                   # StoreError "not an OCI image layout: ..."
    Store.existing(path) -> Store | None        # for readers: never creates; None when nothing
                                                # is stored yet, StoreError for a chosen
                                                # folder that does not exist
    store.root: Path

    # blobs
    store.has_blob(digest) -> bool
    store.blob_path(digest) -> Path
    store.blob_size(digest) -> int                              # BlobNotFound
    store.open_blob(digest, offset=0) -> IO[bytes]              # BlobNotFound; StoreError
                                            # for a FIFO, device, socket: never blocks
    store.put_bytes(data, expected: Digest | None = None) -> Digest
    store.blob_writer(expected=None, size=None, resume=False) -> BlobWriter
        with store.blob_writer(digest, size, resume=True) as w:   # w.offset: bytes already there
            w.write(chunk) ...                                     # or w.copy_from(stream)
            digest, size = w.commit()       # DigestMismatch: nothing visible, partial removed
    store.put_stream(stream, expected=None, size=None, *, offset=0, progress=None)
        -> (Digest, int)                    # blob_writer + copy; offset > 0 resumes
    store.partial_size(digest) -> int       # bytes an interrupted write left (resume offset)
    store.writing()                         # context: hold from first blob to tag, so a
                                            # concurrent gc keeps the not-yet-tagged blobs

    # manifests and images
    store.get_manifest(digest, media_type=None) -> Manifest
    store.get_config(manifest: ImageManifest) -> ImageConfig
    store.describe(manifest) -> Descriptor   # index-entry descriptor, platform from config
    store.resolve(name: str) -> Descriptor   # reference | digest | ID prefix (>= 3 hex) of
                                             # the config or manifest digest; a short name
                                             # tries localhost/NAME, then docker.io/library/;
                                             # ImageNotFound, AmbiguousImageID, InvalidReference
    store.resolve_named(name) -> (Descriptor, str | None)  # and the entry name it was
                                             # found by (None: by ID or digest)
    store.image_id(desc) -> Digest           # IMAGE ID: config digest (an index: its digest)
    store.images() -> list[ImageEntry]       # ImageEntry(name: str | None, descriptor);
                                             # .digest manifest, .image_id / .id config
    store.names(digest) -> list[str]
    store.tag(image: Descriptor | str, ref: str | Reference) -> Reference  # str ref without
                                             # a registry: localhost/NAME (podman's rule)
    store.untag(ref) -> Descriptor           # the image stays, untagged, without other names
    store.remove(name, force=False) -> RemoveResult(untagged: list[str], deleted: Digest|None,
                                                    image_id: Digest|None)
    store.remove_dangling() -> list[Descriptor]
    store.summarize(desc, platform=None) -> ImageSummary(digest, media_type, size, created,
                                                         platforms)
    store.set_ref(name: str | None, desc)    # raw index entry (no normalisation); records
                                             # when the name was stored
    store.stored_times() -> {digest: {name or "": RFC 3339 time}}   # {} when unrecorded

    # maintenance
    store.gc(timeout=60.0) -> GcResult(blobs: [(Digest, size)], partial_files, freed)
                                             # StoreDamaged: a manifest is unreadable
    store.fsck() -> list[Problem]            # Problem(kind, message, digest, ref)
    store.fsck_report() -> FsckReport(problems, blobs, images, ok)

:func:`clusterimage.paths.default_store` is where the store lives when nothing says otherwise.
"""

from __future__ import annotations

from clusterimage.store.blobs import BlobWriter
from clusterimage.store.fsck import FsckReport
from clusterimage.store.gc import GcResult, StoreDamaged
from clusterimage.store.layout import Layout
from clusterimage.store.locks import StoreBusy
from clusterimage.store.store import (
    AmbiguousImageID,
    ImageEntry,
    ImageSummary,
    RemoveResult,
    Store,
)
from clusterimage.store.walk import Problem

__all__ = [
    "AmbiguousImageID",
    "BlobWriter",
    "FsckReport",
    "GcResult",
    "ImageEntry",
    "ImageSummary",
    "Layout",
    "Problem",
    "RemoveResult",
    "Store",
    "StoreBusy",
    "StoreDamaged",
]
