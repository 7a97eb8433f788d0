"""fsck --repair and pull's check of stored blobs, when another process changed the store between
the check and the removal."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO

import pytest

from clusterimage.copy import CopyOptions, copy_image
from clusterimage.oci.digest import Digest, Hasher
from clusterimage.store import Store, StoreBusy, fsck
from clusterimage.store.blobs import VERIFIED_XATTR
from clusterimage.store.fsck import blob_damage, check, repair
from clusterimage.transports import Context, parse
from tests.fixtures.oci_layout import make_oci_layout


def _stored(tmp_path: Path) -> tuple[Store, Digest, Path]:
    image = make_oci_layout(
        tmp_path / "src", ref="v1", layers=({"a": b"layer one" * 100}, {"b": b"layer two"})
    )
    store = Store(tmp_path / "store")
    copy_image(
        parse(image.transport_ref),
        parse("store:localhost/app:v1"),
        Context(store_dir=store.root),
        CopyOptions(),
    )
    layer = Digest.parse(image.layers[0].digest)
    return store, layer, store.blob_path(layer)


def test_repair_keeps_a_blob_repaired_since_the_check(tmp_path: Path) -> None:
    """fsck reads the whole store before --repair removes anything: a pull that fetched a
    damaged blob again meanwhile must not see its sound copy deleted on the old verdict."""
    store, layer, path = _stored(tmp_path)
    good = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    report = check(store)
    assert [p.digest for p in report.problems if p.kind == "corrupt-blob"] == [layer]

    # Meanwhile a pull (another process) removes the damaged blob and writes it whole again.
    path.unlink()
    store.put_bytes(good, layer)

    done = repair(store, report)
    assert done.removed == []
    assert done.incomplete == []
    assert path.read_bytes() == good
    assert check(store).ok


def test_a_stamp_vouches_only_for_the_blob_it_was_made_for(tmp_path: Path) -> None:
    """The verification stamp lets a pull skip hashing a blob; a file copied over another blob
    with its attributes (cp -a, rsync -X, a restore that mixed names up) carries the stamp of
    the other blob: same size, same mtime. It must not pass as the blob its path names."""
    store = Store(tmp_path / "store")
    first = store.put_bytes(b"A" * 4096)
    second = store.put_bytes(b"B" * 4096)
    assert blob_damage(store, second) is None
    shutil.copy2(store.blob_path(first), store.blob_path(second))  # content, mtime, xattrs
    assert os.getxattr(store.blob_path(second), VERIFIED_XATTR)
    assert blob_damage(store, second, 4096) == (
        f"blob {second} is corrupt: content hashes to {first}"
    )


def test_a_write_while_a_blob_is_hashed_leaves_it_unstamped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stamp says "these bytes hashed right": a write that lands after the read but
    before the stamp is not covered by the hash, so the blob must stay unstamped (and the next
    check read it), not be stamped with the new mtime."""
    store = Store(tmp_path / "store")
    digest = store.put_bytes(b"C" * 4096)
    path = store.blob_path(digest)
    os.removexattr(path, VERIFIED_XATTR)
    real = fsck.hash_stream

    def hash_then_damage(stream: IO[bytes], algorithm: str) -> Hasher:
        hashed = real(stream, algorithm)
        with path.open("r+b") as out:  # in place: same size, a later mtime
            out.write(b"D")
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
        return hashed

    monkeypatch.setattr(fsck, "hash_stream", hash_then_damage)
    assert blob_damage(store, digest) is None  # right when read
    monkeypatch.setattr(fsck, "hash_stream", real)
    assert blob_damage(store, digest) == (
        f"blob {digest} is corrupt: content hashes to {Digest.of(b'D' + b'C' * 4095)}"
    )


def test_repair_waits_for_a_running_import(tmp_path: Path) -> None:
    """An import (pull, load, build) holds the store's writing guard from its first blob to its
    tag, and trusts the blobs it found there meanwhile; repair removes blobs, so, as gc, it must
    not run beside one: the image the import is about to name would lack a blob it counted on."""
    store, layer, path = _stored(tmp_path)
    path.chmod(0o644)
    path.write_bytes(b"x" + path.read_bytes()[1:])
    report = check(store)
    importer = Store(store.root)  # another process's view: its own lock descriptor
    with importer.writing(), pytest.raises(StoreBusy):
        repair(Store(store.root), report, timeout=0.3)
    assert path.exists()  # nothing removed while the import ran
    done = repair(Store(store.root), report, timeout=0.3)
    assert [d for d, _ in done.removed] == [layer]
    assert not path.exists()


def test_repair_reads_the_blob_even_when_its_stamp_still_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bit rot keeps size and mtime, so the stamp still matches; fsck drops it, but where it
    cannot (attributes refused), repair's own re-check must still read the bytes, not remove
    nothing on the stamp's word."""
    store, layer, path = _stored(tmp_path)
    before = path.stat()
    path.chmod(0o644)
    path.write_bytes(b"x" + path.read_bytes()[1:])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    monkeypatch.setattr(fsck, "forget_verified", lambda path: None)
    report = check(store)
    assert [p.digest for p in report.problems if p.kind == "corrupt-blob"] == [layer]
    done = repair(store, report, timeout=0.3)
    assert [d for d, _ in done.removed] == [layer]
    assert not path.exists()


def test_the_check_after_a_repair_hashes_no_sound_blob_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsck --repair checks again to say what is left; the first pass stamped every sound
    blob, so that second pass walks the index but hashes nothing (it hashed the whole store
    twice), and finds what a full check finds."""
    store, layer, path = _stored(tmp_path)
    good = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    assert [digest for digest, _ in repair(store, check(store)).removed] == [layer]
    hashed: list[int] = []
    real = fsck.hash_stream

    def counting(stream: IO[bytes], algorithm: str = "sha256") -> Hasher:
        hashed.append(1)
        return real(stream, algorithm)

    monkeypatch.setattr(fsck, "hash_stream", counting)
    after = store.fsck_report(trust_stamps=True)
    assert hashed == []
    assert after.to_dict() == store.fsck_report().to_dict()
    assert len(hashed) == after.blobs  # the full check does hash every one
    assert [p.kind for p in after.problems] == ["missing-blob"]
