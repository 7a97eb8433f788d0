"""The build context as COPY and ADD see it: the folder minus ignored files, plus overlays.

The context is read once into an :class:`~clusterimage.build.fstree.FsTree` (a stat walk: no file is
read here), so COPY from the context and ``COPY --from`` a stage share one code path. Regular files
point at their host path with the stat fields the build cache keys on.

Rules, as Docker's:
- the ignore file is ``<Kubefile>.dockerignore`` next to the Kubefile when it exists, else
  ``.containerignore`` or ``.dockerignore`` at the context root; the Kubefile and the ignore file
  are ordinary context files (``COPY . .`` copies them unless a pattern excludes them);
- uid/gid of context files are 0 (COPY's default); modes are kept;
- symbolic links are entries of their own, never followed while walking, so a link pointing out
  of the context is copied as a link;
- the walk, and every later read of a context file, opens each folder from its parent's file
  descriptor without following links (:mod:`clusterimage.build.confined`): a folder swapped for
  a link during the build is an error, never a way out of the context.

Overlays are virtual folders laid over the context (DESIGN.md: the generated ``registry/``): the
user's folder is never written, overlay files win over the user's at the same path, and ignore
rules do not apply to them (they are generated, not picked by the user).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from clusterimage.build.confined import open_dir, swapped_error
from clusterimage.build.dockerignore import IgnoreRules
from clusterimage.build.fstree import DEFAULT_DIR, Content, FsTree, Node, stat_key
from clusterimage.errors import BuildError

IGNORE_FILES = (".containerignore", ".dockerignore")


@dataclass(frozen=True)
class Overlay:
    """A folder laid over the context at ``target`` (``registry``); ``source`` None: empty."""

    target: str
    source: Path | None = None


def find_ignore_file(root: Path, kubefile: Path | None) -> Path | None:
    if kubefile is not None:
        specific = kubefile.with_name(kubefile.name + ".dockerignore")
        if specific.is_file():
            return specific
    for name in IGNORE_FILES:
        candidate = root / name
        if candidate.is_file():
            return candidate
    return None


def load_ignore_rules(root: Path, kubefile: Path | None) -> IgnoreRules:
    """The rules of the ignore file that applies to ``root`` (none: no rules)."""
    found = find_ignore_file(root, kubefile)
    return IgnoreRules.load(found) if found else IgnoreRules.empty()


def _node(
    where: _Where, name: str, st: os.stat_result, hardlinks: dict[tuple[int, int], Content]
) -> Node | None:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return Node("dir", mode)
    if stat.S_ISLNK(st.st_mode):
        return Node("symlink", 0o777, linkname=os.readlink(name, dir_fd=where.fd))
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        content = hardlinks.get(key) if st.st_nlink > 1 else None
        if content is None:
            rel = where.child(name)
            content = Content(
                where.root / rel, st.st_size, stat_key=stat_key(st), root=where.root, rel=rel
            )
            if st.st_nlink > 1:
                hardlinks[key] = content
        return Node("file", mode, content=content)
    return None  # sockets, fifos and devices are not build input (Docker skips them too)


@dataclass(frozen=True)
class _Where:
    """A folder being walked: its fd, its path below the walk's root, and that root."""

    fd: int
    rel: str
    root: Path

    def child(self, name: str) -> str:
        return f"{self.rel}/{name}" if self.rel else name


class BuildContext:
    """The context folder as a tree; ``tree`` is what COPY reads from."""

    def __init__(
        self,
        root: Path,
        ignore: IgnoreRules | None = None,
        overlays: tuple[Overlay, ...] = (),
    ) -> None:
        self.root = root
        self.ignore = ignore or IgnoreRules.empty()
        self.overlays = overlays
        self._tree: FsTree | None = None

    @classmethod
    def open(
        cls,
        root: Path,
        kubefile: Path | None = None,
        overlays: tuple[Overlay, ...] = (),
        ignore: IgnoreRules | None = None,
    ) -> BuildContext:
        """The context at ``root``; ``ignore``: rules already parsed (the ones the plan used),
        else read from the ignore file that ``kubefile`` and ``root`` select."""
        if not root.is_dir():
            raise BuildError(f"build context {root} is not a directory")
        if ignore is None:
            ignore = load_ignore_rules(root, kubefile)
        return cls(root, ignore, overlays)

    @property
    def tree(self) -> FsTree:
        if self._tree is None:
            tree = FsTree()
            hardlinks: dict[tuple[int, int], Content] = {}
            self._walk_root(self.root, "", tree, hardlinks, self.ignore)
            for overlay in self.overlays:
                self._apply_overlay(tree, overlay, hardlinks)
            self._tree = tree
        return self._tree

    def _walk_root(
        self,
        root: Path,
        prefix: str,
        tree: FsTree,
        hardlinks: dict[tuple[int, int], Content],
        ignore: IgnoreRules,
    ) -> None:
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise BuildError(f"cannot read build context folder {root}: {exc.strerror}") from None
        try:
            self._walk(_Where(fd, "", root), prefix, tree, hardlinks, ignore)
        finally:
            os.close(fd)

    def _walk(
        self,
        where: _Where,
        prefix: str,
        tree: FsTree,
        hardlinks: dict[tuple[int, int], Content],
        ignore: IgnoreRules,
    ) -> None:
        """Walk the folder open as ``where.fd``; each folder below is opened from its parent's
        fd without following links, so a swapped folder can never lead the walk outside."""
        try:
            with os.scandir(where.fd) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            folder = where.root / where.rel
            raise BuildError(f"cannot read build context folder {folder}: {exc.strerror}") from None
        for entry in entries:
            name = entry.name
            rel = f"{prefix}/{name}" if prefix else name
            ignored = ignore.ignored(rel)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                path = where.root / where.child(name)
                raise BuildError(f"cannot stat {path}: {exc.strerror}") from None
            if ignored and not (stat.S_ISDIR(st.st_mode) and ignore.has_exclusions):
                continue
            node = _node(where, name, st, hardlinks)
            if node is None:
                continue
            if node.is_dir:
                before = len(tree)
                if not ignored:
                    tree.set(rel, node)
                self._walk_below(where, name, st, rel, tree, hardlinks, ignore)
                # An ignored folder is walked only for what a "!" pattern brings back; it
                # appears (with its own metadata) only when something below it does.
                if ignored and len(tree) > before:
                    tree.set(rel, node)
            elif not ignored:
                tree.set(rel, node)

    def _walk_below(
        self,
        where: _Where,
        name: str,
        st: os.stat_result,
        rel: str,
        tree: FsTree,
        hardlinks: dict[tuple[int, int], Content],
        ignore: IgnoreRules,
    ) -> None:
        child = where.child(name)
        what = f"build context folder {where.root / child}"
        fd = open_dir(name, where.fd, what)
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise swapped_error(what)
            self._walk(_Where(fd, child, where.root), rel, tree, hardlinks, ignore)
        finally:
            os.close(fd)

    def _apply_overlay(
        self, tree: FsTree, overlay: Overlay, hardlinks: dict[tuple[int, int], Content]
    ) -> None:
        existing = tree.get(overlay.target)
        root_node = existing if existing is not None and existing.is_dir else DEFAULT_DIR
        tree.set(overlay.target, root_node)
        if overlay.source is not None:
            self._walk_root(overlay.source, overlay.target, tree, hardlinks, IgnoreRules.empty())
