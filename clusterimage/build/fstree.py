"""An in-memory index of a filesystem: what a stage's root holds, without materialising it.

The native engine never unpacks a rootfs to disk: each stage keeps a :class:`FsTree` whose regular
files point at the bytes they came from (a context file, a file staged from an archive or a base
image layer). COPY computes the nodes of a layer from it, ``COPY --from`` reads another stage's
tree, and the layer writer streams the files straight from their sources.

Paths are relative, ``/``-separated, without a leading ``/`` or ``./``; ``""`` is the root.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from clusterimage.layers.writer import sort_key as sort_key  # the writer's order, re-exported

NodeKind = Literal["file", "dir", "symlink", "char", "block", "fifo"]

_MAX_SYMLINKS = 40  # as Linux's path resolution (ELOOP)

# (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns): a host file's bytes are taken as unchanged
# while all five are. ctime as git's index does: every write sets it and no tool can set it back,
# so a file replaced by one of the same size and a preserved mtime (tar, cp -p, rsync -t; even
# on a reused inode number) is read again.
StatKey = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(eq=False)
class Content:
    """The bytes of a regular file: a host file to read, and what identifies them for the cache.

    Nodes that share one :class:`Content` object are hard links of each other; the layer writer
    stores the first as a file and the rest as links to it.
    """

    path: Path | None  # None until a base-image file is extracted (see ``origin``)
    size: int
    # "sha256:<hex>" of the bytes once known; the layer writer fills it while it streams the file.
    digest: str | None = None
    # The stat cache key (see StatKey) when the bytes are a context file.
    stat_key: StatKey | None = None
    # "<layer digest>!<member>" for a file of a base image layer: identity without reading it.
    origin: str | None = None
    # A context file: ``rel`` below the folder ``root`` it was walked from, the way it is opened
    # (one component at a time, never through a link: see clusterimage.build.confined).
    root: Path | None = None
    rel: str = ""

    @property
    def identity(self) -> str | None:
        """What identifies the bytes for the build cache: their digest, else their origin."""
        return self.digest or self.origin


@dataclass(frozen=True)
class Node:
    kind: NodeKind
    mode: int = 0o644  # permission bits, setuid/setgid/sticky included (0o7777)
    uid: int = 0
    gid: int = 0
    content: Content | None = field(default=None, compare=False)
    linkname: str = ""  # symlink target, as stored
    devmajor: int = 0
    devminor: int = 0

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    def with_owner(self, uid: int, gid: int) -> Node:
        return replace(self, uid=uid, gid=gid)

    def with_mode(self, mode: int) -> Node:
        return replace(self, mode=mode & 0o7777)


DEFAULT_DIR = Node("dir", 0o755)


def clean(path: str) -> str:
    """The tree's key form: ``/a/./b//c/`` → ``a/b/c``; ``..`` never climbs above the root."""
    cleaned = posixpath.normpath("/" + path)
    return cleaned.lstrip("/")


def parents(path: str) -> list[str]:
    """Ancestors of ``path`` from the top down, root excluded: ``a/b/c`` → ``["a", "a/b"]``."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class FsTree:
    """A mutable path → :class:`Node` map with directory listings."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {"": DEFAULT_DIR}
        self._children: dict[str, set[str]] = {"": set()}

    def __len__(self) -> int:
        return len(self._nodes) - 1

    def __contains__(self, path: str) -> bool:
        return path in self._nodes

    def get(self, path: str) -> Node | None:
        return self._nodes.get(path)

    def copy(self) -> FsTree:
        clone = FsTree()
        clone._nodes = dict(self._nodes)
        clone._children = {k: set(v) for k, v in self._children.items()}
        return clone

    def set(self, path: str, node: Node) -> None:
        """Put ``node`` at ``path``, creating missing parents as root-owned 0755 directories.

        Replacing a directory by a non-directory drops what was below it, as unpacking would.
        """
        if not path:
            self._nodes[""] = node
            return
        for parent in parents(path):
            existing = self._nodes.get(parent)
            if existing is None or not existing.is_dir:
                self._put(parent, DEFAULT_DIR)
        self._put(path, node)

    def _put(self, path: str, node: Node) -> None:
        old = self._nodes.get(path)
        if old is not None and old.is_dir and not node.is_dir:
            self.remove(path)
        self._nodes[path] = node
        parent, _, name = path.rpartition("/")
        self._children.setdefault(parent, set()).add(name)
        if node.is_dir:
            self._children.setdefault(path, set())

    def remove(self, path: str) -> None:
        """Delete ``path`` and everything below it (a whiteout)."""
        if path not in self._nodes or not path:
            return
        for child in list(self._children.get(path, ())):
            self.remove(f"{path}/{child}")
        self._children.pop(path, None)
        del self._nodes[path]
        parent, _, name = path.rpartition("/")
        self._children.get(parent, set()).discard(name)

    def clear_dir(self, path: str) -> None:
        """Delete everything below ``path`` but keep it (an opaque whiteout)."""
        for child in list(self._children.get(path, ())):
            self.remove(f"{path}/{child}" if path else child)

    def children(self, path: str) -> list[str]:
        return sorted(self._children.get(path, ()))

    def walk(self, path: str = "") -> Iterator[tuple[str, Node]]:
        """``path`` itself (unless root) and everything below it, in directory-walk order."""
        node = self._nodes.get(path)
        if node is None:
            return
        if path:
            yield path, node
        if node.is_dir:
            for child in self.children(path):
                yield from self.walk(f"{path}/{child}" if path else child)

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """Resolve symlinks in ``path`` inside the tree, never above its root (as a chroot would).

        Components that do not exist are kept as they are; the result may not exist.
        """
        parts = [p for p in path.split("/") if p]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            node = self._nodes.get(candidate)
            if node is not None and node.kind == "symlink" and (parts or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    return candidate
                target = node.linkname
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            resolved.append(part)
        return "/".join(resolved)
