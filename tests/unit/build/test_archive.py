"""ADD's archive reading: every compression, and every escape attempt refused."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from clusterimage.build.archive import is_archive, read_archive
from clusterimage.errors import KubefileError


def _error(message: str) -> KubefileError:
    return KubefileError(message, "Kubefile", 4)


def _tar(members: list[tuple[str, str, bytes | str]]) -> bytes:
    """(name, kind, data-or-linkname) → a plain tar; kinds: file, dir, sym, hard."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                info.mode = 0o640
                info.uid = 1234
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o750
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            tar.addfile(info)
    return out.getvalue()


_GOOD: list[tuple[str, str, bytes | str]] = [
    ("app", "dir", b""),
    ("app/config.yaml", "file", b"a: 1\n"),
    ("app/same.yaml", "hard", "app/config.yaml"),
    ("app/current", "sym", "config.yaml"),
    ("app/abs", "sym", "/etc/hostname"),
    ("/rooted/file", "file", b"absolute names stay inside\n"),
    ("./dotted/file", "file", b"x"),
]

_COMPRESSORS = {
    "plain": lambda b: b,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("compression", sorted(_COMPRESSORS))
def test_reads_every_compression(tmp_path: Path, compression: str) -> None:
    archive = tmp_path / "a.tar.any"
    archive.write_bytes(_COMPRESSORS[compression](_tar(_GOOD)))
    assert is_archive(archive)
    tree = read_archive(archive, tmp_path / "staging", label="a.tar.any", error=_error)
    config = tree.get("app/config.yaml")
    assert config is not None and config.content is not None
    assert config.content.path is not None and config.content.path.read_bytes() == b"a: 1\n"
    assert config.mode == 0o640 and config.content.digest is not None
    same = tree.get("app/same.yaml")
    assert same is not None and same.content is config.content
    current = tree.get("app/current")
    assert current is not None and current.kind == "symlink" and current.linkname == "config.yaml"
    assert tree.get("rooted/file") is not None
    assert tree.get("dotted/file") is not None
    app = tree.get("app")
    assert app is not None and app.mode == 0o750
    # Staged files are flat and numbered: nothing is created at a path the archive names.
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == [
        "00000001",
        "00000002",
        "00000003",
    ]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../evil", "file", b"x")], "outside the destination"),
        ([("a/../../evil", "file", b"x")], "outside the destination"),
        ([("ln", "sym", "/etc"), ("ln/passwd", "file", b"x")], "below a symbolic link"),
        ([("d", "dir", b""), ("d/ln", "sym", "../.."), ("d/ln/x", "file", b"x")], "symbolic"),
        ([("up", "sym", "../../etc/passwd")], "points outside the destination"),
        ([("h", "hard", "/etc/shadow")], "names no earlier file"),
        ([("h", "hard", "../x")], "names no earlier file"),
    ],
)
def test_escapes_are_refused(
    tmp_path: Path, members: list[tuple[str, str, bytes | str]], message: str
) -> None:
    archive = tmp_path / "evil.tar"
    archive.write_bytes(_tar(members))
    with pytest.raises(KubefileError, match=rf"^Kubefile:4: ADD evil.tar: .*{message}"):
        read_archive(archive, tmp_path / "staging", label="evil.tar", error=_error)
    assert not (tmp_path / "evil").exists()


def test_not_archives(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just text\n")
    fake_gz = tmp_path / "data.gz"
    fake_gz.write_bytes(gzip.compress(b"not a tar at all"))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert not is_archive(text)
    assert not is_archive(fake_gz)
    assert not is_archive(empty)


def test_truncated_archive_is_an_error(tmp_path: Path) -> None:
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(gzip.compress(_tar([("big", "file", os.urandom(100_000))]))[:20_000])
    with pytest.raises(KubefileError, match="cannot read the archive"):
        read_archive(archive, tmp_path / "staging", label="cut.tar.gz", error=_error)
