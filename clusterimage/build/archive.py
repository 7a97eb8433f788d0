"""ADD of a local tar archive: read it into a tree whose files are staged copies, safely.

Nothing of the archive is ever created at the paths it names: each regular file's bytes go to a
flat, numbered file in a staging folder, and paths, links and folders live only in the returned
:class:`~clusterimage.build.fstree.FsTree`. The rules are those of moby's pkg/archive untar:
- names are cleaned; a leading ``/`` is dropped; a name that climbs out (``../x``) is an error;
- a member below a symbolic link of the same archive is an error (it would be written through it);
- a relative symlink target that climbs out of the destination is an error, absolute targets are
  kept (they mean the image's root);
- a hard link must name a member that came before it;
- plain, gzip, bzip2, xz and zstd archives are recognised by content, not name; a file that is not
  a tar archive is not unpacked (ADD copies it as it is).
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final, cast

import zstandard
from isal import igzip

from clusterimage.build.fstree import Content, FsTree, Node, NodeKind
from clusterimage.errors import KubefileError

_CHUNK: Final = 1 << 20
_MAGICS: Final = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_KINDS: Final[dict[bytes, NodeKind]] = {
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def compression_of(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "none"


@contextmanager
def _decompressed(path: Path, compression: str) -> Iterator[IO[bytes]]:
    with open(path, "rb") as raw:
        if compression == "gzip":
            with igzip.IGzipFile(fileobj=raw, mode="rb") as gz:
                yield cast(IO[bytes], gz)
        elif compression == "bzip2":
            with bz2.BZ2File(raw, "rb") as stream:
                yield stream
        elif compression == "xz":
            with lzma.LZMAFile(raw, "rb") as stream:
                yield stream
        elif compression == "zstd":
            with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as stream:
                yield stream  # type: ignore[misc]
        else:
            yield raw


@contextmanager
def open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    """A tar archive or layer blob, decompressed as its content says, read as a stream."""
    with (
        _decompressed(path, compression_of(path)) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        yield tar


def is_archive(path: Path) -> bool:
    """Whether ``path`` holds a tar archive (possibly compressed), as Docker's IsArchive tests."""
    try:
        with open_tar(path) as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zstandard.ZstdError):
        return False


def _member_path(name: str) -> str | None:
    """The cleaned relative path of a member ("" for the root); None when it climbs out."""
    stripped = name.lstrip("/")
    if not stripped:
        return ""
    rel = posixpath.normpath(stripped)
    if rel == ".." or rel.startswith("../"):
        return None
    return "" if rel == "." else rel


def read_archive(
    path: Path, staging: Path, *, label: str, error: Callable[[str], KubefileError]
) -> FsTree:
    """Read the tar archive at ``path`` into a tree; files are staged under ``staging``.

    ``label`` names the archive in messages; ``error`` makes a KubefileError at the ADD's line.
    """

    def fail(message: str) -> KubefileError:
        return error(f"ADD {label}: {message}")

    staging.mkdir(parents=True, exist_ok=True)
    tree = FsTree()
    staged: dict[str, Content] = {}
    counter = 0
    try:
        with open_tar(path) as tar:
            for member in tar:
                rel = _member_path(member.name)
                if rel is None:
                    raise fail(f"member {member.name!r} would be written outside the destination")
                if not rel:
                    if member.isdir():
                        tree.set("", Node("dir", member.mode & 0o7777))
                    continue
                parent = posixpath.dirname(rel)
                if parent and tree.resolve(parent) != parent:
                    raise fail(f"member {member.name!r} is below a symbolic link of the archive")
                mode = member.mode & 0o7777
                if member.isreg():
                    counter += 1
                    content = stage_member(tar, member, staging / f"{counter:08d}")
                    staged[rel] = content
                    tree.set(rel, Node("file", mode, content=content))
                elif member.islnk():
                    target = _member_path(member.linkname)
                    linked = staged.get(target) if target else None
                    if linked is None:
                        raise fail(
                            f"hard link {member.name!r} → {member.linkname!r} names no earlier file"
                        )
                    staged[rel] = linked
                    tree.set(rel, Node("file", mode, content=linked))
                elif member.issym():
                    link = member.linkname
                    if not link.startswith("/"):
                        lexical = posixpath.normpath(posixpath.join(parent, link))
                        if lexical == ".." or lexical.startswith("../"):
                            raise fail(
                                f"symbolic link {member.name!r} → {link!r} points outside "
                                "the destination"
                            )
                    tree.set(rel, Node("symlink", 0o777, linkname=link))
                elif member.type in _KINDS:
                    kind = _KINDS[member.type]
                    tree.set(
                        rel,
                        Node(kind, mode, devmajor=member.devmajor, devminor=member.devminor),
                    )
                # other types (PAX/GNU metadata, sparse, ...) are tarfile's business or skipped
    except (tarfile.TarError, EOFError, lzma.LZMAError, zstandard.ZstdError, OSError) as exc:
        raise fail(f"cannot read the archive: {exc}") from None
    return tree


def stage_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> Content:
    """Stream a regular member to ``target``, hashing it on the way; a short member is an error."""
    source = tar.extractfile(member)
    assert source is not None
    hasher = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if size != member.size:
        raise tarfile.ReadError(f"member {member.name!r} is truncated")
    return Content(target, size, digest=f"sha256:{hasher.hexdigest()}")
