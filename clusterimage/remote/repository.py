"""One repository of a registry: the read side of the distribution API and cross-repo mounts.

Blobs stream: :class:`BlobReader` hands out the body as it arrives and, when the connection
breaks midway, asks again with ``Range`` from where it stopped. It does not hash: whoever
stores the bytes verifies them (the transport contract), so nothing is hashed twice.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

import httpx

from clusterimage.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    ManifestError,
    RegistryError,
    TransferInterrupted,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.remote.auth import Scopes
from clusterimage.remote.bodies import decoded_body
from clusterimage.remote.client import Registry

MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # as containers/image: a manifest is small; refuse floods
_TAGS_PAGE = 1000
_TAGS_BODY_LIMIT = 16 << 20  # ~128k tags in one page, for registries that ignore ``n``


@dataclass(frozen=True)
class ManifestResponse:
    raw: bytes
    media_type: str  # Content-Type as sent (parameters dropped)
    digest: Digest  # of ``raw``


@dataclass(frozen=True)
class MountResult:
    mounted: bool
    location: str | None = None  # an upload the registry started instead (202), if any


class Repository:
    """``registry/name``; ``push`` requests tokens that allow pushing for every call."""

    def __init__(self, registry: Registry, name: str, *, push: bool = False) -> None:
        self.registry = registry
        self.name = name
        self.scopes = (
            Scopes.repository(name, "pull", "push") if push else Scopes.repository(name, "pull")
        )

    def __str__(self) -> str:
        return f"{self.registry.name}/{self.name}"

    def path(self, *parts: str) -> str:
        return "/v2/" + self.name + "/" + "/".join(parts)

    # -- blobs -----------------------------------------------------------------------------

    def head_blob(self, digest: Digest) -> int | None:
        """The blob's size if the repository has it, else None."""
        response = self.registry.request(
            "HEAD",
            self.path("blobs", str(digest)),
            scopes=self.scopes,
            what=f"blob {digest}",
            ok=(200, 404),
            follow_redirects=True,
        )
        response.close()
        if response.status_code == 404:
            return None
        length = response.headers.get("Content-Length")
        return int(length) if length and _is_digits(length) else -1

    def open_blob(self, desc: Descriptor, offset: int = 0) -> BlobReader:
        return BlobReader(self, desc, offset)

    def mount_blob(self, digest: Digest, source: str) -> MountResult:
        """Ask the registry to link ``digest`` from repository ``source`` (same registry)."""
        scopes = self.scopes.union(Scopes.repository(source, "pull"))
        try:
            response = self.registry.request(
                "POST",
                self.path("blobs", "uploads/"),
                scopes=scopes,
                what=f"mount of blob {digest} from {source}",
                params={"mount": str(digest), "from": source},
                ok=(201, 202),
            )
        except (RegistryError, TransferInterrupted):
            # A mount is only a shortcut: the blob will be uploaded instead.
            return MountResult(False)
        response.close()
        if response.status_code == 201:
            return MountResult(True)
        return MountResult(False, self.registry.location(response))

    # -- manifests -------------------------------------------------------------------------

    def get_manifest(self, reference: str, *, what: str | None = None) -> ManifestResponse:
        """Fetch a manifest by tag or digest; a digest reference is verified."""
        label = what or f"manifest {self.name}:{reference}"
        response = self.registry.request(
            "GET",
            self.path("manifests", reference),
            scopes=self.scopes,
            what=label,
            headers={"Accept": ", ".join(mt.ACCEPT_MANIFESTS)},
            stream=True,
            follow_redirects=True,
            missing=ImageNotFound,
        )
        try:
            raw = decoded_body(
                response,
                MAX_MANIFEST_SIZE,
                lambda: ManifestError(f"{label}: larger than {MAX_MANIFEST_SIZE} bytes"),
            )
        except httpx.HTTPError as exc:
            raise RegistryError(f"{self.registry.host}: {label}: {exc}") from None
        finally:
            response.close()
        digest = Digest.of(raw)
        if reference.startswith(("sha256:", "sha512:")):
            wanted = Digest.parse(reference)
            actual = Digest.of(raw, wanted.algorithm)
            if actual != wanted:
                raise DigestMismatch(f"{label}: content hashes to {actual}")
            digest = wanted
        else:
            announced = response.headers.get("Docker-Content-Digest")
            if announced and announced.startswith("sha256:") and announced != str(digest):
                raise DigestMismatch(
                    f"{label}: content hashes to {digest}, registry says {announced}"
                )
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        return ManifestResponse(raw, media_type, digest)

    def head_manifest(self, reference: str) -> Descriptor | None:
        """Digest, size and media type of a manifest, or None if there is none."""
        response = self.registry.request(
            "HEAD",
            self.path("manifests", reference),
            scopes=self.scopes,
            what=f"manifest {self.name}:{reference}",
            headers={"Accept": ", ".join(mt.ACCEPT_MANIFESTS)},
            ok=(200, 404),
            follow_redirects=True,
        )
        response.close()
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        length = response.headers.get("Content-Length", "")
        if not digest or not _is_digits(length):
            return None
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        return Descriptor(media_type, Digest.parse(digest), int(length))

    def put_manifest(self, reference: str, raw: bytes, media_type: str) -> Digest:
        response = self.registry.request(
            "PUT",
            self.path("manifests", reference),
            scopes=self.scopes,
            what=f"manifest {self.name}:{reference}",
            headers={"Content-Type": media_type},
            content=raw,
            ok=(200, 201, 202),
        )
        response.close()
        digest = Digest.of(raw)
        announced = response.headers.get("Docker-Content-Digest")
        if announced and announced.startswith("sha256:") and announced != str(digest):
            raise RegistryError(
                f"{self.registry.name}: manifest {self.name}:{reference}: registry stored "
                f"{announced}, we sent {digest}"
            )
        return digest

    # -- tags ------------------------------------------------------------------------------

    def tags(self) -> Iterator[str]:
        """Every tag, following ``Link: <...>; rel="next"`` pagination."""
        path: str | None = self.path("tags", "list")
        params: dict[str, str] | None = {"n": str(_TAGS_PAGE)}
        seen: set[str] = set()
        while path is not None:
            if path in seen:
                raise RegistryError(
                    f"{self.registry.name}: tags of {self.name}: the registry's pagination loops"
                )
            seen.add(path)
            response = self.registry.request(
                "GET",
                path,
                scopes=self.scopes,
                what=f"tags of {self.name}",
                params=params,
                missing=ImageNotFound,
                body_limit=_TAGS_BODY_LIMIT,
            )
            try:
                data = response.json()
            except ValueError:
                raise RegistryError(
                    f"{self.registry.name}: tags of {self.name}: not valid JSON"
                ) from None
            finally:
                response.close()
            tags = data.get("tags") if isinstance(data, dict) else None
            yield from (str(t) for t in tags or [])
            following = response.links.get("next", {}).get("url")
            path, params = (self._next_page(following), None) if following else (None, None)

    def _next_page(self, link: str) -> str:
        """The path and query of a pagination ``Link``: like containers/image, never another
        host (the credentials are for this registry; a link elsewhere went out anonymously)."""
        try:
            return httpx.URL(link).raw_path.decode("ascii")
        except httpx.InvalidURL:
            raise RegistryError(
                f"{self.registry.name}: tags of {self.name}: the registry sent an invalid "
                "pagination link"
            ) from None


class BlobReader(io.RawIOBase):
    """A blob's bytes from ``offset`` on (a ``Range`` request when ``offset`` > 0).

    A broken connection raises :class:`TransferInterrupted` at once: the copy engine is the one
    layer that retries transfers, resuming at what the destination kept. Reads return what
    arrived (up to ``n`` bytes), so no byte is copied into a bigger buffer.
    """

    def __init__(self, repository: Repository, desc: Descriptor, offset: int = 0) -> None:
        super().__init__()
        self._repo = repository
        self._desc = desc
        self._pos = offset
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._pending = b""
        self._eof = False
        self._open()

    @property
    def position(self) -> int:
        return self._pos

    def _open(self) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self._pos > 0:
            headers["Range"] = f"bytes={self._pos}-"
        response = self._repo.registry.request(
            "GET",
            self._repo.path("blobs", str(self._desc.digest)),
            scopes=self._repo.scopes,
            what=f"blob {self._desc.digest}",
            headers=headers,
            stream=True,
            follow_redirects=True,
            ok=(200, 206, 416),
            missing=BlobNotFound,
            retry=False,  # the copy engine retries the transfer, resuming where it broke
        )
        skip = 0
        if response.status_code == 416:
            # Nothing past our position: the blob is complete (or shorter than announced,
            # which the destination's digest check reports).
            response.close()
            self._eof = True
            return
        if self._pos > 0 and response.status_code == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != self._pos:
                response.close()
                raise RegistryError(
                    f"{self._repo.registry.name}: blob {self._desc.digest}: asked for bytes from "
                    f"{self._pos}, registry sent from {start}"
                )
        elif self._pos > 0:
            skip = self._pos  # the registry ignored Range: drop what we already have
        self._response = response
        self._chunks = response.iter_raw()
        while skip > 0:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            if len(chunk) > skip:
                self._pending = chunk[skip:]
                skip = 0
            else:
                skip -= len(chunk)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(1 << 20):
            parts.append(chunk)
        return b"".join(parts)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        if n == 0:
            return b""
        if self._pending:
            data = self._pending[:n]
            self._pending = self._pending[len(data) :]
            self._pos += len(data)
            return data
        while not self._eof:
            try:
                assert self._chunks is not None
                chunk = next(self._chunks, b"")
            except (httpx.TransportError, httpx.StreamError) as exc:
                self._interrupted(exc)
            if not chunk:
                if self._desc.size >= 0 and self._pos < self._desc.size:
                    self._interrupted(None)  # the body ended early without an error
                self._eof = True
                self._close_response()
                return b""
            if len(chunk) > n:
                self._pending = chunk[n:]
                chunk = chunk[:n]
            self._pos += len(chunk)
            return chunk
        return b""

    def _interrupted(self, exc: BaseException | None) -> NoReturn:
        self._close_response()
        if isinstance(exc, httpx.TimeoutException):
            why = f": no bytes for {self._repo.registry.options.timeout:g} s"
        else:
            why = f": {exc}" if exc is not None else ": body ended early"
        raise TransferInterrupted(
            f"{self._repo.registry.name}: blob {self._desc.digest}: connection lost at byte "
            f"{self._pos}{why}"
        )

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
            self._chunks = None

    def close(self) -> None:
        self._close_response()
        super().close()


def _is_digits(value: str) -> bool:
    # str.isdigit() alone accepts "²" (a latin-1 header byte), which int() refuses.
    return value.isascii() and value.isdigit()


def _content_range_start(value: str) -> int | None:
    # "bytes 100-199/200"
    value = value.strip()
    if value.startswith("bytes "):
        value = value[len("bytes ") :]
    start, sep, _ = value.partition("-")
    return int(start) if sep and _is_digits(start) else None
