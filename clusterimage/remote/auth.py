"""Registry authentication: ``WWW-Authenticate`` challenges, scopes, bearer tokens and their cache.

The flow is the distribution token spec (docs/spec/auth/token.md, oauth.md): a 401 carries a
challenge; ``Basic`` means send the credentials on every request; ``Bearer`` names a token server
(``realm``) that trades credentials (or nothing, for anonymous pulls) for a short-lived token
covering a set of scopes. Tokens are cached per registry, identity and scope set until shortly
before they expire, and dropped when the registry refuses one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from clusterimage.errors import AuthError, RegistryError
from clusterimage.oci import jsonsafe
from clusterimage.remote.bodies import API_BODY_LIMIT, read_limited
from clusterimage.remote.credentials import Credentials
from clusterimage.remote.tls import is_loopback

DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, when the token server does not say (token spec)
_MIN_TOKEN_LIFETIME = 1.0
_CLIENT_ID = "clusterimage"


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header; ``scheme`` is lowercase."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse ``Bearer realm="...",service="...",scope="a:b:c,d"`` (RFC 7235 challenges).

    Written by hand: httpx has no parser for this header, and quoted values contain commas.
    """
    challenges: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and current is not None:
            # auth-param: name=value or name="quoted"
            j += 1
            while j < n and header[j] in " \t":
                j += 1
            if j < n and header[j] == '"':
                j += 1
                chars: list[str] = []
                while j < n and header[j] != '"':
                    if header[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(header[j])
                    j += 1
                value = "".join(chars)
                j += 1  # closing quote
            else:
                vstart = j
                while j < n and header[j] not in " \t,":
                    j += 1
                value = header[vstart:j]
            current.params[token.lower()] = value
            i = j
        else:
            current = Challenge(token.lower(), {})
            challenges.append(current)
            i = j
    return challenges


def pick_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """Bearer if offered (it scopes access), else Basic; other schemes are not supported."""
    found = {c.scheme: c for c in challenges}
    return found.get("bearer") or found.get("basic")


class CredentialsRefused(AuthError):
    """The token server said no to the credentials it was given (not to anonymous access)."""


class Scopes:
    """A set of ``repository:NAME:ACTIONS`` scopes, actions merged per resource."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        self._items: dict[str, set[str]] = {}
        for item in items:
            self.add(item)

    @classmethod
    def repository(cls, name: str, *actions: str) -> Scopes:
        return cls([f"repository:{name}:{','.join(actions)}"])

    def add(self, scope: str) -> None:
        for part in scope.split():
            resource, sep, actions = part.rpartition(":")
            if not sep or not resource:
                continue
            self._items.setdefault(resource, set()).update(a for a in actions.split(",") if a)

    def union(self, other: Scopes) -> Scopes:
        merged = Scopes(self.as_list())
        for item in other.as_list():
            merged.add(item)
        return merged

    def as_list(self) -> list[str]:
        return [f"{res}:{','.join(sorted(acts))}" for res, acts in sorted(self._items.items())]

    def key(self) -> tuple[str, ...]:
        return tuple(self.as_list())

    def items(self) -> list[tuple[str, set[str]]]:
        """(resource, actions) pairs: ``("repository:app", {"pull", "push"})``."""
        return [(res, set(acts)) for res, acts in sorted(self._items.items())]

    def __bool__(self) -> bool:
        return bool(self._items)

    def __repr__(self) -> str:
        return f"Scopes({self.as_list()!r})"


@dataclass
class Token:
    value: str = field(repr=False)
    expires_at: float  # time.monotonic() after which it must not be used

    def valid(self) -> bool:
        return time.monotonic() < self.expires_at


class TokenCache:
    """Bearer tokens per (registry, identity, scopes); safe to share between threads.

    One lock per key makes concurrent blob workers wait for a single token fetch instead of each
    asking the token server.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, tuple[str, ...]], Token] = {}
        self._fetching: dict[tuple[str, str, tuple[str, ...]], threading.Lock] = {}

    def key_lock(self, key: tuple[str, str, tuple[str, ...]]) -> threading.Lock:
        with self._lock:
            return self._fetching.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str, tuple[str, ...]]) -> Token | None:
        with self._lock:
            token = self._tokens.get(key)
        if token is not None and token.valid():
            return token
        return None

    def put(self, key: tuple[str, str, tuple[str, ...]], token: Token) -> None:
        with self._lock:
            self._tokens[key] = token

    def invalidate(self, key: tuple[str, str, tuple[str, ...]], value: str) -> None:
        """Drop the token for ``key`` if it is still ``value`` (another thread may have
        replaced it with a fresh one already)."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == value:
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()
"""The process-wide cache: every client of every registry shares it."""


def token_lifetime(data: dict[str, Any], now_wall: float | None = None) -> float:
    """Seconds a token response stays usable: ``expires_in`` (default 60) minus the age that
    ``issued_at`` shows, less a safety margin so no request starts with a token about to lapse."""
    try:
        lifetime = float(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME
    if lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    issued = data.get("issued_at")
    if isinstance(issued, str) and issued:
        try:
            issued_at = dt.datetime.fromisoformat(issued.replace("Z", "+00:00"))
            if issued_at.tzinfo is None:
                issued_at = issued_at.replace(tzinfo=dt.UTC)
            age = (now_wall if now_wall is not None else time.time()) - issued_at.timestamp()
            # Only trust a plausible age: a skewed clock must not make every token look expired.
            if 0 < age < lifetime:
                lifetime -= age
        except ValueError:
            pass
    margin = min(30.0, lifetime * 0.1)
    return max(_MIN_TOKEN_LIFETIME, lifetime - margin)


_CLAIMS_LIMIT = 64 * 1024  # bytes of a token's claims read to name what it grants


def granted_scopes(token: str | None) -> Scopes | None:
    """What a JWT bearer token grants, from its ``access`` claim (the distribution token
    spec); None when the token is not a readable JWT (opaque tokens exist). The signature is
    not checked: this only explains a refusal, it decides nothing."""
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    if len(payload) > _CLAIMS_LIMIT:
        return None
    try:
        claims = jsonsafe.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    access = claims.get("access") if isinstance(claims, dict) else None
    if not isinstance(access, list):
        return None
    granted = Scopes()
    for entry in access:
        if not isinstance(entry, dict):
            continue
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if isinstance(kind, str) and isinstance(name, str) and isinstance(actions, list):
            granted.add(f"{kind}:{name}:{','.join(a for a in actions if isinstance(a, str))}")
    return granted


def lacking_scopes(token: str | None, wanted: Scopes) -> list[str]:
    """The parts of ``wanted`` that ``token`` does not grant (``repository:NAME:push``); all of
    ``wanted`` when what the token grants cannot be read."""
    granted = granted_scopes(token)
    have = dict(granted.items()) if granted is not None else {}
    out = []
    for resource, actions in wanted.items():
        held = have.get(resource, set())
        missing = sorted(a for a in actions if a not in held and "*" not in held)
        if missing:
            out.append(f"{resource}:{','.join(missing)}")
    return out


def fetch_token(
    client: httpx.Client,
    challenge: Challenge,
    credentials: Credentials,
    scopes: Scopes,
    *,
    registry: str,
    registry_url: str,
) -> Token:
    """Ask the challenge's token server for a token covering ``scopes``.

    ``registry_url`` is the base the registry was reached at (``https://host:port``): it decides
    whether the realm may receive credentials over plain http (:func:`check_realm`).
    """
    if not challenge.realm:
        raise RegistryError(f"{registry}: bearer challenge without a realm")
    check_realm(challenge.realm, registry_url, credentials, registry=registry)
    scope_list = scopes.as_list()
    try:
        if credentials.identity_token:
            response = _post_refresh_token(client, challenge, credentials, scope_list)
            if response.status_code in (404, 405) and credentials.has_password:
                response.close()
                response = _get_token(client, challenge, credentials, scope_list)
        else:
            response = _get_token(client, challenge, credentials, scope_list)
    except httpx.TooManyRedirects:
        host = httpx.URL(challenge.realm).host
        raise RegistryError(f"{registry}: the token server {host}: too many redirects") from None
    except httpx.TransportError as exc:
        host = httpx.URL(challenge.realm).host
        raise RegistryError(
            f"{registry}: cannot reach the token server {host}: {type(exc).__name__}: {exc}"
        ) from None
    try:
        if response.status_code == 200:
            read_limited(response, API_BODY_LIMIT, f"{registry}: token server")
    except httpx.TransportError as exc:
        raise RegistryError(f"{registry}: token server: {type(exc).__name__}: {exc}") from None
    finally:
        response.close()
    if response.status_code in (401, 403):
        if credentials.anonymous:
            raise AuthError(
                f"{registry}: authentication required; run `clusterimage login {registry}`"
            )
        raise CredentialsRefused(
            f"{registry}: the token server refused the credentials for "
            f"{credentials.username or 'the identity token'}; "
            f"run `clusterimage login {registry}`"
        )
    if response.status_code != 200:
        raise RegistryError(
            f"{registry}: token server answered HTTP {response.status_code} for scopes "
            f"{' '.join(scope_list) or '(none)'}"
        )
    try:
        data = jsonsafe.loads(response.content)  # a hostile token server may nest deeply
    except ValueError:
        raise RegistryError(f"{registry}: token server returned invalid JSON") from None
    value = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{registry}: token server returned no token")
    return Token(value, time.monotonic() + token_lifetime(data))


def check_realm(realm: str, registry_url: str, credentials: Credentials, *, registry: str) -> None:
    """Refuse to send credentials in clear text to a token server the user never chose.

    The realm is whatever the registry's challenge names. Over https any host may serve it
    (Docker Hub's is auth.docker.io), as containers/image and docker allow. Over plain http,
    credentials go only to a loopback token server, or to the registry's own host when the
    registry itself is used over plain http (``--tls-verify=false``, where Basic auth would
    expose them to that host the same way). containers/image sends them to any realm; an
    https registry naming an http realm would leak the password to anyone on the path.

    Anonymous token requests still go to an http realm: they carry no secret, docker and
    containers/image make them, and the token they return is only as trustworthy as the
    registry connection it is shown to anyway.
    """
    try:
        url = httpx.URL(realm)
    except httpx.InvalidURL:
        url = httpx.URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise RegistryError(f"{registry}: the bearer challenge's realm is not an http(s) URL")
    if url.scheme == "https" or credentials.anonymous:
        return
    base = httpx.URL(registry_url)
    host = f"[{url.host}]" if ":" in url.host else url.host  # is_loopback wants IPv6 bracketed
    if is_loopback(host) or (base.scheme == "http" and base.host == url.host):
        return
    server = host if url.port is None else f"{host}:{url.port}"
    raise AuthError(
        f"{registry}: refusing to send credentials to the token server {server} over plain "
        "http (the registry's bearer realm is an http:// URL on a host that is neither loopback "
        "nor the plain-http registry itself); the realm must use https"
    )


def _get_token(
    client: httpx.Client, challenge: Challenge, credentials: Credentials, scopes: list[str]
) -> httpx.Response:
    params: list[tuple[str, str | int | float | bool | None]] = []
    if challenge.service:
        params.append(("service", challenge.service))
    params.extend(("scope", s) for s in scopes)
    headers = {}
    if credentials.has_password:
        params.append(("account", credentials.username))
        headers["Authorization"] = credentials.basic_header()
    request = client.build_request("GET", challenge.realm, params=params, headers=headers)
    return client.send(request, stream=True, follow_redirects=True)  # body: see fetch_token


def _post_refresh_token(
    client: httpx.Client, challenge: Challenge, credentials: Credentials, scopes: list[str]
) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": credentials.identity_token,
        "client_id": _CLIENT_ID,
        "scope": " ".join(scopes),
    }
    if challenge.service:
        form["service"] = challenge.service
    return client.send(client.build_request("POST", challenge.realm, data=form), stream=True)
