"""COPY and ADD semantics: which nodes a COPY puts where, computed on trees, nothing written.

Docker's rules (BuildKit's dockerfile2llb + fsutil copy, and buildah's copier where they agree):
- sources are relative to the source root (a leading ``/`` is the root too); in the build context
  a source that climbs out (``../x``) is an error; wildcards (``*``, ``?``, ``[...]``) match per
  path component as Go's ``filepath.Match``, dot files included, results in name order;
- a directory source copies its CONTENTS; a symbolic link named as a source is followed inside
  the source root: in a stage or image, whose root is its ``/``, always (absolute targets too,
  as BuildKit resolves them); in the build context only when its target stays inside, else it
  is copied as the link it is; links found while copying a directory are always copied as
  links, never followed;
- the destination is relative to WORKDIR; it is a directory when it ends with ``/`` (or ``.``),
  when there are several sources (buildah's rule, which sealos follows), when the one source is a
  directory, or when it already is a directory in the stage; symlinks in the destination path are
  resolved inside the stage root, never outside;
- new files and directories are owned by 0:0 unless ``--chown`` (``COPY --from`` keeps the owner
  the source had, and so does what ADD unpacks from an archive); ``--chmod`` applies to every
  file and directory copied (not to what ADD unpacks, as BuildKit);
- every parent of a copied path is in the layer: the stage's own directory when it exists, else a
  new 0755 directory (owned by the ``--chown`` user, as BuildKit creates them).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from clusterimage.build.fstree import DEFAULT_DIR, FsTree, Node, clean, parents
from clusterimage.errors import KubefileError
from clusterimage.kubefile import sources as _sources

ErrorFn = Callable[[str], KubefileError]
# (path inside the source root, node) → the archive's tree when it is a tar archive, else None
UnpackFn = Callable[[str, Node], FsTree | None]

_SYMBOLIC_MODE: Final = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*)$")


@dataclass(frozen=True)
class ModeSpec:
    """``--chmod``: octal (``0755``) or symbolic (``u+x,go-w``) as chmod(1) reads it."""

    text: str
    octal: int | None
    clauses: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, error: ErrorFn) -> ModeSpec:
        if re.fullmatch(r"[0-7]{1,4}", text):
            return cls(text, int(text, 8))
        clauses = []
        for part in text.split(","):
            match = _SYMBOLIC_MODE.match(part)
            if match is None:
                raise error(f"invalid --chmod value {text!r}: expected octal or chmod symbols")
            clauses.append((match.group(1) or "a", match.group(2), match.group(3)))
        return cls(text, None, tuple(clauses))

    def apply(self, mode: int, is_dir: bool) -> int:
        if self.octal is not None:
            return self.octal
        for who, op, perms in self.clauses:
            bits = 0
            for perm in perms:
                if perm == "r":
                    bits |= 0o444
                elif perm == "w":
                    bits |= 0o222
                elif perm == "x" or (perm == "X" and (is_dir or mode & 0o111)):
                    bits |= 0o111
                elif perm == "s":
                    bits |= 0o6000
                elif perm == "t":
                    bits |= 0o1000
            mask = 0
            for w in who:
                mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[w]
            if op == "=":
                mode = (mode & ~mask) | (bits & mask)
            elif op == "+":
                mode |= bits & mask
            else:
                mode &= ~(bits & mask)
        return mode & 0o7777


def _glob(tree: FsTree, pattern: str) -> list[str]:
    """The tree's paths that a wildcard pattern matches, with the context's matcher (Go's)."""
    parts = [p for p in pattern.split("/") if p and p != "."]
    current = [""]
    for part in parts:
        # A folder on the way may be a link: look in what it points to, inside the tree, as
        # the parent of a source without wildcards is resolved (and as Go's Glob does).
        current = [tree.resolve(base) for base in current]
        following: list[str] = []
        if not _sources.has_wildcards(part):
            literal = _sources.unescape(part)
            for base in current:
                path = f"{base}/{literal}" if base else literal
                if path in tree:
                    following.append(path)
        else:
            for base in current:
                node = tree.get(base)
                if node is None or not node.is_dir:
                    continue
                for name in tree.children(base):
                    if _sources.match(part, name):
                        following.append(f"{base}/{name}" if base else name)
        current = following
    return sorted(p for p in current if p)


@dataclass(frozen=True)
class Source:
    """One resolved source: where it is in the source tree, its node, the name it lands as."""

    path: str
    node: Node
    name: str


def _escapes(path: str) -> bool:
    normalized = posixpath.normpath(path)
    return normalized == ".." or normalized.startswith("../")


def _follow_link(tree: FsTree, path: str, node: Node, in_context: bool) -> tuple[str, Node]:
    """Where a top-level source link leads and its node, if it stays in the root; else the
    link itself. The path matters for a folder: its contents are walked from there."""
    target = node.linkname
    lexical = posixpath.join(posixpath.dirname(path), target) if not target.startswith("/") else ""
    if in_context and (target.startswith("/") or _escapes(lexical)):
        return path, node  # pointing out of the context: copied as the link, never followed
    real = tree.resolve(path)
    resolved = tree.get(real)
    if resolved is None or resolved.kind == "symlink":
        return path, node
    return real, resolved


def resolve_sources(
    tree: FsTree,
    sources: tuple[str, ...] | list[str],
    *,
    keyword: str,
    where: str,
    error: ErrorFn,
    in_context: bool,
) -> list[Source]:
    """Expand and look up each source; ``where`` names the root in errors ("the build context")."""
    resolved: list[Source] = []
    for source in sources:
        if in_context and not source.startswith("/") and _escapes(source):
            raise error(f"{keyword} source {source!r} is outside the build context")
        path = clean(source)
        if _sources.has_wildcards(source):
            matches = _glob(tree, path)
            if not matches:
                raise error(f"{keyword} source {source!r} matches no file in {where}")
            for match in matches:
                node = tree.get(match)
                assert node is not None
                resolved.append(Source(match, node, posixpath.basename(match)))
            continue
        parent, _, name = path.rpartition("/")
        real = f"{tree.resolve(parent)}/{name}".lstrip("/") if parent else path
        node = tree.get(real)
        if node is None:
            raise error(f"{keyword} source {source!r}: no such file or directory in {where}")
        landing = name or posixpath.basename(real)
        if node.kind == "symlink":
            real, node = _follow_link(tree, real, node, in_context)
        resolved.append(Source(real, node, landing))
    return resolved


@dataclass(frozen=True)
class Ownership:
    """Who owns what a COPY writes: ``uid``/``gid`` from ``--chown``, or None."""

    uid: int | None = None
    gid: int | None = None

    def owner_of(self, node: Node, keep: bool) -> tuple[int, int]:
        if self.uid is not None and self.gid is not None:
            return self.uid, self.gid
        return (node.uid, node.gid) if keep else (0, 0)


def _parse_ids(text: str, database: str | None, uid_field: int) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for line in (database or "").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] and not line.startswith("#"):
            try:
                out[fields[0]] = (int(fields[uid_field]), int(fields[3]) if uid_field == 2 else 0)
            except ValueError:
                continue
    return out


def _is_number(value: str) -> bool:
    # str.isdigit() alone accepts "²", which int() refuses.
    return value.isascii() and value.isdigit()


def resolve_chown(spec: str, read_file: Callable[[str], str | None], error: ErrorFn) -> Ownership:
    """``--chown=user[:group]`` with names looked up in the stage's /etc/passwd and /etc/group."""
    user, _, group = spec.partition(":")
    if not user:
        raise error(f"invalid --chown value {spec!r}: no user")
    users = None
    if _is_number(user):
        uid = int(user)
        primary = uid
    else:
        users = _parse_ids(user, read_file("etc/passwd"), 2)
        if user not in users:
            raise error(f"--chown: no user {user!r} in the stage's /etc/passwd")
        uid, primary = users[user]
    if not group:
        return Ownership(uid, primary)
    if _is_number(group):
        return Ownership(uid, int(group))
    groups = {}
    for line in (read_file("etc/group") or "").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and _is_number(fields[2]):
            groups[fields[0]] = int(fields[2])
    if group not in groups:
        raise error(f"--chown: no group {group!r} in the stage's /etc/group")
    return Ownership(uid, groups[group])


@dataclass(frozen=True)
class CopyRequest:
    """One COPY/ADD after expansion, with its sources resolved."""

    keyword: str  # "COPY" or "ADD", for messages
    sources: list[Source]
    dest: str  # as written (after expansion)
    workdir: str = "/"
    ownership: Ownership = Ownership()
    chmod: ModeSpec | None = None
    keep_owner: bool = False  # COPY --from keeps the source's owners
    several: bool = False  # several sources named (or a wildcard): the destination is a folder


def _dest_dir_hint(dest: str) -> bool:
    return dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))


class _Layer:
    """The layer's entries being collected: path → node, replacing a folder drops its contents."""

    def __init__(self) -> None:
        self.entries: dict[str, Node] = {}

    def put(self, path: str, node: Node) -> None:
        old = self.entries.get(path)
        if old is not None and old.is_dir and not node.is_dir:
            prefix = path + "/"
            for key in [k for k in self.entries if k.startswith(prefix)]:
                del self.entries[key]
        self.entries[path] = node


def plan_copy(
    request: CopyRequest,
    source_tree: FsTree,
    target: FsTree,
    *,
    unpack: UnpackFn | None = None,
) -> dict[str, Node]:
    """The entries (path → node) of the layer ``request`` makes on top of ``target``.

    ``source_tree`` is where sources were resolved. ``unpack`` (ADD from the context) returns the
    tree of a tar archive source, which is then unpacked into the destination folder.
    """
    raw = request.dest
    if not raw.startswith("/"):
        raw = posixpath.join("/" + request.workdir.lstrip("/"), raw)
    dest = clean(raw)
    real_dest = target.resolve(dest)
    existing = target.get(real_dest)
    several = request.several or len(request.sources) > 1
    only = request.sources[0] if len(request.sources) == 1 else None
    dest_is_dir = (
        _dest_dir_hint(request.dest)
        or several
        or (only is not None and only.node.is_dir)
        or (existing is not None and existing.is_dir)
    )
    if not dest_is_dir:
        parent, _, name = dest.rpartition("/")
        real_dest = f"{target.resolve(parent)}/{name}".lstrip("/") if parent else name
    layer = _Layer()
    own = request.ownership

    def transform(node: Node, chmod: bool = True, keep: bool = request.keep_owner) -> Node:
        uid, gid = own.owner_of(node, keep)
        out = replace(node, uid=uid, gid=gid)
        if chmod and request.chmod is not None and node.kind in ("file", "dir"):
            out = out.with_mode(request.chmod.apply(node.mode, node.is_dir))
        return out

    def under(base: str, rel: str) -> str:
        return f"{base}/{rel}" if base else rel

    for source in request.sources:
        archive = None
        if unpack is not None and source.node.kind == "file":
            archive = unpack(source.path, source.node)
        if archive is not None:
            for path, node in archive.walk(""):
                layer.put(under(real_dest, path), transform(node, chmod=False, keep=True))
            continue
        if source.node.is_dir:
            if real_dest and (existing is None or not existing.is_dir):
                layer.put(real_dest, transform(source.node))
            elif real_dest and existing is not None:
                layer.put(real_dest, transform(existing) if own.uid is not None else existing)
            prefix = source.path + "/" if source.path else ""
            for path, node in source_tree.walk(source.path):
                if path == source.path:
                    continue
                layer.put(under(real_dest, path[len(prefix) :]), transform(node))
        else:
            path = under(real_dest, source.name) if dest_is_dir else real_dest
            if not path:
                continue
            layer.put(path, transform(source.node))
    _add_parents(layer, target, own)
    return layer.entries


def _add_parents(layer: _Layer, target: FsTree, own: Ownership) -> None:
    new_dir = DEFAULT_DIR
    if own.uid is not None and own.gid is not None:
        new_dir = DEFAULT_DIR.with_owner(own.uid, own.gid)
    for path in list(layer.entries):
        for parent in parents(path):
            if parent in layer.entries:
                continue
            node = target.get(parent)
            layer.entries[parent] = node if node is not None and node.is_dir else new_dir


def apply(target: FsTree, entries: dict[str, Node]) -> None:
    """Record a layer's entries in the stage tree (parents first)."""
    for path in sorted(entries, key=lambda p: p.count("/")):
        target.set(path, entries[path])


def plan_mkdir(target: FsTree, path: str, ownership: Ownership) -> dict[str, Node]:
    """The entries of WORKDIR's layer: its folder (kept as it is when the stage has it, else new,
    owned by the USER in effect) and the folder's parents."""
    real = target.resolve(clean(path))
    if not real:
        return {}
    existing = target.get(real)
    layer = _Layer()
    if existing is not None and existing.is_dir:
        layer.put(real, existing)
    else:
        uid, gid = ownership.owner_of(DEFAULT_DIR, keep=False)
        layer.put(real, DEFAULT_DIR.with_owner(uid, gid))
    _add_parents(layer, target, ownership)
    return layer.entries
