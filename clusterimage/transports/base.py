"""The transport interface: every place an image can live implements these few methods.

Modelled on containers/image (ImageReference, ImageSource, ImageDestination): the copy engine in
:mod:`clusterimage.copy` is the only loop that moves images, and a new kind of place is a new
transport, never a new copy loop.

Contract every destination keeps: a blob becomes visible only after its digest and size were
checked against the descriptor (the destination hashes while it writes, or the server it writes to
does). Sources therefore hand out plain streams, and nothing hashes the same bytes twice.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import Manifest
from clusterimage.oci.platform import Platform

ProgressFn = Callable[[int], None]
"""Called with the number of bytes just transferred."""


@dataclass
class Context:
    """Settings every transport may read (containers/image calls this SystemContext)."""

    store_dir: Path | None = None
    auth_file: Path | None = None
    # "user:password" given on the command line; repr=False keeps it out of any debug output.
    creds: str | None = field(default=None, repr=False)
    tls_verify: bool | None = None  # None: verify, except for loopback registries over http
    cert_dir: Path | None = None
    retries: int = 3
    jobs: int = 4
    platform: Platform | None = None
    extra: dict[str, object] = field(default_factory=dict)


class ImageSource(abc.ABC):
    """Reads one image (or index) and its blobs."""

    #: Whether :meth:`open_blob` honours a non-zero offset (resumed downloads).
    supports_ranges: bool = False

    @abc.abstractmethod
    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        """The top-level manifest when ``digest`` is None, else the manifest with that digest."""

    @abc.abstractmethod
    @contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        """A stream of the blob's bytes starting at ``offset``. Raises BlobNotFound."""
        yield  # type: ignore[misc]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections or files."""

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageDestination(abc.ABC):
    """Writes one image (or index): blobs first, then child manifests, then the top manifest."""

    @abc.abstractmethod
    def has_blob(self, desc: Descriptor) -> bool:
        """Whether the blob is already there (then the copy skips it)."""

    def blob_offset(self, desc: Descriptor) -> int:
        """Bytes of ``desc`` kept from an interrupted transfer, to resume after. 0: none."""
        return 0

    def try_mount(self, desc: Descriptor, source: ImageSource) -> bool:
        """Make the blob available without transferring it (a registry's cross-repository mount)."""
        return False

    @abc.abstractmethod
    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
    ) -> None:
        """Store the blob read from ``stream`` (which starts at ``offset``), verified against
        ``desc`` before it becomes visible. Raises DigestMismatch, leaving nothing visible."""

    @abc.abstractmethod
    def put_manifest(self, manifest: Manifest, *, top: bool) -> None:
        """Store a manifest. Children of an index go first (``top=False``); the top one last,
        under the destination's reference (tag)."""

    def commit(self) -> None:  # noqa: B027 - optional hook
        """Make the whole image visible (archives write their index here)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; without a commit, discard what is not visible yet."""

    def __enter__(self) -> ImageDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageReference(abc.ABC):
    """A parsed ``transport:reference`` string."""

    transport: str

    @abc.abstractmethod
    def new_source(self, ctx: Context) -> ImageSource: ...

    @abc.abstractmethod
    def new_destination(self, ctx: Context) -> ImageDestination: ...

    @abc.abstractmethod
    def __str__(self) -> str:
        """The string that parses back to this reference, transport prefix included."""
