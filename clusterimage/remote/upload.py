"""Blob uploads (distribution spec "Pushing blobs"): streamed, chunked fallback, resumable.

An upload is a session the registry opens on ``POST .../blobs/uploads/``. We send the whole blob in
one streamed ``PUT ...?digest=`` (the registry hashes it and refuses a wrong digest, so we do not
hash), or, when the registry (or a proxy in front of it) refuses large bodies with 413, in
``PATCH`` chunks honouring ``OCI-Chunk-Min-Length`` and the ``Range`` each answer confirms, closed
by an empty ``PUT``. When a transfer breaks, :meth:`BlobUploader.status` asks the session how much
arrived, so the copy engine can resume from there (or restart with a new session).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import httpx

from clusterimage.errors import DigestMismatch, RegistryError, TransferInterrupted
from clusterimage.oci.descriptor import Descriptor
from clusterimage.remote.client import describe_error_body
from clusterimage.remote.repository import Repository
from clusterimage.transports.base import ProgressFn

READ_SIZE = 1 << 20  # bytes per read from the source and per write to the socket
DEFAULT_CHUNK = 16 << 20
MIN_CHUNK = 1 << 20


@dataclass
class UploadSession:
    location: str  # absolute URL of the upload (changes after every PATCH)
    offset: int = 0  # bytes the registry confirmed
    min_chunk: int = 0  # OCI-Chunk-Min-Length, 0 if not given
    broken: bool = False  # the registry refused it: start a new session instead


def _range_end(value: str | None) -> int | None:
    """The last byte index in a ``Range: 0-N`` answer (distribution says ``0-0`` or ``0--1``
    for an empty upload; see :func:`_confirmed`)."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("bytes="):
        value = value[len("bytes=") :]
    _, sep, end = value.partition("-")
    return int(end) if sep and end.isascii() and end.isdigit() else None


def _confirmed(value: str | None) -> int:
    """Bytes an upload holds per its ``Range`` header. ``0-0`` counts as none: distribution
    sends it for an empty upload (a 1-byte upload then restarts, which is harmless)."""
    end = _range_end(value)
    return end + 1 if end is not None and end > 0 else 0


class BlobUploader:
    """Uploads into one repository; shared by the blob workers (chunk size is learnt once)."""

    def __init__(self, repository: Repository, *, chunk_size: int = DEFAULT_CHUNK) -> None:
        self.repo = repository
        self._lock = threading.Lock()
        self._chunk_size = chunk_size
        self._monolithic = True  # until a 413 says the registry wants chunks

    @property
    def _registry(self) -> str:
        return self.repo.registry.name

    def start(self) -> UploadSession:
        response = self.repo.registry.request(
            "POST",
            self.repo.path("blobs", "uploads/"),
            scopes=self.repo.scopes,
            what=f"upload to {self.repo.name}",
            ok=(202,),
        )
        response.close()
        return self._session_from(response, 0)

    def adopt(self, location: str) -> UploadSession:
        """Use an upload the registry opened for us (a mount answered 202)."""
        return UploadSession(self.repo.registry.url(location))

    def _session_from(self, response: httpx.Response, offset: int) -> UploadSession:
        location = self.repo.registry.location(response)
        if not location:
            raise RegistryError(f"{self._registry}: upload to {self.repo.name}: no Location")
        min_length = response.headers.get("OCI-Chunk-Min-Length", "")
        return UploadSession(
            location,
            offset,
            int(min_length) if min_length.isascii() and min_length.isdigit() else 0,
        )

    def status(self, session: UploadSession) -> UploadSession | None:
        """How much of an interrupted upload the registry kept; None if the session is gone."""
        try:
            response = self.repo.registry.request(
                "GET",
                session.location,
                scopes=self.repo.scopes,
                what=f"upload status in {self.repo.name}",
                ok=(204, 200, 404, 400, 416),
            )
        except (RegistryError, TransferInterrupted):
            return None
        response.close()
        if response.status_code not in (200, 204):
            return None
        offset = _confirmed(response.headers.get("Range"))
        return UploadSession(
            self.repo.registry.location(response) or session.location,
            offset,
            session.min_chunk,
        )

    def cancel(self, session: UploadSession) -> None:
        with contextlib.suppress(RegistryError, TransferInterrupted):
            self.repo.registry.request(
                "DELETE",
                session.location,
                scopes=self.repo.scopes,
                what=f"cancel upload in {self.repo.name}",
                ok=(200, 202, 204, 404, 400, 405),
            ).close()

    def upload(
        self,
        session: UploadSession,
        desc: Descriptor,
        stream: IO[bytes],
        progress: ProgressFn | None = None,
    ) -> None:
        """Send ``desc``'s bytes from ``session.offset`` on (``stream`` starts there) and close
        the upload. Raises TransferInterrupted (``session.offset`` then says what the registry
        confirmed so far), DigestMismatch when the registry computed another digest."""
        with self._lock:
            monolithic = self._monolithic
        if monolithic and session.offset == 0:
            self._put_whole(session, desc, stream, progress)
        else:
            self._put_chunks(session, desc, stream, progress)

    def _body(
        self, stream: IO[bytes], length: int, desc: Descriptor, progress: ProgressFn | None
    ) -> Iterator[bytes]:
        """Exactly ``length`` bytes of ``stream``, in reads of up to READ_SIZE."""
        left = length
        while left > 0:
            data = stream.read(min(READ_SIZE, left))
            if not data:
                raise DigestMismatch(
                    f"blob {desc.digest}: source ended {left} bytes short of the "
                    f"{desc.size} bytes announced"
                )
            left -= len(data)
            if progress is not None:
                progress(len(data))
            yield data

    def _put_whole(
        self,
        session: UploadSession,
        desc: Descriptor,
        stream: IO[bytes],
        progress: ProgressFn | None,
    ) -> None:
        url = httpx.URL(session.location).copy_merge_params({"digest": str(desc.digest)})
        response = self.repo.registry.request(
            "PUT",
            str(url),
            scopes=self.repo.scopes,
            what=f"blob {desc.digest}",
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(desc.size),
            },
            content=self._body(stream, desc.size, desc, progress),
            ok=(201, 400, 404, 413),
        )
        self._finish(response, session, desc)

    def _put_chunks(
        self,
        session: UploadSession,
        desc: Descriptor,
        stream: IO[bytes],
        progress: ProgressFn | None,
    ) -> None:
        while session.offset < desc.size:
            with self._lock:
                size = max(self._chunk_size, session.min_chunk)
            length = min(size, desc.size - session.offset)
            end = session.offset + length - 1
            response = self.repo.registry.request(
                "PATCH",
                session.location,
                scopes=self.repo.scopes,
                what=f"blob {desc.digest}",
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(length),
                    "Content-Range": f"{session.offset}-{end}",
                },
                content=self._body(stream, length, desc, progress),
                ok=(202, 204, 400, 404, 413, 416),
            )
            status = response.status_code
            if status == 413:
                response.close()
                with self._lock:
                    self._chunk_size = max(MIN_CHUNK, min(self._chunk_size, length) // 2)
                raise TransferInterrupted(
                    f"{self._registry}: blob {desc.digest}: chunk of {length} bytes too large",
                    retry_after=0,
                )
            if status in (400, 404, 416):
                detail = describe_error_body(response.read())
                response.close()
                # 416: the registry expects the chunk at another offset (a reply lost after it
                # stored one, say); the session holds, and its status says where to go on.
                session.broken = status != 416
                raise TransferInterrupted(
                    f"{self._registry}: blob {desc.digest}: upload session rejected the chunk "
                    f"at {session.offset} (HTTP {status}{detail})",
                    retry_after=0,
                )
            response.close()
            session.location = self.repo.registry.location(response) or session.location
            confirmed = _range_end(response.headers.get("Range"))
            if confirmed is not None and confirmed != end:
                session.offset = confirmed + 1
                raise TransferInterrupted(
                    f"{self._registry}: blob {desc.digest}: registry kept {confirmed + 1} of "
                    f"{end + 1} bytes",
                    retry_after=0,
                )
            session.offset = end + 1
        url = httpx.URL(session.location).copy_merge_params({"digest": str(desc.digest)})
        response = self.repo.registry.request(
            "PUT",
            str(url),
            scopes=self.repo.scopes,
            what=f"blob {desc.digest}",
            headers={"Content-Type": "application/octet-stream"},
            content=b"",
            ok=(201, 400, 404, 413),
        )
        self._finish(response, session, desc)

    def _finish(self, response: httpx.Response, session: UploadSession, desc: Descriptor) -> None:
        status = response.status_code
        if status == 201:
            response.close()
            return
        detail = describe_error_body(response.read())
        response.close()
        if status == 413:
            with self._lock:
                self._monolithic = False
            raise TransferInterrupted(
                f"{self._registry}: blob {desc.digest}: registry refused a whole-blob upload "
                "(413); switching to chunks",
                retry_after=0,
            )
        if status == 400 and ("DIGEST_INVALID" in detail or "SIZE_INVALID" in detail):
            raise DigestMismatch(
                f"blob {desc.digest}: {self._registry} refused the content{detail}"
            )
        session.broken = True
        raise TransferInterrupted(
            f"{self._registry}: blob {desc.digest}: upload session rejected the upload "
            f"(HTTP {status}{detail})",
            retry_after=0,
        )
