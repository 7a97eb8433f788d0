"""The blob info cache: mount candidates and recompression results, and its tolerance of
damaged files and rows (it is a hint, never a reason to fail)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from clusterimage.blobinfo import MAX_AGE, BlobInfoCache
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest

SOURCE = Digest.of(b"gzip layer")
RESULT = Descriptor(mt.OCI_LAYER_ZSTD, Digest.of(b"zstd layer"), 10)


def test_recompression_results_round_trip_per_target_format(tmp_path: Path) -> None:
    cache = BlobInfoCache(tmp_path / "cache.db")
    assert cache.recompressed(SOURCE, "zstd") is None
    cache.record_recompressed(SOURCE, "zstd", RESULT)
    gzip_result = Descriptor(mt.OCI_LAYER_GZIP, Digest.of(b"gzip again"), 12)
    cache.record_recompressed(SOURCE, "gzip", gzip_result)
    cache.close()
    # Another process (a new connection) sees both; a later result replaces an earlier one.
    again = BlobInfoCache(tmp_path / "cache.db")
    assert again.recompressed(SOURCE, "zstd") == RESULT
    assert again.recompressed(SOURCE, "gzip") == gzip_result
    newer = Descriptor(mt.OCI_LAYER_ZSTD, Digest.of(b"newer"), 5)
    again.record_recompressed(SOURCE, "zstd", newer)
    assert again.recompressed(SOURCE, "zstd") == newer
    # Locations live beside it, unchanged.
    again.record(SOURCE, "reg", "a/b")
    assert again.repositories(SOURCE, "reg") == ["a/b"]
    from_context = BlobInfoCache(tmp_path / "cache.db")
    assert from_context.recompressed(SOURCE, "zstd") == newer


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("digest", "sha256:short"),
        ("digest", "md5:" + "0" * 32),
        ("size", 0),
        ("size", -3),
        ("size", "ten"),
        ("media_type", mt.OCI_LAYER_GZIP),  # not zstd: not what was asked for
        ("media_type", None),
    ],
)
def test_rows_that_make_no_sense_are_not_used(tmp_path: Path, column: str, value: object) -> None:
    path = tmp_path / "cache.db"
    cache = BlobInfoCache(path)
    cache.record_recompressed(SOURCE, "zstd", RESULT)
    cache.close()
    with sqlite3.connect(path) as db:
        # NOT NULL columns: recreate the table without constraints to store a NULL.
        if value is None:
            db.execute("ALTER TABLE recompressed RENAME TO old")
            db.execute("CREATE TABLE recompressed AS SELECT * FROM old")
            db.execute("DROP TABLE old")
        db.execute(f"UPDATE recompressed SET {column} = ?", (value,))
    assert BlobInfoCache(path).recompressed(SOURCE, "zstd") is None


def test_a_damaged_or_missing_cache_answers_nothing_and_never_fails(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite" * 500)
    unwritable = tmp_path / "file" / "cache.db"
    (tmp_path / "file").write_text("a file where a directory should be")
    for cache in (BlobInfoCache(garbage), BlobInfoCache(unwritable), BlobInfoCache(None)):
        cache.record_recompressed(SOURCE, "zstd", RESULT)
        assert cache.recompressed(SOURCE, "zstd") is None
        cache.close()


def test_writes_wait_for_a_read_or_close_and_go_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    cache = BlobInfoCache(path)
    digests = [Digest.of(str(n).encode()) for n in range(50)]
    for digest in digests:
        cache.record(digest, "reg", "a/b")
    # Nothing written yet: another process sees nothing...
    assert BlobInfoCache(path).repositories(digests[0], "reg") == []
    # ...this one reads its own records (a read writes what waits first)...
    assert cache.repositories(digests[-1], "reg") == ["a/b"]
    cache.record_recompressed(SOURCE, "zstd", RESULT)
    cache.close()
    # ...and close writes the rest.
    again = BlobInfoCache(path)
    assert again.recompressed(SOURCE, "zstd") == RESULT
    assert all(again.repositories(d, "reg") == ["a/b"] for d in digests)


def test_rows_not_seen_for_max_age_are_dropped_by_the_next_process_that_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.db"
    cache = BlobInfoCache(path)
    old, recent = Digest.of(b"old"), Digest.of(b"recent")
    for digest in (old, recent):
        cache.record(digest, "reg", "a/b")
        cache.record_recompressed(digest, "zstd", RESULT)
    cache.close()
    stale = time.time() - MAX_AGE - 60
    with sqlite3.connect(path) as db:
        for table, column in (("locations", "digest"), ("recompressed", "source")):
            db.execute(f"UPDATE {table} SET seen = ? WHERE {column} = ?", (stale, str(old)))
    again = BlobInfoCache(path)
    again.record(Digest.of(b"new"), "reg", "c/d")
    assert again.repositories(old, "reg") == [] and again.recompressed(old, "zstd") is None
    assert again.repositories(recent, "reg") == ["a/b"]
    assert again.recompressed(recent, "zstd") == RESULT
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM locations").fetchone() == (2,)
        assert db.execute("SELECT COUNT(*) FROM recompressed").fetchone() == (1,)
