"""registries.conf, version 2 (containers-registries.conf(5)): per-registry mirrors, ``insecure``
and ``blocked``, read as containers/image reads it (``pkg/sysregistriesv2``).

Files: ``$CONTAINERS_REGISTRIES_CONF`` when set (else the older ``$REGISTRIES_CONFIG_PATH``), else
``~/.config/containers/registries.conf`` when it exists, else ``/etc/containers/registries.conf``.
A missing file counts as empty, except one that a variable names. Then come the ``*.conf``
drop-ins of ``/etc/containers/registries.conf.d``, then of
``~/.config/containers/registries.conf.d`` (only the user folder when the user file is the one in
use), each folder in name order. A drop-in's ``[[registry]]`` replaces any earlier one with the
same prefix; its ``unqualified-search-registries`` and ``short-name-mode`` replace earlier values.
Within one file, the first of two tables with the same prefix wins.

Matching: a ``[[registry]]`` applies to a reference whose name starts with its ``prefix`` (default:
its ``location``) at a boundary. ``example.com/foo`` matches ``example.com/foo/app``, not
``example.com/foobar/app``. ``*.example.com`` matches the hosts under example.com, not example.com
itself. The longest prefix wins (a wildcard is counted without its ``*``). A pull rewrites the
matched part onto each mirror that applies, then onto ``location``, and tries them in that order.

Not read: version 1 files (an error), short-name ``[aliases]``, ``credential-helpers`` and any other
key (ignored, as containers/image ignores unknown keys).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from clusterimage.errors import ClusterImageError, InvalidReference, RegistryBlocked
from clusterimage.oci.reference import Reference

SYSTEM_CONF: Final = Path("/etc/containers/registries.conf")
SYSTEM_CONF_D: Final = Path("/etc/containers/registries.conf.d")
_USER_CONF: Final = Path(".config/containers/registries.conf")
_USER_CONF_D: Final = Path(".config/containers/registries.conf.d")
_ENV_VARS: Final = ("CONTAINERS_REGISTRIES_CONF", "REGISTRIES_CONFIG_PATH")
_PULL_FROM_MIRROR: Final = ("all", "digest-only", "tag-only")
_SHORT_NAME_MODES: Final = ("disabled", "permissive", "enforcing")
_TOML_WHERE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


@dataclass(frozen=True)
class Mirror:
    """A ``[[registry.mirror]]``."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"  # "all" | "digest-only" | "tag-only"


@dataclass(frozen=True)
class Registry:
    """A ``[[registry]]`` table, its prefix filled in."""

    prefix: str
    location: str  # "" only under a wildcard prefix: pulls go to the host the name says
    insecure: bool = False  # skip TLS verification and allow plain HTTP
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Mirror, ...] = ()
    source: Path | None = None  # the file that defined it, for messages


@dataclass(frozen=True)
class PullSource:
    """One place to try a pull: the reference rewritten onto a mirror or onto the location."""

    reference: Reference
    insecure: bool
    mirror: bool = False  # a mirror that fails is skipped; the location's error is the one shown


@dataclass(frozen=True)
class RegistriesConf:
    """The configuration in force, all files merged."""

    registries: tuple[Registry, ...] = ()  # sorted by prefix, as containers/image keeps them
    unqualified_search_registries: tuple[str, ...] = ()
    short_name_mode: str | None = None  # "disabled" | "permissive" | "enforcing"; None: unset
    files: tuple[Path, ...] = ()  # the files read, in order

    def find(self, reference: str | Reference) -> Registry | None:
        """The ``[[registry]]`` that applies to ``reference``: a :class:`Reference` (its name is
        matched), or a host, ``host/path`` or reference string taken as written."""
        name = reference.name if isinstance(reference, Reference) else reference
        best: Registry | None = None
        best_length = 0
        for registry in self.registries:
            if _match_length(name, registry.prefix) < 0:
                continue
            length = len(registry.prefix) - (1 if _is_wildcard(registry.prefix) else 0)
            # Strictly longer: on a tie the first (in prefix order) stays, as in containers/image.
            if length > best_length:
                best, best_length = registry, length
        return best

    def pull_sources(self, reference: Reference) -> list[PullSource]:
        """Where to pull ``reference`` from, in order: the mirrors that apply, then the location.

        Raises :class:`RegistryBlocked` when the matching ``[[registry]]`` is blocked.
        """
        registry = self.find(reference)
        if registry is None:
            return [PullSource(reference, insecure=False)]
        if registry.blocked:
            raise RegistryBlocked(
                f"{reference}: registry {registry.prefix} is blocked in {registry.source}"
            )
        digested = reference.digest is not None
        sources = [
            PullSource(_rewrite(reference, registry, m.location), m.insecure, mirror=True)
            for m in registry.mirrors
            if _mirror_applies(registry, m, digested)
        ]
        sources.append(
            PullSource(_rewrite(reference, registry, registry.location), registry.insecure)
        )
        return sources


def load(
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    *,
    system: Path = SYSTEM_CONF,
    system_d: Path = SYSTEM_CONF_D,
) -> RegistriesConf:
    """Read the registries.conf in force. ``env`` defaults to ``os.environ``; ``home`` to
    ``$HOME`` from ``env`` (else :meth:`Path.home`); ``system``/``system_d`` are for tests."""
    env = os.environ if env is None else env
    if home is None:
        home = Path(env["HOME"]) if env.get("HOME") else _home()
    user = home / _USER_CONF if home is not None else None
    user_d = [home / _USER_CONF_D] if home is not None else []
    # The first variable present decides, even when empty (an empty one means "unset"), as in
    # containers/image's pkg/cli/environment.
    variable = next((v for v in _ENV_VARS if v in env), None)
    explicit = env[variable] if variable is not None else ""
    if explicit:
        main, folders = Path(explicit), [system_d, *user_d]
    elif user is not None and user.exists():
        main, folders = user, user_d
    else:
        main, folders = system, [system_d, *user_d]

    first = _parse(main, named_by=variable if explicit else None)
    files = [main] if first is not None else []
    by_prefix = {r.prefix: r for r in first.registries} if first is not None else {}
    search = first.search if first is not None and first.search is not None else ()
    mode = first.mode if first is not None else None
    for path in _drop_ins(folders):
        dropped = _parse(path, named_by=None)
        if dropped is None:
            continue  # removed since the folder was listed
        files.append(path)
        by_prefix.update((r.prefix, r) for r in dropped.registries)
        if dropped.search is not None:
            search = dropped.search
        if dropped.mode is not None:
            mode = dropped.mode
    return RegistriesConf(
        registries=tuple(by_prefix[p] for p in sorted(by_prefix)),
        unqualified_search_registries=search,
        short_name_mode=mode,
        files=tuple(files),
    )


class _File(NamedTuple):
    registries: list[Registry]
    search: tuple[str, ...] | None  # None: the file does not set it
    mode: str | None


def _home() -> Path | None:
    try:
        return Path.home()
    except RuntimeError:  # no $HOME and no passwd entry: only the system files apply
        return None


def _drop_ins(folders: list[Path]) -> list[Path]:
    paths: list[Path] = []
    for folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue  # most systems have no registries.conf.d
        except OSError as exc:
            raise ClusterImageError(
                f"{folder}: cannot list registries.conf.d ({exc.strerror})"
            ) from None
        paths += [Path(e.path) for e in entries if e.name.endswith(".conf") and not e.is_dir()]
    return paths


def _parse(path: Path, named_by: str | None) -> _File | None:
    """One file's content, checked as containers/image checks it; None when it is missing."""
    data = _read(path, named_by)
    if data is None:
        return None
    if "registries" in data:
        raise ClusterImageError(
            f"{path}: a version 1 registries.conf ([registries.search], [registries.insecure], "
            "[registries.block]); only version 2 ([[registry]] tables) is supported"
        )
    tables = data.get("registry", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ClusterImageError(f"{path}: 'registry' must be [[registry]] tables")
    parsed = [_registry(table, path, number) for number, table in enumerate(tables, start=1)]
    _check_conflicts(parsed, path)
    registries: dict[str, Registry] = {}
    for registry in parsed:
        # The first table of a prefix wins within a file (containers/image drops later ones).
        registries.setdefault(registry.prefix, registry)

    search: tuple[str, ...] | None = None
    if "unqualified-search-registries" in data:
        value = data["unqualified-search-registries"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ClusterImageError(f"{path}: unqualified-search-registries must be strings")
        search = tuple(_search_registry(v, path) for v in value)
    mode = _string(data, "short-name-mode", str(path)) or None
    if mode is not None and mode not in _SHORT_NAME_MODES:
        raise ClusterImageError(
            f"{path}: short-name-mode {mode!r} is not one of {', '.join(_SHORT_NAME_MODES)}"
        )
    return _File(list(registries.values()), search, mode)


def _read(path: Path, named_by: str | None) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if named_by is None:
            return None
        raise ClusterImageError(f"{path}: no such file (named by ${named_by})") from None
    except OSError as exc:
        raise ClusterImageError(f"{path}: cannot read registries.conf ({exc.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ClusterImageError(f"{path}: not UTF-8 text, so not TOML") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib ends its message with "(at line L, column C)": put the line where editors look.
        message = str(exc)
        where = _TOML_WHERE.search(message)
        if where is None:
            raise ClusterImageError(f"{path}: invalid TOML: {message}") from None
        raise ClusterImageError(
            f"{path}:{where[1]}: invalid TOML: {message[: where.start()]} (column {where[2]})"
        ) from None


def _registry(table: dict[str, Any], path: Path, number: int) -> Registry:
    label = table.get("prefix") or table.get("location")
    where = f"{path}: [[registry]] " + (repr(label) if isinstance(label, str) else f"#{number}")
    location = _location(_string(table, "location", where), where)
    prefix = _location(_string(table, "prefix", where), where)
    if not prefix:
        if not location:
            raise ClusterImageError(f"{where}: neither prefix nor location is set")
        prefix = location
    elif not location and not _is_wildcard(prefix):
        raise ClusterImageError(
            f"{where}: location is unset, which only a wildcard prefix (*.example.com) allows"
        )
    if "pull-from-mirror" in table:
        raise ClusterImageError(f"{where}: pull-from-mirror belongs in a [[registry.mirror]]")
    mirror_by_digest_only = _bool(table, "mirror-by-digest-only", where)
    mirror_tables = table.get("mirror", [])
    if not isinstance(mirror_tables, list) or not all(isinstance(m, dict) for m in mirror_tables):
        raise ClusterImageError(f"{where}: 'mirror' must be [[registry.mirror]] tables")
    mirrors = []
    for entry in mirror_tables:
        mirror_where = f"{where}: [[registry.mirror]]"
        mirror_location = _location(_string(entry, "location", mirror_where), mirror_where)
        if not mirror_location:
            raise ClusterImageError(f"{mirror_where}: location is unset")
        pull_from = _string(entry, "pull-from-mirror", mirror_where)
        if pull_from and mirror_by_digest_only:
            raise ClusterImageError(
                f"{mirror_where} {mirror_location!r}: pull-from-mirror cannot be set when the "
                "registry sets mirror-by-digest-only"
            )
        if pull_from and pull_from not in _PULL_FROM_MIRROR:
            raise ClusterImageError(
                f"{mirror_where} {mirror_location!r}: pull-from-mirror {pull_from!r} is not one "
                f"of {', '.join(_PULL_FROM_MIRROR)}"
            )
        mirrors.append(
            Mirror(mirror_location, _bool(entry, "insecure", mirror_where), pull_from or "all")
        )
    return Registry(
        prefix=prefix,
        location=location,
        insecure=_bool(table, "insecure", where),
        blocked=_bool(table, "blocked", where),
        mirror_by_digest_only=mirror_by_digest_only,
        mirrors=tuple(mirrors),
        source=path,
    )


def _check_conflicts(registries: list[Registry], path: Path) -> None:
    # Several prefixes may share a location (different mirrors per namespace), but the host is
    # either insecure/blocked or not: containers/image refuses a file that says both.
    seen: dict[str, Registry] = {}
    for registry in registries:
        key = registry.location or registry.prefix
        other = seen.setdefault(key, registry)
        for setting in ("insecure", "blocked"):
            if getattr(other, setting) != getattr(registry, setting):
                raise ClusterImageError(
                    f"{path}: registry {key!r} is defined more than once with different "
                    f"{setting!r} settings"
                )


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ClusterImageError(f"{where}: {key} must be a string, not {value!r}")
    return value


def _bool(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ClusterImageError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _location(value: str, where: str) -> str:
    trimmed = value.rstrip("/")
    if trimmed.startswith(("http://", "https://")):
        raise ClusterImageError(
            f"{where}: {value!r}: URL schemes are not supported (use insecure = true for HTTP)"
        )
    return trimmed


def _search_registry(value: str, path: Path) -> str:
    trimmed = _location(value, f"{path}: unqualified-search-registries")
    # A host[:port], prepended to short names; containers/image checks it against the domain
    # grammar, a path or a space is what actually goes wrong.
    if not trimmed or "/" in trimmed or any(c.isspace() for c in trimmed):
        raise ClusterImageError(f"{path}: unqualified-search-registries: {value!r} is not a host")
    return trimmed


def _is_wildcard(prefix: str) -> bool:
    return prefix.startswith("*.")


def _match_length(ref: str, prefix: str) -> int:
    """How much of ``ref`` (a host, a name or a reference string) ``prefix`` matches; -1: none.

    As containers/image's refMatchingPrefix, except that an exact prefix does not match the same
    host with a port (``example.com`` vs ``example.com:5000/x``): it calls that behaviour
    unintended and due to be fixed.
    """
    if _is_wildcard(prefix):
        suffix = prefix[1:]
        index = ref.find(suffix)
        if index < 0 or "/" in ref[:index]:
            return -1  # only the host part may match
        end = index + len(suffix)
        return end if end == len(ref) or ref[end] in ":/@" else -1
    if not ref.startswith(prefix):
        return -1
    end = len(prefix)
    if end == len(ref) or ref[end] in "/@":
        return end
    # A colon after the prefix starts a tag, unless a slash follows: then it was a port.
    if ref[end] == ":" and "/" not in ref[end:]:
        return end
    return -1


def _mirror_applies(registry: Registry, mirror: Mirror, digested: bool) -> bool:
    if registry.mirror_by_digest_only:
        return digested
    if mirror.pull_from_mirror == "digest-only":
        return digested
    if mirror.pull_from_mirror == "tag-only":
        return not digested
    return True


def _rewrite(reference: Reference, registry: Registry, location: str) -> Reference:
    """``reference`` with the part ``registry.prefix`` matched replaced by ``location``."""
    if not location:
        return reference  # a wildcard without location: the name's own host
    text = str(reference)
    new = location + text[_match_length(text, registry.prefix) :]
    where = f"{registry.source}: [[registry]] {registry.prefix!r}"
    try:
        rewritten = Reference.parse(new, default_tag=False)
    except InvalidReference as exc:
        raise ClusterImageError(f"{where}: location {location!r} gives {exc}") from None
    if str(rewritten) != new:
        # containers/image wants the rewritten name fully qualified too: a location without a
        # host ("mirror/hub") would otherwise quietly become a docker.io path.
        raise ClusterImageError(
            f"{where}: location {location!r} turns {reference} into {new!r}, which is not "
            f"fully qualified (it reads as {rewritten})"
        )
    return rewritten
