"""Source and destination over an OCI image layout, shared by the ``store`` and ``oci`` transports.

The destination writes every blob through the layout's verifying blob writer (expected digest
and size), resumes from the partial ingest file an interrupted copy left, and holds the layout's
gc guard from its first blob to its last manifest so a concurrent gc keeps what it wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import IO

from clusterimage.errors import DigestMismatch, TransferInterrupted
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import Manifest
from clusterimage.store.layout import Layout
from clusterimage.transports.base import BlobKind, ImageDestination, ImageSource, ProgressFn


class LayoutSource(ImageSource):
    supports_ranges = True

    def __init__(self, layout: Layout, top: Descriptor) -> None:
        self.layout = layout
        self.top = top

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        if digest is None:
            return self.layout.get_manifest(self.top.digest, self.top.media_type)
        return self.layout.get_manifest(digest)

    @contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        with self.layout.open_blob(desc.digest, offset) as stream:
            yield stream


class LayoutDestination(ImageDestination):
    """Writes into a layout; subclasses decide how the top manifest is named."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._hold = ExitStack()
        self._hold.enter_context(layout.writing())

    def has_blob(self, desc: Descriptor) -> bool:
        return self.layout.has_blob(desc.digest)

    def blob_scope(self) -> str:
        return f"layout:{self.layout.root.resolve()}"

    def blob_offset(self, desc: Descriptor) -> int:
        return self.layout.partial_size(desc.digest)

    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
        *,
        kind: BlobKind = "layer",
    ) -> None:
        try:
            self.layout.put_stream(stream, desc.digest, desc.size, offset=offset, progress=progress)
        except DigestMismatch:
            if offset == 0:
                raise
            # The bytes an interrupted write left were not the blob's first bytes (lost or
            # damaged before they reached the disk). The store has dropped them: the copy
            # engine's retry starts the blob over, and a source that is itself wrong then
            # fails with DigestMismatch at offset 0.
            raise TransferInterrupted(
                f"blob {desc.digest}: the part kept from an interrupted copy was damaged and "
                "is discarded; copy again",
                retry_after=0,
            ) from None

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        self.layout.put_bytes(manifest.raw, manifest.digest)
        if top:
            self.name_top(manifest)
        return manifest

    def name_top(self, manifest: Manifest) -> None:
        self.layout.set_ref(None, self.layout.describe(manifest))

    def close(self) -> None:
        self._hold.close()
