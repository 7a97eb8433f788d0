"""ADD of a local tar archive: read it into a tree whose files are staged copies, safely.

Nothing of the archive is ever created at the paths it names: each regular file's bytes go to a
flat, numbered file in a staging folder, and paths, links and folders live only in the returned
:class:`~clusterimage.build.fstree.FsTree`. The rules are those of moby's pkg/archive untar:
- names are cleaned; a leading ``/`` is dropped; a name that climbs out (``../x``) is an error;
- a member below a symbolic link of the same archive is an error (it would be written through it);
- a relative symlink target that climbs out of the destination is an error, absolute targets are
  kept (they mean the image's root);
- a hard link must name a member that came before it;
- members keep the uid/gid the archive gives them (``--chown`` overrides them in the copier);
- plain, gzip, bzip2, xz and zstd archives are recognised by content, not name; a file that is not
  a tar archive is not unpacked (ADD copies it as it is).

The archive is read once: whether it is one, its members and the digest of the file itself (what
the build cache keys a cached ADD on) all come from the same pass.
"""

from __future__ import annotations

import io
import lzma
import os
import posixpath
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

import zstandard

from clusterimage.build.fstree import Content, FsTree, Node, NodeKind
from clusterimage.build.layer import open_content
from clusterimage.errors import BuildError, KubefileError
from clusterimage.layers.tarsafe import compression_of_head as _compression_of_head
from clusterimage.layers.tarsafe import decompressed, read_member, stream_tar
from clusterimage.oci.digest import Hasher, ReadThrough

# Bump when read_archive gives another tree for the same archive: cached ADD layers then miss.
# 2: members keep their owners.
UNPACK_RULES: Final = 2
_CHUNK: Final = 1 << 20
_KINDS: Final[dict[bytes, NodeKind]] = {
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def _member_path(name: str) -> str | None:
    """The cleaned relative path of a member ("" for the root); None when it climbs out."""
    stripped = name.lstrip("/")
    if not stripped:
        return ""
    rel = posixpath.normpath(stripped)
    if rel == ".." or rel.startswith("../"):
        return None
    return "" if rel == "." else rel


_READ_ERRORS: Final = (tarfile.TarError, EOFError, lzma.LZMAError, zstandard.ZstdError, OSError)


def read_archive(
    content: Content, staging: Path, *, label: str, error: Callable[[str], KubefileError]
) -> FsTree | None:
    """The tree of the file ``content`` when it is a tar archive, possibly compressed (as
    Docker's IsArchive tests: its first member can be read), else None: ADD copies it as it is.

    Files are staged under ``staging``. One pass over the file: it is decompressed once, and
    ``content.digest`` becomes the digest of its bytes as read (what a cached ADD is keyed on).
    ``label`` names the archive in messages; ``error`` makes a KubefileError at the ADD's line.
    """

    def fail(message: str) -> KubefileError:
        return error(f"ADD {label}: {message}")

    with os.fdopen(open_content(content, f"ADD {label}"), "rb") as raw:
        reader = ReadThrough(raw, Hasher())
        buffered = io.BufferedReader(reader, _CHUNK)
        try:
            with decompressed(buffered, _compression_of_head(buffered.peek(8)[:8])) as stream:
                try:  # a stream tar reads its first member when opened: the IsArchive test
                    tar = stream_tar(stream)  # closed below
                except _READ_ERRORS:
                    return None
                with tar:
                    if tar.next() is None:
                        return None  # no member: not an archive (as is_archive said before)
                    tree = _read_members(tar, staging, fail)
            reader.drain()
        except _READ_ERRORS as exc:
            raise fail(f"cannot read the archive: {exc}") from None
    assert reader.hasher is not None
    if reader.hasher.size != content.size:
        raise BuildError(f"{content.path} changed during the build (for ADD {label}); build again")
    content.digest = str(reader.hasher.digest())
    return tree


def _read_members(
    tar: tarfile.TarFile, staging: Path, fail: Callable[[str], KubefileError]
) -> FsTree:
    staging.mkdir(parents=True, exist_ok=True)
    tree = FsTree()
    staged: dict[str, Content] = {}
    counter = 0
    for member in tar:
        rel = _member_path(member.name)
        if rel is None:
            raise fail(f"member {member.name!r} would be written outside the destination")
        uid, gid = member.uid, member.gid
        if not rel:
            if member.isdir():
                tree.set("", Node("dir", member.mode & 0o7777, uid=uid, gid=gid))
            continue
        parent = posixpath.dirname(rel)
        if parent and tree.resolve(parent) != parent:
            raise fail(f"member {member.name!r} is below a symbolic link of the archive")
        mode = member.mode & 0o7777
        if member.isreg():
            counter += 1
            content = stage_member(tar, member, staging / f"{counter:08d}")
            staged[rel] = content
            tree.set(rel, Node("file", mode, uid=uid, gid=gid, content=content))
        elif member.islnk():
            target = _member_path(member.linkname)
            linked = staged.get(target) if target else None
            if linked is None:
                raise fail(f"hard link {member.name!r} → {member.linkname!r} names no earlier file")
            staged[rel] = linked
            tree.set(rel, Node("file", mode, uid=uid, gid=gid, content=linked))
        elif member.issym():
            link = member.linkname
            if not link.startswith("/"):
                lexical = posixpath.normpath(posixpath.join(parent, link))
                if lexical == ".." or lexical.startswith("../"):
                    raise fail(
                        f"symbolic link {member.name!r} → {link!r} points outside the destination"
                    )
            tree.set(rel, Node("symlink", 0o777, uid=uid, gid=gid, linkname=link))
        elif member.type in _KINDS:
            kind = _KINDS[member.type]
            tree.set(
                rel,
                Node(
                    kind, mode, uid=uid, gid=gid, devmajor=member.devmajor, devminor=member.devminor
                ),
            )
        # other types (PAX/GNU metadata, sparse, ...) are tarfile's business or skipped
    return tree


def stage_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> Content:
    """Stream a regular member to ``target``, hashing it on the way; a short member is an error."""
    with open(target, "wb") as out:
        digest = read_member(tar, member, out)
    return Content(target, member.size, digest=digest)
