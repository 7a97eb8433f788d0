"""OCI whiteouts: the names by which a layer deletes what the layers below it hold.

``a/.wh.b`` hides ``a/b`` (and everything below it); ``a/.wh..wh..opq`` empties ``a`` of what
lower layers put there, keeping what the same layer adds. Other ``.wh..wh.`` names are AUFS
metadata, never files of the image. Paths are the cleaned, relative member names of a layer.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, MutableMapping
from typing import Any, Final, Protocol

from clusterimage.errors import LayerError

PREFIX: Final = ".wh."
META_PREFIX: Final = ".wh..wh."
OPAQUE: Final = ".wh..wh..opq"


class Tree(Protocol):
    """What whiteouts apply to (``clusterimage.build.fstree.FsTree`` is one)."""

    def remove(self, path: str) -> None: ...

    def clear_dir(self, path: str) -> None: ...


def is_whiteout(name: str) -> bool:
    """Whether ``name`` is a whiteout marker (opaque and AUFS metadata included): never a file
    of the image."""
    return posixpath.basename(name).startswith(PREFIX)


def is_opaque(name: str) -> bool:
    return posixpath.basename(name) == OPAQUE


def whiteout_target(name: str) -> str | None:
    """The path the plain whiteout ``name`` hides (``a/.wh.b`` → ``a/b``); None when ``name``
    is no plain whiteout. A whiteout of ``.`` or ``..`` would delete its own folder or the
    one above it: LayerError naming it."""
    parent, _, base = name.rpartition("/")
    if not base.startswith(PREFIX) or base.startswith(META_PREFIX):
        return None
    hidden = base[len(PREFIX) :]
    if hidden in ("", ".", ".."):
        raise LayerError(f"whiteout {name!r} names no file of its folder")
    return f"{parent}/{hidden}" if parent else hidden


def apply_whiteouts(tree: Tree | MutableMapping[str, Any], names: Iterable[str]) -> int:
    """Apply the whiteouts among ``names`` (a layer's cleaned member names) to ``tree``, an
    object with ``remove``/``clear_dir`` or a mapping keyed by path; returns how many there
    were. Call it before laying the layer's own entries over ``tree``: whiteouts refer to
    lower layers only."""
    count = 0
    for name in names:
        if is_opaque(name):
            folder = posixpath.dirname(name)
            if isinstance(tree, MutableMapping):
                _drop_below(tree, folder)
            else:
                tree.clear_dir(folder)
        else:
            hidden = whiteout_target(name)
            if hidden is None:
                continue
            if isinstance(tree, MutableMapping):
                tree.pop(hidden, None)
                _drop_below(tree, hidden)
            else:
                tree.remove(hidden)
        count += 1
    return count


def _drop_below(paths: MutableMapping[str, Any], folder: str) -> None:
    prefix = f"{folder}/" if folder else ""
    for path in [p for p in paths if p.startswith(prefix) and p != folder]:
        del paths[path]
