"""Digests: parsing, streaming hashes, verification."""

from __future__ import annotations

import hashlib
import io

import pytest

from clusterimage.errors import DigestMismatch, InvalidDigest
from clusterimage.oci.digest import Digest, Hasher, VerifyingReader, check, hash_stream

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_and_format() -> None:
    digest = Digest.parse(EMPTY)
    assert digest.algorithm == "sha256"
    assert str(digest) == EMPTY
    assert digest.short == "e3b0c44298fc"
    assert Digest.of(b"") == digest
    sha512 = Digest.of(b"x", "sha512")
    assert Digest.parse(str(sha512)) == sha512
    assert len(sha512.hex) == 128


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        "sha256:abc",
        EMPTY.upper(),
        EMPTY + "0",
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
        "sha256:" + "g" * 64,
        " " + EMPTY,
        EMPTY + "\n",
    ],
)
def test_parse_rejects(value: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(value)


def test_hasher_streams_and_copies() -> None:
    hasher = Hasher()
    hasher.update(b"hello ")
    clone = hasher.copy()
    hasher.update(b"world")
    assert hasher.size == 11
    assert hasher.digest() == Digest.of(b"hello world")
    assert clone.digest() == Digest.of(b"hello ")
    data = bytes(range(256)) * 10000
    assert hash_stream(io.BytesIO(data)).digest().hex == hashlib.sha256(data).hexdigest()
    with pytest.raises(InvalidDigest):
        Hasher("md5")


def test_check_digest_and_size() -> None:
    hasher = Hasher()
    hasher.update(b"abc")
    check(Digest.of(b"abc"), 3, hasher)
    check(Digest.of(b"abc"), None, hasher)
    with pytest.raises(DigestMismatch, match="hashes to"):
        check(Digest.of(b"abd"), 3, hasher)
    with pytest.raises(DigestMismatch, match="size is 3 bytes"):
        check(Digest.of(b"abc"), 4, hasher)


def test_verifying_reader() -> None:
    data = b"x" * 5000
    reader = VerifyingReader(io.BytesIO(data), Digest.of(data), len(data))
    assert b"".join(iter(lambda: reader.read(1000), b"")) == data
    bad = VerifyingReader(io.BytesIO(data), Digest.of(b"other"), len(data))
    with pytest.raises(DigestMismatch):
        while bad.read(1000):
            pass
    long = VerifyingReader(io.BytesIO(data), Digest.of(data), 10)
    with pytest.raises(DigestMismatch, match="more than"):
        long.read()
