"""One layer per embedded image: how a COPY step that brings ``registry/`` (``COPY registry
registry``, or ``COPY . .``) splits into layers.

A cluster image's ``registry/`` holds every image it needs in distribution's on-disk layout. As
one layer, changing one embedded image changes the whole layer, so nothing below the image level
can be shared between two versions of a cluster image (a delta bundle, a registry that already
has v1's layers). Split by image, an unchanged image keeps its layer's digest.

The split works on the paths a COPY step is about to write (relative to the image's root) and on
a reader for the few small files it needs: tag and revision links, and the manifests they name.
Units are the images of each repository, in a stable order: the repository's tags by name (a
tag is an image: its manifest, an index's child manifests, their configs and layers), then
manifests no tag reaches (digest-only images). Each unit claims the blobs and the
``repositories/<repo>/`` link files it uses that no earlier unit claimed, so a blob shared by
several images lives in the first one's layer. What no image claims (stray files, uploads,
folders no claimed file is under) forms a last group. Each group also carries the folders above
its files, so each layer extracts on its own. Everything is decided from names and link or
manifest contents: the same registry folder always gives the same groups.

Layers are not free: a runtime mounts an image's layers as overlay lower folders, and docker
and CRI-O refuse more than about 125 ("max depth exceeded"); the corpus has cluster images of
120 and 441 images, and ``merge`` adds layers up. Past :data:`MAX_IMAGE_LAYERS` images, they
share that many layers, each image in the one its repository's name hashes to: a new version
of an image (same repository) still changes one layer, and adding an image changes one more.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

V2: Final = "docker/registry/v2"
#: At most this many layers for the images of one COPY (see the module's docstring).
MAX_IMAGE_LAYERS: Final = 32
#: The layers docker and CRI-O mount at most ("max depth exceeded" past it).
MOUNT_LAYER_LIMIT: Final = 125
#: The manifests it reads to learn what an image uses; larger files are not manifests.
MANIFEST_LIMIT: Final = 4 << 20
_HEX: Final = re.compile(r"^[a-f0-9]{64}$")
_LINK: Final = re.compile(rb"^sha256:([a-f0-9]{64})\s*$")

Reader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class Group:
    """The paths of one layer, and what it is, for the image's history."""

    label: str  # "image team/app:v1", "images a:v1, b@sha256:... and 3 more", "other files"
    paths: tuple[str, ...]
    images: tuple[str, ...] = ()  # "repo:tag" or "repo@digest" each; () for the leftover group

    @property
    def image(self) -> str | None:
        """The image of a group that holds one."""
        return self.images[0] if len(self.images) == 1 else None


@dataclass
class _Unit:
    name: str  # repo:tag or repo@sha256:hex
    files: list[str]  # link files (paths) it brings, before blobs are assigned
    blobs: list[str]  # blob hex digests it uses, in discovery order


def registry_root(paths: Iterable[str]) -> str | None:
    """The one prefix (``""`` or ``"a/b/"``) under which ``paths`` hold ``docker/registry/v2``;
    None when none or several do."""
    roots: set[str] = set()
    for path in paths:
        parts = path.split("/")
        for i in range(len(parts) - 2):
            if parts[i : i + 3] == ["docker", "registry", "v2"]:
                roots.add("".join(f"{p}/" for p in parts[:i]))
                break
    return roots.pop() if len(roots) == 1 else None


def group_paths(
    kinds: Mapping[str, str], read: Reader, *, max_layers: int = MAX_IMAGE_LAYERS
) -> list[Group] | None:
    """Split a COPY's paths (``kinds``: path -> "file", "dir", "symlink", ...) into layers:
    one per image, or ``max_layers`` shared by hash when there are more images.

    ``read(path)`` gives the bytes of a small file among them (None if it cannot be read, or is
    larger than :data:`MANIFEST_LIMIT`). Returns None when there is nothing to split (no
    registry layout, or fewer than two groups): the step stays one layer.
    """
    root = registry_root(kinds)
    if root is None:
        return None
    v2 = f"{root}{V2}"
    blobs = _blob_files(kinds, v2)
    units = _units(kinds, v2, blobs, read)
    # The layer of each unit: its own, or past max_layers the one its repository hashes to.
    slots = (
        list(range(len(units)))
        if len(units) <= max_layers
        else [_bucket(unit.name, max_layers) for unit in units]
    )
    claimed: dict[str, int] = {}  # path -> slot of the unit that claimed it
    for slot, unit in zip(slots, units, strict=True):
        for path in unit.files:
            claimed.setdefault(path, slot)
        for hex_digest in unit.blobs:
            for path in blobs.get(hex_digest, ()):
                claimed.setdefault(path, slot)
    groups: list[Group] = []
    used_dirs: set[str] = set()
    for slot in sorted(set(slots)):
        files = [p for p, owner in claimed.items() if owner == slot]
        if not files:
            continue  # everything its images use came with an earlier one
        names = tuple(u.name for s, u in zip(slots, units, strict=True) if s == slot)
        dirs = _ancestors(files, kinds)
        used_dirs |= dirs
        paths = tuple(sorted([*files, *dirs], key=_sort_key))
        groups.append(Group(_label(names), paths, names))
    rest = [
        p for p, kind in kinds.items() if p not in claimed and (kind != "dir" or p not in used_dirs)
    ]
    if rest:
        paths = tuple(sorted({*rest, *_ancestors(rest, kinds)}, key=_sort_key))
        groups.append(Group("other files", paths))
    if len(groups) < 2:
        return None
    return groups


def _bucket(name: str, count: int) -> int:
    """The shared layer of image ``name`` (``repo:tag`` or ``repo@digest``): by its
    repository alone, so a new tag of the same image lands in the same layer."""
    repository = re.split(r"[:@]", name, maxsplit=1)[0]
    return int.from_bytes(hashlib.sha256(repository.encode()).digest()[:8], "big") % count


def _label(names: tuple[str, ...]) -> str:
    if len(names) == 1:
        return f"image {names[0]}"
    shown = ", ".join(names[:3])
    return f"images {shown} and {len(names) - 3} more" if len(names) > 3 else f"images {shown}"


def _sort_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def _ancestors(paths: Iterable[str], kinds: Mapping[str, str]) -> set[str]:
    """The folders above ``paths`` that the COPY writes (the layer needs them too)."""
    out: set[str] = set()
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent and parent not in out:
            if kinds.get(parent) == "dir":
                out.add(parent)
            parent = parent.rpartition("/")[0]
    return out


def _blob_files(kinds: Mapping[str, str], v2: str) -> dict[str, list[str]]:
    """hex digest -> the paths of its blob (``data``, and any other file in its folder)."""
    prefix = f"{v2}/blobs/sha256/"
    out: dict[str, list[str]] = {}
    for path, kind in kinds.items():
        if kind == "dir" or not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        # <2 hex>/<64 hex>/data (distribution writes nothing else there)
        if len(parts) >= 3 and _HEX.match(parts[1]) and parts[0] == parts[1][:2]:
            out.setdefault(parts[1], []).append(path)
    return out


def _repositories(kinds: Mapping[str, str], v2: str) -> dict[str, list[str]]:
    """repository name -> its files (paths), from ``repositories/<name>/_...``."""
    prefix = f"{v2}/repositories/"
    out: dict[str, list[str]] = {}
    for path, kind in kinds.items():
        if kind == "dir" or not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for i, part in enumerate(parts):
            if part.startswith("_"):
                if i > 0:
                    out.setdefault("/".join(parts[:i]), []).append(path)
                break
    return out


def _read_link(read: Reader, path: str) -> str | None:
    data = read(path)
    if data is None:
        return None
    match = _LINK.match(data)
    return match.group(1).decode() if match else None


def _units(
    kinds: Mapping[str, str], v2: str, blobs: Mapping[str, list[str]], read: Reader
) -> list[_Unit]:
    units: list[_Unit] = []
    for repo, files in sorted(_repositories(kinds, v2).items()):
        base = f"{v2}/repositories/{repo}"
        tags_prefix = f"{base}/_manifests/tags/"
        tags: dict[str, list[str]] = {}
        revisions: dict[str, str] = {}  # hex -> its revision link path
        layer_links: dict[str, str] = {}  # hex -> its _layers link path
        for path in files:
            rest = path[len(base) + 1 :].split("/")
            if path.startswith(tags_prefix) and len(rest) >= 4:
                tags.setdefault(rest[2], []).append(path)
            elif rest[:3] == ["_manifests", "revisions", "sha256"] and len(rest) == 5:
                revisions[rest[3]] = path
            elif rest[:2] == ["_layers", "sha256"] and len(rest) == 4:
                layer_links[rest[2]] = path
        reached: set[str] = set()
        for tag in sorted(tags):
            top = _read_link(read, f"{tags_prefix}{tag}/current/link")
            unit = _Unit(f"{repo}:{tag}", sorted(tags[tag], key=_sort_key), [])
            if top is not None:
                _closure(top, unit, blobs, read, revisions, layer_links, reached)
            units.append(unit)
        for hex_digest in sorted(set(revisions) - reached):
            if hex_digest in reached:  # a child of a digest-only index listed before it
                continue
            unit = _Unit(f"{repo}@sha256:{hex_digest}", [], [])
            _closure(hex_digest, unit, blobs, read, revisions, layer_links, reached)
            units.append(unit)
    return units


def _closure(
    top: str,
    unit: _Unit,
    blobs: Mapping[str, list[str]],
    read: Reader,
    revisions: Mapping[str, str],
    layer_links: Mapping[str, str],
    reached: set[str],
) -> None:
    """Add to ``unit`` the manifests, configs and layers ``top`` uses, with their links."""
    pending = [top]
    seen: set[str] = set()
    while pending:
        hex_digest = pending.pop(0)
        if hex_digest in seen:
            continue
        seen.add(hex_digest)
        reached.add(hex_digest)
        unit.blobs.append(hex_digest)
        if hex_digest in revisions:
            unit.files.append(revisions[hex_digest])
        if hex_digest in layer_links:
            unit.files.append(layer_links[hex_digest])
        manifest = _manifest(hex_digest, blobs, read)
        if manifest is None:
            continue
        children, used = manifest
        pending.extend(children)
        for blob in used:
            if blob not in unit.blobs:
                unit.blobs.append(blob)
            if blob in layer_links and layer_links[blob] not in unit.files:
                unit.files.append(layer_links[blob])


def _manifest(
    hex_digest: str, blobs: Mapping[str, list[str]], read: Reader
) -> tuple[list[str], list[str]] | None:
    """(child manifests, config and layers) of the manifest blob ``hex_digest``; None when it
    is absent or no manifest (a layer, a config)."""
    paths = [p for p in blobs.get(hex_digest, ()) if p.endswith("/data")]
    if not paths:
        return None
    data = read(paths[0])
    if data is None or not data.lstrip().startswith(b"{"):
        return None
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    children = [h for e in _list(doc.get("manifests")) if (h := _hex(e)) is not None]
    used = [h for e in [doc.get("config"), *_list(doc.get("layers"))] if (h := _hex(e)) is not None]
    return children, used


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _hex(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return None
    digest = entry.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None
    hex_digest = digest[len("sha256:") :]
    return hex_digest if _HEX.match(hex_digest) else None
