"""A layer's listing: its tar headers as records, and each regular file's content digest.

What the builder needs to know of a base image's files without unpacking them (and what diff
and merge can compare): one pass over the decompressed blob, file bodies hashed as the stream
passes over them anyway.
"""

from __future__ import annotations

import posixpath
import tarfile
from typing import IO, Any, Final

from clusterimage.layers.tarsafe import open_tar, read_member

# [name, kind, mode, uid, gid, size, linkname, devmajor, devminor] (kind "hardlink": linkname is
# the linked member), and for a regular file its content digest last.
Record = list[Any]

KINDS: Final[dict[bytes, str]] = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def list_layer(blob: IO[bytes]) -> list[Record]:
    """The records of the layer blob ``blob`` (an open file or a stream; any compression), in
    archive order. Members of other types (PAX/GNU metadata, sparse) are left out."""
    records: list[Record] = []
    with open_tar(blob) as tar:
        for member in tar:
            hardlink = member.islnk()
            kind = KINDS.get(member.type)
            if kind is None and not hardlink:
                continue
            record = [
                member.name,
                "hardlink" if hardlink else kind,
                member.mode & 0o7777,
                member.uid,
                member.gid,
                member.size if kind == "file" else 0,
                member.linkname,
                member.devmajor,
                member.devminor,
            ]
            if kind == "file":
                record.append(read_member(tar, member))
            records.append(record)
    return records


def member_path(name: str) -> str | None:
    """A member name as a relative path that cannot climb above the root (``../x`` → ``x``,
    as a chroot resolves it); None for the root itself."""
    return posixpath.normpath("/" + name).lstrip("/") or None
