"""registries.conf (containers-registries.conf(5), version 2): mirrors, insecure and blocked
registries, honoured by every pull (FROM, image discovery, ``pull``, ``copy``).

Read as containers/image reads it (``pkg/sysregistriesv2``): ``$CONTAINERS_REGISTRIES_CONF``
alone when set; else ``~/.config/containers/registries.conf`` when it exists, else
``/etc/containers/registries.conf``; then the drop-ins of the matching ``registries.conf.d``
folder in name order, a later ``[[registry]]`` of the same prefix replacing an earlier one.
A ``[[registry]]`` applies to the references its ``prefix`` (default: its ``location``) matches
on a path boundary (``example.com/foo`` matches ``example.com/foo/bar``, not
``example.com/foobar``), the longest prefix winning; ``*.example.com`` matches subdomains.
A pull tries its mirrors in order, then the location itself (unless ``mirror-by-digest-only``
or a mirror's ``pull-from-mirror`` rules one out for a tag or digest reference).

Written by hand: no Python package reads this format; ``tomllib`` parses the TOML.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterimage.errors import ClusterImageError, InvalidReference, RegistryError
from clusterimage.oci.reference import Reference

SYSTEM_CONF = Path("/etc/containers/registries.conf")


class RegistryBlocked(RegistryError):
    """registries.conf blocks the registry an image would be pulled from."""


@dataclass(frozen=True)
class Mirror:
    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"  # "all" | "digest-only" | "tag-only"


@dataclass(frozen=True)
class RegistryEntry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Mirror, ...] = ()
    source: str = ""  # the file that said it


@dataclass(frozen=True)
class PullSource:
    """Where to try a pull: ``reference`` rewritten onto a mirror or the location."""

    reference: Reference
    insecure: bool
    mirror: bool


@dataclass
class RegistriesConf:
    registries: list[RegistryEntry] = field(default_factory=list)
    unqualified_search_registries: list[str] = field(default_factory=list)
    short_name_mode: str | None = None
    files: list[Path] = field(default_factory=list)

    def find(self, reference: Reference) -> RegistryEntry | None:
        """The ``[[registry]]`` whose prefix matches ``reference`` the longest."""
        name = reference.name
        best: RegistryEntry | None = None
        for entry in self.registries:
            if _matches(entry.prefix, name) and (best is None or _rank(entry) > _rank(best)):
                best = entry
        return best

    def pull_sources(self, reference: Reference) -> list[PullSource]:
        """Where to pull ``reference`` from, in order: mirrors, then the location."""
        entry = self.find(reference)
        if entry is None:
            return [PullSource(reference, False, False)]
        if entry.blocked:
            raise RegistryBlocked(
                f"{reference}: registry {entry.location or entry.prefix} is blocked by "
                f"{entry.source or 'registries.conf'}"
            )
        by_digest = reference.digest is not None
        sources = []
        for mirror in entry.mirrors:
            if entry.mirror_by_digest_only and not by_digest:
                continue
            if mirror.pull_from_mirror == "digest-only" and not by_digest:
                continue
            if mirror.pull_from_mirror == "tag-only" and by_digest:
                continue
            sources.append(
                PullSource(_rewrite(reference, entry, mirror.location), mirror.insecure, True)
            )
        sources.append(
            PullSource(_rewrite(reference, entry, entry.location), entry.insecure, False)
        )
        return sources


def load(
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    system: Path = SYSTEM_CONF,
) -> RegistriesConf:
    """The registries.conf in force (files as containers/image finds them)."""
    env = os.environ if env is None else env
    explicit = env.get("CONTAINERS_REGISTRIES_CONF")
    conf = RegistriesConf()
    if explicit:
        main = Path(explicit)
        files = [main] if main.exists() else []
        if not main.exists():
            raise ClusterImageError(f"{main}: no such registries.conf (CONTAINERS_REGISTRIES_CONF)")
    else:
        user = (home or Path.home()) / ".config" / "containers" / "registries.conf"
        main = user if user.exists() else system
        files = [main] if main.exists() else []
        drop_ins = main.with_name(main.name + ".d")
        if drop_ins.is_dir():
            files += sorted(p for p in drop_ins.glob("*.conf") if p.is_file())
    by_prefix: dict[str, RegistryEntry] = {}
    for path in files:
        data = _read(path)
        for entry in _entries(data, path):
            by_prefix[entry.prefix] = entry
        if "unqualified-search-registries" in data:
            conf.unqualified_search_registries = [
                str(x) for x in data["unqualified-search-registries"]
            ]
        if "short-name-mode" in data:
            conf.short_name_mode = str(data["short-name-mode"])
        conf.files.append(path)
    conf.registries = list(by_prefix.values())
    return conf


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ClusterImageError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ClusterImageError(f"{path}: cannot read ({exc.strerror})") from None
    if "registries" in data:
        raise ClusterImageError(
            f"{path}: a version 1 registries.conf ([registries.search] ...); only version 2 "
            "([[registry]] tables) is read"
        )
    return data


def _entries(data: dict[str, Any], path: Path) -> list[RegistryEntry]:
    tables = data.get("registry") or []
    if not isinstance(tables, list):
        raise ClusterImageError(f"{path}: [[registry]] must be an array of tables")
    entries = []
    for number, table in enumerate(tables, start=1):
        where = f"{path}: [[registry]] {number}"
        if not isinstance(table, dict):
            raise ClusterImageError(f"{where}: not a table")
        location = str(table.get("location") or "").rstrip("/")
        prefix = str(table.get("prefix") or location).rstrip("/")
        if not prefix:
            raise ClusterImageError(f"{where}: neither prefix nor location")
        mirrors = []
        for mirror in table.get("mirror") or []:
            if not isinstance(mirror, dict) or not mirror.get("location"):
                raise ClusterImageError(f"{where}: a [[registry.mirror]] without location")
            mirrors.append(
                Mirror(
                    str(mirror["location"]).rstrip("/"),
                    bool(mirror.get("insecure", False)),
                    str(mirror.get("pull-from-mirror") or "all"),
                )
            )
        entries.append(
            RegistryEntry(
                prefix=prefix,
                # A wildcard's pulls go where the name says: it has no one location.
                location=location or ("" if prefix.startswith("*.") else prefix),
                insecure=bool(table.get("insecure", False)),
                blocked=bool(table.get("blocked", False)),
                mirror_by_digest_only=bool(table.get("mirror-by-digest-only", False)),
                mirrors=tuple(mirrors),
                source=str(path),
            )
        )
    return entries


def _matches(prefix: str, name: str) -> bool:
    if prefix.startswith("*."):
        host = name.split("/", 1)[0]
        return host.endswith(prefix[1:])
    return name == prefix or name.startswith(prefix + "/") or name.startswith(prefix + ":")


def _rank(entry: RegistryEntry) -> tuple[int, int]:
    # An exact prefix beats a wildcard; a longer one beats a shorter one.
    return (0 if entry.prefix.startswith("*.") else 1, len(entry.prefix))


def _rewrite(reference: Reference, entry: RegistryEntry, location: str) -> Reference:
    """``reference`` with the part its entry's prefix matched replaced by ``location``."""
    name = reference.name
    if not location:
        return reference
    if entry.prefix.startswith("*."):
        rest = name.split("/", 1)[1] if "/" in name else ""
        new_name = f"{location}/{rest}" if location and rest else name
    else:
        new_name = location + name[len(entry.prefix) :]
    suffix = ""
    if reference.tag is not None:
        suffix += f":{reference.tag}"
    if reference.digest is not None:
        suffix += f"@{reference.digest}"
    try:
        return Reference.parse(new_name + suffix)
    except InvalidReference as exc:
        raise ClusterImageError(f"{entry.source}: location {location!r}: {exc}") from None
