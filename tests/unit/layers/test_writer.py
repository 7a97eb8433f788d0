"""The layer writer outside the builder: entries of any shape, bytes from the caller's opener,
and what it writes read back by the listing and by extraction."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusterimage.errors import LayerError
from clusterimage.layers.extract import extract_layer
from clusterimage.layers.listing import list_layer
from clusterimage.layers.tarsafe import open_tar
from clusterimage.layers.writer import Body, sort_key, write_layer


@dataclass
class Blob:
    path: Path
    size: int
    digest: str | None = None


@dataclass(frozen=True)
class Member:
    kind: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    content: Blob | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0


def _open(path: str, body: Body) -> int:
    assert isinstance(body, Blob)
    return os.open(body.path, os.O_RDONLY)


def _file(folder: Path, name: str, data: bytes) -> Blob:
    path = folder / name
    path.write_bytes(data)
    return Blob(path, len(data))


def _entries(tmp_path: Path) -> dict[str, Member]:
    tool = _file(tmp_path, "tool", bytes(range(256)) * 800)  # 204800 bytes
    return {
        "opt/bin/tool": Member("file", 0o755, content=tool),
        "opt/bin/same": Member("file", 0o755, content=tool),
        "opt/bin": Member("dir", 0o750, uid=7, gid=8),
        "opt/alias": Member("symlink", 0o777, linkname="bin/tool"),
        "opt/readme": Member("file", 0o444, content=_file(tmp_path, "r", b"read me\n")),
        "opt": Member("dir", 0o755),
    }


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_written_layers_list_and_extract_as_given(tmp_path: Path, compression: str) -> None:
    entries = _entries(tmp_path)
    out = io.BytesIO()
    result = write_layer(
        entries.items(), out, compression=compression, timestamp=86400, open_file=_open
    )
    assert result.entries == len(entries)
    assert all(m.content.digest for m in entries.values() if m.content)  # filled while written
    out.seek(0)
    records = list_layer(out)
    assert [r[0] for r in records] == sorted(entries, key=sort_key)
    kinds = {r[0]: r[1] for r in records}
    assert kinds["opt/bin/same"] == "file" and kinds["opt/bin/tool"] == "hardlink"  # walk order
    out.seek(0)
    root = tmp_path / "root"
    with open_tar(out) as tar:
        stats = extract_layer(tar, root, where="layer", owners=True)
    assert stats.files == 3 and stats.bytes == 204_800 + 8  # a hard link has no body
    tool = root / "opt/bin/tool"
    assert tool.read_bytes() == entries["opt/bin/tool"].content.path.read_bytes()  # type: ignore[union-attr]
    assert tool.stat().st_ino == (root / "opt/bin/same").stat().st_ino
    assert os.readlink(root / "opt/alias") == "bin/tool"
    assert stat.S_IMODE((root / "opt/readme").stat().st_mode) == 0o444
    assert stat.S_IMODE((root / "opt/bin").stat().st_mode) == 0o750
    assert int(tool.stat().st_mtime) == 86400
    if os.geteuid() == 0:
        assert ((root / "opt/bin").stat().st_uid, (root / "opt/bin").stat().st_gid) == (7, 8)


def test_a_file_that_shrinks_while_written_is_a_layer_error(tmp_path: Path) -> None:
    blob = _file(tmp_path, "f", b"0123456789")
    blob.size = 20  # what the caller was told; the file has fewer bytes now
    with pytest.raises(LayerError, match="/f shrank"):
        write_layer([("f", Member("file", content=blob))], io.BytesIO(), open_file=_open)


def test_the_same_entries_give_the_same_bytes(tmp_path: Path) -> None:
    outputs = []
    for _ in range(2):
        out = io.BytesIO()
        entries = _entries(tmp_path)
        write_layer(reversed(list(entries.items())), out, open_file=_open)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    with tarfile.open(fileobj=io.BytesIO(outputs[0])) as tar:
        assert {m.mtime for m in tar} == {0} and {m.uname for m in tar} == {""}
