"""The deterministic layer writer: tar entries, gzip/zstd framing, both digests in one pass."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from clusterimage.build.fstree import Content, Node, stat_key
from clusterimage.build.layer import write_layer
from clusterimage.errors import BuildError, LayerError
from clusterimage.oci import mediatypes as mt


def _file(path: Path, data: bytes, mode: int = 0o644) -> Node:
    path.write_bytes(data)
    return Node("file", mode, content=Content(path, len(data), stat_key=stat_key(path.stat())))


def _entries(tmp: Path) -> dict[str, Node]:
    shared = _file(tmp / "shared", b"same bytes\n" * 100)
    return {
        "manifests/app.yaml": _file(tmp / "app", b"kind: Deployment\n"),
        "manifests": Node("dir", 0o755),
        "bin/tool": _file(tmp / "tool", os.urandom(300_000), 0o4755),
        "bin": Node("dir", 0o700, uid=1000, gid=1000),
        "bin/link": Node("symlink", 0o777, linkname="/usr/bin/tool"),
        "a-b": _file(tmp / "ab", b"dash sorts after a/ in a walk\n"),
        "a": Node("dir", 0o755),
        "a/x": _file(tmp / "ax", b"x\n"),
        "hard/one": shared,
        "hard/two": Node("file", 0o644, content=shared.content),
        "x" * 120 + "/long-name": _file(tmp / "long", b"long\n"),
        "ünïcode.txt": _file(tmp / "uni", b"u\n"),
    }


def _members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return tar.getmembers()


def test_entries_are_sorted_normalised_and_linked(tmp_path: Path) -> None:
    out = io.BytesIO()
    result = write_layer(_entries(tmp_path).items(), out, compression="none", timestamp=1234)
    members = _members(out.getvalue())
    names = [m.name for m in members]
    # Directory-walk order: parents first, then by component ("a/x" before "a-b", unlike a
    # plain string sort where "-" < "/").
    assert names[:6] == ["a", "a/x", "a-b", "bin", "bin/link", "bin/tool"]
    assert names.index("hard/one") < names.index("hard/two")
    assert names[-1] == "ünïcode.txt"
    for member in members:
        assert member.mtime == 1234
        assert member.uname == "" and member.gname == ""
    by_name = {m.name: m for m in members}
    assert by_name["bin"].isdir() and by_name["bin"].uid == 1000 and by_name["bin"].mode == 0o700
    assert by_name["bin/tool"].mode == 0o4755
    assert by_name["bin/link"].issym() and by_name["bin/link"].linkname == "/usr/bin/tool"
    assert by_name["hard/two"].islnk() and by_name["hard/two"].linkname == "hard/one"
    assert by_name["x" * 120 + "/long-name"].isfile()
    assert result.entries == len(members)
    assert result.diff_id == result.descriptor.digest
    assert result.descriptor.media_type == mt.OCI_LAYER
    assert out.getvalue().endswith(b"\0" * 1024)


def test_directories_are_written_with_a_trailing_slash(tmp_path: Path) -> None:
    out = io.BytesIO()
    write_layer([("d", Node("dir", 0o755))], out, compression="none")
    assert out.getvalue()[:2] == b"d/"


def test_same_input_same_bytes_whatever_the_order_or_host_paths(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first = _entries(one)
    second = _entries(two)
    # Same bytes in the random file for both copies.
    data = (one / "tool").read_bytes()
    second["bin/tool"] = _file(two / "tool", data, 0o4755)
    a, b = io.BytesIO(), io.BytesIO()
    ra = write_layer(first.items(), a)
    rb = write_layer(reversed(list(second.items())), b)
    assert a.getvalue() == b.getvalue()
    assert ra == rb


def test_gzip_header_is_deterministic(tmp_path: Path) -> None:
    out = io.BytesIO()
    result = write_layer(_entries(tmp_path).items(), out, compression="gzip")
    blob = out.getvalue()
    # magic, deflate, no flags (no name), mtime 0, OS 255 (unknown): what Go writes too.
    assert blob[:4] == b"\x1f\x8b\x08\x00"
    assert blob[4:8] == b"\0\0\0\0"
    assert blob[9] == 0xFF
    raw = gzip.decompress(blob)
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == str(result.diff_id)
    assert f"sha256:{hashlib.sha256(blob).hexdigest()}" == str(result.descriptor.digest)
    assert result.descriptor.size == len(blob)
    assert result.descriptor.media_type == mt.OCI_LAYER_GZIP


def test_zstd_layer(tmp_path: Path) -> None:
    out = io.BytesIO()
    result = write_layer(_entries(tmp_path).items(), out, compression="zstd")
    blob = out.getvalue()
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == str(result.diff_id)
    assert result.descriptor.media_type == mt.OCI_LAYER_ZSTD
    assert len(_members(raw)) == result.entries


def test_file_digests_are_filled_while_streaming(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    write_layer(entries.items(), io.BytesIO())
    node = entries["manifests/app.yaml"]
    assert node.content is not None
    assert node.content.digest == "sha256:" + hashlib.sha256(b"kind: Deployment\n").hexdigest()


class _ChunkSink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sizes: list[int] = []
        self.fail_after = fail_after

    def write(self, data: bytes) -> int:
        if self.fail_after is not None and len(self.sizes) >= self.fail_after:
            raise OSError(28, "No space left on device")
        self.sizes.append(len(data))
        return len(data)


def test_streams_in_bounded_chunks(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        for _ in range(12):
            f.write(os.urandom(1 << 20))
    node = Node("file", 0o644, content=Content(big, big.stat().st_size))
    sink = _ChunkSink()
    result = write_layer([("big", node)], sink, compression="none")
    assert sum(sink.sizes) == result.descriptor.size
    assert len(sink.sizes) > 10
    assert max(sink.sizes) <= 2 << 20


def test_sink_failure_propagates(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom(4 << 20))
    node = Node("file", 0o644, content=Content(big, big.stat().st_size))
    with pytest.raises(OSError, match="No space"):
        write_layer([("big", node)], _ChunkSink(fail_after=1), compression="gzip")


def test_file_changed_since_walk_is_an_error(tmp_path: Path) -> None:
    node = _file(tmp_path / "f", b"before")
    (tmp_path / "f").write_bytes(b"after, longer")
    with pytest.raises(BuildError, match=r"changed during the build \(for /f\)"):
        write_layer([("f", node)], io.BytesIO())


def test_duplicate_paths_and_bad_options_are_errors(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="twice"):
        write_layer([("d", Node("dir")), ("d", Node("dir"))], io.BytesIO())
    with pytest.raises(LayerError, match="unknown compression"):
        write_layer([], io.BytesIO(), compression="lz4")
    with pytest.raises(LayerError, match="timestamp"):
        write_layer([], io.BytesIO(), timestamp=-1)


def test_empty_layer_is_two_zero_blocks() -> None:
    out = io.BytesIO()
    result = write_layer([], out, compression="none")
    assert out.getvalue() == b"\0" * 1024
    assert result.entries == 0


def test_never_follows_a_symlink_content(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"secret")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "secret")
    node = Node("file", 0o644, content=Content(link, 6))
    with pytest.raises(BuildError, match="cannot read"):
        write_layer([("f", node)], io.BytesIO())


def test_a_hashing_sink_can_own_the_blob_digest(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    hashed, unhashed = io.BytesIO(), io.BytesIO()
    full = write_layer(entries.items(), hashed)
    bare = write_layer(entries.items(), unhashed, hash_output=False)
    assert unhashed.getvalue() == hashed.getvalue()
    assert bare.digest is None and bare.diff_id == full.diff_id
    assert bare.size == full.size == len(hashed.getvalue())
    with pytest.raises(ValueError, match="without hashing"):
        _ = bare.descriptor
    plain = write_layer(entries.items(), io.BytesIO(), compression="none", hash_output=False)
    assert plain.digest == plain.diff_id  # uncompressed: the digest is known anyway
