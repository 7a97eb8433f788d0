"""The ``registry-dir`` transport: ``registry-dir:DIR[:NAME[:TAG|@DIGEST]]``, the filesystem
storage of the distribution registry (what a cluster image carries in ``registry/``, and what
``docker-registry`` serves from its ``rootdirectory``).

DIR holds ``docker/registry/v2``; NAME is a repository path as the registry serves it
(``library/nginx``: no host). The files, as distribution's storage driver lays them out::

    blobs/sha256/<2 hex>/<hex>/data                                      every blob and manifest
    repositories/<name>/_layers/sha256/<hex>/link                        "sha256:<hex>"
    repositories/<name>/_manifests/revisions/sha256/<hex>/link
    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link

Writing: a blob goes to a temporary file in ``_uploads`` (hashed as it is written, fsynced) and
is renamed into place only once its digest is right; every link is written to a temporary file
and renamed, so a reader or a second writer never sees half of one. Configs are linked under
``_layers`` too, and an index and each manifest it keeps get a revision. Without TAG the top
manifest is stored by digest only. Two processes writing into one DIR at once stay consistent:
every visible file is whole, and both writers of a blob end with the same bytes.

Reading: tags and digests resolve through the links, and every manifest and blob read is
checked against its digest (manifests here, blobs by whoever receives them). Paths are built
from names checked against distribution's grammar, and no path below DIR may be a symbolic
link: nothing is read or written outside DIR.

:func:`walk` lists every repository, tag and digest-only manifest of a DIR (``list_images``
gives them as references; the runtime syncs whole folders with it).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
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

# distribution's reference grammar: path components, and tags.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_CHUNK = 1 << 20
_MANIFEST_LIMIT = 4 << 20
V2 = Path("docker", "registry", "v2")


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
        if not _NAME_RE.match(name) or len(name) > 255:
            raise TransportError(
                f"invalid reference registry-dir:{value}: {name!r} is not a repository name "
                "(lowercase path components, no host)"
            )
        if tag is not None and not _TAG_RE.match(tag):
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
            raise TransportError(f"{self}: name the image to write (registry-dir:DIR:NAME:TAG)")
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

    # -- paths ---------------------------------------------------------------------------

    def blob(self, digest: Digest) -> Path:
        return self.base / "blobs" / digest.algorithm / digest.hex[:2] / digest.hex / "data"

    def repo(self, name: str) -> Path:
        return self.base / "repositories" / name

    def layer_link(self, name: str, digest: Digest) -> Path:
        return self.repo(name) / "_layers" / digest.algorithm / digest.hex / "link"

    def revision_link(self, name: str, digest: Digest) -> Path:
        return self.repo(name) / "_manifests" / "revisions" / digest.algorithm / digest.hex / "link"

    def tag_dir(self, name: str, tag: str) -> Path:
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
            with open(self.confined(path), "rb") as stream:
                raw = stream.read(256)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        try:
            return Digest.parse(raw.decode("ascii").strip())
        except (UnicodeDecodeError, InvalidDigest):
            raise ManifestError(f"{path}: not a digest link ({raw[:40]!r})") from None

    def resolve(self, name: str, identifier: str | Digest) -> Digest:
        if isinstance(identifier, Digest):
            if self.read_link(self.revision_link(name, identifier)) is None:
                raise ImageNotFound(f"registry-dir:{self.root}:{name}@{identifier}: not found")
            return identifier
        digest = self.read_link(self.tag_dir(name, identifier) / "current" / "link")
        if digest is None:
            raise ImageNotFound(f"registry-dir:{self.root}:{name}:{identifier}: no such tag")
        return digest

    def read_manifest(self, name: str, digest: Digest) -> Manifest:
        where = f"registry-dir:{self.root}:{name}@{digest}"
        if self.read_link(self.revision_link(name, digest)) is None:
            raise ImageNotFound(f"{where}: no such manifest revision")
        path = self.blob(digest)
        try:
            with open(self.confined(path), "rb") as stream:
                raw = stream.read(_MANIFEST_LIMIT + 1)
        except FileNotFoundError:
            raise BlobNotFound(f"{where}: the link names a blob that is missing ({path})") from None
        if len(raw) > _MANIFEST_LIMIT:
            raise ManifestError(f"{where}: larger than {_MANIFEST_LIMIT} bytes")
        if Digest.of(raw, digest.algorithm) != digest:
            raise DigestMismatch(f"{where}: the stored manifest does not match its digest")
        return parse_manifest(raw, where=where)

    def open_blob(self, name: str, desc: Descriptor, offset: int) -> IO[bytes]:
        where = f"registry-dir:{self.root}:{name}"
        if self.read_link(self.layer_link(name, desc.digest)) is None:
            raise BlobNotFound(f"{where}: blob {desc.digest} is not linked in the repository")
        path = self.blob(desc.digest)
        try:
            stream = open(self.confined(path), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise BlobNotFound(f"{where}: blob {desc.digest} is linked but missing") from None
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            stream.close()
            raise BlobNotFound(f"{where}: blob {desc.digest} is not a regular file")
        stream.seek(offset)
        return stream

    # -- writing -------------------------------------------------------------------------

    def write_link(self, path: Path, digest: Digest) -> None:
        self._write_atomic(path, str(digest).encode())

    def _write_atomic(self, path: Path, data: bytes) -> None:
        self.mkdirs(path.parent)
        fd, temp = tempfile.mkstemp(prefix=".link-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def has_blob(self, desc: Descriptor) -> bool:
        try:
            st = os.lstat(self.blob(desc.digest))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return stat.S_ISREG(st.st_mode) and (desc.size < 0 or st.st_size == desc.size)

    def put_blob(self, desc: Descriptor, stream: IO[bytes], progress: ProgressFn | None) -> None:
        fd, temp = self._upload_file("blob-")
        try:
            hasher = Hasher(desc.digest.algorithm)
            with os.fdopen(fd, "wb") as out:
                while data := stream.read(_CHUNK):
                    hasher.update(data)
                    out.write(data)
                    if progress is not None:
                        progress(len(data))
                out.flush()
                os.fsync(out.fileno())
            check(desc.digest, desc.size, hasher)
            self._place(Path(temp), desc.digest)
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

    def link_blob_from(self, source: Path, desc: Descriptor) -> bool:
        """Hard-link a verified blob of another registry folder (same file system) into this
        one: no byte copied. False when the file systems differ."""
        uploads = self.mkdirs(self.base / "_uploads")
        temp = uploads / f"link-{os.getpid()}-{desc.digest.hex[:16]}-{id(self)}"
        try:
            os.link(source, temp)
        except OSError:
            return False
        try:
            if os.stat(temp).st_size != desc.size:
                return False
            self._place(temp, desc.digest)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _place(self, temp: Path, digest: Digest) -> None:
        final = self.blob(digest)
        self.mkdirs(final.parent)
        # Another writer may have placed the same blob meanwhile: both are the same bytes.
        os.replace(temp, final)

    def put_manifest(self, manifest: Manifest) -> None:
        final = self.blob(manifest.digest)
        if not final.is_file():
            self._write_atomic(final, manifest.raw)


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

    def has_blob(self, desc: Descriptor) -> bool:
        if not self.storage.has_blob(desc):
            return False
        # The blob is in the folder (another repository's): link it into this one.
        self.storage.write_link(self.storage.layer_link(self.repository, desc.digest), desc.digest)
        return True

    def try_mount(self, desc: Descriptor, source: ImageSource) -> bool:
        if not isinstance(source, RegistryDirSource):
            return False
        path = source.storage.blob(desc.digest)
        if not source.storage.has_blob(desc) or not self.storage.link_blob_from(path, desc):
            return False
        self.storage.write_link(self.storage.layer_link(self.repository, desc.digest), desc.digest)
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
        self.storage.write_link(self.storage.layer_link(self.repository, desc.digest), desc.digest)

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
    manifest revision that no tag points at and no index of its repository lists."""
    storage = _Storage(root, create=False)
    repositories = storage.base / "repositories"
    found: list[RegistryDirEntry] = []
    for repo_dir in sorted(_repository_dirs(repositories)):
        name = repo_dir.relative_to(repositories).as_posix()
        if not _NAME_RE.match(name):
            continue
        manifests = repo_dir / "_manifests"
        tagged: dict[str, Digest] = {}
        for tag_dir in sorted((manifests / "tags").glob("*")):
            digest = storage.read_link(tag_dir / "current" / "link")
            if digest is not None and _TAG_RE.match(tag_dir.name):
                tagged[tag_dir.name] = digest
        revisions = []
        for algorithm_dir in sorted((manifests / "revisions").glob("*")):
            for digest_dir in sorted(algorithm_dir.glob("*")):
                digest = storage.read_link(digest_dir / "link")
                if digest is not None:
                    revisions.append(digest)
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


def _repository_dirs(repositories: Path) -> Iterator[Path]:
    """Folders below ``repositories`` that hold ``_manifests`` (a repository), not following
    symbolic links."""
    if not repositories.is_dir():
        return
    for dirpath, dirnames, _ in os.walk(repositories, followlinks=False):
        if "_manifests" in dirnames:
            yield Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith("_")]


register("registry-dir", RegistryDirReference.parse)
