"""extract_layer against hostile and awkward layers: nothing outside the root is ever read,
written, removed or chmod-ed, and every refusal is one LayerError naming the member."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterimage.errors import LayerError
from clusterimage.layers.extract import ExtractStats, extract_layer

Spec = tuple[str, str, bytes | str | None, int]  # name, kind, content or link target, mode


def _tar(members: list[Spec], *, uid: int = 0) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, content, mode in members:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid = mode, 1_000_000, uid, uid
            data = None
            if kind == "file":
                assert isinstance(content, bytes)
                info.size = len(content)
                data = io.BytesIO(content)
            else:
                info.type = {
                    "dir": tarfile.DIRTYPE,
                    "symlink": tarfile.SYMTYPE,
                    "hardlink": tarfile.LNKTYPE,
                    "char": tarfile.CHRTYPE,
                    "fifo": tarfile.FIFOTYPE,
                }[kind]
                info.linkname = str(content or "")
                if kind == "char":
                    info.devmajor, info.devminor = 1, 3
            tar.addfile(info, data)
    return buffer.getvalue()


def _apply(root: Path, members: list[Spec], **options: object) -> ExtractStats:
    with tarfile.open(fileobj=io.BytesIO(_tar(members)), mode="r|") as tar:
        return extract_layer(tar, root, where="layer", owners=False, **options)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The root, inside a folder whose other content must survive whatever the layer says."""
    (tmp_path / "sibling").write_text("precious")
    (tmp_path / "outside").mkdir(mode=0o700)
    (tmp_path / "outside" / "secret").write_text("secret")
    return tmp_path / "root"


def _untouched(root: Path) -> None:
    here = root.parent
    assert (here / "sibling").read_text() == "precious"
    assert (here / "outside" / "secret").read_text() == "secret"
    assert stat.S_IMODE((here / "outside").stat().st_mode) == 0o700
    assert sorted(p.name for p in (here / "outside").iterdir()) == ["secret"]


@pytest.mark.parametrize("name", [".wh..", ".wh...", "a/.wh...", ".wh."])
def test_a_whiteout_of_dot_or_dot_dot_is_refused_and_removes_nothing(root: Path, name: str) -> None:
    _apply(root, [("a/keep", "file", b"k", 0o644)])
    with pytest.raises(LayerError, match=r"^layer: whiteout .* names no file of its folder$"):
        _apply(root, [(name, "file", b"", 0o644)])
    assert (root / "a/keep").read_bytes() == b"k"
    _untouched(root)


def test_a_folder_replaced_by_a_link_in_the_same_layer_keeps_the_target_mode(root: Path) -> None:
    outside = root.parent / "outside"
    _apply(root, [("x", "dir", None, 0o777), ("x", "symlink", str(outside), 0o777)])
    assert os.readlink(root / "x") == str(outside)
    _untouched(root)


def test_whiteouts_through_a_link_or_in_missing_folders_change_nothing(root: Path) -> None:
    outside = root.parent / "outside"
    _apply(root, [("link", "symlink", str(outside), 0o777)])
    _apply(root, [("link/.wh.secret", "file", b"", 0o644), ("link/.wh..wh..opq", "file", b"", 0)])
    stats = _apply(root, [("no/such/.wh.thing", "file", b"", 0o644)])
    assert stats.removed == 0 and not (root / "no").exists()  # no folder made for a whiteout
    _untouched(root)


def test_aufs_metadata_is_neither_applied_nor_written(root: Path) -> None:
    _apply(root, [(".wh.plnk", "file", b"k", 0o644)])  # a plain file of that odd name...
    _apply(root, [(".wh..wh.plnk", "dir", None, 0o700), (".wh..wh.aufs", "file", b"", 0o644)])
    assert sorted(p.name for p in root.iterdir()) == []  # ...was a whiteout of "plnk" itself


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../sibling", "file", b"x", 0o644)], "points outside the folder"),
        ([("/etc/passwd", "file", b"x", 0o644)], "points outside the folder"),
        ([("a/../../sibling", "file", b"x", 0o644)], "points outside the folder"),
        ([("h", "hardlink", "../sibling", 0o644)], "points outside the folder"),
        ([("h", "hardlink", "/etc/passwd", 0o644)], "points outside the folder"),
        ([("h", "hardlink", "missing", 0o644)], "which is not there"),
        ([("d", "dir", None, 0o755), ("h", "hardlink", "d", 0o644)], "hard link 'h' to 'd'"),
        (
            [("l", "symlink", "../outside", 0o777), ("h", "hardlink", "l/secret", 0o644)],
            "which is not there",
        ),
        (
            [("l", "symlink", "../outside", 0o777), ("l/new", "file", b"x", 0o644)],
            "written through 'l'",
        ),
        (
            [("f", "file", b"x", 0o644), ("f/below", "file", b"x", 0o644)],
            "written through 'f'",
        ),
    ],
)
def test_bad_members_are_one_line_errors_naming_them(
    root: Path, members: list[Spec], message: str
) -> None:
    with pytest.raises(LayerError, match=message) as caught:
        _apply(root, members)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("layer: ")
    assert repr(members[-1][0]) in str(caught.value)
    _untouched(root)
    assert not (root / "missing").exists()


def test_a_hard_link_to_a_link_links_the_link_itself(root: Path) -> None:
    outside = root.parent / "outside" / "secret"
    _apply(root, [("l", "symlink", str(outside), 0o777), ("h", "hardlink", "l", 0o777)])
    assert os.readlink(root / "h") == str(outside)
    assert (root / "h").lstat().st_ino == (root / "l").lstat().st_ino


def test_opaque_keeps_what_the_same_layer_made_even_implicitly(root: Path) -> None:
    _apply(root, [("a/old", "file", b"o", 0o644), ("a/-x/old", "file", b"o", 0o644)])
    # "-" sorts before ".": the layer's own "a/-x/new" comes before the marker, without an
    # entry for "a/-x"; the folder is this layer's too, only its old content goes.
    _apply(root, [("a/-x/new", "file", b"n", 0o644), ("a/.wh..wh..opq", "file", b"", 0)])
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["a", "a/-x", "a/-x/new"]


def test_a_layer_over_an_earlier_one_replaces_kinds(root: Path) -> None:
    _apply(
        root,
        [
            ("was-dir/inner", "file", b"i", 0o644),
            ("was-file", "file", b"f", 0o644),
            ("was-link", "symlink", "elsewhere", 0o777),
            ("kept", "file", b"k", 0o600),
        ],
    )
    stats = _apply(
        root,
        [
            ("was-dir", "file", b"now a file", 0o640),
            ("was-file", "dir", None, 0o711),
            ("was-file/in", "file", b"in", 0o644),
            ("was-link", "dir", None, 0o755),
            ("fifo", "fifo", None, 0o620),
        ],
    )
    assert (root / "was-dir").read_bytes() == b"now a file"
    assert stat.S_IMODE((root / "was-dir").stat().st_mode) == 0o640
    assert (root / "was-file").is_dir() and (root / "was-file/in").read_bytes() == b"in"
    assert stat.S_IMODE((root / "was-file").stat().st_mode) == 0o711
    assert (root / "was-link").is_dir() and not (root / "was-link").is_symlink()
    assert stat.S_ISFIFO((root / "fifo").lstat().st_mode)
    assert stat.S_IMODE((root / "fifo").lstat().st_mode) == 0o620
    assert (root / "kept").read_bytes() == b"k"
    assert (stats.files, stats.bytes) == (2, len(b"now a file") + 2)


def test_modes_with_special_bits_and_read_only_folders(root: Path) -> None:
    _apply(
        root,
        [
            ("ro", "dir", None, 0o555),
            ("ro/tool", "file", b"t", 0o4755),
            ("ro/sticky", "dir", None, 0o1777),
        ],
    )
    assert stat.S_IMODE((root / "ro").stat().st_mode) == 0o555
    assert stat.S_IMODE((root / "ro/tool").stat().st_mode) == 0o4755
    assert stat.S_IMODE((root / "ro/sticky").stat().st_mode) == 0o1777
    assert int((root / "ro").stat().st_mtime) == 1_000_000
    (root / "ro").chmod(0o755)  # so that tmp_path can be cleaned up as any user


@pytest.mark.skipif(os.geteuid() != 0, reason="owners and device nodes need root")
def test_as_root_owners_are_kept_and_device_nodes_made(root: Path) -> None:
    layer = _tar([("f", "file", b"x", 0o644), ("null", "char", None, 0o666)], uid=4321)
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r|") as tar:
        extract_layer(tar, root, where="layer")  # owners: by default when root
    assert ((root / "f").stat().st_uid, (root / "f").stat().st_gid) == (4321, 4321)
    st = (root / "null").lstat()
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r|") as tar:
        extract_layer(tar, root / "plain", where="layer", owners=False)
    assert (root / "plain/f").stat().st_uid == 0


def _as_another_user(action: Callable[[], None]) -> None:
    """Run ``action`` as a user that is not root (in a child process when we are root)."""
    if os.geteuid() != 0:
        action()
        return
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_unpacking_again_as_a_user_replaces_read_only_files() -> None:
    # Not below tmp_path: pytest's base folder is private to the user running the tests.
    base = Path(tempfile.mkdtemp(prefix="clusterimage-extract-"))
    root = base / "root"
    try:
        if os.geteuid() == 0:
            os.chown(base, 65534, 65534)
        layer: list[Spec] = [("ro.txt", "file", b"v1", 0o444), ("dev", "char", None, 0o666)]

        def twice() -> None:
            _apply(root, layer)
            assert not (root / "dev").exists()  # a device node needs root: left out
            _apply(root, [("ro.txt", "file", b"v2", 0o444)])

        _as_another_user(twice)
        assert (root / "ro.txt").read_bytes() == b"v2"
    finally:
        shutil.rmtree(base)
