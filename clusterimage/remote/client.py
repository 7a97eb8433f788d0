"""The HTTP side of one registry: scheme, TLS, authentication, retries, error messages.

A :class:`Registry` is safe to share between threads (the copy engine's blob workers use one):
httpx's connection pool is thread-safe, the ping runs once under a lock, and bearer tokens live in
the process-wide :data:`~clusterimage.remote.auth.TOKENS` cache.

Nothing here logs headers or prints URLs with their query (upload URLs and redirects to storage
carry tokens and signatures); error messages name host, method and path only.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clusterimage import __version__
from clusterimage.errors import AuthError, RegistryError, TransferInterrupted
from clusterimage.oci import jsonsafe
from clusterimage.remote import auth, credentials, tls
from clusterimage.remote.auth import Challenge, Scopes
from clusterimage.remote.bodies import API_BODY_LIMIT, bound_redirect, discard, read_limited
from clusterimage.remote.credentials import Credentials
from clusterimage.remote.tls import TlsSettings, is_loopback, ssl_context
from clusterimage.retry import RetryPolicy, is_retryable_status, parse_retry_after

USER_AGENT = f"clusterimage/{__version__}"
READ_SIZE = 1 << 20


def _use_large_reads() -> None:
    # httpcore reads sockets 64 KiB at a time and offers no setting; blob downloads spend a
    # third less CPU with 1 MiB reads (fewer syscalls and h11 events), measured by bench.py.
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # another httpcore layout: keep its default
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", READ_SIZE) < READ_SIZE:
        HTTP11Connection.READ_NUM_BYTES = READ_SIZE


_use_large_reads()
_ERROR_BODY_LIMIT = 64 * 1024
DEFAULT_TIMEOUT = 30.0

# Decided schemes per (host, verify setting): "https" or "http". One probe per process.
_SCHEMES: dict[tuple[str, bool | None], str] = {}
_SCHEMES_LOCK = threading.Lock()


@dataclass(frozen=True)
class ClientOptions:
    """How to talk to registries; built from a transport Context."""

    tls: TlsSettings = field(default_factory=TlsSettings)
    auth_file: Path | None = None
    creds: str | None = field(default=None, repr=False)  # "user:password": never in a repr
    creds_flag: str = "--creds"  # which flag gave them (copy: --src-creds, --dest-creds)
    retries: int = 3
    # Seconds a request waits to connect, or for the next bytes of an answer. A server that
    # stays silent that long is not retried: it fails the command (see Registry.request).
    timeout: float = DEFAULT_TIMEOUT
    max_connections: int = 16
    transport: httpx.BaseTransport | None = None  # unit tests inject an httpx.MockTransport


def endpoint_host(registry: str) -> str:
    """Where a registry name is served: Docker Hub's API lives at registry-1.docker.io."""
    return "registry-1.docker.io" if registry == credentials.DOCKER_HUB else registry


def redact_url(url: httpx.URL | str) -> str:
    """A URL without query or fragment (they may carry tokens or signatures)."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(query=None, fragment=None))


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while exc.__cause__ is not None or exc.__context__ is not None:
        if id(exc) in seen:
            break
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        assert nxt is not None
        exc = nxt
    return exc


def _is_cert_error(exc: BaseException) -> bool:
    root = _root_cause(exc)
    if isinstance(root, ssl.SSLCertVerificationError):
        return True
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text


def _is_tls_error(exc: BaseException) -> bool:
    return isinstance(_root_cause(exc), ssl.SSLError) or "SSL" in str(exc)


def _describe(exc: BaseException) -> str:
    root = _root_cause(exc)
    if isinstance(root, OSError) and root.strerror:
        return root.strerror  # "Connection refused", not "[Errno 111] Connection refused"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


class Registry:
    """One registry host seen with one set of credentials (those of ``repository``)."""

    def __init__(
        self,
        registry: str,
        options: ClientOptions | None = None,
        *,
        repository: str | None = None,
    ) -> None:
        self.name = registry
        self.host = endpoint_host(registry)
        self.options = options or ClientOptions()
        self.policy = RetryPolicy(retries=max(0, self.options.retries))
        self._repository = repository
        self._lock = threading.Lock()
        self._credentials: Credentials | None = None
        self._base: str | None = None
        self._challenge: Challenge | None = None
        limits = httpx.Limits(
            max_connections=self.options.max_connections,
            max_keepalive_connections=self.options.max_connections,
        )
        self._ssl = ssl_context(self.host, self.options.tls)
        self._client = httpx.Client(
            transport=self.options.transport,
            verify=self._ssl,
            timeout=httpx.Timeout(self.options.timeout, pool=None),
            limits=limits,
            # identity: API answers are small JSON; asking for them uncompressed spares CPU,
            # and blob bytes must arrive exactly as their digest says.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            follow_redirects=False,
            event_hooks={"response": [bound_redirect]},
        )

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- credentials and the ping ----------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        with self._lock:
            if self._credentials is None:
                self._credentials = credentials.lookup(
                    self.name,
                    self._repository,
                    auth_file=self.options.auth_file,
                    creds=self.options.creds,
                )
            return self._credentials

    def use_credentials(self, creds: Credentials) -> None:
        """Authenticate with ``creds`` instead of those found in auth files (``login``)."""
        with self._lock:
            self._credentials = creds

    @property
    def base_url(self) -> str:
        self.ping()
        assert self._base is not None
        return self._base

    def _candidate_bases(self) -> list[str]:
        verify = self.options.tls.verify
        key = (self.host, verify)
        with _SCHEMES_LOCK:
            known = _SCHEMES.get(key)
        if known:
            return [f"{known}://{self.host}"]
        if verify is False or (verify is None and is_loopback(self.host)):
            # As containers/image does for insecure registries: https first, then plain http.
            return [f"https://{self.host}", f"http://{self.host}"]
        return [f"https://{self.host}"]

    def ping(self) -> Challenge | None:
        """``GET /v2/``: decides the scheme and learns how the registry wants us to log in."""
        with self._lock:
            if self._base is not None:
                return self._challenge
        bases = self._candidate_bases()
        last: BaseException | None = None
        for attempt in range(self.policy.retries + 1):
            for base in bases:
                try:
                    response = self._get_v2(base, probe=len(bases) > 1)
                except httpx.TimeoutException:
                    # Silent, not refusing: neither the other scheme nor a retry would answer
                    # (a plain-http server answers a TLS hello at once, with an error).
                    raise self._timeout_error("GET /v2/") from None
                except httpx.TransportError as exc:
                    if base.startswith("https:") and _is_cert_error(exc):
                        raise self._tls_error(exc) from None
                    if len(bases) == 1 and _is_tls_error(exc):
                        raise self._tls_error(exc) from None  # retrying will not help
                    last = exc
                    continue
                if is_retryable_status(response.status_code):
                    last = RegistryError(f"{self.host}: HTTP {response.status_code} on GET /v2/")
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    response.close()
                    if attempt < self.policy.retries:
                        self.policy.sleep(attempt, retry_after)
                    break
                challenge = None
                if response.status_code == 401:
                    challenge = auth.pick_challenge(
                        auth.parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))
                    )
                discard(response)
                scheme = base.split(":", 1)[0]
                with _SCHEMES_LOCK:
                    _SCHEMES[(self.host, self.options.tls.verify)] = scheme
                with self._lock:
                    self._base, self._challenge = base, challenge
                return challenge
            else:
                if attempt < self.policy.retries:
                    self.policy.sleep(attempt)
                continue
        if isinstance(last, RegistryError):
            raise last
        assert last is not None
        if _is_tls_error(last) and len(bases) == 1:
            raise self._tls_error(last)
        raise RegistryError(f"cannot reach registry {self.host}: {_describe(last)}")

    def _get_v2(self, base: str, *, probe: bool) -> httpx.Response:
        # Streamed: only the status and headers count, the body is never read (it has no limit).
        if not (probe and base.startswith("https:")):
            return self._send_once("GET", f"{base}/v2/", None, stream=True)
        # Probing a loopback registry that may speak plain http: no need for the system CAs
        # unless it answers with a certificate (see tls.probing).
        try:
            with tls.probing():
                return self._send_once("GET", f"{base}/v2/", None, stream=True)
        except httpx.TransportError as exc:
            if not (_is_cert_error(exc) and tls.load_system_cas(self._ssl)):
                raise
        return self._send_once("GET", f"{base}/v2/", None, stream=True)

    def _timeout_error(self, shown: str) -> RegistryError:
        return RegistryError(
            f"{self.host}: no answer to {shown} within {self.options.timeout:g} s; "
            "the registry may be down or overloaded (--timeout SECONDS waits longer)"
        )

    def _tls_error(self, exc: BaseException) -> RegistryError:
        if _is_cert_error(exc):
            return RegistryError(
                f"{self.host}: TLS certificate verification failed "
                f"({_describe(_root_cause(exc))}); use --cert-dir DIR with the registry's CA "
                "certificate, or --tls-verify=false"
            )
        return RegistryError(
            f"{self.host}: TLS handshake failed ({_describe(_root_cause(exc))}); if the "
            "registry serves plain HTTP use --tls-verify=false, for a private CA use --cert-dir DIR"
        )

    # -- authorization ---------------------------------------------------------------------

    def _token_key(self, scopes: Scopes) -> tuple[str, str, tuple[str, ...]]:
        creds = self.credentials
        identity = creds.username or ("<identity-token>" if creds.identity_token else "")
        return (self.host, identity, scopes.key())

    def _authorization(self, scopes: Scopes) -> tuple[str | None, str | None]:
        """(Authorization header, bearer token value) for a request needing ``scopes``."""
        challenge = self.ping()
        if challenge is None:
            return None, None
        creds = self.credentials
        if challenge.scheme == "basic":
            return (creds.basic_header() if creds.has_password else None), None
        key = self._token_key(scopes)
        token = auth.TOKENS.get(key)
        if token is None:
            with auth.TOKENS.key_lock(key):
                token = auth.TOKENS.get(key)
                if token is None:
                    try:
                        token = auth.fetch_token(
                            self._client,
                            challenge,
                            creds,
                            scopes,
                            registry=self.name,
                            registry_url=self.base_url,
                        )
                    except auth.CredentialsRefused:
                        raise self._refused() from None
                    auth.TOKENS.put(key, token)
        return f"Bearer {token.value}", token.value

    def check_login(self) -> None:
        """Prove the credentials work (``login``): Basic on ``/v2/``, or a token fetch."""
        challenge = self.ping()
        if challenge is None:
            return
        creds = self.credentials
        # The credentials being checked are login's own: the message must not send the user
        # back to login, only say they were wrong.
        refused = AuthError(
            f"registry {self.name} refused the credentials of {creds.who}; "
            "check the user name and password"
        )
        if challenge.scheme == "bearer":
            try:
                auth.fetch_token(
                    self._client,
                    challenge,
                    creds,
                    Scopes(),
                    registry=self.name,
                    registry_url=self.base_url,
                )
            except auth.CredentialsRefused:
                raise refused from None
            return
        response = self._send_once("GET", f"{self.base_url}/v2/", creds.basic_header(), stream=True)
        discard(response)
        if response.status_code in (401, 403):
            raise refused
        if response.status_code >= 400:
            raise RegistryError(f"{self.name}: HTTP {response.status_code} on GET /v2/")

    def _send_once(
        self,
        method: str,
        url: str,
        authorization: str | None,
        *,
        headers: dict[str, str] | None = None,
        params: Any = None,
        content: bytes | Iterable[bytes] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if authorization:
            all_headers["Authorization"] = authorization
        request = self._client.build_request(
            method, url, headers=all_headers, params=params, content=content
        )
        return self._client.send(request, stream=stream, follow_redirects=follow_redirects)

    # -- requests --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute URL for a registry path (``/v2/...``) or a Location the registry sent."""
        if path.startswith(("http://", "https://")):
            return path
        return str(httpx.URL(self.base_url).join(path))

    @staticmethod
    def location(response: httpx.Response) -> str | None:
        """The response's Location as an absolute URL: a relative one is resolved against the
        URL of the request it answers (RFC 9110), not against the registry's root. One that is
        no URL at all is a one-line RegistryError (not httpx's InvalidURL)."""
        value = response.headers.get("Location")
        if not value:
            return None
        try:
            joined = response.request.url.join(value)
        except httpx.InvalidURL as exc:
            where = redact_url(response.request.url).split("://", 1)[-1]
            raise RegistryError(
                f"{where}: the registry answered with a Location that is not a URL ({exc})"
            ) from None
        if joined.scheme not in ("http", "https") or not joined.host:
            raise RegistryError(
                f"{joined.host or 'registry'}: the registry answered with a Location that is "
                f"not an http(s) URL"
            )
        return str(joined)

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: Scopes,
        what: str,
        headers: dict[str, str] | None = None,
        params: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
        ok: Iterable[int] = (200,),
        missing: type[Exception] | None = None,
        body_limit: int = API_BODY_LIMIT,
        retry: bool = True,
    ) -> httpx.Response:
        """Send a request with authentication and retries; return the response if its status is
        in ``ok`` (for ``stream`` the body is not read yet: close it), else raise.

        A streamed ``content`` (an iterator) cannot be sent twice: failures then raise
        :class:`TransferInterrupted` for the caller to resume or restart the transfer. So do
        they with ``retry=False``: blob transfers are retried in one place, the copy engine,
        which resumes them, so that no failure is retried by two layers at once.
        A timeout is never retried: the server was silent for the whole timeout.
        ``missing``: the exception raised on 404 (e.g. BlobNotFound), else RegistryError.
        Unless ``stream``, a body past ``body_limit`` bytes raises ResponseTooLarge.
        """
        ok_codes = frozenset(ok)
        replayable = retry and not isinstance(content, Iterator)
        url = self.url(path)
        # A Location the registry sent may name another host: credentials and tokens are for
        # this registry only (as docker's client does; httpx drops them on redirects already).
        authorized = _origin(url) == _origin(self.base_url)
        shown = f"{method} {redact_url(url).split('://', 1)[-1]}"
        auth_retried = False
        attempt = 0
        while True:
            authorization, token_value = self._authorization(scopes) if authorized else (None, None)
            try:
                # Always streamed: httpx would read any body whole; error bodies are read
                # (bounded) by _error_detail, an accepted one here unless the caller streams.
                response = self._send_once(
                    method,
                    url,
                    authorization,
                    headers=headers,
                    params=params,
                    content=content,
                    stream=True,
                    follow_redirects=follow_redirects,
                )
                if not stream and response.status_code in ok_codes:
                    read_limited(response, body_limit, f"{self.host}: {what}: {shown}")
            except httpx.TooManyRedirects:
                # Not a TransportError: without this a redirect loop would be a traceback.
                raise RegistryError(f"{self.host}: {what}: {shown}: too many redirects") from None
            except httpx.TimeoutException:
                raise self._timeout_error(f"{what} ({shown})") from None
            except httpx.TransportError as exc:
                if _is_cert_error(exc):
                    raise self._tls_error(exc) from None
                message = f"{self.host}: {what}: {shown}: {_describe(exc)}"
                if not replayable:
                    raise TransferInterrupted(message) from None
                if attempt >= self.policy.retries:
                    raise RegistryError(
                        f"{message} (gave up after {attempt + 1} attempts)"
                    ) from None
                self.policy.sleep(attempt)
                attempt += 1
                continue
            status = response.status_code
            if status in ok_codes:
                return response
            if status == 401 and not auth_retried:
                # The token expired early or lacks a scope the registry asks for: drop it, take
                # the scope from the new challenge, and try once more with a fresh token.
                auth_retried = True
                header = response.headers.get("WWW-Authenticate", "")
                discard(response)
                if token_value is not None:
                    auth.TOKENS.invalidate(self._token_key(scopes), token_value)
                challenge = auth.pick_challenge(auth.parse_www_authenticate(header))
                if challenge is not None:
                    with self._lock:
                        self._challenge = Challenge(
                            challenge.scheme,
                            {k: v for k, v in challenge.params.items() if k != "scope"},
                        )
                    if challenge.scope:
                        scopes = scopes.union(Scopes([challenge.scope]))
                if not replayable:
                    raise TransferInterrupted(f"{self.host}: {what}: token expired during upload")
                continue
            if is_retryable_status(status):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                detail = self._error_detail(response)
                message = f"{self.host}: {what}: {shown}: HTTP {status}{detail}"
                if not replayable:
                    raise TransferInterrupted(message, retry_after)
                if attempt >= self.policy.retries:
                    raise RegistryError(f"{message} (gave up after {attempt + 1} attempts)")
                self.policy.sleep(attempt, retry_after)
                attempt += 1
                continue
            raise self.error_for(
                response,
                what,
                shown,
                missing=missing,
                scopes=scopes,
                token=token_value,
            )

    def _error_detail(self, response: httpx.Response) -> str:
        """``: CODE: message`` from the registry's JSON error body, if any. Closes the response."""
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= _ERROR_BODY_LIMIT:
                    break
            body = b"".join(chunks)[:_ERROR_BODY_LIMIT]
        except (httpx.HTTPError, httpx.StreamError):
            body = b""
        finally:
            response.close()
        return describe_error_body(body)

    def _refused(self) -> AuthError:
        """The registry (or its token server) said no to the credentials themselves."""
        creds = self.credentials
        if self.options.creds is not None:
            # `login` would not help: the command line's credentials are used, not saved ones.
            return AuthError(
                f"registry {self.name} refused the credentials given with "
                f"{self.options.creds_flag} "
                f"({creds.who}); check the user name and password"
            )
        origin = f", from {creds.source}" if creds.source else ""
        return AuthError(
            f"registry {self.name} refused the stored credentials for {self.name} "
            f"({creds.who}{origin}); run `clusterimage login {self.name}`"
        )

    def error_for(
        self,
        response: httpx.Response,
        what: str,
        shown: str,
        *,
        missing: type[Exception] | None = None,
        scopes: Scopes | None = None,
        token: str | None = None,  # the bearer token the request carried, if any
    ) -> Exception:
        status = response.status_code
        header = response.headers.get("WWW-Authenticate", "")
        detail = self._error_detail(response)
        creds = self.credentials
        if status == 401 and self.credentials.anonymous:
            return AuthError(
                f"{self.name}: {what}: authentication required; "
                f"run `clusterimage login {self.name}`"
            )
        # A token was issued and the registry still says no (401, or 403 DENIED as some
        # registries answer): it does not grant what the request needs, whatever the password.
        scope_refusal = status == 401 or "DENIED" in detail or "insufficient_scope" in header
        if token is not None and scopes and scope_refusal:
            wanted = scopes
            for challenge in auth.parse_www_authenticate(header):
                if challenge.scope:
                    wanted = wanted.union(Scopes([challenge.scope]))
            lacking = auth.lacking_scopes(token, wanted)
            if lacking:
                actions = {a for item in lacking for a in item.rpartition(":")[2].split(",")}
                needs = next((a for a in ("push", "delete", "pull") if a in actions), "it")
                if creds.anonymous:  # an anonymous token (a private image): logging in helps
                    return AuthError(
                        f"{self.name}: the anonymous token for {self.name} lacks the scope "
                        f"{' '.join(lacking)} that {needs} needs; "
                        f"run `clusterimage login {self.name}`"
                    )
                return AuthError(
                    f"{self.name}: the token for {self.name} lacks the scope "
                    f"{' '.join(lacking)} that {needs} needs ({creds.who})"
                )
            if status == 401:
                return AuthError(
                    f"{self.name}: {what}: the registry does not accept the token its token "
                    f"server issued for {' '.join(scopes.as_list())} ({creds.who}); the "
                    "registry may not trust that token server, or the clocks disagree"
                )
        if status == 401:
            return self._refused()
        if status == 403:
            return AuthError(f"{self.name}: {what}: access denied{detail}")
        if status == 404 and missing is not None:
            return missing(f"{self.name}: {what}: not found{detail}")
        return RegistryError(f"{self.name}: {what}: {shown}: HTTP {status}{detail}")


def describe_error_body(body: bytes) -> str:
    """Turn distribution's ``{"errors": [{"code", "message"}]}`` into ``: CODE: message``."""

    if not body:
        return ""
    try:
        data = jsonsafe.loads(body)
    except ValueError:
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not errors:
        return ""
    parts = []
    for item in errors[:3]:
        if isinstance(item, dict):
            code = str(item.get("code") or "").strip()
            message = str(item.get("message") or "").strip()
            parts.append(": ".join(p for p in (code, message) if p))
    text = "; ".join(p for p in parts if p)
    return f" ({text})" if text else ""
