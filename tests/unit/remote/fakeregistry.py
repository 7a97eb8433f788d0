"""An in-memory registry behind httpx.MockTransport, for unit tests of the registry client.

It speaks enough of the distribution API (ping, token auth, Basic auth, blobs with Range, upload
sessions with PATCH/PUT, manifests, paginated tags) and records every request, so tests can
check what the client sent. Faults are injected per request with :attr:`FakeRegistry.faults`.
Integration tests use the real registry; this exists so edge cases are cheap to reach.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

HOST = "registry.test"
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]*)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")

Fault = Callable[[httpx.Request], httpx.Response | None]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Body(httpx.SyncByteStream):
    """A body httpx streams (``content=`` would make MockTransport read it eagerly)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data


class _Broken(httpx.SyncByteStream):
    """A body that sends ``data`` and then loses the connection."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data
        raise httpx.ReadError("connection reset by peer")


@dataclass
class Upload:
    name: str
    data: bytearray = field(default_factory=bytearray)


@dataclass
class FakeRegistry:
    auth: str = "none"  # "none" | "basic" | "bearer"
    users: dict[str, str] = field(default_factory=lambda: {"alice": "s3cret-pass"})
    token_lifetime: int = 60
    page_size: int = 2
    chunk_min_length: int | None = None
    reject_monolithic: bool = False
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> scopes granted
    tokens_issued: int = 0
    break_blob_after: int | None = None  # GET of a blob sends this many bytes then breaks
    realm: str = f"https://{HOST}/token"  # the token server its bearer challenges name

    # -- setup helpers --------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add_blob(self, name: str, data: bytes) -> str:
        digest = sha256(data)
        self.blobs[digest] = data
        self.repo_blobs.setdefault(name, set()).add(digest)
        return digest

    def add_manifest(self, name: str, raw: bytes, media_type: str, tag: str | None) -> str:
        digest = sha256(raw)
        self.manifests[digest] = (raw, media_type)
        if tag is not None:
            self.tags.setdefault(name, {})[tag] = digest
        return digest

    def count(self, method: str, pattern: str = "") -> int:
        return sum(
            1 for r in self.requests if r.method == method and re.search(pattern, r.url.path)
        )

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # -- dispatch ---------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for fault in list(self.faults):
            response = fault(request)
            if response is not None:
                return response
        path = request.url.path
        if path == "/token":
            return self._token(request)
        if path == "/v2/":
            return self._check_auth(request, None) or httpx.Response(200)
        for pattern, handler in (
            (_UPLOAD, self._upload),
            (_BLOB, self._blob),
            (_MANIFEST, self._manifest),
            (_TAGS, self._tags),
        ):
            match = pattern.match(path)
            if match:
                denied = self._check_auth(request, match["name"])
                if denied is not None:
                    return denied
                return handler(request, match)
        return _error(404, "NAME_UNKNOWN", "no route")

    # -- auth -------------------------------------------------------------------------------

    def _challenge(self, scope: str | None) -> dict[str, str]:
        if self.auth == "basic":
            return {"WWW-Authenticate": 'Basic realm="fake"'}
        value = f'Bearer realm="{self.realm}",service="fake-registry"'
        if scope:
            value += f',scope="{scope}"'
        return {"WWW-Authenticate": value}

    def _basic_user(self, request: httpx.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _check_auth(self, request: httpx.Request, name: str | None) -> httpx.Response | None:
        if self.auth == "none":
            return None
        action = "pull" if request.method in ("GET", "HEAD") else "push"
        scope = f"repository:{name}:{action}" if name else None
        if self.auth == "basic":
            if self._basic_user(request) is None:
                return _error(401, "UNAUTHORIZED", "authentication required", self._challenge(None))
            return None
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        granted = self.tokens.get(token or "")
        if granted is None:
            return _error(401, "UNAUTHORIZED", "authentication required", self._challenge(scope))
        if name is not None and f"repository:{name}:{action}" not in granted:
            return _error(401, "UNAUTHORIZED", "insufficient scope", self._challenge(scope))
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != "rt-1":
                return httpx.Response(401)
            scopes = form.get("scope", "").split()
        else:
            user = self._basic_user(request)
            if request.headers.get("Authorization") and user is None:
                return httpx.Response(401)
            scopes = request.url.params.get_list("scope")
        granted: set[str] = set()
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            for action in actions.split(","):
                granted.add(f"{kind}:{name}:{action}")
        token = uuid.uuid4().hex
        self.tokens[token] = granted
        self.tokens_issued += 1
        body = {"token": token, "expires_in": self.token_lifetime}
        return httpx.Response(200, json=body)

    # -- handlers ---------------------------------------------------------------------------

    def _blob(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        digest = match["digest"]
        if digest not in self.repo_blobs.get(match["name"], set()):
            return _error(404, "BLOB_UNKNOWN", "blob unknown")
        data = self.blobs[digest]
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Length": str(len(data))})
        start = 0
        status = 200
        headers = {"Docker-Content-Digest": digest}
        spec = request.headers.get("Range")
        if spec:
            start = int(spec.removeprefix("bytes=").split("-", 1)[0])
            if start >= len(data):
                return httpx.Response(416)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        if self.break_blob_after is not None and len(body) > self.break_blob_after:
            cut = body[: self.break_blob_after]
            self.break_blob_after = None
            return httpx.Response(status, headers=headers, stream=_Broken(cut))
        return httpx.Response(status, headers=headers, stream=_Body(body))

    def _location(self, name: str, upload_id: str) -> str:
        return f"/v2/{name}/blobs/uploads/{upload_id}?_state=secret-state-{upload_id}"

    def _upload(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        name, upload_id = match["name"], match["id"]
        params = request.url.params
        if request.method == "POST":
            mount = params.get("mount")
            source = params.get("from")
            if mount and source and mount in self.repo_blobs.get(source, set()):
                header = request.headers.get("Authorization", "")
                granted = self.tokens.get(header[7:], set()) if self.auth == "bearer" else None
                if granted is None or f"repository:{source}:pull" in granted:
                    self.repo_blobs.setdefault(name, set()).add(mount)
                    return httpx.Response(201, headers={"Location": f"/v2/{name}/blobs/{mount}"})
            new_id = uuid.uuid4().hex
            self.uploads[new_id] = Upload(name)
            headers = {"Location": self._location(name, new_id), "Range": "0-0"}
            if self.chunk_min_length:
                headers["OCI-Chunk-Min-Length"] = str(self.chunk_min_length)
            return httpx.Response(202, headers=headers)
        upload = self.uploads.get(upload_id)
        if upload is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        if request.method == "GET":
            end = len(upload.data) - 1  # distribution's quirk: "0-0" for an empty upload too
            headers = {"Location": self._location(name, upload_id), "Range": f"0-{max(end, 0)}"}
            return httpx.Response(204, headers=headers)
        if request.method == "DELETE":
            del self.uploads[upload_id]
            return httpx.Response(204)
        body = request.read()
        if request.method == "PATCH":
            content_range = request.headers.get("Content-Range")
            if content_range:
                start = int(content_range.split("-", 1)[0])
                if start != len(upload.data):
                    return httpx.Response(416)
            upload.data += body
            headers = {
                "Location": self._location(name, upload_id),
                "Range": f"0-{len(upload.data) - 1}",
            }
            return httpx.Response(202, headers=headers)
        if request.method == "PUT":
            if body and self.reject_monolithic and not upload.data:
                return _error(413, "SIZE_INVALID", "too large")
            upload.data += body
            digest = params.get("digest")
            if digest != sha256(bytes(upload.data)):
                return _error(400, "DIGEST_INVALID", "provided digest did not match")
            self.blobs[digest] = bytes(upload.data)
            self.repo_blobs.setdefault(name, set()).add(digest)
            del self.uploads[upload_id]
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        return httpx.Response(405)

    def _manifest(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        name, ref = match["name"], match["ref"]
        if request.method == "PUT":
            raw = request.read()
            stored = self.add_manifest(
                name, raw, request.headers["Content-Type"], None if ":" in ref else ref
            )
            return httpx.Response(201, headers={"Docker-Content-Digest": stored})
        digest = ref if ref.startswith("sha256:") else self.tags.get(name, {}).get(ref)
        if digest is None or digest not in self.manifests:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        raw, media_type = self.manifests[digest]
        headers = {
            "Content-Type": media_type,
            "Docker-Content-Digest": digest,
            "Content-Length": str(len(raw)),
        }
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=raw)

    def _tags(self, request: httpx.Request, match: re.Match[str]) -> httpx.Response:
        name = match["name"]
        if name not in self.tags:
            return _error(404, "NAME_UNKNOWN", "repository name not known")
        names = sorted(self.tags[name])
        last = request.url.params.get("last")
        if last:
            names = [t for t in names if t > last]
        page = names[: self.page_size]
        headers = {}
        if len(names) > self.page_size:
            headers["Link"] = (
                f'</v2/{name}/tags/list?n={self.page_size}&last={page[-1]}>; rel="next"'
            )
        return httpx.Response(200, json={"name": name, "tags": page}, headers=headers)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return httpx.Response(status, headers=all_headers, content=body)
