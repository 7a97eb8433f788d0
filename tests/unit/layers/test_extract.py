"""Applying layers safely: OCI whiteouts and opaque folders, modes, links, and members that try
to leave the folder (which write nothing outside it and fail in one line)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from clusterimage.errors import LayerError
from clusterimage.layers.extract import extract_layer


def _layer(members: list[tuple[str, str, bytes | str | None, int]]) -> bytes:
    """(name, kind, content or link target, mode) -> a tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, content, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.mtime = 1_000_000
            data = None
            if kind == "file":
                assert isinstance(content, bytes)
                info.size = len(content)
                data = io.BytesIO(content)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = str(content)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = str(content)
            tar.addfile(info, data)
    return buffer.getvalue()


def _apply(root: Path, members: list[tuple[str, str, bytes | str | None, int]]) -> None:
    with tarfile.open(fileobj=io.BytesIO(_layer(members)), mode="r|") as tar:
        extract_layer(tar, root, where="test layer", owners=False)


def test_files_folders_links_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _apply(
        root,
        [
            ("etc", "dir", None, 0o750),
            ("etc/app.conf", "file", b"key: value\n", 0o640),
            ("bin/tool", "file", b"#!/bin/sh\n", 0o755),
            ("bin/alias", "symlink", "tool", 0o777),
            ("bin/same", "hardlink", "bin/tool", 0o755),
        ],
    )
    assert (root / "etc/app.conf").read_bytes() == b"key: value\n"
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "etc/app.conf").stat().st_mode) == 0o640
    assert os.readlink(root / "bin/alias") == "tool"
    assert (root / "bin/same").stat().st_ino == (root / "bin/tool").stat().st_ino
    assert int((root / "etc/app.conf").stat().st_mtime) == 1_000_000


def test_whiteouts_remove_and_opaque_folders_empty_what_earlier_layers_left(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    first = [
        ("a/old.txt", "file", b"old", 0o644),
        ("a/keep/x", "file", b"x", 0o644),
        ("b/gone.txt", "file", b"gone", 0o644),
        ("c/stays", "file", b"s", 0o644),
    ]
    _apply(root, first)  # type: ignore[arg-type]
    _apply(
        root,
        [
            ("a/.wh..wh..opq", "file", b"", 0o644),
            ("a/new.txt", "file", b"new", 0o644),
            ("b/.wh.gone.txt", "file", b"", 0o644),
        ],
    )
    assert sorted(p.name for p in (root / "a").iterdir()) == ["new.txt"]
    assert not (root / "b" / "gone.txt").exists() and (root / "b").is_dir()
    assert (root / "c" / "stays").read_bytes() == b"s"
    assert not any(p.name.startswith(".wh.") for p in root.rglob("*"))


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/escape.txt", "a/../../escape.txt"])
def test_a_member_that_climbs_out_fails_and_writes_nothing_outside(
    tmp_path: Path, name: str
) -> None:
    root = tmp_path / "root"
    with pytest.raises(LayerError, match="points outside the folder"):
        _apply(root, [(name, "file", b"x", 0o644)])
    assert not (tmp_path / "escape.txt").exists()
    assert not Path("/etc/escape.txt").exists()


def test_a_file_through_a_symlink_is_refused_and_nothing_lands_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(LayerError, match="written through 'link'"):
        _apply(root, [("link", "symlink", str(outside), 0o777), ("link/evil", "file", b"x", 0o644)])
    assert list(outside.iterdir()) == []
    # The same across layers: a link an earlier layer left.
    with pytest.raises(LayerError, match="written through 'link'"):
        _apply(root, [("link/evil2", "file", b"x", 0o644)])
    assert list(outside.iterdir()) == []


def test_a_hard_link_outside_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(LayerError, match="points outside the folder"):
        _apply(root, [("h", "hardlink", "../../etc/passwd", 0o644)])


def test_a_symlink_at_a_file_name_is_replaced_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    target = tmp_path / "victim"
    target.write_text("untouched")
    _apply(root, [("f", "symlink", str(target), 0o777)])
    _apply(root, [("f", "file", b"new", 0o644)])
    assert target.read_text() == "untouched"
    assert (root / "f").read_bytes() == b"new" and not (root / "f").is_symlink()


def test_applying_again_rewrites_nothing_and_repairs_a_file_cut_short(tmp_path: Path) -> None:
    root = tmp_path / "root"
    layer = [("big.bin", "file", b"x" * 100_000, 0o644), ("small", "file", b"s", 0o644)]
    _apply(root, layer)
    with tarfile.open(fileobj=io.BytesIO(_layer(layer)), mode="r|") as tar:
        stats = extract_layer(tar, root, where="again", owners=False)
    assert stats.files == 0 and stats.kept == 2
    (root / "big.bin").write_bytes(b"x" * 10)  # what a killed unpack leaves
    with tarfile.open(fileobj=io.BytesIO(_layer(layer)), mode="r|") as tar:
        stats = extract_layer(tar, root, where="fix", owners=False)
    assert stats.files == 1 and (root / "big.bin").read_bytes() == b"x" * 100_000
