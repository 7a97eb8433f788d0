"""The build cache: reuse a layer when its parent, instruction and sources are unchanged.

Key = sha256 of (layer format version, parent ChainID, the instruction after expansion, the
digest of the layer's entries (paths, kinds, modes, owners, link targets and file CONTENT
digests), compression, timestamp). Value = the layer's descriptor and diff_id. Entries live as
JSON files under ``$CLUSTERIMAGE_HOME/cache/layers``, written atomically (temp file + rename); a
hit is used only when the blob is still in the store with the recorded size.

A step that yields several layers (a COPY of ``registry/``, one layer per embedded image) records
each under its own key: the step's parent chain, the instruction with the image it holds, and
that layer's entries. An unchanged rebuild reuses all of them; a changed image misses only its own.

ADD of local archives is keyed on the archives themselves (their content digests, plus the unpack
rules' version), not on what they hold: a hit then neither reads nor decompresses them, and the
stage learns the layer's files from its listing (``cache/listings``, written with the layer).

File contents are hashed once: the stat cache (``cache/files``) remembers each context file's
digest with its (device, inode, size, mtime, ctime) and answers without reading the file while
those are unchanged, so an unchanged rebuild of a large context only stats it. A cache is only
ever an accelerator: layers are deterministic, so a miss rebuilds the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clusterimage.build.fstree import Content, Node, sort_key
from clusterimage.errors import InvalidDigest, ManifestError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest

# Bump when the layer writer's output changes for the same input: old entries then miss.
LAYER_FORMAT: Final = 1
_MAX_STAT_ENTRIES: Final = 500_000


def chain_id(diff_ids: list[Digest]) -> str:
    """The OCI ChainID of a layer stack ("" for none): what the layers below a step are."""
    chain = ""
    for diff_id in diff_ids:
        chain = str(diff_id) if not chain else _sha256(f"{chain} {diff_id}".encode())
    return chain


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def entries_digest(entries: dict[str, Node]) -> str:
    """Digest of what a layer holds; every file's content identity must be known."""
    hasher = hashlib.sha256()
    for path in sorted(entries, key=sort_key):
        node = entries[path]
        identity = ""
        if node.kind == "file":
            assert node.content is not None and node.content.identity is not None
            identity = f"{node.content.identity}:{node.content.size}"
        record = [path, node.kind, node.mode, node.uid, node.gid, node.linkname, identity]
        if node.kind in ("char", "block"):
            record += [node.devmajor, node.devminor]
        hasher.update(json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogateescape"))
        hasher.update(b"\n")
    return f"sha256:{hasher.hexdigest()}"


def layer_key(
    *,
    parent_chain: str,
    instruction: str,
    entries: str,
    links: str,
    compression: str,
    timestamp: int,
    unpack: int | None = None,
) -> str:
    """``unpack`` (ADD from the context): the unpack rules' version; ``entries`` then names the
    archives as files (by content digest), not what they hold, so a hit needs no archive read."""
    record: dict[str, object] = {
        "format": LAYER_FORMAT,
        "parent": parent_chain,
        "instruction": instruction,
        "entries": entries,
        "links": links,
        "compression": compression,
        "timestamp": timestamp,
    }
    if unpack is not None:  # absent for COPY: keys of existing COPY layers stay valid
        record["unpack"] = unpack
    return _sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())


def link_groups(entries: dict[str, Node]) -> str:
    """Digest of which entries are hard links of each other (the writer stores them as links)."""
    groups: dict[int, list[str]] = {}
    for path, node in entries.items():
        if node.kind == "file" and node.content is not None:
            groups.setdefault(id(node.content), []).append(path)
    linked = sorted(sorted(paths, key=sort_key) for paths in groups.values() if len(paths) > 1)
    return _sha256(json.dumps(linked, ensure_ascii=False).encode("utf-8", "surrogateescape"))


@dataclass(frozen=True)
class CachedLayer:
    descriptor: Descriptor
    diff_id: Digest

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.descriptor.to_dict(), "diffID": str(self.diff_id)}

    @classmethod
    def from_dict(cls, data: Any) -> CachedLayer | None:
        try:
            return cls(Descriptor.from_dict(data["layer"]), Digest.parse(data["diffID"]))
        except (KeyError, TypeError, ValueError, InvalidDigest, ManifestError):
            return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StatCache:
    """Digests of host files, valid while their stat key (fstree.StatKey) is unchanged.

    A record is the key's fields then the digest; one of another length (an older format)
    never matches, so its file is hashed again."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._old: dict[str, list[Any]] = {}
        self._new: dict[str, list[Any]] = {}
        try:
            data = json.loads(path.read_bytes())
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self._old = data["files"]
        except (OSError, ValueError):
            pass

    def fill(self, content: Content) -> bool:
        """Set ``content.digest`` from the cache when the file is unchanged; True if known."""
        if content.digest is not None:
            return True
        if content.stat_key is None or content.path is None:
            return content.origin is not None
        record = self._old.get(str(content.path))
        width = len(content.stat_key)
        if (
            isinstance(record, list)
            and len(record) == width + 1
            and record[:width] == list(content.stat_key)
        ):
            content.digest = record[width]
            self._new[str(content.path)] = record
            return True
        return False

    def remember(self, content: Content) -> None:
        if content.stat_key is not None and content.path is not None and content.digest:
            self._new[str(content.path)] = [*content.stat_key, content.digest]

    def save(self) -> None:
        if not self._new:
            return
        merged = {**self._old, **self._new} if len(self._old) < _MAX_STAT_ENTRIES else self._new
        if merged == self._old:
            return
        raw = json.dumps({"files": merged}, separators=(",", ":"), ensure_ascii=False)
        _write_atomic(self._path, raw.encode("utf-8", "surrogateescape"))


class BuildCache:
    """``$CLUSTERIMAGE_HOME/cache``: layer entries and stat caches. ``enabled=False``
    (``--no-cache``) never reuses a layer, but still records what it builds."""

    def __init__(self, root: Path, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled

    def stat_cache(self, context_root: Path) -> StatCache:
        name = hashlib.sha256(os.fsencode(context_root.resolve())).hexdigest()[:32]
        return StatCache(self.root / "files" / f"{name}.json")

    def _entry_path(self, key: str) -> Path:
        hex_part = key.partition(":")[2]
        return self.root / "layers" / hex_part[:2] / f"{hex_part}.json"

    def lookup(self, key: str, has_blob: Any) -> CachedLayer | None:
        """The cached layer for ``key`` whose blob ``has_blob(descriptor)`` still confirms."""
        if not self.enabled:
            return None
        try:
            data = json.loads(self._entry_path(key).read_bytes())
        except (OSError, ValueError):
            return None
        cached = CachedLayer.from_dict(data)
        if cached is None or not has_blob(cached.descriptor):
            return None
        return cached

    def record(self, key: str, layer: CachedLayer, instruction: str) -> None:
        data = {**layer.to_dict(), "instruction": instruction}
        _write_atomic(self._entry_path(key), json.dumps(data, ensure_ascii=False).encode())
