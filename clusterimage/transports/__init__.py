"""Transports: where images live. ``parse`` turns ``transport:reference`` strings into
:class:`~clusterimage.transports.base.ImageReference` objects.

Each transport module registers a parser with :func:`register`; the registry is filled on first
use so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from clusterimage.errors import TransportError
from clusterimage.transports.base import (
    Context,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageWriter,
    ProgressFn,
)

__all__ = [
    "Context",
    "ImageDestination",
    "ImageReference",
    "ImageSource",
    "ImageWriter",
    "ProgressFn",
    "is_transport_reference",
    "parse",
    "register",
]

Parser = Callable[[str], ImageReference]

_PARSERS: dict[str, Parser] = {}
# transport name -> module that registers it
_MODULES = {
    "store": "clusterimage.transports.store",
    "oci": "clusterimage.transports.oci_layout",
    "docker": "clusterimage.transports.docker",
    "oci-archive": "clusterimage.transports.oci_archive",
    "docker-archive": "clusterimage.transports.docker_archive",
    "registry-dir": "clusterimage.transports.registry_dir",
}


# Prefixes that always name a transport. ``oci:`` does only with a path (``oci:/x``, ``oci:./x``),
# so that ``oci:latest`` stays the Docker Hub image ``oci`` in FROM and COPY --from.
_PREFIXES = (
    "docker://",
    "oci-archive:",
    "docker-archive:",
    "registry-dir:",
    "store:",
    "oci:/",
    "oci:.",
)


def is_transport_reference(name: str) -> bool:
    """Whether ``name`` is ``TRANSPORT:REF`` rather than a plain image reference: the one rule
    FROM, COPY --from and every command that takes either use."""
    return name.startswith(_PREFIXES)


def register(name: str, parser: Parser) -> None:
    _PARSERS[name] = parser


def _load(name: str) -> Parser | None:
    if name not in _PARSERS and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name != _MODULES[name]:
                raise
    return _PARSERS.get(name)


def _parser(name: str) -> Parser:
    parser = _load(name)
    if parser is None:
        # Name only the transports that load: some of _MODULES are planned, not written yet.
        supported = ", ".join(n for n in sorted(set(_PARSERS) | set(_MODULES)) if _load(n))
        raise TransportError(f"transport {name!r} is not supported (supported: {supported})")
    return parser


def parse(value: str, default: str | None = None) -> ImageReference:
    """Parse ``transport:rest``; ``docker://ref`` too. Without a transport prefix, ``default``
    (e.g. ``"docker"`` or ``"store"``) takes the whole string."""
    if value.startswith("docker://"):
        return _parser("docker")(value[len("docker://") :])
    name, sep, rest = value.partition(":")
    if sep and name in (set(_MODULES) | set(_PARSERS)) and name != "docker":
        return _parser(name)(rest)
    if default is None:
        raise TransportError(
            f"invalid image reference {value!r}: expected TRANSPORT:REFERENCE "
            "(e.g. docker://host/repo:tag, oci:DIR:TAG)"
        )
    return _parser(default)(value)
