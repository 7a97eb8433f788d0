"""TLS settings per registry: verification, CA and client certificates from a certs directory.

Follows containers/image (``pkg/tlsclientconfig``): in the directory for a registry, every
``*.crt`` is a CA added to the system's, every ``*.cert`` is a client certificate whose key is the
``*.key`` of the same name. ``--cert-dir`` replaces the per-host lookup in
``~/.config/containers/certs.d``, ``/etc/containers/certs.d`` and ``/etc/docker/certs.d``.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterimage.errors import RegistryError

SYSTEM_CERT_DIRS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


@dataclass(frozen=True)
class TlsSettings:
    verify: bool | None = None  # None: verify (plain http allowed only for loopback hosts)
    cert_dir: Path | None = None  # replaces the certs.d lookup when given


def is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` names this machine (where plain http is acceptable)."""
    name = split_host(host)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(host: str) -> tuple[str, str]:
    """``("127.0.0.1", "5000")`` for ``127.0.0.1:5000``; IPv6 brackets removed."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest.lstrip(":")
    name, _, port = host.partition(":")
    return name, port


def host_cert_dir(host: str, cert_dir: Path | None) -> Path | None:
    """The directory of CA and client certificates for ``host`` (``None`` if there is none)."""
    if cert_dir is not None:
        return cert_dir
    user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    for base in (user / "containers" / "certs.d", *SYSTEM_CERT_DIRS):
        candidate = base / host
        if candidate.is_dir():
            return candidate
    return None


_CONTEXTS: dict[tuple[bool | None, Path | None], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def ssl_context(host: str, settings: TlsSettings) -> ssl.SSLContext:
    """The context for https to ``host``: system CAs plus the host's, client cert if any.

    Contexts are shared per (verify, certificate directory): loading the system CAs takes
    tens of milliseconds, and a copy between two registries needs them once."""
    directory = host_cert_dir(host, settings.cert_dir)
    key = (settings.verify, directory)
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = _new_context(settings.verify, directory)
            _CONTEXTS[key] = ctx
        return ctx


class _SystemCAsOnDemand(ssl.SSLContext):
    """A verifying context that loads the system CAs before its first handshake, not when made.

    Parsing the system CA bundle takes ~16 ms, paid by every command that talks to a registry,
    even one that turns out to speak plain http: the probe of a loopback registry tries https
    first. That probe (inside :func:`probing`) is the one handshake allowed without the system
    CAs. It fails closed: a plain-http server fails it before any certificate is seen, and a
    certificate it cannot verify makes the caller load the CAs (:func:`load_system_cas`) and
    try again. Every other handshake loads them first.
    """

    _cas_lock = threading.Lock()
    _cas_loaded = False

    def load_system_cas(self) -> bool:
        """Load the system CAs; ``False`` if they were already there."""
        with self._cas_lock:
            if self._cas_loaded:
                return False
            self.load_default_certs(ssl.Purpose.SERVER_AUTH)
            if not self.cert_store_stats().get("x509_ca"):
                _load_certifi(self)
            self._cas_loaded = True
            return True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if not getattr(_PROBE, "active", False):
            self.load_system_cas()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        if not getattr(_PROBE, "active", False):
            self.load_system_cas()
        return super().wrap_bio(*args, **kwargs)


_PROBE = threading.local()


@contextmanager
def probing() -> Iterator[None]:
    """Handshakes in this block (this thread only) may run before the system CAs are loaded."""
    _PROBE.active = True
    try:
        yield
    finally:
        _PROBE.active = False


def load_system_cas(ctx: ssl.SSLContext) -> bool:
    """Load ``ctx``'s deferred system CAs; ``True`` if that changed anything (so retry)."""
    return isinstance(ctx, _SystemCAsOnDemand) and ctx.load_system_cas()


def _new_context(verify: bool | None, directory: Path | None) -> ssl.SSLContext:
    if verify is False:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        # PROTOCOL_TLS_CLIENT verifies the chain and the host name, as create_default_context.
        ctx = _SystemCAsOnDemand(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if directory is not None:
        _load_dir(ctx, directory, verify=verify is not False)
    return ctx


def _load_certifi(ctx: ssl.SSLContext) -> None:
    # Some Python builds find no system CA store; certifi (an httpx dependency) fills in.
    try:
        import certifi
    except ImportError:
        return
    ctx.load_verify_locations(cafile=certifi.where())


def _load_dir(ctx: ssl.SSLContext, directory: Path, *, verify: bool) -> None:
    if not directory.is_dir():
        raise RegistryError(f"--cert-dir {directory}: not a directory")
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError as exc:
        raise RegistryError(f"{directory}: cannot list certificates ({exc.strerror})") from None
    for name in names:
        path = directory / name
        if name.endswith(".crt") and verify:
            try:
                ctx.load_verify_locations(cafile=str(path))
            except (ssl.SSLError, OSError) as exc:
                raise RegistryError(f"{path}: not a PEM CA certificate ({exc})") from None
        elif name.endswith(".cert"):
            key = directory / (name[: -len(".cert")] + ".key")
            if not key.exists():
                raise RegistryError(f"{path}: client certificate without its key {key.name}")
            try:
                ctx.load_cert_chain(certfile=str(path), keyfile=str(key))
            except (ssl.SSLError, OSError) as exc:
                raise RegistryError(f"{path}: cannot load client certificate ({exc})") from None
        elif name.endswith(".key"):
            cert = directory / (name[: -len(".key")] + ".cert")
            if not cert.exists():
                raise RegistryError(f"{path}: client key without its certificate {cert.name}")
