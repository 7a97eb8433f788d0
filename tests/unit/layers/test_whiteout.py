"""OCI whiteout names, and applying a layer's whiteouts to a tree or to a path-keyed dict."""

from __future__ import annotations

from typing import Any

import pytest

from clusterimage.build.fstree import FsTree, Node
from clusterimage.errors import LayerError
from clusterimage.layers.whiteout import apply_whiteouts, is_opaque, is_whiteout, whiteout_target


def test_names() -> None:
    assert is_whiteout("a/.wh.b") and is_whiteout(".wh.b") and is_whiteout("a/.wh..wh..opq")
    assert not is_whiteout("a/b.wh.c") and not is_whiteout(".wh/x") and not is_whiteout("a/wh.b")
    assert is_opaque("a/.wh..wh..opq") and is_opaque(".wh..wh..opq")
    assert not is_opaque("a/.wh.opq") and not is_opaque("a/.wh..wh..opq/x")
    assert whiteout_target("a/b/.wh.c") == "a/b/c"
    assert whiteout_target(".wh.top") == "top"
    assert whiteout_target("a/.wh..hidden") == "a/.hidden"
    assert whiteout_target("a/b") is None
    assert whiteout_target("a/.wh..wh..opq") is None  # opaque: not a plain whiteout
    assert whiteout_target("a/.wh..wh.plnk") is None  # AUFS metadata


@pytest.mark.parametrize("name", [".wh.", ".wh..", ".wh...", "a/.wh..", "a/.wh..."])
def test_a_whiteout_of_its_own_folder_or_the_one_above_is_an_error(name: str) -> None:
    with pytest.raises(LayerError, match="names no file of its folder"):
        whiteout_target(name)


def _tree() -> FsTree:
    tree = FsTree()
    for path in ("a/x", "a/y/z", "b/keep", "top"):
        tree.set(path, Node("file"))
    return tree


def test_applied_to_a_tree() -> None:
    tree = _tree()
    count = apply_whiteouts(tree, ["a/.wh.y", ".wh.top", "b/.wh.missing", "b/new", "a/.wh..wh.x"])
    assert count == 3  # b/new is no whiteout, AUFS metadata is skipped
    assert [p for p, _ in tree.walk()] == ["a", "a/x", "b", "b/keep"]
    apply_whiteouts(tree, ["a/.wh..wh..opq"])
    assert [p for p, _ in tree.walk()] == ["a", "b", "b/keep"]
    apply_whiteouts(tree, [".wh..wh..opq"])
    assert len(tree) == 0


def test_applied_to_a_dict() -> None:
    paths: dict[str, Any] = {p: 1 for p in ("a", "a/x", "a/y", "a/y/z", "ab", "b", "b/keep")}
    apply_whiteouts(paths, ["a/.wh.y"])
    assert sorted(paths) == ["a", "a/x", "ab", "b", "b/keep"]
    apply_whiteouts(paths, [".wh.a"])
    assert sorted(paths) == ["ab", "b", "b/keep"]  # "ab" only shares a prefix
    apply_whiteouts(paths, ["b/.wh..wh..opq"])
    assert sorted(paths) == ["ab", "b"]
    apply_whiteouts(paths, [".wh..wh..opq"])
    assert paths == {}


def test_a_bad_whiteout_changes_nothing_above_it() -> None:
    tree = _tree()
    with pytest.raises(LayerError):
        apply_whiteouts(tree, ["a/.wh..."])
    assert "a/x" in tree and "top" in tree
