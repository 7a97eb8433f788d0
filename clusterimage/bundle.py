"""Bundles: images saved to files for sites without a registry, and loaded back.

``save`` writes several images into one place through its transport's :class:`ImageWriter`
(oci-archive, as sealos and skopeo write it; docker-archive, as ``docker save``; or an OCI
layout folder), finalised once: a bundle is either whole at its path or not there. ``load``
reads any of the three, the format told by content, not by name, and copies every image it
holds into the store under its name.

Everything goes through the copy engine, so blobs are verified as they move and an
interrupted ``load`` leaves only whole blobs in the store (the next one resumes).
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from clusterimage import transports
from clusterimage.copy import CopyEvent, CopyOptions, CopyResult, copy_image, copy_to
from clusterimage.errors import TransportError, UsageError
from clusterimage.oci.reference import Reference
from clusterimage.transports.base import Context
from clusterimage.transports.store import StoreReference

_COPY_BUFFER = 1 << 20


class BundleFormat(enum.StrEnum):
    oci_archive = "oci-archive"
    docker_archive = "docker-archive"
    oci_dir = "oci-dir"

    @property
    def transport(self) -> str:
        return "oci" if self is BundleFormat.oci_dir else self.value


@dataclass(frozen=True)
class SavedImage:
    source: str
    name: Reference | None
    result: CopyResult

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "name": str(self.name) if self.name is not None else None,
        } | self.result.to_dict()


@dataclass(frozen=True)
class LoadedImage:
    name: Reference | None  # None: the bundle did not name it; it is stored untagged
    source: str
    result: CopyResult

    def to_dict(self) -> dict[str, object]:
        return {
            "name": str(self.name) if self.name is not None else None,
            "source": self.source,
        } | self.result.to_dict()


@dataclass
class BundleResult:
    format: BundleFormat
    path: str
    images: list[SavedImage | LoadedImage] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format.value,
            "path": self.path,
            "images": [image.to_dict() for image in self.images],
        }


def save(
    images: Sequence[str],
    output: str,
    ctx: Context,
    *,
    format: BundleFormat = BundleFormat.oci_archive,
    multi_image: bool = False,
    on_event: Callable[[CopyEvent], None] | None = None,
) -> BundleResult:
    """Write ``images`` (store names by default, or any ``TRANSPORT:REF``) to ``output``, a
    file or a folder (oci-dir), or ``-`` for standard output (archives only)."""
    if not images:
        raise UsageError("save: name at least one image")
    if len(images) > 1 and not multi_image:
        raise UsageError(
            f"save: {len(images)} images given; several images need -m/--multi-image-archive"
        )
    if output == "-" and format is BundleFormat.oci_dir:
        raise UsageError("save: --format oci-dir writes a folder, not standard output")
    sources = [transports.parse(image, default="store") for image in images]
    result = BundleResult(format, output)
    # Every image goes in whole: a docker-archive takes one platform (the context's, else
    # this machine's), the OCI formats keep what the source holds.
    options = CopyOptions(
        all_platforms=format is not BundleFormat.docker_archive and ctx.platform is None,
        on_event=on_event,
    )
    with _target(output, format, ctx) as path:
        target = transports.parse(f"{format.transport}:{path}")
        with target.new_writer(ctx) as writer:
            for source in sources:
                name = source.docker_reference()
                with writer.new_destination(name) as dest:
                    copied = copy_to(source, dest, ctx, options)
                result.images.append(SavedImage(str(source), name, copied))
            writer.commit()
    return result


@contextlib.contextmanager
def _target(output: str, format: BundleFormat, ctx: Context) -> Iterator[Path]:
    """Where the writer writes: ``output`` itself, or for ``-`` a temporary file that is
    streamed to standard output once whole (an archive's index comes last, and a reader of
    the stream must not see a half-written bundle)."""
    if output != "-":
        yield Path(output)
        return
    if sys.stdout.isatty():
        raise UsageError("save: refusing to write an archive to a terminal; use -o FILE")
    with _scratch(ctx) as folder:
        path = folder / "bundle.tar"
        yield path
        with open(path, "rb") as stream:
            shutil.copyfileobj(stream, sys.stdout.buffer, _COPY_BUFFER)
        sys.stdout.buffer.flush()


@contextlib.contextmanager
def _scratch(ctx: Context) -> Iterator[Path]:
    if ctx.tmp_dir is not None:
        ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bundle-", dir=ctx.tmp_dir) as folder:
        yield Path(folder)


def detect_format(path: Path) -> BundleFormat:
    """The format of a bundle, from its content: a folder with ``oci-layout`` is an OCI layout;
    a tar with ``manifest.json`` is a docker-archive (Docker 25 writes ``index.json`` beside it,
    and its RepoTags are the names to keep), else one with ``oci-layout`` an oci-archive."""
    if path.is_dir():
        if (path / "oci-layout").is_file():
            return BundleFormat.oci_dir
        raise TransportError(f"{path}: a folder without oci-layout is no bundle")
    try:
        names = _top_level_names(path)
    except (tarfile.TarError, EOFError) as exc:
        raise TransportError(f"{path}: not a tar archive ({exc})") from None
    if "manifest.json" in names:
        return BundleFormat.docker_archive
    if "oci-layout" in names or "index.json" in names:
        return BundleFormat.oci_archive
    raise TransportError(
        f"{path}: a tar archive with neither manifest.json (docker-archive) nor oci-layout "
        "(oci-archive) at its top"
    )


def _top_level_names(path: Path) -> set[str]:
    # Headers only: members' bodies are skipped by seeking, never read.
    names: set[str] = set()
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if "/" not in name:
                names.add(name)
            if {"manifest.json", "oci-layout"} <= names:
                break
    return names


def load(
    input: str,
    ctx: Context,
    *,
    on_event: Callable[[CopyEvent], None] | None = None,
    on_image: Callable[[LoadedImage], None] | None = None,
) -> BundleResult:
    """Copy every image of the bundle at ``input`` (a file, a folder, or ``-`` for standard
    input) into the store. Images the bundle names keep their names; others are stored
    untagged."""
    with _source(input, ctx) as path:
        format = detect_format(path)
        bundle = transports.parse(f"{format.transport}:{path}")
        result = BundleResult(format, input)
        options = CopyOptions(all_platforms=True, on_event=on_event)
        for image in bundle.list_images(ctx):
            name = image.docker_reference()
            dst = StoreReference(str(name) if name is not None else "")
            copied = copy_image(image, dst, ctx, options)
            loaded = LoadedImage(name, str(image), copied)
            result.images.append(loaded)
            if on_image is not None:
                on_image(loaded)
        if not result.images:
            raise TransportError(f"{input}: the bundle holds no image")
    return result


@contextlib.contextmanager
def _source(input: str, ctx: Context) -> Iterator[Path]:
    """``input`` as a path; standard input is spooled to a temporary file first (archives
    are read by member offsets, which a pipe cannot seek to)."""
    if input != "-":
        path = Path(input)
        if not path.exists():
            raise TransportError(f"{input}: no such file or folder")
        yield path
        return
    if sys.stdin.isatty():
        raise UsageError("load: standard input is a terminal; use -i FILE or a pipe")
    with _scratch(ctx) as folder:
        path = folder / "stdin.tar"
        with open(path, "wb") as out:
            _spool(sys.stdin.buffer, out)
        yield path


def _spool(stream: IO[bytes], out: IO[bytes]) -> None:
    shutil.copyfileobj(stream, out, _COPY_BUFFER)
    out.flush()
    os.fsync(out.fileno())


@dataclass
class VerifyResult:
    format: BundleFormat
    images: int = 0
    blobs: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "format": self.format.value,
            "images": self.images,
            "blobs": self.blobs,
            "bytes": self.bytes,
            "problems": self.problems,
        }


def verify(path: Path, ctx: Context) -> VerifyResult:
    """Hash every manifest and blob of every image of the bundle at ``path``."""
    from clusterimage.errors import ClusterImageError
    from clusterimage.oci.digest import hash_stream
    from clusterimage.oci.manifest import ImageIndex, ImageManifest

    format = detect_format(path)
    bundle = transports.parse(f"{format.transport}:{path}")
    result = VerifyResult(format)
    seen: set[str] = set()
    for image in bundle.list_images(ctx):
        result.images += 1
        try:
            with image.new_source(ctx) as source:
                pending = [source.get_manifest()]  # digest-checked by every source
                while pending:
                    manifest = pending.pop()
                    if isinstance(manifest, ImageIndex):
                        pending.extend(source.get_manifest(e.digest) for e in manifest.manifests)
                        continue
                    assert isinstance(manifest, ImageManifest)
                    for blob in manifest.blobs:
                        if str(blob.digest) in seen:
                            continue
                        seen.add(str(blob.digest))
                        with source.open_blob(blob) as stream:
                            hashed = hash_stream(stream, blob.digest.algorithm)
                        result.blobs += 1
                        result.bytes += hashed.size
                        if hashed.digest() != blob.digest or hashed.size != blob.size:
                            result.problems.append(
                                f"{image}: blob {blob.digest} is damaged: content hashes to "
                                f"{hashed.digest()} ({hashed.size} of {blob.size} bytes)"
                            )
        except ClusterImageError as exc:
            result.problems.append(f"{image}: {exc}")
    return result
