"""Bounded reads of registry API response bodies.

httpx reads a non-streamed body whole, whatever its size; a broken or hostile registry (or token
server) answering with an endless body would fill memory. API answers (tag pages, token
responses, upload replies) are small, so we stream them and stop past a limit, as containers/image
does with its iolimits. Blobs and manifests have their own streaming readers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx

from clusterimage.errors import RegistryError

API_BODY_LIMIT = 1 << 20  # as containers/image's MaxErrorBodySize and MaxAuthTokenBodySize


class ResponseTooLarge(RegistryError):
    """A response body went past the limit for what was asked."""


class _Limited(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, limit: int, where: str) -> None:
        self._stream = stream
        self._limit = limit
        self._where = where

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._stream:
            size += len(chunk)
            if size > self._limit:
                raise ResponseTooLarge(f"{self._where}: response larger than {self._limit} bytes")
            yield chunk

    def close(self) -> None:
        self._stream.close()


REDIRECT_BODY_LIMIT = 64 * 1024


def bound_redirect(response: httpx.Response) -> None:
    """An httpx response hook: httpx reads a redirect's body whole before it follows the
    redirect, and nobody uses that body. Cap it, and drop its Content-Encoding so it is never
    decoded (a small compressed body can expand a thousandfold)."""
    if response.is_redirect and isinstance(response.stream, httpx.SyncByteStream):
        response.headers.pop("Content-Encoding", None)
        where = f"{response.request.url.host}: redirect"
        response.stream = _Limited(response.stream, REDIRECT_BODY_LIMIT, where)


def decoded_body(response: httpx.Response, limit: int, too_large: Callable[[], Exception]) -> bytes:
    """A streamed ``response``'s decoded body, raising ``too_large()`` once it passes
    ``limit`` bytes (reading it through ``read()`` would decode it without a bound)."""
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_large()
        parts.append(chunk)
    return b"".join(parts)


def read_limited(response: httpx.Response, limit: int, where: str) -> None:
    """Read a streamed ``response``'s body (then ``.content``, ``.json()`` work as usual),
    or close it and raise :class:`ResponseTooLarge` once more than ``limit`` bytes arrive,
    on the wire or once decoded (a compressed body can expand a thousandfold)."""
    assert isinstance(response.stream, httpx.SyncByteStream)
    response.stream = _Limited(response.stream, limit, where)
    try:
        body = decoded_body(
            response,
            limit,
            lambda: ResponseTooLarge(f"{where}: response larger than {limit} bytes"),
        )
        # What Response.read() would have kept; httpx has no public way to hand it over.
        response._content = body
    except BaseException:
        response.close()
        raise


def discard(response: httpx.Response, limit: int = API_BODY_LIMIT) -> None:
    """Drop a body nobody needs: read a small one so the connection can be reused (closing an
    unread response closes its connection), and close the response whatever happens."""
    try:
        read_limited(response, limit, "")
    except (ResponseTooLarge, httpx.HTTPError, httpx.StreamError):
        pass
    finally:
        response.close()
