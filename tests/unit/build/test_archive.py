"""ADD's archive reading: every compression, and every escape attempt refused."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from clusterimage.build import archive as archive_module
from clusterimage.build.archive import read_archive
from clusterimage.build.fstree import Content, FsTree, stat_key
from clusterimage.errors import BuildError, KubefileError


def _error(message: str) -> KubefileError:
    return KubefileError(message, "Kubefile", 4)


def _content(path: Path) -> Content:
    st = path.stat()
    return Content(path, st.st_size, stat_key=stat_key(st))


def _read(path: Path, staging: Path) -> FsTree | None:
    return read_archive(_content(path), staging, label=path.name, error=_error)


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
    content = _content(archive)
    tree = read_archive(content, tmp_path / "staging", label="a.tar.any", error=_error)
    assert tree is not None
    # The archive file's own digest comes from the same pass (what a cached ADD is keyed on).
    assert content.digest == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
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
        _read(archive, tmp_path / "staging")
    assert not (tmp_path / "evil").exists()


def test_not_archives(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just text\n")
    fake_gz = tmp_path / "data.gz"
    fake_gz.write_bytes(gzip.compress(b"not a tar at all"))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    empty_tar = tmp_path / "empty.tar"
    empty_tar.write_bytes(b"\0" * 1024)  # no member: copied as it is, as Docker does
    for path in (text, fake_gz, empty, empty_tar):
        assert _read(path, tmp_path / "staging") is None, path.name


def test_truncated_archive_is_an_error(tmp_path: Path) -> None:
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(gzip.compress(_tar([("big", "file", os.urandom(100_000))]))[:20_000])
    with pytest.raises(KubefileError, match="cannot read the archive"):
        _read(archive, tmp_path / "staging")


def test_an_archive_is_decompressed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(gzip.compress(_tar(_GOOD)))
    opened: list[str] = []
    real = archive_module.decompressed

    def counting(raw: object, compression: str) -> object:
        opened.append(compression)
        return real(raw, compression)  # type: ignore[arg-type]

    monkeypatch.setattr(archive_module, "decompressed", counting)
    assert _read(archive, tmp_path / "staging") is not None
    assert opened == ["gzip"]


def test_archive_changed_since_the_walk_is_an_error(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar(_GOOD))
    content = _content(archive)
    archive.write_bytes(_tar([*_GOOD, ("more", "file", b"x" * 4096)]))
    with pytest.raises(BuildError, match=r"changed during the build \(for ADD a.tar\)"):
        read_archive(content, tmp_path / "staging", label="a.tar", error=_error)
