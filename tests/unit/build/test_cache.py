"""The build cache: keys, the stat cache, entries and their validation."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from clusterimage.build.cache import (
    BuildCache,
    CachedLayer,
    StatCache,
    chain_id,
    entries_digest,
    layer_key,
    link_groups,
)
from clusterimage.build.fstree import Content, Node, stat_key
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest

A = Digest("sha256", "a" * 64)
B = Digest("sha256", "b" * 64)


def test_chain_id_is_the_oci_chain_id() -> None:
    assert chain_id([]) == ""
    assert chain_id([A]) == str(A)
    expected = "sha256:" + hashlib.sha256(f"{A} {B}".encode()).hexdigest()
    assert chain_id([A, B]) == expected


def _key(**overrides: object) -> str:
    values: dict[str, object] = {
        "parent_chain": "",
        "instruction": "COPY . /",
        "entries": "sha256:" + "0" * 64,
        "links": "sha256:" + "1" * 64,
        "compression": "gzip",
        "timestamp": 0,
    }
    values.update(overrides)
    return layer_key(**values)  # type: ignore[arg-type]


def test_key_depends_on_every_input() -> None:
    base = _key()
    assert _key() == base
    for field, value in (
        ("parent_chain", str(A)),
        ("instruction", "COPY . /app"),
        ("entries", "sha256:" + "2" * 64),
        ("links", "sha256:" + "3" * 64),
        ("compression", "zstd"),
        ("timestamp", 1),
        ("unpack", 1),  # ADD unpacking archives: never the key of the same COPY
    ):
        assert _key(**{field: value}) != base, field
    assert _key(unpack=1) != _key(unpack=2)  # the unpack rules' version


def _file(digest: str, mode: int = 0o644, size: int = 3) -> Node:
    return Node("file", mode, content=Content(Path("/nonexistent"), size, digest=digest))


def test_entries_digest_sees_content_mode_owner_and_links() -> None:
    base = {"d": Node("dir", 0o755), "d/f": _file("sha256:" + "c" * 64)}
    reference = entries_digest(base)
    assert entries_digest(dict(reversed(list(base.items())))) == reference
    assert entries_digest({**base, "d/f": _file("sha256:" + "d" * 64)}) != reference
    assert entries_digest({**base, "d/f": _file("sha256:" + "c" * 64, mode=0o755)}) != reference
    assert entries_digest({**base, "d": Node("dir", 0o755, uid=1)}) != reference
    assert entries_digest({**base, "d/l": Node("symlink", linkname="f")}) != reference
    shared = Content(Path("/x"), 3, digest="sha256:" + "c" * 64)
    linked = {"a": Node("file", content=shared), "b": Node("file", content=shared)}
    separate = {"a": _file("sha256:" + "c" * 64), "b": _file("sha256:" + "c" * 64)}
    assert entries_digest(linked) == entries_digest(separate)
    assert link_groups(linked) != link_groups(separate)


def _content(path: Path) -> Content:
    st = path.stat()
    return Content(path, st.st_size, stat_key=stat_key(st))


def test_stat_cache_answers_only_for_unchanged_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"abc")
    store = tmp_path / "files.json"
    first = StatCache(store)
    content = _content(data)
    assert not first.fill(content)
    content.digest = "sha256:" + hashlib.sha256(b"abc").hexdigest()
    first.remember(content)
    first.save()
    again = _content(data)
    assert StatCache(store).fill(again)
    assert again.digest == content.digest
    os.utime(data, ns=(1, 1))  # same bytes, new mtime: the cache must not answer
    assert not StatCache(store).fill(_content(data))
    origin_only = Content(None, 3, origin="sha256:" + "e" * 64 + "!etc/passwd")
    assert StatCache(store).fill(origin_only)


def test_stat_cache_rereads_a_file_rewritten_with_its_size_and_mtime_kept(tmp_path: Path) -> None:
    # What tar, cp -p or rsync -t do to a file of the same size: the bytes change, the mtime is
    # set back. Only ctime (which nothing can set back) tells.
    data = tmp_path / "version"
    data.write_bytes(b"1.2.3")
    store = tmp_path / "files.json"
    cache = StatCache(store)
    content = _content(data)
    content.digest = "sha256:" + hashlib.sha256(b"1.2.3").hexdigest()
    cache.remember(content)
    cache.save()
    before = data.stat()
    time.sleep(0.01)  # a ctime tick apart, on coarse-clock filesystems too
    data.write_bytes(b"1.2.4")
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = data.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert not StatCache(store).fill(_content(data))


def test_stat_cache_records_of_an_older_format_never_match(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"abc")
    st = data.stat()
    store = tmp_path / "files.json"
    old = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, "sha256:" + "0" * 64]
    store.write_text(json.dumps({"files": {str(data): old}}))
    assert not StatCache(store).fill(_content(data))


def test_stat_cache_survives_garbage(tmp_path: Path) -> None:
    store = tmp_path / "files.json"
    store.write_text("{not json")
    data = tmp_path / "data"
    data.write_bytes(b"x")
    assert not StatCache(store).fill(_content(data))


def test_layer_entries_round_trip_and_need_the_blob(tmp_path: Path) -> None:
    cache = BuildCache(tmp_path / "cache")
    layer = CachedLayer(Descriptor(mt.OCI_LAYER_GZIP, A, 10), B)
    key = _key()
    assert cache.lookup(key, lambda d: True) is None
    cache.record(key, layer, "COPY . /")
    assert cache.lookup(key, lambda d: True) == layer
    assert cache.lookup(key, lambda d: False) is None  # blob gone from the store: a miss
    assert BuildCache(tmp_path / "cache", enabled=False).lookup(key, lambda d: True) is None
    hex_part = key.partition(":")[2]
    entry = tmp_path / "cache" / "layers" / hex_part[:2] / f"{hex_part}.json"
    assert entry.is_file()
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".tmp")]
    entry.write_text('{"layer": {"digest": "nope"}}')
    assert cache.lookup(key, lambda d: True) is None
