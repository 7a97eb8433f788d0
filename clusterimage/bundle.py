"""Bundles: images saved to files for sites without a registry, and loaded back.

``save`` writes several images into one place through its transport's :class:`ImageWriter`
(oci-archive, as sealos and skopeo write it; docker-archive, as ``docker save``; or an OCI
layout folder), finalised once: a bundle is either whole at its path or not there. ``load``
reads any of the three, the format told by content, not by name, and copies every image it
holds into the store under its name.

Everything goes through the copy engine, so blobs are verified as they move and an
interrupted ``load`` leaves only whole blobs in the store (the next one resumes).

Deltas. ``inventory`` lists what a bundle holds (its images, and each blob it carries with its
size and kind) as a small JSON document whose digest is that of its canonical bytes. ``save``
with ``delta_from`` (earlier bundles, or inventories a site sent back) writes every manifest and
config but leaves out each layer a base has; the bundle's ``index.json`` says so in annotations
(:data:`DELTA_BASE`, :data:`DELTA_OMITTED` ...), so ``load`` knows before it writes anything
which blobs the store must already hold, and ``verify`` does not take them for damage. Layers
are the unit: a cluster image's ``registry/`` is one layer per embedded image (see
:mod:`clusterimage.images.layering`), so a changed image costs its own layer only.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from clusterimage import transports
from clusterimage._humanize import count
from clusterimage.copy import CopyEvent, CopyOptions, CopyResult, copy_image, copy_to
from clusterimage.errors import (
    BlobNotFound,
    ClusterImageError,
    InvalidDigest,
    ManifestError,
    TransportError,
    UsageError,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, json_object
from clusterimage.oci.reference import Reference
from clusterimage.transports._layout import LayoutDestination
from clusterimage.transports.base import (
    Context,
    ForwardingDestination,
    ImageDestination,
    ImageReference,
    ImageSource,
)
from clusterimage.transports.oci_archive import OciArchiveWriter
from clusterimage.transports.store import (
    StoreReference,
    loaded_name,
    own_names,
    store_root,
)

_COPY_BUFFER = 1 << 20

INVENTORY_FORMAT: Final = "clusterimage.bundle-inventory"
INVENTORY_VERSION: Final = 1
_INVENTORY_LIMIT: Final = 64 << 20
#: index.json annotations of a delta bundle: the digests of the inventories it was made against
#: (comma-separated), how many blobs it leaves out, their bytes, and the digest of their list
#: (sha256 of the sorted digests, one per line): what ``load`` must find already stored.
DELTA_BASE: Final = "io.clusterimage.delta.base"
DELTA_OMITTED: Final = "io.clusterimage.delta.omitted"
DELTA_OMITTED_BYTES: Final = "io.clusterimage.delta.omitted-bytes"
DELTA_OMITTED_DIGEST: Final = "io.clusterimage.delta.omitted-digest"
_SHOWN: Final = 3  # digests named in a one-line error before "and N more"


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


@dataclass(frozen=True)
class Delta:
    """What a delta bundle leaves out: blobs its bases (inventories, by digest) hold."""

    bases: tuple[str, ...]
    # What it omits (digest -> size of each), as its annotations say it: the list itself is
    # not in the bundle, only its length, total and digest.
    count: int = 0
    bytes: int = 0
    list_digest: str = ""

    @classmethod
    def of(cls, bases: Sequence[str], omitted: dict[str, int]) -> Delta:
        return cls(tuple(bases), len(omitted), sum(omitted.values()), _list_digest(omitted))

    def annotations(self) -> dict[str, str]:
        return {
            DELTA_BASE: ",".join(self.bases),
            DELTA_OMITTED: str(self.count),
            DELTA_OMITTED_BYTES: str(self.bytes),
            DELTA_OMITTED_DIGEST: self.list_digest,
        }

    @classmethod
    def from_annotations(cls, annotations: dict[str, Any], where: str) -> Delta | None:
        if DELTA_BASE not in annotations:
            return None
        # Annotation values are strings (OCI image-spec); another JSON type is damage, and
        # int() of a null or a list would raise TypeError, not the error below.
        for key in (DELTA_BASE, DELTA_OMITTED, DELTA_OMITTED_BYTES, DELTA_OMITTED_DIGEST):
            if key in annotations and not isinstance(annotations[key], str):
                raise ManifestError(f"{where}: index.json annotation {key} is not a string")
        try:
            bases = tuple(b for b in str(annotations[DELTA_BASE]).split(",") if b)
            count = int(annotations[DELTA_OMITTED])
            nbytes = int(annotations[DELTA_OMITTED_BYTES])
            list_digest = str(annotations[DELTA_OMITTED_DIGEST])
        except (KeyError, ValueError):
            raise ManifestError(
                f"{where}: index.json names a delta base but not what it omits "
                f"({DELTA_OMITTED}, {DELTA_OMITTED_BYTES}, {DELTA_OMITTED_DIGEST})"
            ) from None
        return cls(bases, count, nbytes, list_digest)

    def matches(self, absent: dict[str, int]) -> bool:
        """Whether ``absent`` (what the bundle lacks) is exactly what it says it omits."""
        return len(absent) == self.count and _list_digest(absent) == self.list_digest

    def to_dict(self) -> dict[str, object]:
        return {
            "base": list(self.bases),
            "omittedBlobs": self.count,
            "omittedBytes": self.bytes,
            "omittedDigest": self.list_digest,
        }


def _list_digest(blobs: dict[str, int]) -> str:
    listing = "".join(f"{digest}\n" for digest in sorted(blobs))
    return f"sha256:{hashlib.sha256(listing.encode()).hexdigest()}"


@dataclass
class BundleResult:
    format: BundleFormat
    path: str
    images: list[SavedImage | LoadedImage] = field(default_factory=list)
    delta: Delta | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format.value,
            "path": self.path,
            "images": [image.to_dict() for image in self.images],
            "delta": self.delta.to_dict() if self.delta is not None else None,
        }


def save(
    images: Sequence[str],
    output: str,
    ctx: Context,
    *,
    format: BundleFormat = BundleFormat.oci_archive,
    multi_image: bool = False,
    delta_from: Sequence[str] = (),
    on_event: Callable[[CopyEvent], None] | None = None,
) -> BundleResult:
    """Write ``images`` (store names by default, or any ``TRANSPORT:REF``) to ``output``, a
    file or a folder (oci-dir), or ``-`` for standard output (archives only).

    ``delta_from``: earlier bundles or inventories of them; the layers they hold (all of them
    together) are left out, and the index says so (see :class:`Delta`)."""
    if not images:
        raise UsageError("save: name at least one image")
    if len(images) > 1 and not multi_image:
        raise UsageError(
            f"save: {len(images)} images given; several images need -m/--multi-image-archive"
        )
    if output == "-" and format is BundleFormat.oci_dir:
        raise UsageError("save: --format oci-dir writes a folder, not standard output")
    if delta_from and format is BundleFormat.docker_archive:
        raise UsageError(
            "save: --delta-from needs --format oci-archive or oci-dir (docker load cannot "
            "skip layers a docker-archive leaves out)"
        )
    if delta_from and format is BundleFormat.oci_dir and Path(output).exists():
        raise UsageError(f"save: --delta-from writes a new bundle, and {output} exists")
    bases = [read_inventory(base, ctx) for base in delta_from]
    sources = [transports.parse(image, default="store") for image in images]
    result = BundleResult(format, output)
    # Every image goes in whole: a docker-archive takes one platform (the context's, else
    # this machine's), the OCI formats keep what the source holds.
    options = CopyOptions(
        all_platforms=format is not BundleFormat.docker_archive and ctx.platform is None,
        on_event=on_event,
    )
    have: dict[str, int] = {}
    for base in bases:
        have.update(base.blobs())
    omitted: dict[str, int] = {}
    lock = threading.Lock()
    with _target(output, format, ctx) as path:
        target = transports.parse(f"{format.transport}:{path}")
        with target.new_writer(ctx) as writer:
            layout_root: Path | None = None  # oci-dir: the (staging) folder being written
            for source in sources:
                # As stored (myapp:v1 is localhost/myapp:v1); by ID, the image's one name.
                names = own_names(source, ctx)
                name = names[0] if len(names) == 1 else None
                with writer.new_destination(name) as dest:
                    if isinstance(dest, LayoutDestination):
                        layout_root = dest.layout.root
                    into: ImageDestination = dest
                    if bases:
                        keep = _documents(source, ctx)  # never left out
                        skip = {d: n for d, n in have.items() if d not in keep}
                        into = _Omitting(dest, skip, omitted, lock)
                    copied = copy_to(source, into, ctx, options)
                result.images.append(SavedImage(str(source), name, copied))
            if bases:
                named = list(dict.fromkeys(b.digest for b in bases))  # once each, in order
                result.delta = Delta.of(named, omitted)
                if isinstance(writer, OciArchiveWriter):  # written with index.json
                    writer.annotations.update(result.delta.annotations())
                elif layout_root is not None:
                    # Before commit renames the staging folder into place (a delta never
                    # writes into an existing folder): the bundle appears whole, a delta.
                    _annotate_layout(layout_root, result.delta.annotations())
            writer.commit()
    return result


def _documents(source: ImageReference, ctx: Context) -> set[str]:
    """The digests of every manifest and config of ``source`` (every platform)."""
    found: set[str] = set()
    with source.new_source(ctx) as src:
        pending = [src.get_manifest()]
        while pending:
            manifest = pending.pop()
            found.add(str(manifest.digest))
            if isinstance(manifest, ImageIndex):
                for entry in manifest.manifests:
                    found.add(str(entry.digest))
                    with contextlib.suppress(BlobNotFound):  # a platform the source lacks
                        pending.append(src.get_manifest(entry.digest))
            elif isinstance(manifest, ImageManifest):
                found.add(str(manifest.config.digest))
    return found


class _Omitting(ForwardingDestination):
    """A bundle's destination that answers "already there" for the blobs a delta leaves out
    (the copy engine then skips them), noting each in ``omitted``."""

    def __init__(
        self,
        dest: ImageDestination,
        skip: dict[str, int],
        omitted: dict[str, int],
        lock: threading.Lock,
    ) -> None:
        super().__init__(dest)
        self._skip = skip
        self._omitted = omitted
        self._lock = lock

    def has_blob(self, desc: Descriptor) -> bool:
        if self._dest.has_blob(desc):
            return True
        digest = str(desc.digest)
        if self._skip.get(digest) != desc.size:
            return False
        with self._lock:
            self._omitted[digest] = desc.size
        return True


def _annotate_layout(path: Path, annotations: dict[str, str]) -> None:
    """Add ``annotations`` to the index.json of the layout folder ``path`` (replaced whole)."""
    index = path / "index.json"
    data = json_object(index.read_bytes(), str(index))
    data["annotations"] = {**(data.get("annotations") or {}), **annotations}
    fd, tmp = tempfile.mkstemp(prefix=".index.json.", suffix=".tmp", dir=path)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(data, separators=(",", ":")).encode())
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, index)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
    to: str | None = None,
    on_event: Callable[[CopyEvent], None] | None = None,
    on_image: Callable[[LoadedImage], None] | None = None,
) -> BundleResult:
    """Copy every image of the bundle at ``input`` (a file, a folder, or ``-`` for standard
    input) into the store, or with ``to`` into that registry (``HOST[:PORT][/PREFIX]``, each
    image under its own path, as ``registry copy`` puts it). Images the bundle names keep
    their names; others are stored untagged (a registry takes named images only). A delta
    bundle is checked first: every blob it leaves out must be in the store (or in the
    registry, in the repository of each image that uses it) already, or nothing is written."""
    with _source(input, ctx) as path:
        format = detect_format(path)
        bundle = transports.parse(f"{format.transport}:{path}")
        result = BundleResult(format, input)
        options = CopyOptions(all_platforms=True, on_event=on_event)
        images = bundle.list_images(ctx)
        names = [loaded_name(image) for image in images]  # myapp:v1 -> localhost/myapp:v1
        targets: list[ImageReference] = (
            [StoreReference(str(name) if name is not None else "") for name in names]
            if to is None
            else _registry_targets(input, images, names, to)
        )
        result.delta = read_delta(path, format)
        with contextlib.ExitStack() as hold:
            if result.delta is not None:
                _check_delta(
                    input, images, result.delta, ctx, hold, None if to is None else targets
                )
            for image, name, dst in zip(images, names, targets, strict=True):
                if to is not None:
                    name = dst.docker_reference()
                copied = copy_image(image, dst, ctx, options)
                loaded = LoadedImage(name, str(image), copied)
                result.images.append(loaded)
                if on_image is not None:
                    on_image(loaded)
        if not result.images:
            raise TransportError(f"{input}: the bundle holds no image")
    return result


def _registry_targets(
    input: str, images: list[ImageReference], names: list[Reference | None], to: str
) -> list[ImageReference]:
    """Each image's place in the registry ``to``; every image must have a name to go under
    (checked for all before anything is written)."""
    from clusterimage.runtime.sync import check_destination, rehomed

    check_destination(to)
    unnamed = [str(image) for image, name in zip(images, names, strict=True) if name is None]
    if unnamed:
        raise TransportError(
            f"{input}: {count(len(unnamed), 'image')} with no name to push under into {to} "
            f"({_named(unnamed)}); save the bundle with names, or load it into the store"
        )
    return [transports.parse(rehomed(name, to)) for name in names if name is not None]


def _check_delta(
    input: str,
    images: list[ImageReference],
    delta: Delta,
    ctx: Context,
    hold: contextlib.ExitStack,
    registry: list[ImageReference] | None = None,
) -> None:
    """Before a delta is loaded: what it lacks is what it says it omits, and the store has
    every one of those blobs (with its size). The store's gc guard is taken into ``hold``
    before the blobs are looked at: a prune must not delete one (an image removed meanwhile
    leaves them unreferenced) between this check and the copy that names it again.

    With ``registry`` (each image's destination there), each omitted blob must be in the
    repository of every image that uses it: a copy finds it there and sends nothing."""
    from clusterimage.store import Store

    walked = _walk(images, ctx)
    if walked.absent_documents:
        raise TransportError(
            f"{input}: the bundle lacks {_named(walked.absent_documents)} (manifests and "
            "configs are never left out): damaged"
        )
    if not delta.matches(walked.absent):
        raise TransportError(
            f"{input}: {_missing(len(walked.absent))} from the bundle, but its "
            f"index says it omits {delta.count} ({DELTA_OMITTED_DIGEST} {delta.list_digest}): "
            "damaged, or not written by save --delta-from"
        )
    if registry is not None:
        _check_registry_has(input, delta, walked, registry, ctx)
        return
    root = store_root(ctx)
    store = Store.existing(root)
    if store is not None:
        hold.enter_context(store.writing())
    missing: list[str] = []
    for digest, size in sorted(walked.absent.items()):
        try:
            found = store is not None and store.blob_size(Digest.parse(digest)) == size
        except ClusterImageError:
            found = False
        if not found:
            missing.append(digest)
    if missing:
        base = ", ".join(delta.bases) or "none"
        raise TransportError(
            f"{input}: a delta bundle (base inventory {base}) that leaves out "
            f"{count(len(missing), 'blob')} the store {root} lacks: {_named(missing)}; load its "
            "base bundle first (nothing was loaded)"
        )


def _check_registry_has(
    input: str, delta: Delta, walked: _Walked, registry: list[ImageReference], ctx: Context
) -> None:
    missing: dict[str, None] = {}  # ordered, once each
    where: set[str] = set()
    for target, absent in zip(registry, walked.absent_by_image, strict=True):
        if not absent:
            continue
        with target.new_destination(ctx) as dest:
            for digest, size in sorted(absent.items()):
                # The media type is not asked: a registry finds a blob by digest alone.
                if not dest.has_blob(Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(digest), size)):
                    missing[digest] = None
                    where.add(target.docker_reference().name)  # type: ignore[union-attr]
    if missing:
        base = ", ".join(delta.bases) or "none"
        raise TransportError(
            f"{input}: a delta bundle (base inventory {base}) that leaves out "
            f"{count(len(missing), 'blob')} not in {', '.join(sorted(where))}: "
            f"{_named(list(missing))}; load its base bundle there first (nothing was loaded)"
        )


def _missing(number: int) -> str:
    """``1 blob is missing``, ``2 blobs are missing``."""
    return f"{count(number, 'blob')} {'is' if number == 1 else 'are'} missing"


def _named(digests: Sequence[str]) -> str:
    shown = ", ".join(digests[:_SHOWN])
    more = len(digests) - _SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


@dataclass
class _Walked:
    """The blobs a bundle's images use: those it has (digest -> (size, kind)), the layers it
    lacks (digest -> size), and any manifest or config it lacks."""

    images: list[dict[str, str | None]] = field(default_factory=list)
    present: dict[str, tuple[int, str]] = field(default_factory=dict)
    absent: dict[str, int] = field(default_factory=dict)
    absent_documents: list[str] = field(default_factory=list)
    absent_by_image: list[dict[str, int]] = field(default_factory=list)  # as ``images``


def _walk(images: list[ImageReference], ctx: Context) -> _Walked:
    walked = _Walked()
    for image in images:
        with image.new_source(ctx) as source:
            top = source.get_manifest()
            name = image.docker_reference()
            walked.images.append(
                {"name": str(name) if name is not None else None, "digest": str(top.digest)}
            )
            walked.present[str(top.digest)] = (top.size, "manifest")
            mine: dict[str, int] = {}
            walked.absent_by_image.append(mine)
            pending = [top]
            while pending:
                manifest = pending.pop()
                if isinstance(manifest, ImageIndex):
                    for entry in manifest.manifests:
                        try:
                            pending.append(source.get_manifest(entry.digest))
                        except BlobNotFound:
                            walked.absent_documents.append(str(entry.digest))
                            continue
                        walked.present[str(entry.digest)] = (entry.size, "manifest")
                    continue
                assert isinstance(manifest, ImageManifest)
                for blob in manifest.blobs:
                    digest = str(blob.digest)
                    if digest in walked.absent:  # another image lacks it too
                        mine[digest] = blob.size
                    if digest in walked.present or digest in walked.absent:
                        continue
                    is_config = blob.digest == manifest.config.digest
                    if _present(source, blob):
                        walked.present[digest] = (blob.size, "config" if is_config else "layer")
                    elif is_config:
                        walked.absent_documents.append(digest)
                    else:
                        walked.absent[digest] = mine[digest] = blob.size
    return walked


def _present(source: ImageSource, desc: Descriptor) -> bool:
    """Whether the bundle holds the blob (opening it reads nothing: archives seek, layouts
    open a file). One that is there but wrong counts as there: verify names it."""
    try:
        with source.open_blob(desc):
            return True
    except BlobNotFound:
        return False
    except ClusterImageError:
        return True


def read_delta(path: Path, format: BundleFormat) -> Delta | None:
    """The delta annotations of the bundle at ``path`` (None: a full bundle)."""
    from clusterimage.store.layout import read_index_bytes
    from clusterimage.transports._tararchive import TarIndex

    where = str(path)
    if format is BundleFormat.docker_archive:
        return None
    if format is BundleFormat.oci_dir:
        raw: bytes | None = read_index_bytes(path / "index.json")
    else:
        raw = TarIndex.read(path, where).read_small("index.json", where)
    if raw is None:
        return None
    annotations = json_object(raw, f"{where}: index.json").get("annotations")
    if not isinstance(annotations, dict):
        return None
    return Delta.from_annotations(annotations, where)


@dataclass(frozen=True)
class Inventory:
    """What a bundle holds (see :func:`inventory`); ``digest`` is that of :meth:`raw`."""

    data: dict[str, Any]
    digest: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Inventory:
        return cls(data, f"sha256:{hashlib.sha256(_canonical(data)).hexdigest()}")

    def raw(self) -> bytes:
        return _canonical(self.data)

    def blobs(self) -> dict[str, int]:
        return {b["digest"]: b["size"] for b in self.data["blobs"]}


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def inventory(path: Path, ctx: Context) -> Inventory:
    """The inventory of the bundle at ``path``: its images, and every blob it holds
    (manifests, configs, layers) with size and kind; a delta's omitted blobs are not in it."""
    format = detect_format(path)
    bundle = transports.parse(f"{format.transport}:{path}")
    walked = _walk(bundle.list_images(ctx), ctx)
    delta = read_delta(path, format)
    data: dict[str, Any] = {
        "format": INVENTORY_FORMAT,
        "version": INVENTORY_VERSION,
        "bundleFormat": format.value,
        "images": walked.images,
        "blobs": [
            {"digest": digest, "size": size, "kind": kind}
            for digest, (size, kind) in sorted(walked.present.items())
        ],
    }
    if delta is not None:
        data["delta"] = delta.to_dict()
    return Inventory.of(data)


def read_inventory(source: str, ctx: Context) -> Inventory:
    """``source`` as an inventory: a JSON file ``bundle inventory`` wrote, or a bundle (file
    or OCI layout folder) whose inventory is made here."""
    path = Path(source)
    if not path.exists():
        raise TransportError(f"--delta-from {source}: no such file or folder")
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
        if head.startswith(b"{"):
            return _parse_inventory(path)
    elif not path.is_dir():  # a pipe (--delta-from <(...)): read once, as an inventory
        return _parse_inventory(path)
    try:
        return inventory(path, ctx)
    except ClusterImageError as exc:
        raise TransportError(
            f"--delta-from {source}: neither an inventory nor a bundle ({exc})"
        ) from None


def _parse_inventory(path: Path) -> Inventory:
    where = f"--delta-from {path}"
    # Read, not stat'ed: a pipe (--delta-from <(ssh site cat inv.json)) has no size.
    with path.open("rb") as stream:
        raw = stream.read(_INVENTORY_LIMIT + 1)
    if len(raw) > _INVENTORY_LIMIT:
        raise TransportError(f"{where}: larger than {_INVENTORY_LIMIT} bytes: not an inventory")
    try:
        data = json_object(raw, where)
    except ManifestError as exc:
        raise TransportError(str(exc)) from None
    if data.get("format") != INVENTORY_FORMAT:
        raise TransportError(
            f"{where}: not a bundle inventory (its format is not {INVENTORY_FORMAT!r})"
        )
    if data.get("version") != INVENTORY_VERSION:
        raise TransportError(
            f"{where}: inventory version {data.get('version')!r}; this clusterimage reads "
            f"version {INVENTORY_VERSION}"
        )
    blobs = data.get("blobs")
    if not isinstance(blobs, list):
        raise TransportError(f"{where}: no blobs list")
    for i, blob in enumerate(blobs):
        ok = isinstance(blob, dict) and isinstance(blob.get("size"), int) and blob["size"] >= 0
        try:
            ok = ok and str(Digest.parse(blob["digest"])) == blob["digest"]
        except (InvalidDigest, TypeError, KeyError):
            ok = False
        if not ok:
            raise TransportError(f"{where}: blobs[{i}] is not a digest with a size")
    return Inventory.of(data)


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
    delta: Delta | None = None
    omitted: dict[str, int] = field(default_factory=dict)  # a delta's blobs it left out

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
            "delta": self.delta.to_dict() if self.delta is not None else None,
        }


def _about(image: ImageReference, exc: ClusterImageError) -> str:
    """``exc``'s message, named after ``image`` once (a source's errors often name it)."""
    message = str(exc)
    return message if message.startswith(f"{image}:") else f"{image}: {message}"


def verify(path: Path, ctx: Context) -> VerifyResult:
    """Hash every manifest and blob of every image of the bundle at ``path``. A delta's
    omitted blobs are no damage, as long as they are exactly those its index names."""
    from clusterimage.oci.digest import hash_stream

    format = detect_format(path)
    bundle = transports.parse(f"{format.transport}:{path}")
    result = VerifyResult(format, delta=read_delta(path, format))
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
                        is_layer = blob.digest != manifest.config.digest
                        try:
                            with source.open_blob(blob) as stream:
                                hashed = hash_stream(stream, blob.digest.algorithm)
                        except BlobNotFound:
                            if result.delta is not None and is_layer:
                                result.omitted[str(blob.digest)] = blob.size
                            else:
                                result.problems.append(
                                    f"{image}: blob {blob.digest} is missing from the bundle"
                                )
                            continue
                        except ClusterImageError as exc:  # an archive's size for it is wrong
                            result.problems.append(_about(image, exc))
                            continue  # that blob only: the others are still checked
                        result.blobs += 1
                        result.bytes += hashed.size
                        if hashed.digest() != blob.digest or hashed.size != blob.size:
                            result.problems.append(
                                f"{image}: blob {blob.digest} is damaged: content hashes to "
                                f"{hashed.digest()} ({hashed.size} of {blob.size} bytes)"
                            )
        except ClusterImageError as exc:
            result.problems.append(_about(image, exc))
    if result.delta is not None and not result.delta.matches(result.omitted):
        result.problems.append(
            f"{path}: {_missing(len(result.omitted))} from the delta bundle, but its "
            f"index says it omits {result.delta.count} ({DELTA_OMITTED_DIGEST} "
            f"{result.delta.list_digest})"
        )
    return result
