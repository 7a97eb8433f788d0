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
from typing import IO, Any, Literal

from clusterimage.blobinfo import BlobInfoCache
from clusterimage.errors import TransportError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import Manifest
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference

ProgressFn = Callable[[int], None]
"""Called with the number of bytes just transferred."""


DEFAULT_TIMEOUT = 30.0
"""Seconds one registry request may wait for the server (to connect, or between bytes)."""

LayerCompression = Literal["preserve", "decompress"]
BlobKind = Literal["config", "layer"]


@dataclass
class EndContext:
    """Settings for one end of a copy: where credentials and TLS trust come from
    (containers/image's SystemContext, one for the source and one for the destination)."""

    auth_file: Path | None = None
    # "user:password" given on the command line; repr=False keeps it out of any debug output.
    creds: str | None = field(default=None, repr=False)
    tls_verify: bool | None = None  # None: verify, except for loopback registries over http
    cert_dir: Path | None = None
    creds_flag: str = "--creds"  # the flag ``creds`` came from, for a refusal to name it


@dataclass
class Context:
    """What every transport may read. ``source`` and ``destination`` hold each end's own
    registry settings; :meth:`for_registries` gives both ends the same ones."""

    store_dir: Path | None = None
    retries: int = 3
    jobs: int = 4
    platform: Platform | None = None
    timeout: float = DEFAULT_TIMEOUT
    source: EndContext = field(default_factory=EndContext)
    destination: EndContext = field(default_factory=EndContext)
    # Where blobs were seen and what recompressing them gave; the default remembers nothing.
    blob_info: BlobInfoCache = field(default_factory=lambda: BlobInfoCache(None), repr=False)
    tmp_dir: Path | None = None  # where transports stage files (None: the system's temp)

    @classmethod
    def for_registries(
        cls,
        *,
        auth_file: Path | None = None,
        creds: str | None = None,
        tls_verify: bool | None = None,
        cert_dir: Path | None = None,
        **settings: Any,
    ) -> Context:
        """A context whose source and destination share one set of registry settings."""
        source = EndContext(auth_file, creds, tls_verify, cert_dir)
        destination = EndContext(auth_file, creds, tls_verify, cert_dir)
        return cls(source=source, destination=destination, **settings)


class ImageSource(abc.ABC):
    """Reads one image (or index) and its blobs."""

    #: Whether :meth:`open_blob` honours a non-zero offset (resumed downloads).
    supports_ranges: bool = False
    #: The format keeps layers uncompressed only because it must (docker-archive): the copy
    #: compresses them once on the way to a destination that keeps what it is given.
    uncompressed_by_format: bool = False

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
    """Writes one image (or index): blobs first, then child manifests, then the top manifest.

    What a destination accepts is said by its attributes, and the copy engine adapts to them
    (containers/image's ImageDestination does the same): it picks one platform of an index
    for a destination that takes no index, and decompresses layers for one that wants them so.
    """

    #: Manifest media types it stores as they are; None: any.
    supported_manifest_types: frozenset[str] | None = None
    #: Whether it can hold an index (a multi-platform image).
    accepts_index: bool = True
    #: "preserve": layers as they come; "decompress": uncompressed layers only (docker-archive).
    layer_compression: LayerCompression = "preserve"

    def blob_scope(self) -> str | None:
        """What destinations share a blob once one has it (a store's folder, a registry
        repository): copies running at once into one scope fetch each blob once. None: no
        other destination shares this one's blobs."""
        return None

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
        *,
        kind: BlobKind = "layer",
    ) -> None:
        """Store the blob read from ``stream`` (which starts at ``offset``), verified against
        ``desc`` before it becomes visible. Raises DigestMismatch, leaving nothing visible.
        ``kind`` says whether it is an image's config or a layer (an archive files them apart)."""

    @abc.abstractmethod
    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        """Store a manifest. Children of an index go first (``top=False``); the top one last,
        under the destination's reference (tag). Returns the manifest as stored: a format
        that cannot keep the given bytes (docker-archive) stores, and returns, its own."""

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

    def docker_reference(self) -> Reference | None:
        """The registry reference this names (``docker://`` and ``store:`` names, an
        archive's or layout's ref name when it is one); None when it names none."""
        return None

    def list_images(self, ctx: Context) -> list[ImageReference]:
        """Every image the place holds, each as a reference of its own (an archive of several
        images, a registry folder). A place that holds one image lists itself."""
        return [self]

    def new_writer(self, ctx: Context) -> ImageWriter:
        """A writer of several images into this one place (a multi-image archive)."""
        raise TransportError(f"{self}: a {self.transport}: destination holds one image")

    @abc.abstractmethod
    def __str__(self) -> str:
        """The string that parses back to this reference, transport prefix included."""


class ImageWriter(abc.ABC):
    """Writes several images into one place that is finalised once (containers/image's
    archive.Writer): one destination per image, then :meth:`commit` writes the whole."""

    @abc.abstractmethod
    def new_destination(self, name: Reference | None) -> ImageDestination:
        """A destination for the next image, stored under ``name`` (None: unnamed)."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make every image written so far visible at once."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; without a commit, nothing is left behind."""

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ForwardingDestination(ImageDestination):
    """A destination that hands everything to another (``self._dest``): the base of wrappers
    that change one thing about a destination and forward the rest."""

    def __init__(self, dest: ImageDestination) -> None:
        self._dest = dest
        self.supported_manifest_types = dest.supported_manifest_types
        self.accepts_index = dest.accepts_index
        self.layer_compression = dest.layer_compression

    def has_blob(self, desc: Descriptor) -> bool:
        return self._dest.has_blob(desc)

    def blob_scope(self) -> str | None:
        return self._dest.blob_scope()

    def blob_offset(self, desc: Descriptor) -> int:
        return self._dest.blob_offset(desc)

    def try_mount(self, desc: Descriptor, source: ImageSource) -> bool:
        return self._dest.try_mount(desc, source)

    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
        *,
        kind: BlobKind = "layer",
    ) -> None:
        self._dest.put_blob(desc, stream, offset, progress, kind=kind)

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        return self._dest.put_manifest(manifest, top=top)

    def commit(self) -> None:
        self._dest.commit()

    def close(self) -> None:
        self._dest.close()

    def __str__(self) -> str:
        return str(self._dest)


class SoleDestination(ForwardingDestination):
    """The one image of a writer (``copy ... oci-archive:FILE``): the copy's commit commits the
    whole place, its close closes it. It accepts what the writer's destination accepts."""

    def __init__(self, writer: ImageWriter, dest: ImageDestination) -> None:
        super().__init__(dest)
        self._writer = writer

    def commit(self) -> None:
        self._dest.commit()
        self._writer.commit()

    def close(self) -> None:
        self._writer.close()
