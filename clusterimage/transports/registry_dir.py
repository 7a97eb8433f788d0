"""The ``registry-dir`` transport: ``registry-dir:DIR[:NAME[:TAG|@DIGEST]]``, the filesystem
storage of the distribution registry (what a cluster image carries in ``registry/``, and what
``docker-registry`` serves from its ``rootdirectory``).

DIR holds ``docker/registry/v2`` and ends at the first colon. NAME is a repository path exactly
as the registry serves it, checked against distribution's grammar (lowercase path components
such as ``library/nginx``; no ``..``, no leading ``/``, no port). Nothing is stripped from it:
``registry-dir:DIR:docker.io/library/nginx:1`` is the repository ``docker.io/library/nginx``,
which a registry serving DIR answers as ``HOST/docker.io/library/nginx:1``; to be pulled as
``HOST/library/nginx:1`` write ``registry-dir:DIR:library/nginx:1``. Reading without TAG or
DIGEST reads the tag ``latest``. The files, as distribution's storage driver lays them out::

    blobs/sha256/<2 hex>/<hex>/data                                      every blob and manifest
    repositories/<name>/_layers/sha256/<hex>/link                        "sha256:<hex>"
    repositories/<name>/_manifests/revisions/sha256/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link

Stock distribution serves a manifest when its revision link and its blob exist (a tag through
``current/link``, then the revision), and a blob of a repository only when that repository
links it under ``_layers``: configs are linked there too, and an index and each manifest it
keeps get a revision. Without TAG (and without DIGEST) the top manifest is stored by digest
only: a revision that no tag names.

Writing: a blob or manifest goes to a temporary file in ``_uploads`` (hashed as it is written,
fsynced) and is renamed into place only once its digest and size are right; every link is
written to a temporary file beside it, fsynced and renamed, so a reader or a second writer never
sees half of one. Two processes writing into one DIR at once stay consistent: every visible file
is whole, and both writers of a blob end with the same bytes. A blob already in DIR (another
repository's) counts as present once this repository links it: :meth:`has_blob` writes the link.

Reading: tags and digests resolve through the links, and every manifest and blob read is
checked against its digest (manifests here, blobs by whoever receives them, as every destination
verifies what it stores). Paths are built only from names checked against distribution's
grammar and from digests, folders are created one at a time refusing symbolic links, and no
file below DIR is opened through a symbolic link or unless it is a regular file: nothing is read
or written outside DIR.

:func:`walk` lists every repository, tag and digest-only manifest of a DIR (``list_images``
gives them as references; the runtime syncs whole folders with it).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from clusterimage.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    InvalidDigest,
    ManifestError,
    TransportError,
)
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest, Hasher, check
from clusterimage.oci.manifest import ImageIndex, Manifest, parse_manifest
from clusterimage.oci.reference import Reference
from clusterimage.transports import register
from clusterimage.transports.base import (
    BlobKind,
    Context,
    ImageDestination,
    ImageReference,
    ImageSource,
    ProgressFn,
)

# distribution's reference grammar (reference/regexp.go): path components, and tags. ASCII
# only, matched whole (``$`` would let a trailing newline through).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_NAME_MAX = 255
_CHUNK = 1 << 20
_MANIFEST_LIMIT = 4 << 20
_LINK_LIMIT = 256
V2 = Path("docker", "registry", "v2")


def valid_repository(name: str) -> bool:
    """Whether ``name`` is a repository path distribution accepts (``library/nginx``)."""
    return len(name) <= _NAME_MAX and _NAME_RE.fullmatch(name) is not None


def valid_tag(tag: str) -> bool:
    return _TAG_RE.fullmatch(tag) is not None


@dataclass(frozen=True)
class RegistryDirEntry:
    """One image of a registry folder: a tag, or a manifest that no tag or index names."""

    repository: str
    tag: str | None
    digest: Digest
    media_type: str


class RegistryDirReference(ImageReference):
    transport = "registry-dir"

    def __init__(
        self,
        root: Path,
        repository: str | None = None,
        tag: str | None = None,
        digest: Digest | None = None,
    ) -> None:
        if repository is not None and not valid_repository(repository):
            raise TransportError(
                f"registry-dir:{root}: {repository!r} is not a repository name "
                "(lowercase path components, no host port, no '..')"
            )
        if tag is not None and not valid_tag(tag):
            raise TransportError(f"registry-dir:{root}:{repository}: invalid tag {tag!r}")
        self.root = root
        self.repository = repository
        self.tag = tag
        self.digest = digest

    @classmethod
    def parse(cls, value: str) -> RegistryDirReference:
        directory, _, rest = value.partition(":")
        if not directory:
            raise TransportError(
                f"invalid reference registry-dir:{value}: expected "
                "registry-dir:DIR[:NAME[:TAG|@DIGEST]]"
            )
        if not rest:
            return cls(Path(directory))
        name, tag, digest = rest, None, None
        if "@" in rest:
            name, _, raw = rest.partition("@")
            try:
                digest = Digest.parse(raw)
            except InvalidDigest as exc:
                raise TransportError(f"invalid reference registry-dir:{value}: {exc}") from None
        elif ":" in rest:
            name, _, tag = rest.rpartition(":")
        if not valid_repository(name):
            raise TransportError(
                f"invalid reference registry-dir:{value}: {name!r} is not a repository name "
                "(lowercase path components as the registry serves them, no host port, no '..')"
            )
        if tag is not None and not valid_tag(tag):
            raise TransportError(f"invalid reference registry-dir:{value}: invalid tag {tag!r}")
        return cls(Path(directory), name, tag, digest)

    def _storage(self, create: bool = False) -> _Storage:
        return _Storage(self.root, create=create)

    def new_source(self, ctx: Context) -> RegistryDirSource:
        if self.repository is None:
            raise TransportError(f"{self}: name the image (registry-dir:DIR:NAME:TAG)")
        storage = self._storage()
        identifier: str | Digest = self.digest or self.tag or "latest"
        return RegistryDirSource(
            storage, self.repository, storage.resolve(self.repository, identifier)
        )

    def new_destination(self, ctx: Context) -> RegistryDirDestination:
        if self.repository is None:
            raise TransportError(f"{self}: name the image to write (registry-dir:DIR:NAME[:TAG])")
        return RegistryDirDestination(
            self._storage(create=True), self.repository, self.tag, self.digest
        )

    def docker_reference(self) -> Reference | None:
        return None  # a repository path without its registry host

    def list_images(self, ctx: Context) -> list[ImageReference]:
        if self.repository is not None:
            return [self]
        return [
            RegistryDirReference(self.root, e.repository, e.tag, None if e.tag else e.digest)
            for e in walk(self.root)
        ]

    def __str__(self) -> str:
        text = f"registry-dir:{self.root}"
        if self.repository is not None:
            text += f":{self.repository}"
            if self.digest is not None:
                text += f"@{self.digest}"
            elif self.tag is not None:
                text += f":{self.tag}"
        return text


class _Storage:
    """Paths and files of one registry folder, confined to it."""

    def __init__(self, root: Path, *, create: bool) -> None:
        self.root = root
        self.base = root / V2
        if create:
            root.mkdir(parents=True, exist_ok=True)
            self.mkdirs(self.base)
        elif not self.base.is_dir():
            raise TransportError(f"{root}: no docker/registry/v2 folder: not a registry folder")
        self._real = os.path.realpath(root)
        self.confined(self.base)

    # -- paths ---------------------------------------------------------------------------

    def blob(self, digest: Digest) -> Path:
        return self.base / "blobs" / digest.algorithm / digest.hex[:2] / digest.hex / "data"

    def repo(self, name: str) -> Path:
        if not valid_repository(name):  # every path below is built from a checked name
            raise TransportError(f"{self.root}: {name!r} is not a repository name")
        return self.base / "repositories" / name

    def layer_link(self, name: str, digest: Digest) -> Path:
        return self.repo(name) / "_layers" / digest.algorithm / digest.hex / "link"

    def revision_link(self, name: str, digest: Digest) -> Path:
        return self.repo(name) / "_manifests" / "revisions" / digest.algorithm / digest.hex / "link"

    def tag_dir(self, name: str, tag: str) -> Path:
        if not valid_tag(tag):
            raise TransportError(f"{self.root}: {tag!r} is not a tag")
        return self.repo(name) / "_manifests" / "tags" / tag

    def mkdirs(self, path: Path) -> Path:
        """Create ``path`` (below the root) one folder at a time, refusing any part that is a
        symbolic link or not a folder: nothing is created through a link that leads out."""
        current = self.root
        for part in path.relative_to(self.root).parts:
            current = current / part
            st = _made(current)
            if stat.S_ISLNK(st.st_mode):
                raise TransportError(f"{current}: a symbolic link inside {self.root}")
            if not stat.S_ISDIR(st.st_mode):
                raise TransportError(f"{current}: not a folder")
        return path

    def confined(self, path: Path) -> Path:
        """``path`` if no part of it below the root is a symbolic link; else an error."""
        real = os.path.realpath(path)
        if real != self._real and not real.startswith(self._real + os.sep):
            raise TransportError(f"{path}: leads outside {self.root} (a symbolic link)")
        rel = Path(real).relative_to(self._real) if real != self._real else Path()
        if rel != Path(os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))):
            raise TransportError(f"{path}: a symbolic link inside {self.root}")
        return path

    # -- reading -------------------------------------------------------------------------

    def read_link(self, path: Path) -> Digest | None:
        """The digest a link file holds; None when there is no link; an error for garbage."""
        try:
            with _open_regular(self.confined(path)) as stream:
                raw = stream.read(_LINK_LIMIT + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if len(raw) > _LINK_LIMIT:
            raise ManifestError(f"{path}: not a digest link (over {_LINK_LIMIT} bytes)")
        try:
            return Digest.parse(raw.decode("ascii").strip())
        except (UnicodeDecodeError, InvalidDigest):
            raise ManifestError(f"{path}: not a digest link ({raw[:40]!r})") from None

    def linked(self, path: Path, digest: Digest) -> bool:
        """Whether the link file ``path`` exists; an error when it names another digest than
        the one its folder is named for."""
        found = self.read_link(path)
        if found is not None and found != digest:
            raise ManifestError(f"{path}: links {found}, not {digest} as its folder says")
        return found is not None

    def tags(self, name: str) -> list[str]:
        folder = self.repo(name) / "_manifests" / "tags"
        try:
            return sorted(p.name for p in self.confined(folder).iterdir() if valid_tag(p.name))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def resolve(self, name: str, identifier: str | Digest) -> Digest:
        if isinstance(identifier, Digest):
            if not self.linked(self.revision_link(name, identifier), identifier):
                raise ImageNotFound(f"registry-dir:{self.root}:{name}@{identifier}: not found")
            return identifier
        digest = self.read_link(self.tag_dir(name, identifier) / "current" / "link")
        if digest is None:
            known = ", ".join(self.tags(name)) or "none"
            raise ImageNotFound(
                f"registry-dir:{self.root}:{name}:{identifier}: no such tag (tags: {known})"
            )
        return digest

    def read_manifest(self, name: str, digest: Digest) -> Manifest:
        where = f"registry-dir:{self.root}:{name}@{digest}"
        if not self.linked(self.revision_link(name, digest), digest):
            raise ImageNotFound(f"{where}: no such manifest revision")
        path = self.blob(digest)
        try:
            with _open_regular(self.confined(path)) as stream:
                raw = stream.read(_MANIFEST_LIMIT + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(f"{where}: the link names a blob that is missing ({path})") from None
        if len(raw) > _MANIFEST_LIMIT:
            raise ManifestError(f"{where}: larger than {_MANIFEST_LIMIT} bytes")
        if Digest.of(raw, digest.algorithm) != digest:
            raise DigestMismatch(f"{where}: the stored manifest does not match its digest")
        return parse_manifest(raw, where=where)

    def open_blob(self, name: str, desc: Descriptor, offset: int) -> IO[bytes]:
        where = f"registry-dir:{self.root}:{name}"
        if not self.linked(self.layer_link(name, desc.digest), desc.digest):
            raise BlobNotFound(f"{where}: blob {desc.digest} is not linked in the repository")
        path = self.blob(desc.digest)
        try:
            stream = _open_regular(self.confined(path))
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(
                f"{where}: blob {desc.digest} is linked but missing ({path})"
            ) from None
        stream.seek(offset)
        return stream

    # -- writing -------------------------------------------------------------------------

    def write_link(self, path: Path, digest: Digest) -> None:
        """Write a link file through a temporary file beside it, renamed over it."""
        data = str(digest).encode()
        self.mkdirs(path.parent)
        fd, temp = tempfile.mkstemp(prefix=".link-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def has_blob(self, desc: Descriptor) -> bool:
        """Whether the folder holds the blob's data with its size (any repository's)."""
        try:
            st = os.lstat(self.confined(self.blob(desc.digest)))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return stat.S_ISREG(st.st_mode) and (desc.size < 0 or st.st_size == desc.size)

    def put_blob(self, desc: Descriptor, stream: IO[bytes], progress: ProgressFn | None) -> None:
        def chunks() -> Iterator[bytes]:
            while data := stream.read(_CHUNK):
                yield data
                if progress is not None:
                    progress(len(data))

        self._store(desc.digest, desc.size, chunks(), "blob")

    def put_manifest(self, manifest: Manifest) -> None:
        desc = Descriptor(manifest.media_type, manifest.digest, len(manifest.raw))
        if not self.has_blob(desc):
            self._store(desc.digest, desc.size, [manifest.raw], "manifest")

    def _store(self, digest: Digest, size: int, chunks: Iterable[bytes], what: str) -> None:
        """Write ``chunks`` to a temporary file in ``_uploads``, hashing them; rename it into
        place once the digest and size are right. A second writer of the same blob renames
        the same bytes over it: either file is whole."""
        fd, temp = self._upload_file(f"{what}-")
        try:
            hasher = Hasher(digest.algorithm)
            with os.fdopen(fd, "wb") as out:
                for data in chunks:
                    hasher.update(data)
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            check(digest, size, hasher, what)
            self._place(Path(temp), digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _upload_file(self, prefix: str) -> tuple[int, str]:
        for _ in range(5):
            uploads = self.mkdirs(self.base / "_uploads")
            try:
                return tempfile.mkstemp(prefix=prefix, dir=uploads)
            except FileNotFoundError:  # emptied and removed by another writer meanwhile
                continue
        raise TransportError(f"{self.base / '_uploads'}: removed as fast as it is made")

    def link_blob_from(self, source: _Storage, desc: Descriptor) -> bool:
        """Hard-link a blob of another registry folder (same file system) into this one: no
        byte written, but every byte hashed before it is visible here. False when the file
        systems differ (then the blob is copied)."""
        if not source.has_blob(desc):
            return False
        try:
            fd, temp = self._upload_file("link-")
        except OSError:
            return False
        os.close(fd)
        os.unlink(temp)  # a unique name that os.link may now take
        try:
            os.link(source.blob(desc.digest), temp, follow_symlinks=False)
        except OSError:
            return False
        try:
            with _open_regular(Path(temp)) as stream:
                hasher = Hasher(desc.digest.algorithm)
                while data := stream.read(_CHUNK):
                    hasher.update(data)
            check(desc.digest, desc.size, hasher)
            self._place(Path(temp), desc.digest)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _place(self, temp: Path, digest: Digest) -> None:
        final = self.blob(digest)
        self.mkdirs(final.parent)
        # Another writer may have placed the same blob meanwhile: both are the same bytes.
        os.replace(temp, final)


def _open_regular(path: Path) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file: never through a symbolic link at
    its end, never blocking on a fifo or device. A folder, fifo or device is a one-line error."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise TransportError(f"{path}: a folder where a file belongs") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise
        if os.path.islink(path):
            raise TransportError(f"{path}: a symbolic link inside the registry folder") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise TransportError(f"{path}: {kind} where a file belongs")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _made(path: Path) -> os.stat_result:
    """``path`` created if missing; its lstat. Another writer may remove an empty staging
    folder between the two (it tidies up when done): then it is made again."""
    for _ in range(5):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        try:
            return os.lstat(path)
        except FileNotFoundError:
            continue
    raise TransportError(f"{path}: removed as fast as it is made")


class RegistryDirSource(ImageSource):
    supports_ranges = True

    def __init__(self, storage: _Storage, repository: str, top: Digest) -> None:
        self.storage = storage
        self.repository = repository
        self._top = top

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        return self.storage.read_manifest(self.repository, digest or self._top)

    @contextlib.contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        stream = self.storage.open_blob(self.repository, desc, offset)
        try:
            yield stream
        finally:
            stream.close()


class RegistryDirDestination(ImageDestination):
    def __init__(
        self, storage: _Storage, repository: str, tag: str | None, digest: Digest | None
    ) -> None:
        self.storage = storage
        self.repository = repository
        self.tag = tag
        self.digest = digest

    def blob_scope(self) -> str:
        return f"registry-dir:{os.path.realpath(self.storage.root)}"

    def _link(self, digest: Digest) -> None:
        self.storage.write_link(self.storage.layer_link(self.repository, digest), digest)

    def has_blob(self, desc: Descriptor) -> bool:
        # The copy skips put_blob when this says yes, so a blob that is in the folder
        # (another repository's) is linked into this repository here.
        if not self.storage.has_blob(desc):
            return False
        self._link(desc.digest)
        return True

    def try_mount(self, desc: Descriptor, source: ImageSource) -> bool:
        if not isinstance(source, RegistryDirSource):
            return False
        if not self.storage.link_blob_from(source.storage, desc):
            return False
        self._link(desc.digest)
        return True

    def put_blob(
        self,
        desc: Descriptor,
        stream: IO[bytes],
        offset: int = 0,
        progress: ProgressFn | None = None,
        *,
        kind: BlobKind = "layer",
    ) -> None:
        if offset:
            raise TransportError(f"{self}: cannot resume blob {desc.digest} at byte {offset}")
        self.storage.put_blob(desc, stream, progress)
        self._link(desc.digest)

    def put_manifest(self, manifest: Manifest, *, top: bool) -> Manifest:
        digest = manifest.digest
        if top and self.digest is not None and self.digest != digest:
            raise DigestMismatch(f"{self}: the image's manifest digest is {digest}")
        self.storage.put_manifest(manifest)
        self.storage.write_link(self.storage.revision_link(self.repository, digest), digest)
        if top and self.tag is not None:
            tag_dir = self.storage.tag_dir(self.repository, self.tag)
            self.storage.write_link(
                tag_dir / "index" / digest.algorithm / digest.hex / "link", digest
            )
            self.storage.write_link(tag_dir / "current" / "link", digest)
        return manifest

    def close(self) -> None:
        # The staging folder goes once no writer uses it (a registry serves no such folder).
        with contextlib.suppress(OSError):
            (self.storage.base / "_uploads").rmdir()

    def __str__(self) -> str:
        return str(RegistryDirReference(self.storage.root, self.repository, self.tag, self.digest))


def walk(root: Path) -> list[RegistryDirEntry]:
    """Every image of the registry folder ``root``: one entry per repository tag, and one per
    manifest revision that no tag points at and no index of its repository lists. Every
    manifest is read and digest-checked; a broken link or manifest is an error."""
    storage = _Storage(root, create=False)
    repositories = storage.base / "repositories"
    found: list[RegistryDirEntry] = []
    for repo_dir in sorted(_repository_dirs(storage, repositories)):
        name = repo_dir.relative_to(repositories).as_posix()
        if not valid_repository(name):
            continue
        tagged: dict[str, Digest] = {}
        for tag in storage.tags(name):
            digest = storage.read_link(storage.tag_dir(name, tag) / "current" / "link")
            if digest is not None:
                tagged[tag] = digest
        revisions = _revisions(storage, repo_dir / "_manifests" / "revisions")
        children: set[Digest] = set()
        media_types: dict[Digest, str] = {}
        for digest in revisions:
            manifest = storage.read_manifest(name, digest)
            media_types[digest] = manifest.media_type
            if isinstance(manifest, ImageIndex):
                children.update(entry.digest for entry in manifest.manifests)
        for tag, digest in tagged.items():
            media_type = media_types.get(digest) or storage.read_manifest(name, digest).media_type
            found.append(RegistryDirEntry(name, tag, digest, media_type))
        named = set(tagged.values())
        for digest in revisions:
            if digest not in named and digest not in children:
                found.append(RegistryDirEntry(name, None, digest, media_types[digest]))
    return found


def _revisions(storage: _Storage, folder: Path) -> list[Digest]:
    """The digests a repository's ``revisions`` folder links, in a stable order."""
    out: list[Digest] = []
    try:
        algorithms = sorted(storage.confined(folder).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return out
    for algorithm_dir in algorithms:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for digest_dir in sorted(storage.confined(algorithm_dir).iterdir()):
                try:
                    digest = Digest.parse(f"{algorithm_dir.name}:{digest_dir.name}")
                except InvalidDigest:
                    continue  # not a revision folder
                if storage.linked(digest_dir / "link", digest):
                    out.append(digest)
    return out


def _repository_dirs(storage: _Storage, repositories: Path) -> Iterator[Path]:
    """Folders below ``repositories`` that hold ``_manifests`` (a repository), not following
    symbolic links."""
    if not repositories.is_dir():
        return
    storage.confined(repositories)
    for dirpath, dirnames, _ in os.walk(repositories, followlinks=False):
        if "_manifests" in dirnames:
            yield Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith("_")]


register("registry-dir", RegistryDirReference.parse)
