"""Registry flags shared by pull, push, copy, tags, inspect and login, spelled as podman/skopeo do.

``--tls-verify`` takes a value (``--tls-verify=false``, ``--tls-verify false``) or none (bare
``--tls-verify`` means true). Typer's ``--tls-verify/--no-tls-verify`` pair cannot take
``=false``, so the option is a string and :class:`RegistryCommand` rewrites the bare and the
space-separated spellings into ``--tls-verify=VALUE`` before parsing.
"""

from __future__ import annotations

import functools
import getpass
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from clusterimage.blobinfo import BlobInfoCache
from clusterimage.cli._common import home_dir, store_dir
from clusterimage.errors import UsageError
from clusterimage.oci.platform import Platform
from clusterimage.transports.base import Context

BOOL_FLAGS = frozenset({"--tls-verify", "--src-tls-verify", "--dest-tls-verify"})
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})
DEFAULT_RETRIES = 3
DEFAULT_JOBS = 4
DEFAULT_TIMEOUT = 30.0


def normalize_bool_flags(args: list[str]) -> list[str]:
    """``--tls-verify false`` → ``--tls-verify=false``; a bare ``--tls-verify`` → ``=true``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in BOOL_FLAGS:
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is not None and nxt.lower() in _TRUE | _FALSE:
                out.append(f"{arg}={nxt}")
                i += 2
                continue
            out.append(f"{arg}=true")
        else:
            out.append(arg)
        i += 1
    return out


class RegistryCommand(TyperCommand):
    """A command whose boolean registry flags also take a separate or no value."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_bool_flags(list(args)))


def parse_bool(value: str | None, flag: str = "--tls-verify") -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{flag}: expected true or false, not {value!r}")


TlsVerify = Annotated[
    str | None,
    typer.Option(
        "--tls-verify",
        metavar="[=BOOL]",
        help="Require HTTPS and verify certificates (default: true; plain HTTP is tried only "
        "for loopback registries). --tls-verify=false allows HTTP and unverified HTTPS.",
        show_default=False,
    ),
]
CertDir = Annotated[
    Path | None,
    typer.Option(
        "--cert-dir",
        metavar="DIR",
        help="Certificates for the registry: *.crt CAs, *.cert + *.key client certificate "
        "(default: /etc/containers/certs.d/HOST[:PORT]/).",
    ),
]
AuthFile = Annotated[
    Path | None,
    typer.Option(
        "--authfile",
        metavar="FILE",
        help="Auth file to read credentials from (default: $REGISTRY_AUTH_FILE, "
        "$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, "
        "~/.docker/config.json).",
    ),
]
Creds = Annotated[
    str | None,
    typer.Option(
        "--creds",
        metavar="USER[:PASSWORD]",
        help="Credentials for the registry (asks for the password when it is left out).",
    ),
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=0.1,
        help="How long a registry may stay silent (to connect, or between bytes) before the "
        "command fails.",
    ),
]
Retry = Annotated[
    int,
    typer.Option(
        "--retry",
        metavar="N",
        min=0,
        help="Retries of a failed request or interrupted transfer.",
    ),
]
Jobs = Annotated[
    int,
    typer.Option("--jobs", "-j", metavar="N", min=1, help="Blobs copied at once."),
]
DigestFile = Annotated[
    Path | None,
    typer.Option("--digestfile", metavar="FILE", help="Write the manifest's digest here."),
]
CompressionFormat = Annotated[
    str | None,
    typer.Option(
        "--compression-format",
        metavar="gzip|zstd",
        help="Recompress layers that are compressed otherwise.",
    ),
]
SelectPlatform = Annotated[
    str | None,
    typer.Option(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="Platform to take from a multi-platform image (default: this machine's).",
    ),
]


def resolve_creds(value: str | None, flag: str = "--creds") -> str | None:
    """``USER:PASSWORD`` as given, or ``USER`` with the password asked on the terminal."""
    if value is None:
        return None
    if ":" in value:
        if not value.split(":", 1)[0]:
            raise UsageError(f"{flag}: the user name is empty")
        return value
    if not value:
        raise UsageError(f"{flag}: expected USER[:PASSWORD]")
    if not sys.stdin.isatty():
        raise UsageError(f"{flag}: no password given and no terminal to ask for one")
    password = getpass.getpass(f"Password for {value}: ")
    return f"{value}:{password}"


def blob_info_cache() -> Path:
    """The blob info cache: which registry repositories hold which blobs (for mounts), and
    what each layer became when recompressed (so a re-push neither recompresses nor uploads)."""
    return home_dir() / "cache" / "blob-info.db"


def temp_dir() -> Path:
    return home_dir() / "tmp"


def registry_context(
    *,
    tls_verify: str | None = None,
    cert_dir: Path | None = None,
    authfile: Path | None = None,
    creds: str | None = None,
    retry: int = DEFAULT_RETRIES,
    jobs: int = DEFAULT_JOBS,
    platform: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Context:
    """The transport context every registry-facing command builds from its flags."""
    return Context.for_registries(
        auth_file=authfile,
        creds=resolve_creds(creds),
        tls_verify=parse_bool(tls_verify),
        cert_dir=cert_dir,
        store_dir=store_dir(),
        retries=retry,
        jobs=jobs,
        timeout=timeout,
        platform=Platform.parse(platform) if platform else None,
        blob_info=BlobInfoCache(blob_info_cache()),
        tmp_dir=temp_dir(),
    )


@dataclass(frozen=True)
class RegistryFlags:
    """The registry flags every command that talks to registries takes, as it was given them:
    ``--retry``, ``--timeout``, ``--creds``, ``--authfile``, ``--tls-verify``, ``--cert-dir``.
    A command declares ``registry: RegistryFlags = NO_FLAGS`` and :func:`with_registry_flags`."""

    retry: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    creds: str | None = field(default=None, repr=False)  # "user:password": never in a repr
    authfile: Path | None = None
    tls_verify: str | None = None
    cert_dir: Path | None = None

    def context(self, *, jobs: int = DEFAULT_JOBS, platform: str | None = None) -> Context:
        """The transport context of these flags (see :func:`registry_context`)."""
        return registry_context(
            tls_verify=self.tls_verify,
            cert_dir=self.cert_dir,
            authfile=self.authfile,
            creds=self.creds,
            retry=self.retry,
            timeout=self.timeout,
            jobs=jobs,
            platform=platform,
        )


NO_FLAGS = RegistryFlags()  # the default of a ``registry`` parameter; the wrapper always sets it

# (parameter, its typer annotation, default): what with_registry_flags shows typer.
_FLAG_PARAMETERS: tuple[tuple[str, Any, Any], ...] = (
    ("retry", Retry, DEFAULT_RETRIES),
    ("timeout", Timeout, DEFAULT_TIMEOUT),
    ("creds", Creds, None),
    ("authfile", AuthFile, None),
    ("tls_verify", TlsVerify, None),
    ("cert_dir", CertDir, None),
)

_Result = TypeVar("_Result")


def with_registry_flags(command: Callable[..., _Result]) -> Callable[..., _Result]:
    """Give a typer command the registry flags, declared once here, as its one ``registry``
    parameter (a :class:`RegistryFlags`).

    Written by hand because typer has no option groups: it builds a command's options from
    the function's signature. The wrapper shows typer a signature with the six flags in place
    of ``registry``, and folds what typer passes back into one RegistryFlags.
    """
    signature = inspect.signature(command, eval_str=True)
    if "registry" not in signature.parameters:
        raise TypeError(f"{command.__name__}: declare `registry: RegistryFlags = NO_FLAGS`")
    names = {name for name, _, _ in _FLAG_PARAMETERS}
    kept = [p for p in signature.parameters.values() if p.name != "registry"]
    clash = names & {p.name for p in kept}
    if clash:
        raise TypeError(f"{command.__name__}: declares {', '.join(sorted(clash))} itself")
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        for name, hint, default in _FLAG_PARAMETERS
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> _Result:
        flags = RegistryFlags(**{name: kwargs.pop(name) for name in names if name in kwargs})
        return command(*args, registry=flags, **kwargs)

    shown = signature.replace(parameters=[*kept, *added])
    wrapper.__signature__ = shown  # type: ignore[attr-defined]
    # Evaluated objects, not the strings of `from __future__ import annotations`: typer reads
    # type hints too, and must not look up names the command's module does not import.
    wrapper.__annotations__ = {p.name: p.annotation for p in shown.parameters.values()}
    return wrapper
