"""The local store: an OCI image layout whose ref names are full normalised references."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clusterimage.errors import (
    BlobNotFound,
    ImageNotFound,
    InvalidDigest,
    InvalidReference,
    ManifestError,
    StoreError,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import REF_NAME_ANNOTATION, Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.paths import home_store
from clusterimage.store import fsck as _fsck
from clusterimage.store import gc as _gc
from clusterimage.store.layout import (
    MAX_MANIFEST_SIZE,
    IndexEntries,
    Layout,
    entry_name,
    is_blank,
    without_name,
)
from clusterimage.store.walk import Problem

# An image ID: a prefix of the config or manifest digest's hex, optionally with its algorithm.
_ID_RE = re.compile(r"^(?:(sha256|sha512):)?([a-f0-9]{3,128})$")
MIN_ID_PREFIX = 3


class AmbiguousImageID(ImageNotFound):
    """An image-ID prefix matches more than one image."""


@dataclass(frozen=True)
class ImageEntry:
    """One entry of the store's ``index.json``: a name (None when untagged) and a manifest.

    Entries from :meth:`Store.images` know their store, so :attr:`image_id` (podman's IMAGE
    ID, the config digest) reads the manifest on first use only, and once per image."""

    name: str | None
    descriptor: Descriptor
    store: Store | None = field(default=None, compare=False, repr=False)

    @property
    def digest(self) -> Digest:
        """The manifest digest (``images --digests``, ``--json``'s ``digest``)."""
        return self.descriptor.digest

    @property
    def image_id(self) -> Digest:
        """The image ID: :meth:`Store.image_id` of this entry (the config digest of an image,
        the digest of an index); the manifest digest for an entry built without a store."""
        if self.store is None:
            return self.descriptor.digest
        return self.store.image_id(self.descriptor)

    @property
    def id(self) -> str:
        """The image ID's hex (``images`` shows its first 12), as podman and docker show it."""
        return self.image_id.hex

    @property
    def reference(self) -> Reference | None:
        if self.name is None:
            return None
        try:
            return Reference.parse(self.name)
        except InvalidReference:
            return None


@dataclass(frozen=True)
class ImageSummary:
    """What ``images`` and ``inspect`` show about an image or index."""

    digest: Digest
    media_type: str
    size: int  # manifests + configs + layers, each blob counted once
    created: str | None
    platforms: tuple[Platform, ...] = ()
    missing: int = 0  # blobs its image manifests name that the store lacks (fsck repairs)
    # The config ``created`` comes from (its labels for ``images``): read once, kept.
    config: ImageConfig | None = field(default=None, compare=False, repr=False)


@dataclass
class RemoveResult:
    untagged: list[str] = field(default_factory=list)
    deleted: Digest | None = None  # set when the image itself left the index
    image_id: Digest | None = None  # the removed image's ID (config digest), as rmi prints it


@dataclass(frozen=True)
class _Match:
    descriptor: Descriptor
    name: str | None  # the index entry name it was found by; None: by digest or ID
    parent: Digest | None = None  # the index listing it, when it is not an entry itself


class Store(Layout):
    """The local image store; see :mod:`clusterimage.store` for the whole API."""

    def __init__(self, root: Path, create: bool = True) -> None:
        super().__init__(root, create)
        # manifest digest -> the config digest it names (None: an index, or unreadable)
        self._config_digests: dict[Digest, Digest | None] = {}

    @classmethod
    def open(cls, path: Path) -> Store:
        """An existing store; :class:`StoreError` when ``path`` is not an OCI image layout."""
        return cls(path, create=False)

    @classmethod
    def existing(cls, root: Path) -> Store | None:
        """The store at ``root`` for a command that adds no image (images, inspect, fsck, tag,
        rmi, prune): nothing is created. None when nothing was stored yet: ``root`` is an empty
        folder, or the default location and missing (a fresh install). A missing folder that
        was chosen (``--store``, ``$CLUSTERIMAGE_STORE``) is a StoreError: a typo must not
        read as an empty store, nor leave a new one behind.
        """
        root = Path(root)
        if not root.exists():
            if root != home_store():
                raise StoreError(
                    f"no store at {root} (a folder that does not exist); "
                    "check --store or CLUSTERIMAGE_STORE"
                )
            return None
        if root.is_dir() and is_blank(root):
            return None
        return cls(root, create=False)  # a file, or a folder of something else: StoreError

    # -- listing and lookup -----------------------------------------------------------------

    def images(self) -> list[ImageEntry]:
        return [ImageEntry(d.ref_name, d, self) for d in self.entries()]

    def names(self, digest: Digest) -> list[str]:
        """Every name that points at ``digest``."""
        return [e.name for e in self.images() if e.digest == digest and e.name is not None]

    def image_id(self, desc: Descriptor) -> Digest:
        """The image ID podman, buildah and docker show for ``desc`` (an index entry or any
        manifest descriptor): the digest of an image manifest's *config*, so an image has the
        same ID here as there, and keeps it when its manifest is rewritten (recompressed,
        loaded from a docker-archive).

        For an index (a multi-platform image) it is the index's own digest: podman gives a
        manifest list a random ID, we give a stable one. When the manifest cannot be read
        (missing or damaged; ``fsck`` says why) it is the manifest digest too, so every entry
        has an ID. Reads the manifest, bounded, once per manifest digest for this Store.
        """
        config = self._config_digest(desc)
        return config if config is not None else desc.digest

    def _config_digest(self, desc: Descriptor) -> Digest | None:
        """The config digest ``desc``'s image manifest names; None for an index, or a manifest
        that is missing, damaged or not a regular file."""
        if desc.digest in self._config_digests:
            return self._config_digests[desc.digest]
        found: Digest | None = None
        if desc.media_type not in mt.INDEXES:
            try:
                manifest = self.get_manifest(desc.digest, desc.media_type)
            except (BlobNotFound, ManifestError, StoreError):
                return None  # not remembered: a pull may repair it meanwhile
            if isinstance(manifest, ImageManifest):
                found = manifest.config.digest
        # Manifests are content-addressed: the config one names never changes.
        self._config_digests[desc.digest] = found
        return found

    def resolve(self, name: str) -> Descriptor:
        """The manifest ``name`` stands for: a reference, a digest, or an image-ID prefix.

        A name without a registry (``myapp:v1``, ``me/app``) is looked up as
        ``localhost/NAME`` first, where build, tag, merge and load store such names, then as
        Docker's ``docker.io/library/NAME``, as podman does. A name wins over an ID prefix. An
        ID prefix (at least 3 hex, ``sha256:`` optional) matches the image ID (config digest)
        or the manifest digest of an image.

        Raises :class:`ImageNotFound` (:class:`AmbiguousImageID` for a prefix matching several
        images) or :class:`InvalidReference`.
        """
        return self._lookup(name).descriptor

    def _lookup(self, name: str) -> _Match:
        if not isinstance(name, str) or not name:
            raise InvalidReference("invalid reference: empty")
        images = self.images()
        id_match = _ID_RE.match(name)
        try:
            candidates = Reference.local_candidates(name)
        except InvalidReference:
            if not id_match:
                raise
            candidates = []  # 64 hex, or sha256:...: only an ID
        if id_match and candidates and id_match.group(1) is None:
            # Docker and podman look a name up before an ID prefix: `cafe` is the image named
            # cafe when there is one, not another image whose ID starts with cafe.
            named = _by_names(images, candidates)
            if named is not None:
                return named
        if id_match:
            found = self._by_id(images, id_match.group(1), id_match.group(2), name)
            if found is not None:
                return found
        if not candidates:  # looked like an ID (e.g. 64 hex) and no image has it
            raise ImageNotFound(f"{name}: image not known")
        named = _by_names(images, candidates)
        if named is not None:
            return named
        digest = candidates[0].digest
        if digest is not None:
            wanted = {ref.name for ref in candidates}
            for entry in images:
                entry_ref = entry.reference
                if entry.digest == digest and entry_ref and entry_ref.name in wanted:
                    return _Match(_plain(entry.descriptor), None)
            child = self._child(images, digest)
            if child is not None:
                return child
        raise _not_known(name, candidates, as_id=id_match is not None)

    def _by_id(
        self, images: list[ImageEntry], algorithm: str | None, hex_part: str, name: str
    ) -> _Match | None:
        def matches(digest: Digest) -> bool:
            return (algorithm is None or digest.algorithm == algorithm) and digest.hex.startswith(
                hex_part
            )

        # Keyed by manifest digest: two names of one image are one match, not an ambiguity.
        found: dict[Digest, Descriptor] = {}
        for entry in images:
            if matches(entry.digest):
                found.setdefault(entry.digest, _plain(entry.descriptor))
        # Only now, and only for a prefix, are manifests read (each once) for config digests.
        for entry in images:
            if entry.digest not in found:
                config = self._config_digest(entry.descriptor)
                if config is not None and matches(config):
                    found[entry.digest] = _plain(entry.descriptor)
        if len(found) > 1:
            listed = ", ".join(self._candidate(images, d) for d in sorted(found))
            # Manifests of one config (the same image pushed as OCI and as Docker v2s2) share
            # their image ID: more of it cannot choose, a name or manifest digest can.
            ids = {self.image_id(desc) for desc in found.values()}
            hint = (
                "give more of the ID, or a name"
                if len(ids) > 1
                else ("they share one config; give a name or the manifest digest")
            )
            raise AmbiguousImageID(
                f"{name}: ambiguous image ID, matches {len(found)} images: {listed}; {hint}"
            )
        if found:
            return _Match(next(iter(found.values())), None)
        if algorithm is not None:
            try:
                digest = Digest.parse(name)
            except InvalidDigest:
                return None
            return self._child(images, digest)
        return None

    def _candidate(self, images: list[ImageEntry], digest: Digest) -> str:
        """One image of an ambiguous ID: its names, image ID and manifest digest."""
        names = sorted({e.name for e in images if e.digest == digest and e.name is not None})
        desc = next(e.descriptor for e in images if e.digest == digest)
        shown = " ".join(names) if names else "<none>"
        return f"{shown} (ID {self.image_id(desc).short}, manifest {digest.short})"

    def _child(self, images: list[ImageEntry], digest: Digest) -> _Match | None:
        """A manifest listed by an index in the store (one platform of a multi-arch image)."""
        for entry in images:
            try:
                manifest = self.get_manifest(entry.digest, entry.descriptor.media_type)
            except (BlobNotFound, ManifestError):
                continue
            if isinstance(manifest, ImageIndex):
                for child in manifest.manifests:
                    if child.digest == digest:
                        return _Match(child, None, entry.digest)
        return None

    def resolve_named(self, name: str) -> tuple[Descriptor, str | None]:
        """:meth:`resolve`, and the index-entry name the image was found by (``myapp:v1`` ->
        ``localhost/myapp:v1`` when that is what the store holds; None when found by ID or
        digest)."""
        match = self._lookup(name)
        return match.descriptor, match.name

    # -- names ------------------------------------------------------------------------------

    def tag(self, image: Descriptor | str, ref: str | Reference) -> Reference:
        """Give the image (a descriptor, or anything :meth:`resolve` takes) the name ``ref``;
        a name that pointed elsewhere moves, and an image left without names stays untagged
        (``<none>`` in ``images``, removed by ``prune``), as in podman. A name given as a str
        without a registry is ``localhost/NAME``, as podman tags it. Returns the name."""
        target = ref if isinstance(ref, Reference) else Reference.parse_local(ref)
        if target.digest is not None:
            raise InvalidReference(f"cannot tag with a digest: {target}")
        with self.writing():
            desc = self.resolve(image) if isinstance(image, str) else image
            if desc.platform is None:
                described = self.describe(self.get_manifest(desc.digest, desc.media_type))
                # The digest stays the one it is stored under (sha512 in some layouts), not
                # the sha256 that a manifest computes from its bytes.
                desc = _with_annotations_of(replace(described, digest=desc.digest), desc)
            self.set_ref(str(target), desc, keep_replaced=True)
        return target

    def untag(self, ref: str | Reference) -> Descriptor:
        """Remove the name ``ref``. The image stays (untagged) when no other name has it.

        A str without a registry is the first of ``localhost/NAME``, ``docker.io/library/NAME``
        that the store holds."""
        if isinstance(ref, Reference):
            candidates = [ref]
        else:
            candidates = Reference.local_candidates(ref)
            held = {e.name for e in self.images()}
            candidates = [c for c in candidates if str(c) in held][:1] or candidates[:1]
        name = str(candidates[0])
        removed: list[dict[str, Any]] = []

        def change(entries: IndexEntries) -> IndexEntries:
            removed.clear()
            out = [e for e in entries if entry_name(e) != name]
            removed.extend(e for e in entries if entry_name(e) == name)
            if removed and not any(e.get("digest") == removed[0].get("digest") for e in out):
                out.append(without_name(removed[0]))
            return out

        self.update_index(change)
        if not removed:
            raise ImageNotFound(f"{name}: no image has this name")
        return _plain(Descriptor.from_dict(removed[0]))

    def remove(self, name: str, force: bool = False) -> RemoveResult:
        """``rmi``: by name, remove that name, and the image with its last name; by ID or
        digest, remove the image, which with several names needs ``force``."""
        match = self._lookup(name)
        if match.parent is not None:
            raise StoreError(
                f"{name}: this manifest is part of the multi-platform image {match.parent.short}; "
                "remove that image instead"
            )
        digest = str(match.descriptor.digest)
        result = RemoveResult(image_id=self.image_id(match.descriptor))

        def change(entries: IndexEntries) -> IndexEntries:
            result.untagged.clear()
            result.deleted = None
            same = [e for e in entries if e.get("digest") == digest]
            if match.name is not None:
                out = [e for e in entries if entry_name(e) != match.name]
                result.untagged.append(match.name)
            else:
                names = [n for e in same if (n := entry_name(e)) is not None]
                if len(names) > 1 and not force:
                    raise StoreError(
                        f"image {self.image_id(match.descriptor).short} has several names "
                        f"({', '.join(names)}): remove them by name, or use --force"
                    )
                out = [e for e in entries if e.get("digest") != digest]
                result.untagged.extend(names)
            if not any(e.get("digest") == digest for e in out):
                result.deleted = match.descriptor.digest
            return out

        self.update_index(change)
        return result

    def remove_dangling(self) -> list[Descriptor]:
        """Drop every image that has no name (``prune``); returns what left the index."""
        removed: list[Descriptor] = []

        def change(entries: IndexEntries) -> IndexEntries:
            removed.clear()
            removed.extend(Descriptor.from_dict(e) for e in entries if entry_name(e) is None)
            return [e for e in entries if entry_name(e) is not None]

        self.update_index(change)
        return removed

    # -- what images and inspect show -------------------------------------------------------

    def summarize(self, desc: Descriptor, platform: Platform | None = None) -> ImageSummary:
        """Size, creation time and platforms of an image or index (its blobs counted once).

        For an index, ``created`` is that of the image for ``platform`` (default: the host's),
        else of its first image in the store.
        """
        seen: set[Digest] = set()
        size = 0
        missing = 0
        created: str | None = None
        chosen: ImageConfig | None = None
        platforms: list[Platform] = []
        want = platform or Platform.host()

        def count(d: Descriptor) -> None:
            nonlocal size, missing
            if d.digest in seen:
                return
            seen.add(d.digest)
            if self.has_blob(d.digest):
                size += d.size
            else:
                missing += 1

        top = self.get_manifest(desc.digest, desc.media_type)
        # Counted by the digests they are stored under: a manifest's own .digest is the
        # sha256 of its bytes, and some layouts name manifests by sha512.
        count(_stored(top, desc))
        images: list[tuple[Descriptor, ImageManifest]] = []
        if isinstance(top, ImageIndex):
            for child in top.manifests:
                if child.platform is not None:
                    platforms.append(child.platform)
                try:
                    manifest = self.get_manifest(child.digest, child.media_type)
                except BlobNotFound:
                    continue
                if isinstance(manifest, ImageManifest):
                    images.append((child, manifest))
        else:
            images.append((desc, top))
            self._config_digests[desc.digest] = top.config.digest  # image_id reads no more
        created_matches = chosen_matches = False
        for child, manifest in images:
            count(_stored(manifest, child))
            for blob in manifest.blobs:
                count(blob)
            try:
                config = self.get_config(manifest)
            except (BlobNotFound, ManifestError):
                continue
            if not isinstance(top, ImageIndex):
                platforms.append(config.platform)
            matches = child.platform is not None and want.matches(child.platform)
            if created is None or (matches and not created_matches):
                created, created_matches = config.created, matches
            if chosen is None or (matches and not chosen_matches):
                chosen, chosen_matches = config, matches
        return ImageSummary(
            desc.digest, top.media_type, size, created, tuple(platforms), missing, chosen
        )

    # -- maintenance ------------------------------------------------------------------------

    def gc(self, timeout: float = _gc.GC_TIMEOUT) -> _gc.GcResult:
        """Remove blobs that no index entry reaches, and abandoned partial writes.

        Waits up to ``timeout`` seconds for running imports (StoreBusy after that)."""
        return _gc.collect(self, timeout)

    def fsck(self) -> list[Problem]:
        """Every problem found; empty when the store is sound."""
        return self.fsck_report().problems

    def fsck_report(self, *, trust_stamps: bool = False) -> _fsck.FsckReport:
        report = _fsck.check(self, trust_stamps=trust_stamps)
        seen: set[str] = set()
        try:
            entries = self.images()
        except StoreError:
            return report
        for entry in entries:
            if entry.name is None:
                continue
            ref = entry.reference
            if ref is None or str(ref) != entry.name:
                report.problems.append(
                    Problem(
                        "index",
                        f"index.json: ref name {entry.name!r} is not a full normalised reference",
                        entry.digest,
                        entry.name,
                    )
                )
            if entry.name in seen:
                report.problems.append(
                    Problem("index", f"index.json: ref name {entry.name!r} is listed twice")
                )
            seen.add(entry.name)
        return report

    # -- when each name was stored (what `images` sorts by) ---------------------------------

    #: ``.clusterimage/stored.json``: ``{manifest digest: {name ("" untagged): RFC 3339 UTC}}``.
    #: A side file, not an index.json annotation: it never travels with a copy, changes no
    #: digest, and index.json stays what skopeo and umoci expect (entries with annotations only
    #: when named). A reproducible build's config says 1970, so its own time sorts nothing.
    STORED_FILE = "stored.json"

    def set_ref(self, name: str | None, desc: Descriptor, *, keep_replaced: bool = False) -> None:
        """:meth:`Layout.set_ref`, then the time ``name`` was stored recorded (every name the
        store writes goes through here: tag, the store transport, builds). Setting a name to
        the image it already has keeps the first time; a name removed and given again (rmi,
        then pull) is stored anew."""
        # Read before the change: afterwards the name is held either way.
        held = name is not None and any(
            d.ref_name == name and d.digest == desc.digest for d in self.entries()
        )
        super().set_ref(name, desc, keep_replaced=keep_replaced)
        self.note_stored(name, desc.digest, anew=not held)

    def note_stored(self, name: str | None, digest: Digest, *, anew: bool = True) -> None:
        """Record now as the time ``name`` was stored on ``digest``, in :attr:`STORED_FILE`
        only: for a caller that changed index.json itself, under its lock (a manifest list
        edited in place). ``anew=False`` keeps a time already recorded for the name there."""
        from datetime import UTC, datetime

        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self.locked_index():
            digests = {str(d.digest) for d in self.entries()}
            times = {k: v for k, v in self.stored_times().items() if k in digests}
            for other, names in times.items():
                if name is not None and other != str(digest) and name in names:
                    # The name moved: the image it left keeps that time as its untagged one.
                    names.setdefault("", names.pop(name))
            mine = times.setdefault(str(digest), {})
            if name is not None and anew:
                mine[name] = now  # the record of a name since removed is no longer its time
            else:
                mine.setdefault(name or "", now)
            raw = json.dumps(times, separators=(",", ":"), sort_keys=True).encode()
            self._write_atomic(self.state_dir / self.STORED_FILE, raw)

    def stored_times(self) -> dict[str, dict[str, str]]:
        """What :attr:`STORED_FILE` holds; empty when missing or unreadable (a layout another
        tool wrote, an older store): then ``images`` falls back to the created time."""
        path = self.state_dir / self.STORED_FILE
        try:
            # Never blocking nor following a link: the layout may come from elsewhere, and a
            # FIFO planted here must not hang `images`.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as stream:
                info = os.fstat(stream.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_SIZE:
                    return {}
                data = json.loads(stream.read())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(digest): {str(n): t for n, t in names.items() if isinstance(t, str)}
            for digest, names in data.items()
            if isinstance(names, dict)
        }


def _by_names(images: list[ImageEntry], candidates: list[Reference]) -> _Match | None:
    """The first candidate (``localhost/NAME`` before ``docker.io/library/NAME``) an entry has."""
    for ref in candidates:
        named = _by_name(images, str(ref))
        if named is not None:
            return named
    return None


def _by_name(images: list[ImageEntry], full: str) -> _Match | None:
    """The entry named ``full``; else one whose name normalises to it: a layout another tool
    wrote names entries ``v1``, which ``images`` shows as docker.io/library/v1:latest."""
    for entry in images:
        if entry.name == full:
            return _Match(_plain(entry.descriptor), entry.name)
    for entry in images:
        if entry.reference is not None and str(entry.reference) == full:
            return _Match(_plain(entry.descriptor), entry.name)
    return None


def _not_known(name: str, candidates: list[Reference], *, as_id: bool) -> ImageNotFound:
    """``myapp:v1: image not known (tried localhost/myapp:v1, docker.io/library/myapp:v1)``;
    a name that could be an ID prefix (``cafe``) says it was tried as one too."""
    tried = [str(ref) for ref in candidates]
    if as_id:
        tried.append("an image ID prefix")
    if len(tried) > 1:
        return ImageNotFound(f"{name}: image not known (tried {', '.join(tried)})")
    full = tried[0]
    shown = name if full == name else f"{name} ({full})"
    return ImageNotFound(f"{shown}: image not known")


def nothing_stored(name: str, root: Path) -> ImageNotFound:
    """What looking up ``name`` says when :meth:`Store.existing` found no store."""
    return ImageNotFound(f"{name}: image not known (nothing is stored in {root} yet)")


def _plain(desc: Descriptor) -> Descriptor:
    """``desc`` without its ref-name annotation (it names an image, not an index entry)."""
    annotations = {k: v for k, v in (desc.annotations or {}).items() if k != REF_NAME_ANNOTATION}
    return desc.with_annotations(annotations)


def _stored(manifest: Manifest, desc: Descriptor) -> Descriptor:
    """``manifest``'s descriptor with the digest ``desc`` found it by."""
    return replace(manifest.descriptor(), digest=desc.digest)


def _with_annotations_of(desc: Descriptor, source: Descriptor) -> Descriptor:
    return desc.with_annotations(_plain(source).annotations)
