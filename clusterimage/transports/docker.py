"""The ``docker://`` transport: an image in a registry, through the distribution API.

Source: manifests by tag or digest (digests verified), blobs streamed with ``Range`` resume.
Destination: ``HEAD`` before upload, cross-repository mounts (from the source repository when
the source is the same registry, else from where the blob-location cache last saw the blob),
streamed uploads verified by the registry (``?digest=``), child manifests by digest, the top one
by tag (or digest). Registry-to-registry copies stream from one socket to the other.

Settings come from the :class:`Context`: a source reads ``ctx.source``, a destination
``ctx.destination``; both record where blobs were seen in ``ctx.blob_info``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from clusterimage.errors import ClusterImageError, TransferInterrupted, TransportError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import Manifest, parse_manifest
from clusterimage.oci.reference import Reference
from clusterimage.remote import registries_conf
from clusterimage.remote.client import ClientOptions, Registry
from clusterimage.remote.repository import Repository
from clusterimage.remote.tls import TlsSettings
from clusterimage.remote.upload import BlobUploader, UploadSession
from clusterimage.transports import register
from clusterimage.transports.base import (
    BlobKind,
    Context,
    EndContext,
    ImageDestination,
    ImageReference,
    ImageSource,
    ProgressFn,
)

_MOUNT_CANDIDATES = 3


def client_options(ctx: Context, end: EndContext) -> ClientOptions:
    """Registry client settings for one end of a copy."""
    return ClientOptions(
        tls=TlsSettings(verify=end.tls_verify, cert_dir=end.cert_dir),
        auth_file=end.auth_file,
        creds=end.creds,
        creds_flag=end.creds_flag,
        retries=ctx.retries,
        timeout=ctx.timeout,
        max_connections=max(8, ctx.jobs * 2 + 2),
    )


class DockerReference(ImageReference):
    transport = "docker"

    def __init__(self, reference: Reference) -> None:
        self.reference = reference

    def new_source(self, ctx: Context) -> DockerSource:
        """A source on the first place registries.conf says to pull from that answers:
        its mirrors in order, then the registry itself (containers/image's order)."""
        sources = registries_conf.load().pull_sources(self.reference)
        if len(sources) == 1 and not sources[0].insecure:
            return DockerSource(self.reference, ctx)
        for place in sources:
            end = dataclasses.replace(ctx.source, tls_verify=False) if place.insecure else None
            source = DockerSource(place.reference, ctx, end)
            try:
                source.get_manifest()  # kept: the copy reads it next
            except ClusterImageError:
                source.close()
                if not place.mirror:
                    raise
                continue  # a mirror that lacks the image or does not answer: the next one
            return source
        raise AssertionError("the last pull source is the registry itself")  # pragma: no cover

    def new_destination(self, ctx: Context) -> DockerDestination:
        return DockerDestination(self.reference, ctx)

    def docker_reference(self) -> Reference:
        return self.reference

    def __str__(self) -> str:
        return f"docker://{self.reference}"

    def __repr__(self) -> str:
        return f"DockerReference({self.reference!s})"


def parse(value: str) -> DockerReference:
    """``[//]host/repo[:tag][@digest]``, normalised as Docker does (``nginx`` → docker.io/...)."""
    if value.startswith("//"):
        value = value[2:]
    return DockerReference(Reference.parse(value))


register("docker", parse)


class DockerSource(ImageSource):
    supports_ranges = True

    def __init__(self, reference: Reference, ctx: Context, end: EndContext | None = None) -> None:
        self.reference = reference
        self.registry = Registry(
            reference.registry,
            client_options(ctx, end or ctx.source),
            repository=reference.repository,
        )
        self.repository = Repository(self.registry, reference.repository)
        self._locations = ctx.blob_info
        self._lock = threading.Lock()
        self._manifests: dict[Digest, Manifest] = {}
        self._top: Manifest | None = None

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        if digest is None and self._top is not None:
            return self._top
        if digest is not None:
            with self._lock:
                cached = self._manifests.get(digest)
            if cached is not None:
                return cached
        identifier = str(digest) if digest is not None else self.reference.identifier
        by_digest = digest is not None or self.reference.digest is not None
        label = f"docker://{self.reference.name}{'@' if by_digest else ':'}{identifier}"
        response = self.repository.get_manifest(identifier, what=f"manifest {label}")
        manifest = parse_manifest(response.raw, response.media_type, where=label)
        with self._lock:
            self._manifests[manifest.digest] = manifest
            if digest is None:
                self._top = manifest
        return manifest

    @contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        reader = self.repository.open_blob(desc, offset)
        self._locations.record(desc.digest, self.reference.registry, self.reference.repository)
        try:
            yield reader  # type: ignore[misc]
        finally:
            reader.close()

    def close(self) -> None:
        self.registry.close()


class DockerDestination(ImageDestination):
    def __init__(self, reference: Reference, ctx: Context) -> None:
        self.reference = reference
        self.registry = Registry(
            reference.registry,
            client_options(ctx, ctx.destination),
            repository=reference.repository,
        )
        self.repository = Repository(self.registry, reference.repository, push=True)
        self._uploader = BlobUploader(self.repository)
        self._locations = ctx.blob_info
        self._lock = threading.Lock()
        self._sessions: dict[Digest, UploadSession] = {}
        self.pushed_digest: Digest | None = None

    @property
    def _where(self) -> tuple[str, str]:
        return self.reference.registry, self.reference.repository

    def blob_scope(self) -> str:
        return f"docker:{self.reference.registry}/{self.reference.repository}"

    def has_blob(self, desc: Descriptor) -> bool:
        size = self.repository.head_blob(desc.digest)
        if size is None:
            return False
        if size >= 0 and desc.size >= 0 and size != desc.size:
            return False  # not the blob we mean: upload it, and the registry checks the digest
        self._locations.record(desc.digest, *self._where)
        return True

    def try_mount(self, desc: Descriptor, source: ImageSource) -> bool:
        registry, own = self._where
        candidates: list[str] = []
        if (
            isinstance(source, DockerSource)
            and source.reference.registry == registry
            and source.reference.repository != own
        ):
            candidates.append(source.reference.repository)
        for repo in self._locations.repositories(desc.digest, registry, limit=_MOUNT_CANDIDATES):
            if repo != own and repo not in candidates:
                candidates.append(repo)
        for repo in candidates[:_MOUNT_CANDIDATES]:
            result = self.repository.mount_blob(desc.digest, repo)
            if result.mounted:
                self._locations.record(desc.digest, registry, own)
                return True
            self._locations.forget(desc.digest, registry, repo)
            if result.location:
                # The registry opened an upload instead: keep one for put_blob.
                session = self._uploader.adopt(result.location)
                with self._lock:
                    keep = desc.digest not in self._sessions
                    if keep:
                        self._sessions[desc.digest] = session
                if not keep:
                    self._uploader.cancel(session)
        return False

    def blob_offset(self, desc: Descriptor) -> int:
        with self._lock:
            session = self._sessions.get(desc.digest)
        if session is None:
            return 0
        if session.broken:
            with self._lock:
                self._sessions.pop(desc.digest, None)
            self._uploader.cancel(session)
            return 0
        fresh = self._uploader.status(session)
        with self._lock:
            if fresh is None:
                self._sessions.pop(desc.digest, None)
                return 0
            self._sessions[desc.digest] = fresh
            return fresh.offset

    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
        *,
        kind: BlobKind = "layer",
    ) -> None:
        with self._lock:
            session = self._sessions.get(desc.digest)
        if session is not None and (session.broken or session.offset != offset):
            self._uploader.cancel(session)
            session = None
        if session is None:
            if offset != 0:
                raise TransportError(
                    f"{self}: cannot resume blob {desc.digest} at byte {offset}: "
                    "no upload in progress"
                )
            session = self._uploader.start()
        with self._lock:
            self._sessions[desc.digest] = session
        try:
            self._uploader.upload(session, desc, stream, progress)
        except TransferInterrupted:
            raise  # the session stays: blob_offset asks the registry what it kept
        except BaseException:
            with self._lock:
                self._sessions.pop(desc.digest, None)
            self._uploader.cancel(session)
            raise
        with self._lock:
            self._sessions.pop(desc.digest, None)
        self._locations.record(desc.digest, *self._where)

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        if not top:
            self.repository.put_manifest(str(manifest.digest), manifest.raw, manifest.media_type)
            return manifest
        if self.reference.digest is not None and self.reference.digest != manifest.digest:
            raise TransportError(
                f"{self}: the image's digest is {manifest.digest}, not the "
                f"{self.reference.digest} the destination names"
            )
        identifier = self.reference.tag or str(manifest.digest)
        self.repository.put_manifest(identifier, manifest.raw, manifest.media_type)
        self.pushed_digest = manifest.digest
        return manifest

    def close(self) -> None:
        with self._lock:
            leftover = list(self._sessions.values())
            self._sessions.clear()
        for session in leftover:
            self._uploader.cancel(session)
        self.registry.close()

    def __str__(self) -> str:
        return f"docker://{self.reference}"
