"""Blob writes: verified before visible, resumable, safe with two writers of one blob."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterimage.errors import BlobNotFound, DigestMismatch, StoreError
from clusterimage.oci.digest import Digest
from clusterimage.store import Store
from clusterimage.store import blobs as blobs_module

DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def _visible(store: Store) -> list[str]:
    return sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir())


def _ingest(store: Store) -> list[str]:
    return sorted(p.name for p in store.ingest_dir.iterdir()) if store.ingest_dir.exists() else []


def test_write_commit_and_read_back(store: Store) -> None:
    digest = Digest.of(DATA)
    with store.blob_writer(digest, len(DATA)) as writer:
        for i in range(0, len(DATA), 100_000):
            writer.write(DATA[i : i + 100_000])
        assert not store.has_blob(digest)  # nothing visible before the commit
        assert writer.commit() == (digest, len(DATA))
    assert store.has_blob(digest)
    assert store.blob_size(digest) == len(DATA)
    assert store.blob_path(digest) == store.root / "blobs" / "sha256" / digest.hex
    with store.open_blob(digest, offset=1000) as stream:
        assert stream.read() == DATA[1000:]
    assert _ingest(store) == []
    assert oct(store.blob_path(digest).stat().st_mode & 0o777) == "0o644"


def test_unknown_digest_is_computed(store: Store) -> None:
    with store.blob_writer() as writer:
        writer.write(b"some bytes")
        digest, size = writer.commit()
    assert digest == Digest.of(b"some bytes")
    assert size == 10
    assert store.put_bytes(b"doc") == Digest.of(b"doc")
    assert store.put_bytes(b"doc", Digest.of(b"doc")) == Digest.of(b"doc")  # already there
    with pytest.raises(DigestMismatch):
        store.put_bytes(b"not the doc", Digest.of(b"doc"))  # checked even when present


def test_mismatch_leaves_nothing(store: Store) -> None:
    wrong = Digest.of(b"something else")
    with pytest.raises(DigestMismatch, match="hashes to"), store.blob_writer(wrong) as writer:
        writer.write(b"content")
        writer.commit()
    assert _visible(store) == []
    assert _ingest(store) == []


def test_size_mismatch_and_overflow(store: Store) -> None:
    digest = Digest.of(b"12345")
    with pytest.raises(DigestMismatch, match="size"), store.blob_writer(digest, 6) as writer:
        writer.write(b"12345")
        writer.commit()
    with pytest.raises(DigestMismatch, match="more than"), store.blob_writer(digest, 3) as writer:
        writer.write(b"12345")
    with pytest.raises(DigestMismatch), store.blob_writer(None, 3) as writer:
        writer.write(b"12")
        writer.commit()
    assert _visible(store) == []
    assert _ingest(store) == []


def test_abandoned_write(store: Store) -> None:
    digest = Digest.of(DATA)
    with store.blob_writer(digest, len(DATA)) as writer:
        writer.write(DATA[:300_000])
    # Known digest: the partial file stays for a resume, but no blob is visible.
    assert _visible(store) == []
    assert _ingest(store) == [f"sha256-{digest.hex}"]
    assert store.partial_size(digest) == 300_000
    with store.blob_writer() as writer:
        writer.write(b"anonymous")
    assert _ingest(store) == [f"sha256-{digest.hex}"]  # unknown digest: removed


def test_resume_rehashes_the_partial_file(store: Store) -> None:
    digest = Digest.of(DATA)
    with store.blob_writer(digest, len(DATA)) as writer:
        writer.write(DATA[:400_000])
    with store.blob_writer(digest, len(DATA), resume=True) as writer:
        assert writer.offset == 400_000
        writer.write(DATA[400_000:])
        assert writer.commit() == (digest, len(DATA))
    assert _ingest(store) == []
    # Without resume, a partial file is started over.
    with store.blob_writer(Digest.of(b"abc"), 3) as writer:
        writer.write(b"ab")
    with store.blob_writer(Digest.of(b"abc"), 3) as writer:
        assert writer.offset == 0
        writer.write(b"abc")
        writer.commit()


def test_resume_of_corrupt_partial_fails_then_restarts(store: Store) -> None:
    digest = Digest.of(DATA)
    (store.ingest_dir).mkdir(parents=True, exist_ok=True)
    (store.ingest_dir / f"sha256-{digest.hex}").write_bytes(b"garbage" * 10)
    with pytest.raises(DigestMismatch), store.blob_writer(digest, len(DATA), True) as writer:
        writer.write(DATA[writer.offset :])
        writer.commit()
    assert store.partial_size(digest) == 0  # the bad partial is gone: the retry starts at 0
    stream = io.BytesIO(DATA)
    assert store.put_stream(stream, digest, len(DATA)) == (digest, len(DATA))


def test_put_stream_resumes_from_offset(store: Store) -> None:
    digest = Digest.of(DATA)
    with store.blob_writer(digest, len(DATA)) as writer:
        writer.write(DATA[:500_000])
    seen: list[int] = []
    result = store.put_stream(
        io.BytesIO(DATA[500_000:]), digest, len(DATA), offset=500_000, progress=seen.append
    )
    assert result == (digest, len(DATA))
    assert sum(seen) == len(DATA) - 500_000
    # The partial holds more than the caller knew: the stream's first bytes are skipped.
    other = DATA[:1000]
    with store.blob_writer(Digest.of(other), 1000) as writer:
        writer.write(other[:600])
    assert store.put_stream(io.BytesIO(other[200:]), Digest.of(other), 1000, offset=200)[1] == 1000


def test_missing_blob_errors(store: Store) -> None:
    digest = Digest.of(b"absent")
    assert not store.has_blob(digest)
    with pytest.raises(BlobNotFound, match=digest.hex):
        store.open_blob(digest)
    with pytest.raises(BlobNotFound):
        store.blob_size(digest)
    assert store.partial_size(digest) == 0


def test_two_writers_of_one_blob_take_turns(store: Store) -> None:
    digest = Digest.of(DATA)
    first = store.blob_writer(digest, len(DATA))
    first.write(DATA[:100])
    results: list[tuple[Digest, int]] = []

    def second() -> None:
        # Blocks until the first writer is done, then writes the whole blob again.
        with store.blob_writer(digest, len(DATA)) as writer:
            writer.write(DATA)
            results.append(writer.commit())

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()
    first.write(DATA[100:])
    assert first.commit() == (digest, len(DATA))
    thread.join(10)
    assert results == [(digest, len(DATA))]
    assert store.blob_path(digest).read_bytes() == DATA
    assert _ingest(store) == []


def _in_time(call: Callable[[], object], seconds: float = 10.0) -> BaseException | None:
    """Run ``call`` in a thread; fail the test if it blocks (a FIFO opened the plain way would
    wait for a writer forever). Returns what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed back to the test
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    return raised[0] if raised else None


def _socket_at(path: Path) -> socket.socket:
    # AF_UNIX paths are limited to 108 bytes: bind by a relative name from the folder.
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
    return sock


@pytest.mark.parametrize("kind", ["FIFO", "directory", "socket", "character device"])
def test_open_blob_refuses_what_is_not_a_regular_file(store: Store, kind: str) -> None:
    digest = Digest.of(b"special")
    path = store.blob_path(digest)
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "socket":
        _socket_at(path)
    else:
        path.symlink_to("/dev/zero")  # followed, then refused: reading it would never end
    for read in (lambda: store.open_blob(digest), lambda: store.read_blob(digest, 100)):
        exc = _in_time(read)
        assert isinstance(exc, StoreError)
        assert str(exc) == f"blob {digest} in {store.root} is not a regular file (a {kind})"
    assert not store.has_blob(digest)


def test_open_blob_follows_a_symlink_to_a_regular_file(store: Store, tmp_path: Path) -> None:
    # As skopeo does in oci: layouts; the content is checked against the digest by readers.
    target = tmp_path / "elsewhere"
    target.write_bytes(b"linked content")
    digest = Digest.of(b"linked content")
    store.blob_path(digest).symlink_to(target)
    assert store.read_blob(digest, 100) == b"linked content"
    with store.open_blob(digest, offset=7) as stream:
        assert stream.read() == b"content"
        assert os.get_blocking(stream.fileno())  # O_NONBLOCK cleared for reads


def test_a_write_replaces_a_fifo_at_the_blob_path(store: Store) -> None:
    digest = Digest.of(b"real blob")
    os.mkfifo(store.blob_path(digest))
    assert store.put_bytes(b"real blob") == digest
    assert store.blob_path(digest).is_file()
    assert store.read_blob(digest, 100) == b"real blob"


def test_the_first_blob_of_an_algorithm_makes_its_new_folder_durable(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real = blobs_module.fsync_dir
    monkeypatch.setattr(blobs_module, "fsync_dir", lambda p: (synced.append(p), real(p)))
    data = b"a sha512 blob"
    digest = Digest.of(data, "sha512")
    assert not (store.root / "blobs" / "sha512").exists()
    assert store.put_bytes(data, digest) == digest
    # The blob's entry in blobs/sha512, and blobs/sha512's own entry in blobs/.
    assert synced == [store.root / "blobs", store.root / "blobs" / "sha512"]
    synced.clear()
    store.put_bytes(b"another", Digest.of(b"another", "sha512"))
    assert synced == [store.root / "blobs" / "sha512"]  # the folder exists now
