"""Content digests: parsing, hashing while streaming, verification.

A digest is always computed over the bytes as stored or sent, never over a re-serialisation.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from typing import IO, Any, Final

from clusterimage.errors import DigestMismatch, InvalidDigest

_ALGORITHMS: Final = {"sha256": 64, "sha512": 128}
# OCI image-spec descriptor.md grammar.
_DIGEST_RE: Final = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_RE: Final = re.compile(r"^[a-f0-9]+$")

CHUNK_SIZE: Final = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """``algorithm:hex``, e.g. ``sha256:e3b0c4...``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        if not isinstance(value, str) or not _DIGEST_RE.match(value):
            raise InvalidDigest(f"invalid digest {value!r}")
        algorithm, _, encoded = value.partition(":")
        length = _ALGORITHMS.get(algorithm)
        if length is None:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r} in {value!r}")
        if len(encoded) != length or not _HEX_RE.match(encoded):
            raise InvalidDigest(f"invalid {algorithm} digest {value!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of some bytes held in memory (manifests, configs: small by nature)."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The 12 hex characters shown as an image ID."""
        return self.hex[:12]

    def hasher(self) -> Hasher:
        return Hasher(self.algorithm)


class Hasher:
    """Counts and hashes bytes as they stream past."""

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in _ALGORITHMS:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())

    def copy(self) -> Hasher:
        clone = Hasher(self.algorithm)
        clone._hash = self._hash.copy()
        clone.size = self.size
        return clone


class ReadThrough(io.RawIOBase):
    """Any binary stream as a RawIOBase, its bytes hashed into ``hasher`` on the way when
    given: a decompressor reads it and the digest of what it read comes from the same pass,
    and io.BufferedReader can wrap it to peek at the head of a stream that cannot seek."""

    def __init__(self, raw: IO[bytes], hasher: Hasher | None = None) -> None:
        super().__init__()
        self._raw = raw
        self.hasher = hasher

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if isinstance(self._raw, io.BufferedIOBase | io.FileIO):  # a file: read with no copy
            count = self._raw.readinto(view) or 0
        else:  # any stream (RawIOBase subclasses may leave readinto unimplemented)
            data = self._raw.read(len(view))
            count = len(data)
            view[:count] = data
        if count and self.hasher is not None:
            self.hasher.update(view[:count])
        return count

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read (and hash) what the reader above left: trailing blocks, padding."""
        while self.read(chunk):
            pass


def check(expected: Digest, expected_size: int | None, hasher: Hasher, what: str = "blob") -> None:
    """Raise :class:`DigestMismatch` unless the hashed content is the announced one."""
    actual = hasher.digest()
    if actual != expected:
        raise DigestMismatch(f"{what} {expected}: content hashes to {actual}")
    if expected_size is not None and expected_size >= 0 and hasher.size != expected_size:
        raise DigestMismatch(
            f"{what} {expected}: size is {hasher.size} bytes, descriptor says {expected_size}"
        )


def hash_stream(stream: IO[bytes], algorithm: str = "sha256") -> Hasher:
    """Hash a stream to its end, one chunk at a time."""
    hasher = Hasher(algorithm)
    while chunk := stream.read(CHUNK_SIZE):
        hasher.update(chunk)
    return hasher


class VerifyingReader:
    """A read-only stream that hashes what passes and checks digest and size at EOF.

    Wrap a source stream with it when the destination cannot verify by itself.
    """

    def __init__(
        self, stream: IO[bytes], digest: Digest, size: int | None, hasher: Hasher | None = None
    ) -> None:
        self._stream = stream
        self._digest = digest
        self._size = size
        self._hasher = hasher or digest.hasher()
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            self._hasher.update(data)
            if self._size is not None and self._hasher.size > self._size:
                raise DigestMismatch(
                    f"blob {self._digest}: more than the {self._size} bytes announced"
                )
        elif not self._checked:
            self._checked = True
            check(self._digest, self._size, self._hasher)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stream.close()
