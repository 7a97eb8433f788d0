"""An OCI image layout on disk: ``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``.

:class:`Layout` is what the local store and the ``oci:`` transport share: verified streaming
blob writes, manifests and configs read back as the exact bytes stored, and ``index.json``
entries changed under a lock with write-temp + fsync + rename.

Private working state lives in a hidden ``.clusterimage/`` folder at the top of the layout (OCI
tools ignore it; see the store's docstring): ``ingest/`` for blob writes in progress, the lock
files, and temporary copies of ``index.json`` before they are renamed into place.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from clusterimage.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidDigest,
    ManifestError,
    StoreError,
)
from clusterimage.oci import jsonsafe
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import REF_NAME_ANNOTATION, Descriptor
from clusterimage.oci.digest import Digest, hash_stream
from clusterimage.oci.manifest import ImageManifest, Manifest, parse_manifest
from clusterimage.store.blobs import BlobWriter, fsync_dir, ingest_name, special_kind
from clusterimage.store.locks import GcGuard, index_lock

STATE_DIR = ".clusterimage"
OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"

# Larger manifests and configs are refused rather than read into memory (distribution caps
# manifests at 4 MiB; configs with long histories stay far below 32 MiB).
MAX_MANIFEST_SIZE = 4 << 20
# index.json lists one ~250-byte entry per name: 64 MiB is some 250,000 of them.
MAX_INDEX_SIZE = 64 << 20
MAX_CONFIG_SIZE = 32 << 20

# What a folder may hold while another process is still creating a layout in it.
_INIT_ENTRIES = frozenset({STATE_DIR, BLOBS_DIR, INDEX_FILE})

IndexEntries = list[dict[str, Any]]


class Layout:
    """An OCI image layout at ``root``.

    With ``create`` a missing or empty folder becomes an empty layout; otherwise, and for any
    folder that holds something else, :class:`StoreError` says it is not an OCI image layout.
    """

    def __init__(self, root: Path, create: bool = True) -> None:
        self.root = Path(root)
        self.state_dir = self.root / STATE_DIR
        self.ingest_dir = self.state_dir / "ingest"
        self.blobs_dir = self.root / BLOBS_DIR
        self._guard = GcGuard(self.state_dir / "gc.lock")
        self._open(create)

    # -- layout files -----------------------------------------------------------------------

    def _open(self, create: bool) -> None:
        root = self.root
        if root.exists() and not root.is_dir():
            raise StoreError(f"not an OCI image layout: {root} is not a directory")
        if (root / OCI_LAYOUT_FILE).exists():
            self._check_layout_files()
            return
        if not create:
            if not root.exists():
                raise StoreError(f"not an OCI image layout: {root} does not exist")
            raise StoreError(f"not an OCI image layout: {root} (no oci-layout file)")
        if not is_blank(root):
            raise StoreError(f"not an OCI image layout: {root} (not empty, and no oci-layout file)")
        root.mkdir(parents=True, exist_ok=True)
        with index_lock(self._index_lock_path):
            if (root / OCI_LAYOUT_FILE).exists():  # another process finished first
                self._check_layout_files()
                return
            (root / BLOBS_DIR / "sha256").mkdir(parents=True, exist_ok=True)
            if not (root / INDEX_FILE).exists():
                self._write_index({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
            # oci-layout last: its presence says the layout is complete.
            self._write_atomic(
                root / OCI_LAYOUT_FILE,
                json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode(),
            )

    def _check_layout_files(self) -> None:
        problem = self.layout_problem()
        if problem is not None:
            raise StoreError(f"not an OCI image layout: {problem}")

    def layout_problem(self) -> str | None:
        """What is wrong with ``oci-layout`` or ``index.json``, or None."""
        path = self.root / OCI_LAYOUT_FILE
        try:
            data = jsonsafe.loads(read_index_bytes(path, MAX_MANIFEST_SIZE))
        except FileNotFoundError:
            return f"{path} is missing"
        except StoreError as exc:  # a FIFO or device in its place, or too large
            return str(exc)
        except (ValueError, UnicodeDecodeError):
            return f"{path} is not valid JSON"
        version = data.get("imageLayoutVersion") if isinstance(data, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            return f"{path}: unsupported imageLayoutVersion {version!r}"
        try:
            self.read_index()
        except StoreError as exc:
            return str(exc)
        return None

    # -- index.json -------------------------------------------------------------------------

    @property
    def _index_lock_path(self) -> Path:
        return self.state_dir / "index.lock"

    def read_index(self) -> dict[str, Any]:
        """``index.json`` as a dict (unknown fields kept). Readers need no lock: writers rename."""
        path = self.root / INDEX_FILE
        try:
            data = jsonsafe.loads(read_index_bytes(path))
        except FileNotFoundError:
            raise StoreError(f"{path} is missing") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
            raise StoreError(f"{path} has no 'manifests' list")
        if data.get("schemaVersion") != 2:
            raise StoreError(f"{path}: schemaVersion is {data.get('schemaVersion')!r}, not 2")
        for i, entry in enumerate(data["manifests"]):
            try:
                Descriptor.from_dict(entry, f"{path}: manifests[{i}]")
            except ManifestError as exc:
                raise StoreError(str(exc)) from None
        return data

    def entries(self) -> list[Descriptor]:
        """The descriptors listed in ``index.json``, in order."""
        data = self.read_index()
        return [Descriptor.from_dict(e) for e in data["manifests"]]

    def update_index(self, change: Callable[[IndexEntries], IndexEntries]) -> None:
        """Replace the entries of ``index.json`` by ``change(entries)``, under the index lock."""
        with index_lock(self._index_lock_path):
            data = self.read_index()
            new = change(list(data["manifests"]))
            if new == data["manifests"]:
                return
            data["manifests"] = new
            self._write_index(data)

    def set_ref(self, name: str | None, desc: Descriptor, *, keep_replaced: bool = False) -> None:
        """Point ref name ``name`` at ``desc`` (one entry per name; re-setting replaces).

        ``name=None`` lists the manifest without a name, once per digest; naming a digest later
        replaces its unnamed entry. With ``keep_replaced``, an image that loses its last name
        this way stays listed without a name (podman's dangling image) instead of leaving.
        """
        annotations = {
            k: v for k, v in (desc.annotations or {}).items() if k != REF_NAME_ANNOTATION
        }
        if name is not None:
            annotations[REF_NAME_ANNOTATION] = name
        entry = desc.with_annotations(annotations).to_dict()
        digest = str(desc.digest)

        def change(entries: IndexEntries) -> IndexEntries:
            out: IndexEntries = []
            replaced: IndexEntries = []
            placed = False
            for old in entries:
                old_name = entry_name(old)
                unnamed_same = old_name is None and old.get("digest") == digest
                if (name is not None and old_name == name) or unnamed_same:
                    if old.get("digest") != digest:
                        replaced.append(old)
                    if not placed:
                        out.append(entry)  # keep the position of what it replaces
                        placed = True
                    continue
                if name is None and old.get("digest") == digest:
                    return entries  # already listed under a name: nothing to add
                out.append(old)
            if not placed:
                out.append(entry)
            if keep_replaced:
                for old in replaced:
                    if not any(e.get("digest") == old.get("digest") for e in out):
                        out.append(without_name(old))
            return out

        with self.writing():
            if not self.has_blob(desc.digest):
                raise BlobNotFound(f"manifest {desc.digest} is not in {self.root}")
            self.update_index(change)

    def _write_index(self, data: dict[str, Any]) -> None:
        raw = json.dumps(data, separators=(",", ":")).encode()
        self._write_atomic(self.root / INDEX_FILE, raw)

    def _write_atomic(self, path: Path, raw: bytes) -> None:
        # The temporary copy lives in the state folder so no stray file ever shows in the layout.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / f"{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            with open(tmp, "wb") as out:
                out.write(raw)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)

    def stale_index_temps(self) -> list[Path]:
        """Temporary index copies a killed writer left (call with the index lock held)."""
        if not self.state_dir.is_dir():
            return []
        return sorted(self.state_dir.glob("*.tmp"))

    @contextmanager
    def locked_index(self) -> Iterator[None]:
        """Hold the index lock (used by gc while it removes stale temporary copies)."""
        with index_lock(self._index_lock_path):
            yield

    # -- blobs ------------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.blobs_dir / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: Digest) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in {self.root}") from None

    def open_blob(self, digest: Digest, offset: int = 0) -> IO[bytes]:
        """The blob as a binary file positioned at ``offset``; close it (or use ``with``).

        Anything but a regular file is refused (StoreError) without blocking: a plain open of a
        FIFO waits for a writer forever, and a device never ends. So: open with O_NONBLOCK,
        check with fstat (no window for a swap after the check), clear O_NONBLOCK to read.

        Decision on symlinks: followed, as skopeo (containers/image) does in oci: layouts (some
        tools deduplicate blobs that way), but a linked blob is hashed in full before any byte
        of it is served. Readers check digests too, only at the end: by then a copy would have
        streamed a file the link reaches outside the layout (a private key a crafted layout
        links to) to its destination. The store writes its own blobs as regular files, so there
        a symlink is damage, which fsck reports.
        """
        path = self.blob_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} is not in {self.root}") from None
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a socket, or a device without its driver
                raise self._not_regular(digest, _kind_of(path)) from None
            raise StoreError(f"blob {digest} in {self.root}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            kind = special_kind(info.st_mode)
            if kind is not None:
                raise self._not_regular(digest, kind)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            stream = open(fd, "rb")  # noqa: SIM115 - returned to the caller
        except BaseException:
            os.close(fd)
            raise
        try:
            if not _is_entry(path, info):
                self._check_linked(stream, digest)
            if offset:
                stream.seek(offset)
        except BaseException:
            stream.close()
            raise
        return stream

    def _check_linked(self, stream: IO[bytes], digest: Digest) -> None:
        # Hashed through the descriptor that is then served: a link swapped meanwhile is moot.
        actual = hash_stream(stream, digest.algorithm).digest()
        if actual != digest:
            raise StoreError(
                f"blob {digest} in {self.root} is linked to a file that does not hash to its "
                f"name ({actual}); not read"
            )
        stream.seek(0)

    def _not_regular(self, digest: Digest, kind: str) -> StoreError:
        return StoreError(f"blob {digest} in {self.root} is not a regular file ({kind})")

    def read_blob(self, digest: Digest, limit: int) -> bytes:
        """A small blob's bytes, checked against ``digest``; refuses blobs larger than ``limit``.

        Checked because a layout may come from elsewhere (``oci:DIR``): a manifest or config
        whose bytes differ from its name must not be parsed as if it were the named one. A
        ManifestError, so that listing and walking treat it as any unreadable document."""
        with self.open_blob(digest) as stream:
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise ManifestError(f"blob {digest} is larger than {limit} bytes")
        actual = Digest.of(data, digest.algorithm)
        if actual != digest:
            raise ManifestError(
                f"blob {digest} in {self.root} is corrupt: content hashes to {actual}"
            )
        return data

    def partial_size(self, digest: Digest) -> int:
        """Bytes of ``digest`` kept from an interrupted write (0: none)."""
        try:
            info = (self.ingest_dir / ingest_name(digest)).lstat()
        except FileNotFoundError:
            return 0
        # Only a file of our own counts (a symlink planted there is refused when written).
        return info.st_size if stat.S_ISREG(info.st_mode) else 0

    def blob_writer(
        self, expected: Digest | None = None, size: int | None = None, resume: bool = False
    ) -> BlobWriter:
        """A streaming writer; see :class:`~clusterimage.store.blobs.BlobWriter`."""
        hold = ExitStack()  # the gc guard, held until the writer commits or is abandoned
        hold.enter_context(self._guard.shared())
        try:
            return BlobWriter(
                self.ingest_dir, self.blob_path, expected, size, resume, on_close=hold.close
            )
        except BaseException:
            hold.close()
            raise

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        """Store a small document (manifest, config) and return its digest."""
        digest = Digest.of(data, expected.algorithm if expected else "sha256")
        if expected is not None and digest != expected:
            raise DigestMismatch(f"blob {expected}: content hashes to {digest}")
        if self.has_blob(digest):
            return digest
        with self.blob_writer(expected, len(data)) as writer:
            writer.write(data)
            return writer.commit()[0]

    def put_stream(
        self,
        stream: IO[bytes],
        expected: Digest | None = None,
        size: int | None = None,
        *,
        offset: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[Digest, int]:
        """Store what ``stream`` yields; with ``offset`` > 0 the stream starts at that byte of
        the blob and the partial ingest file supplies the bytes before it."""
        with self.blob_writer(expected, size, resume=offset > 0) as writer:
            have = writer.offset
            if have < offset:
                if expected is not None and self.has_blob(expected):
                    return expected, self.blob_size(expected)  # another writer finished it
                raise StoreError(
                    f"blob {expected}: the partial download shrank while resuming; try again"
                )
            if have > offset:
                _skip(stream, have - offset)
            writer.copy_from(stream, progress)
            return writer.commit()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while adding blobs that are not referenced yet, so that gc leaves them alone.

        Blob writers and ref changes hold it by themselves; an import holds it from its first
        blob to its tag.
        """
        with self._guard.shared():
            yield

    def exclusive(self, timeout: float) -> AbstractContextManager[None]:
        """Hold the layout alone (gc); :class:`StoreBusy` after ``timeout`` seconds."""
        return self._guard.exclusive(timeout)

    def iter_blobs(self) -> Iterator[tuple[Path, Digest | None]]:
        """Every entry under ``blobs/<alg>/``, with the digest its name is (None for a name that
        is not one, and for anything directly in ``blobs/``). The entry may be a directory,
        symlink or FIFO: callers that care look with ``lstat``."""
        if not self.blobs_dir.is_dir():
            return
        for algorithm_dir in sorted(self.blobs_dir.iterdir()):
            if not algorithm_dir.is_dir():
                yield algorithm_dir, None
                continue
            for path in sorted(algorithm_dir.iterdir()):
                try:
                    digest = Digest.parse(f"{algorithm_dir.name}:{path.name}")
                except InvalidDigest:
                    digest = None
                yield path, digest

    # -- documents --------------------------------------------------------------------------

    def get_manifest(self, digest: Digest, media_type: str | None = None) -> Manifest:
        raw = self.read_blob(digest, MAX_MANIFEST_SIZE)
        return parse_manifest(raw, media_type, where=f"manifest {digest}")

    def get_config(self, manifest: ImageManifest) -> ImageConfig:
        desc = manifest.config
        raw = self.read_blob(desc.digest, MAX_CONFIG_SIZE)
        return ImageConfig.parse(raw, desc.media_type, where=f"config {desc.digest}")

    def describe(self, manifest: Manifest) -> Descriptor:
        """The index entry for ``manifest``: its descriptor, with the platform of its config
        when it is an image whose config names one."""
        if isinstance(manifest, ImageManifest):
            try:
                platform = self.get_config(manifest).platform
            except (BlobNotFound, ManifestError):
                platform = None
            if platform is not None and platform.os and platform.architecture:
                return manifest.descriptor(platform=platform)
        return manifest.descriptor()


def is_blank(root: Path) -> bool:
    """Whether ``root`` holds no layout yet: missing, empty, or holding only what a layout that
    another process is creating has before its ``oci-layout`` file (a directory is assumed)."""
    if not root.exists():
        return True
    if (root / OCI_LAYOUT_FILE).exists():
        return False
    return {p.name for p in root.iterdir()} <= _INIT_ENTRIES


def entry_name(entry: dict[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    if isinstance(annotations, dict):
        name = annotations.get(REF_NAME_ANNOTATION)
        return name if isinstance(name, str) else None
    return None


def without_name(entry: dict[str, Any]) -> dict[str, Any]:
    """An index entry without its ref name (other annotations kept)."""
    out = dict(entry)
    annotations = {
        k: v for k, v in (out.pop("annotations", None) or {}).items() if k != REF_NAME_ANNOTATION
    }
    if annotations:
        out["annotations"] = annotations
    return out


def _is_entry(path: Path, opened: os.stat_result) -> bool:
    """Whether the file opened at ``path`` is the directory entry itself, not a link's target."""
    try:
        entry = os.lstat(path)
    except OSError:
        return False
    return (entry.st_dev, entry.st_ino) == (opened.st_dev, opened.st_ino)


def _kind_of(path: Path) -> str:
    try:
        return special_kind(path.stat().st_mode) or "unreadable"
    except OSError:
        return "unreadable"


def _skip(stream: IO[bytes], count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, 1 << 20))
        if not chunk:
            return
        count -= len(chunk)


def read_index_bytes(path: Path, limit: int = MAX_INDEX_SIZE) -> bytes:
    """The bytes of an ``index.json`` or ``oci-layout`` (a layout, a bundle folder), read as a
    regular file of at most ``limit`` bytes: a FIFO in its place would block the read forever
    and a device or a huge file would never end (StoreError). FileNotFoundError when missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise StoreError(f"{path}: {exc.strerror}") from None
    with open(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        kind = special_kind(info.st_mode)
        if kind is not None:  # a directory, FIFO, socket or device
            raise StoreError(f"{path} is {kind}, not a file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise StoreError(f"{path} is larger than {limit >> 20} MiB")
    return data
