"""Registry credentials: auth files, credential helpers, ``--creds``; ``login`` / ``logout``.

Lookup order is containers/image's (``pkg/docker/config``): ``$REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.config/containers/auth.json``,
``$DOCKER_CONFIG/config.json``, ``~/.docker/config.json``. In each file a registry's
``credHelpers`` entry wins over its ``auths`` entry, which wins over ``credsStore``; the first file
that knows the registry answers. ``--authfile`` replaces the list with one file; ``--creds``
replaces all of it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterimage.errors import AuthError, UsageError
from clusterimage.oci import jsonsafe

DOCKER_HUB = "docker.io"
# The key `docker login` writes for Docker Hub, and what credential helpers store it under.
DOCKER_HUB_LEGACY_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# What a credential helper returns as Username when Secret is an identity (refresh) token.
_IDENTITY_TOKEN_USER = "<token>"
_HELPER_TIMEOUT = 60.0


@dataclass(frozen=True)
class Credentials:
    """What authenticates us to one registry. Never printed: ``repr`` hides the secrets."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    # Where they came from, for the message when a registry refuses them: "--creds", the auth
    # file's path, or "docker-credential-NAME" ("" when made in code: login's own).
    source: str = field(default="", compare=False)

    @property
    def who(self) -> str:
        """The account as messages name it (never the secret)."""
        return f"user {self.username}" if self.username else "an identity token"

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token)

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


ANONYMOUS = Credentials()


def parse_creds(value: str) -> Credentials:
    """``USERNAME:PASSWORD`` as skopeo's ``--creds`` takes it (the password may contain ':')."""
    username, sep, password = value.partition(":")
    if not sep or not username:
        raise UsageError("--creds: expected USERNAME:PASSWORD")
    return Credentials(username, password)


def normalize_key(key: str) -> str:
    """An auth-file key as ``host[:port][/path]``: no scheme, no ``/v1/`` or ``/v2/`` suffix, and
    Docker Hub's spellings all as ``docker.io``."""
    key = key.strip()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            # A URL key names a host only (docker's legacy format): drop any path.
            key = key.split("/", 1)[0]
            break
    key = key.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    host, slash, path = key.partition("/")
    if host in _DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
    return host + slash + path


def registry_of(value: str) -> str:
    """The registry host a login/logout argument names (``docker.io`` for any Hub spelling).

    Accepts ``host``, ``host:port``, ``https://host/v2/`` and ``host/namespace`` (a scoped entry,
    as podman allows)."""
    key = normalize_key(value)
    if not key:
        raise UsageError("a registry name is required")
    return key


def candidate_paths(auth_file: Path | None = None) -> list[Path]:
    """The files looked in, in order (they need not exist)."""
    if auth_file is not None:
        return [auth_file]
    paths: list[Path] = []
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        paths.append(Path(env))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(Path(runtime) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths.append(Path(config_home) / "containers" / "auth.json")
    docker_config = os.environ.get("DOCKER_CONFIG")
    if docker_config:
        paths.append(Path(docker_config) / "config.json")
    paths.append(Path.home() / ".docker" / "config.json")
    return paths


def default_write_path(auth_file: Path | None = None) -> Path:
    """Where ``login`` writes: ``--authfile``, else $REGISTRY_AUTH_FILE, else podman's default."""
    if auth_file is not None:
        return auth_file
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "containers" / "auth.json"
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "containers" / "auth.json"


#: An auth file holds a few kB of JSON.
_AUTH_FILE_LIMIT = 4 << 20


def _read_file(path: Path) -> dict[str, Any] | None:
    try:
        # Bounded: --authfile /dev/zero (or a runaway file) must not fill memory. A pipe
        # (--authfile <(...)) is read as podman reads it.
        with open(path, "rb") as stream:
            raw = stream.read(_AUTH_FILE_LIMIT + 1)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    if len(raw) > _AUTH_FILE_LIMIT:
        raise AuthError(f"{path}: larger than {_AUTH_FILE_LIMIT >> 20} MiB, so not an auth file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # a ValueError, not an OSError: the CLI would show a traceback
        raise AuthError(f"{path}: not UTF-8 text (an auth file is UTF-8 JSON)") from None
    if not text.strip():
        return {}
    try:
        data = jsonsafe.loads(text)
    except ValueError as exc:
        raise AuthError(f"{path}: not valid JSON ({exc.args[0]})") from None
    if not isinstance(data, dict):
        raise AuthError(f"{path}: not a JSON object")
    return data


def _lookup_keys(registry: str, repository: str | None) -> list[str]:
    """Keys to try, most specific first: ``host/ns/repo``, ``host/ns``, ``host``."""
    keys: list[str] = []
    if repository:
        parts = repository.split("/")
        for i in range(len(parts), 0, -1):
            keys.append(f"{registry}/{'/'.join(parts[:i])}")
    keys.append(registry)
    return keys


def _match(section: Any, keys: list[str]) -> tuple[str, Any] | None:
    """The entry of an ``auths``/``credHelpers`` map whose normalised key is the most specific."""
    if not isinstance(section, dict):
        return None
    normalized: dict[str, tuple[str, Any]] = {}
    for raw_key, value in section.items():
        if isinstance(raw_key, str):
            normalized.setdefault(normalize_key(raw_key), (raw_key, value))
    for key in keys:
        if key in normalized:
            return normalized[key]
    return None


def _decode_auth_entry(path: Path, key: str, entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken") or ""
    username = entry.get("username") or ""
    password = entry.get("password") or ""
    auth = entry.get("auth")
    if auth:
        if not isinstance(auth, str):  # b64decode would raise TypeError: a traceback
            raise AuthError(f"{path}: entry {key!r} has an invalid 'auth' value")
        try:
            decoded = base64.b64decode(auth, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthError(f"{path}: entry {key!r} has an invalid 'auth' value") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError(f"{path}: entry {key!r} has an invalid 'auth' value") from None
    if not (username or password or token):
        return None
    return Credentials(str(username), str(password), str(token))


def _helper_server(registry: str, raw_key: str | None) -> str:
    if raw_key is not None:
        return raw_key
    return DOCKER_HUB_LEGACY_KEY if registry == DOCKER_HUB else registry


def _run_helper(helper: str, action: str, payload: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{helper}"
    if shutil.which(program) is None:
        raise AuthError(f"credential helper {program} is not installed (named in an auth file)")
    try:
        return subprocess.run(
            [program, action],
            input=payload,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} {action} timed out") from None


def _helper_get(helper: str, server: str) -> Credentials | None:
    result = _run_helper(helper, "get", server)
    if result.returncode != 0:
        # "credentials not found in native keychain" is the protocol's way to say: none.
        if "not found" in (result.stdout + result.stderr).lower():
            return None
        raise AuthError(
            f"credential helper docker-credential-{helper} get failed "
            f"(exit {result.returncode}) for {server}"
        )
    try:
        data = jsonsafe.loads(result.stdout)
        username = str(data.get("Username") or "")
        secret = str(data.get("Secret") or "")
    except (ValueError, AttributeError):
        raise AuthError(f"credential helper docker-credential-{helper} returned bad JSON") from None
    if username == _IDENTITY_TOKEN_USER:
        return Credentials(identity_token=secret)
    if not (username or secret):
        return None
    return Credentials(username, secret)


def lookup(
    registry: str,
    repository: str | None = None,
    *,
    auth_file: Path | None = None,
    creds: str | None = None,
) -> Credentials:
    """The credentials for ``registry`` (normalised host[:port]), or anonymous ones."""
    if creds:
        return dataclasses.replace(parse_creds(creds), source="--creds")
    registry = normalize_key(registry)
    keys = _lookup_keys(registry, repository)
    for path in candidate_paths(auth_file):
        data = _read_file(path)
        if data is None:
            continue
        helper_entry = _match(data.get("credHelpers"), keys)
        if helper_entry is not None:
            raw_key, helper = helper_entry
            found = _helper_get(str(helper), _helper_server(registry, raw_key))
            if found is not None:
                return dataclasses.replace(found, source=f"docker-credential-{helper}")
        auth_entry = _match(data.get("auths"), keys)
        if auth_entry is not None:
            found = _decode_auth_entry(path, auth_entry[0], auth_entry[1])
            if found is not None:
                return dataclasses.replace(found, source=str(path))
        store = data.get("credsStore")
        if isinstance(store, str) and store:
            found = _helper_get(store, _helper_server(registry, None))
            if found is not None:
                return dataclasses.replace(found, source=f"docker-credential-{store}")
    return ANONYMOUS


@contextlib.contextmanager
def _locked_update(path: Path) -> Iterator[dict[str, Any]]:
    """Read, let the caller change, write back atomically with mode 0600 (parents 0700)."""
    from filelock import FileLock

    _make_private_dirs(path.parent)
    with FileLock(str(path) + ".lock", mode=0o600):
        data = _read_file(path) or {}
        yield data
        fd, tmp = tempfile.mkstemp(prefix=".auth-", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent="\t")
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _make_private_dirs(directory: Path) -> None:
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for item in reversed(missing):
        item.mkdir(mode=0o700)


def save(
    registry: str, credentials: Credentials, *, auth_file: Path | None = None
) -> tuple[Path, str]:
    """Store credentials for ``registry`` (as ``login`` does); returns (file, where stored)."""
    key = registry_of(registry)
    path = default_write_path(auth_file)
    with _locked_update(path) as data:
        helper = _match(data.get("credHelpers"), [key])
        store = data.get("credsStore")
        if helper is not None or (isinstance(store, str) and store):
            name = str(helper[1]) if helper is not None else str(store)
            server = _helper_server(key, helper[0] if helper is not None else None)
            payload = json.dumps(
                {
                    "ServerURL": server,
                    "Username": credentials.username or _IDENTITY_TOKEN_USER,
                    "Secret": credentials.password or credentials.identity_token,
                }
            )
            result = _run_helper(name, "store", payload)
            if result.returncode != 0:
                raise AuthError(f"credential helper docker-credential-{name} store failed")
            return path, f"docker-credential-{name}"
        auths = data.setdefault("auths", {})
        if not isinstance(auths, dict):
            raise AuthError(f"{path}: 'auths' is not an object")
        for raw_key in [k for k in auths if normalize_key(k) == key]:
            del auths[raw_key]
        entry: dict[str, str] = {}
        if credentials.username or credentials.password:
            raw = f"{credentials.username}:{credentials.password}".encode()
            entry["auth"] = base64.b64encode(raw).decode("ascii")
        if credentials.identity_token:
            entry["identitytoken"] = credentials.identity_token
        auths[key] = entry
    return path, str(path)


def remove(registry: str | None, *, auth_file: Path | None = None) -> list[str]:
    """Forget the credentials ``login`` stored for ``registry`` (all of them when None).

    As podman does, only the file ``login`` writes is changed (never ~/.docker/config.json).
    Returns the registries removed (empty: there was nothing to remove)."""
    key = registry_of(registry) if registry is not None else None
    path = default_write_path(auth_file)
    current = _read_file(path)
    if not current:
        return []
    removed: list[str] = []
    with _locked_update(path) as data:
        auths = data.get("auths")
        if isinstance(auths, dict):
            for raw_key in list(auths):
                if key is None or normalize_key(raw_key) == key:
                    del auths[raw_key]
                    removed.append(normalize_key(raw_key))
        helpers = data.get("credHelpers")
        store = data.get("credsStore")
        if key is not None:
            helper = _match(helpers, [key])
            name = (
                str(helper[1]) if helper is not None else (store if isinstance(store, str) else "")
            )
            if name:
                server = _helper_server(key, helper[0] if helper is not None else None)
                result = _run_helper(name, "erase", server)
                if result.returncode == 0:
                    removed.append(key)
    return sorted(set(removed))


def known_elsewhere(registry: str, *, auth_file: Path | None = None) -> Path | None:
    """An auth file other than the one ``login`` writes that has an entry for ``registry``."""
    key = registry_of(registry)
    own = default_write_path(auth_file)
    for path in candidate_paths(auth_file):
        if path == own:
            continue
        data = _read_file(path)
        if data and _match(data.get("auths"), [key]) is not None:
            return path
    return None
