"""``registry serve``: an embedded, read-only OCI distribution API server over registry files
(a folder, or a cluster image's registry/ straight from the store).

What distribution 2.8 answers for reads, with its error codes: ``/v2/``, manifests by tag or
digest (``Docker-Content-Digest``, Accept honoured), blobs with ``Range`` and ``HEAD`` (the
bytes go out with ``sendfile``), ``_catalog`` and ``tags/list`` with ``n``/``last`` pagination
and a ``Link`` header. Writes answer 405 UNSUPPORTED. Names and digests are checked against
distribution's grammar after URL decoding, so ``../`` or ``%2e%2e`` never reach a path.
Optional htpasswd (bcrypt or {SHA} entries, as ``htpasswd -B`` writes) and TLS.

Written on the stdlib's ThreadingHTTPServer: a read-only server of files needs no framework,
and sendfile is one call away.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from clusterimage.errors import ClusterImageError, UsageError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.digest import Digest
from clusterimage.runtime.registryfiles import RegistryFiles, Span, read_small

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}", re.ASCII)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_MANIFEST_LIMIT = 4 << 20
_PAGE = 1000


@dataclass(frozen=True)
class ServeOptions:
    address: str = "127.0.0.1:5000"
    htpasswd: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


class _Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _link(files: RegistryFiles, rel: str) -> Digest | None:
    raw = read_small(files, rel, 256)
    if raw is None:
        return None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return Digest.parse(text) if _DIGEST.fullmatch(text) else None


def _blob(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}/data"


class Registry:
    """The API over one set of registry files."""

    def __init__(self, files: RegistryFiles) -> None:
        self.files = files

    def repositories(self) -> list[str]:
        found: list[str] = []

        def below(prefix: str) -> None:
            for name in self.files.listdir(f"repositories/{prefix}".rstrip("/")):
                if name.startswith("_"):
                    continue
                child = f"{prefix}/{name}" if prefix else name
                if "_manifests" in self.files.listdir(f"repositories/{child}"):
                    found.append(child)
                below(child)

        below("")
        return sorted(name for name in found if _NAME.fullmatch(name))

    def tags(self, name: str) -> list[str]:
        folder = f"repositories/{name}/_manifests/tags"
        return [t for t in self.files.listdir(folder) if _TAG.fullmatch(t) and _link(
            self.files, f"{folder}/{t}/current/link") is not None]  # fmt: skip

    def entries(self) -> list[tuple[str, str | None, Digest]]:
        """Every (repository, tag, digest), and (repository, None, digest) for each revision
        no tag names and no index of its repository lists (what a sync must not lose)."""
        found: list[tuple[str, str | None, Digest]] = []
        for name in self.repositories():
            tagged = {}
            for tag in self.tags(name):
                digest = _link(
                    self.files, f"repositories/{name}/_manifests/tags/{tag}/current/link"
                )
                if digest is not None:
                    tagged[tag] = digest
            found.extend((name, tag, digest) for tag, digest in tagged.items())
            revisions = f"repositories/{name}/_manifests/revisions"
            children: set[Digest] = set()
            loose: list[Digest] = []
            for algorithm in self.files.listdir(revisions):
                for encoded in self.files.listdir(f"{revisions}/{algorithm}"):
                    digest = _link(self.files, f"{revisions}/{algorithm}/{encoded}/link")
                    if digest is None:
                        continue
                    raw = read_small(self.files, _blob(digest), _MANIFEST_LIMIT) or b"{}"
                    try:
                        data = json.loads(raw)
                    except (ValueError, RecursionError):
                        data = {}
                    for entry in data.get("manifests") or [] if isinstance(data, dict) else []:
                        if isinstance(entry, dict) and _DIGEST.fullmatch(str(entry.get("digest"))):
                            children.add(Digest.parse(str(entry["digest"])))
                    loose.append(digest)
            named = set(tagged.values())
            found.extend((name, None, d) for d in loose if d not in named and d not in children)
        return found

    def manifest(self, name: str, reference: str) -> tuple[Digest, bytes, str]:
        base = f"repositories/{name}/_manifests"
        if _DIGEST.fullmatch(reference):
            digest: Digest | None = Digest.parse(reference)
            assert digest is not None
            if _link(self.files, f"{base}/revisions/{digest.algorithm}/{digest.hex}/link") is None:
                raise _Error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}@{reference}")
        elif _TAG.fullmatch(reference):
            digest = _link(self.files, f"{base}/tags/{reference}/current/link")
            if digest is None:
                raise _Error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}:{reference}")
        else:
            raise _Error(400, "TAG_INVALID", f"invalid tag or digest {reference!r}")
        raw = read_small(self.files, _blob(digest), _MANIFEST_LIMIT)
        if raw is None or Digest.of(raw, digest.algorithm) != digest:
            raise _Error(404, "MANIFEST_UNKNOWN", f"manifest unknown: {name}@{digest}")
        return digest, raw, _media_type(raw)

    def blob(self, name: str, reference: str) -> tuple[Digest, Span]:
        if not _DIGEST.fullmatch(reference):
            raise _Error(400, "DIGEST_INVALID", f"invalid digest {reference!r}")
        digest = Digest.parse(reference)
        link = f"repositories/{name}/_layers/{digest.algorithm}/{digest.hex}/link"
        span = self.files.span(_blob(digest)) if _link(self.files, link) == digest else None
        if span is None:
            raise _Error(404, "BLOB_UNKNOWN", f"blob unknown: {name}@{digest}")
        return digest, span


def _split(rest: str) -> tuple[str, str, str]:
    """``NAME/manifests/REF``, ``NAME/blobs/DIGEST`` or ``NAME/tags/list`` into its parts."""
    if rest.endswith("/tags/list"):
        return rest[: -len("/tags/list")], "tags", ""
    for kind in ("manifests", "blobs"):
        name, sep, reference = rest.rpartition(f"/{kind}/")
        if sep:
            return name, kind, reference
    raise _Error(404, "NAME_UNKNOWN", "not found")


def _media_type(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return mt.OCI_MANIFEST
    declared = data.get("mediaType") if isinstance(data, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    return mt.OCI_INDEX if isinstance(data, dict) and "manifests" in data else mt.OCI_MANIFEST


class Htpasswd:
    """``user:hash`` lines: bcrypt (``$2y$``, what distribution accepts) or ``{SHA}``."""

    def __init__(self, path: Path) -> None:
        self.users: dict[str, str] = {}
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep:
                raise UsageError(f"{path}:{number}: not user:hash")
            self.users[user] = hashed.strip()

    def check(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        if hashed is None:
            return False
        if hashed.startswith("{SHA}"):
            digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
            return hmac.compare_digest(digest, hashed[5:])
        if hashed.startswith(("$2y$", "$2b$", "$2a$")):
            import bcrypt

            return bool(
                bcrypt.checkpw(password.encode(), hashed.replace("$2y$", "$2b$", 1).encode())
            )
        return False


def _handler(registry: Registry, auth: Htpasswd | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "clusterimage-registry"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: a server for a cluster runtime, not a web log

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def _write_not_allowed(self) -> None:
            self._error(_Error(405, "UNSUPPORTED", "this registry is read-only"))

        do_PUT = do_POST = do_DELETE = do_PATCH = _write_not_allowed

        def _serve(self, head: bool) -> None:
            try:
                if auth is not None and not self._authorized():
                    raise _Error(401, "UNAUTHORIZED", "authentication required")
                self._route(head)
            except _Error as exc:
                self._error(exc)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _authorized(self) -> bool:
            assert auth is not None
            header = self.headers.get("Authorization", "")
            if not header.lower().startswith("basic "):
                return False
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return auth.check(user, password)

        def _route(self, head: bool) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = parse_qs(parts.query)
            if path in ("/v2", "/v2/"):
                return self._json(200, {}, head)
            if path == "/v2/_catalog":
                return self._paged("repositories", registry.repositories(), query, path, head)
            if not path.startswith("/v2/"):
                raise _Error(404, "NAME_UNKNOWN", "not found")
            rest = path[len("/v2/") :]
            name, kind, reference = _split(rest)
            if not _NAME.fullmatch(name) or len(name) > 255:
                raise _Error(404, "NAME_INVALID", f"invalid repository name {name!r}")
            if kind == "tags":
                tags = registry.tags(name)
                if not tags and not registry.files.listdir(f"repositories/{name}/_manifests"):
                    raise _Error(404, "NAME_UNKNOWN", f"repository name not known: {name}")
                return self._paged("tags", tags, query, path, head, name=name)
            if kind == "manifests":
                return self._manifest(name, reference, head)
            return self._blob(name, reference, head)

        def _manifest(self, name: str, reference: str, head: bool) -> None:
            digest, raw, media_type = registry.manifest(name, reference)
            accept = ",".join(self.headers.get_all("Accept") or [])
            wanted = {a.split(";")[0].strip() for a in accept.split(",") if a.strip()}
            if wanted and media_type not in wanted and "*/*" not in wanted:
                raise _Error(
                    404, "MANIFEST_UNKNOWN", f"{name}:{reference} is a {media_type}, not accepted"
                )
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Docker-Content-Digest", str(digest))
            self.send_header("ETag", f'"{digest}"')
            self._common_headers()
            self.end_headers()
            if not head:
                self.wfile.write(raw)

        def _blob(self, name: str, reference: str, head: bool) -> None:
            digest, span = registry.blob(name, reference)
            start, end = 0, span.size - 1
            status = 200
            wanted = self.headers.get("Range")
            if wanted:
                match = _RANGE.fullmatch(wanted.strip())
                if match is None or (not match.group(1) and not match.group(2)):
                    raise _Error(416, "RANGE_INVALID", f"invalid range {wanted!r}")
                if match.group(1):
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else span.size - 1
                else:  # "-N": the last N bytes
                    start = max(span.size - int(match.group(2)), 0)
                if start > end or start >= span.size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{span.size}")
                    self.send_header("Content-Length", "0")
                    self._common_headers()
                    self.end_headers()
                    return
                end = min(end, span.size - 1)
                status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Docker-Content-Digest", str(digest))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{digest}"')
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{span.size}")
            self._common_headers()
            self.end_headers()
            if head or length == 0:
                return
            self.wfile.flush()
            _sendfile(self.connection, span, start, length)

        def _paged(
            self,
            key: str,
            items: list[str],
            query: dict[str, list[str]],
            path: str,
            head: bool,
            name: str | None = None,
        ) -> None:
            last = (query.get("last") or [""])[0]
            try:
                n = int((query.get("n") or [str(_PAGE)])[0])
            except ValueError:
                raise _Error(400, "PAGINATION_NUMBER_INVALID", "n is not a number") from None
            if n < 0:
                raise _Error(400, "PAGINATION_NUMBER_INVALID", "n is negative")
            rest = [i for i in items if i > last] if last else items
            page = rest[:n]
            body: dict[str, Any] = {key: page}
            if name is not None:
                body = {"name": name, key: page}
            link = None
            if len(rest) > n and page:
                link = f'<{path}?n={n}&last={page[-1]}>; rel="next"'
            self._json(200, body, head, link)

        def _json(self, status: int, body: Any, head: bool, link: str | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if link is not None:
                self.send_header("Link", link)
            self._common_headers()
            self.end_headers()
            if not head:
                self.wfile.write(raw)

        def _common_headers(self) -> None:
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")

        def _error(self, exc: _Error) -> None:
            raw = json.dumps(
                {"errors": [{"code": exc.code, "message": str(exc), "detail": None}]}
            ).encode()
            self.send_response(exc.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if exc.status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="clusterimage-registry"')
            self._common_headers()
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

    return Handler


def _sendfile(connection: socket.socket, span: Span, start: int, length: int) -> None:
    with open(span.path, "rb") as stream:
        offset = span.offset + start
        if isinstance(connection, ssl.SSLSocket):  # sendfile cannot encrypt: copy
            stream.seek(offset)
            while length > 0:
                data = stream.read(min(length, 1 << 20))
                if not data:
                    break
                connection.sendall(data)
                length -= len(data)
            return
        while length > 0:
            sent = os.sendfile(connection.fileno(), stream.fileno(), offset, length)
            if sent == 0:
                break
            offset += sent
            length -= sent


class Server:
    """A running server; :meth:`stop` ends it (the CLI calls it on SIGTERM)."""

    def __init__(self, files: RegistryFiles, options: ServeOptions) -> None:
        host, _, port = options.address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--address {options.address!r}: expected HOST:PORT")
        auth = Htpasswd(options.htpasswd) if options.htpasswd else None
        handler = _handler(Registry(files), auth)
        try:
            self.httpd = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        except OSError as exc:
            raise ClusterImageError(f"cannot listen on {options.address}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        if options.tls_cert is not None:
            if options.tls_key is None:
                raise UsageError("--tls-cert needs --tls-key")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(options.tls_cert, options.tls_key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        host_bound, port_bound = self.httpd.server_address[:2]
        self.address = f"{host_bound!s}:{port_bound}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)
        self.httpd.server_close()

    def stop(self) -> None:
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()


def run(files: RegistryFiles, options: ServeOptions, on_ready: Callable[[str], None]) -> None:
    """Serve until SIGTERM or SIGINT; ``on_ready`` gets the address it listens on."""
    import signal

    server = Server(files, options)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    on_ready(server.address)
    server.serve_forever()


def distribution_config(root: Path, options: ServeOptions) -> dict[str, Any]:
    """The stock registry's configuration (the template the package carries) for ``root``."""
    from importlib.resources import files

    import yaml

    template = files("clusterimage.runtime").joinpath("registry-config.yml").read_text()
    config: dict[str, Any] = yaml.safe_load(template)
    host, _, port = options.address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {options.address!r}: expected HOST:PORT")
    config["storage"]["filesystem"]["rootdirectory"] = str(root.resolve())
    config["http"]["addr"] = options.address
    # Metrics next to the API, on the port after it, on the same interface.
    config["http"]["debug"]["addr"] = f"{host}:{int(port) + 1}"
    if options.htpasswd is not None:
        config["auth"]["htpasswd"]["path"] = str(options.htpasswd.resolve())
    else:
        del config["auth"]
    if options.tls_cert is not None:
        if options.tls_key is None:
            raise UsageError("--tls-cert needs --tls-key")
        config["http"]["tls"] = {
            "certificate": str(options.tls_cert.resolve()),
            "key": str(options.tls_key.resolve()),
        }
    return config


def run_distribution(root: Path, options: ServeOptions, config_dir: Path) -> int:
    """Run the stock registry (``docker-registry`` or ``registry`` on PATH) on ``root`` until it
    ends; SIGTERM and SIGINT are passed on. Returns its exit status."""
    import shutil
    import signal
    import subprocess

    import yaml

    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise ClusterImageError(
            "--engine distribution needs the stock registry on PATH (apt-get install "
            "docker-registry)"
        )
    if not (root / "docker" / "registry" / "v2").is_dir():
        raise ClusterImageError(f"{root}: no docker/registry/v2 folder: not a registry folder")
    config_dir.mkdir(parents=True, exist_ok=True)
    config = config_dir / "registry-config.yml"
    config.write_text(yaml.safe_dump(distribution_config(root, options), sort_keys=False))
    # It reads every REGISTRY_* variable as an override of its configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    process = subprocess.Popen([binary, "serve", str(config)], env=env)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: process.send_signal(number))
    return process.wait()
