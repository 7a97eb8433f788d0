"""Manifest lists kept in the local store: what podman's ``manifest`` verbs do.

A list is an entry of the store's ``index.json`` whose manifest is an OCI image index (or a
Docker manifest list), exactly as a multi-platform image pulled with ``--all`` is: nothing
marks it apart, so ``push``, ``save``, ``inspect`` and gc treat it as any image. Its entries
name image manifests whose blobs are in the store too: ``add`` copies an image from elsewhere
in with the copy engine, so a list is always complete, gc keeps what it reaches, and ``push``
needs nothing but the store.

Every edit is one read-modify-write of ``index.json`` under its lock: the list is re-read
there, the new index is written as a blob, and the entry moves to it, so two edits at once
never lose one another. Edits keep the list's position and its other names alone (two empty
lists have the same digest, and editing one must not change the other).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from clusterimage.copy import CopyOptions, CopyResult, copy_from, copy_image
from clusterimage.errors import (
    ClusterImageError,
    ImageNotFound,
    InvalidDigest,
    InvalidReference,
    ManifestError,
    UsageError,
)
from clusterimage.image import select_platform
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import REF_NAME_ANNOTATION, Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest, canonical_json
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.store import Store
from clusterimage.store.layout import IndexEntries, entry_name
from clusterimage.transports import is_transport_reference
from clusterimage.transports import parse as parse_transport
from clusterimage.transports._layout import LayoutDestination, LayoutSource
from clusterimage.transports.base import Context, ImageDestination, ImageReference, ImageSource

#: ``push --format`` values, as podman spells them.
FORMATS = ("oci", "v2s2")

_CONFIGS = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})
_WORD = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class NotAList(ClusterImageError):
    """The name is that of an image, not of a manifest list."""


# -- flags ------------------------------------------------------------------------------------


def parse_annotations(values: Sequence[str] | None) -> dict[str, str]:
    """``--annotation KEY=VALUE`` values as a dict (a later KEY wins); UsageError otherwise."""
    out: dict[str, str] = {}
    for value in values or ():
        key, sep, val = value.partition("=")
        if not sep or not key.strip() or key != key.strip():
            raise UsageError(f"--annotation {value!r}: expected KEY=VALUE")
        out[key] = val
    return out


def _words(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """A repeatable, comma-separated flag (``--features a,b --features c``), as pflag reads it."""
    if values is None:
        return None
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class PlatformFlags:
    """``--os --arch --variant --os-version --features --os-features``: None = not given."""

    os: str | None = None
    arch: str | None = None
    variant: str | None = None
    os_version: str | None = None
    features: tuple[str, ...] | None = None
    os_features: tuple[str, ...] | None = None

    @classmethod
    def parse(
        cls,
        *,
        os: str | None = None,
        arch: str | None = None,
        variant: str | None = None,
        os_version: str | None = None,
        features: Sequence[str] | None = None,
        os_features: Sequence[str] | None = None,
    ) -> PlatformFlags:
        """Checked flags: an OS or architecture must be one Go knows (a typo is an error, not
        a platform nobody builds for), a variant one word."""
        if os is not None:
            parsed = _known(os, "--os")
            if parsed.os != os.strip().lower():
                raise UsageError(f"--os {os!r}: not an operating system (e.g. linux, windows)")
            os = parsed.os
        if arch is not None:
            parsed = _known(arch, "--arch")
            wanted = Platform("linux", arch.strip().lower()).normalized().architecture
            if parsed.architecture != wanted:
                raise UsageError(f"--arch {arch!r}: not an architecture (e.g. amd64, arm64)")
            arch = parsed.architecture
        if variant is not None and not _WORD.match(variant):
            raise UsageError(f"--variant {variant!r}: expected one word (e.g. v7, v8)")
        if os_version is not None and not os_version.strip():
            raise UsageError("--os-version: empty")
        return cls(os, arch, variant, os_version, _words(features), _words(os_features))

    def given(self) -> bool:
        return any(getattr(self, f.name) is not None for f in dataclasses.fields(self))

    def selection(self) -> Platform | None:
        """The platform to take from an index added without ``--all`` (None: the host's)."""
        if self.os is None and self.arch is None:
            return None
        host = Platform.host()
        arch = self.arch or host.architecture
        return Platform(self.os or "linux", arch, self.variant).normalized()

    def apply(self, platform: dict[str, Any] | None) -> dict[str, Any] | None:
        """An entry's ``platform`` with these flags set over it (None when it stays empty)."""
        out = dict(platform or {})
        for key, value in (
            ("os", self.os),
            ("architecture", self.arch),
            ("variant", self.variant),
            ("os.version", self.os_version),
        ):
            if value is not None:
                if value:
                    out[key] = value
                else:
                    out.pop(key, None)
        for key, values in (("features", self.features), ("os.features", self.os_features)):
            if values is not None:
                if values:
                    out[key] = list(values)
                else:
                    out.pop(key, None)
        return out or None


def _known(value: str, flag: str) -> Platform:
    try:
        return Platform.parse(value)
    except UsageError:
        raise UsageError(f"{flag} {value!r}: unknown (e.g. --os linux --arch arm64)") from None


# -- finding a list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestList:
    """A list in the store: the name of its index.json entry, that entry, its index."""

    name: str
    descriptor: Descriptor
    index: ImageIndex

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    def digests(self) -> list[Digest]:
        return [d.digest for d in self.index.manifests]


def find_list(store: Store | None, name: str) -> ManifestList:
    """The list ``name`` names (a name as ``resolve`` finds it, an ID or a digest with one
    name); ImageNotFound or NotAList with a one-line message otherwise."""
    if store is None:
        raise ImageNotFound(f"{name}: manifest list not known (nothing is stored yet)")
    try:
        desc, found = store.resolve_named(name)
    except ImageNotFound:
        raise _unknown(name) from None
    if found is None:
        names = sorted(set(store.names(desc.digest)))
        if len(names) != 1:
            if desc.media_type in mt.INDEXES and names:
                raise UsageError(
                    f"{name}: the manifest list named {', '.join(names)}; give one of the names"
                )
            if desc.media_type in mt.INDEXES:
                raise ImageNotFound(f"{name}: this index has no name in the store; give a name")
            raise _not_a_list(name, desc.media_type)
        found = names[0]
    entry = next((e for e in store.read_index()["manifests"] if entry_name(e) == found), None)
    if entry is None:  # removed since it was looked up
        raise _unknown(name)
    return _list_of(store, found, entry, name)


def _list_of(store: Store, name: str, entry: dict[str, Any], asked: str) -> ManifestList:
    desc = Descriptor.from_dict(entry, f"index.json entry {name}")
    if desc.media_type and desc.media_type not in mt.INDEXES:
        raise _not_a_list(asked, desc.media_type)
    manifest = store.get_manifest(desc.digest, desc.media_type)
    if not isinstance(manifest, ImageIndex):
        raise _not_a_list(asked, manifest.media_type)
    return ManifestList(name, desc, manifest)


def _unknown(name: str) -> ImageNotFound:
    try:
        tried = [str(ref) for ref in Reference.local_candidates(name)]
    except InvalidReference:
        tried = []
    also = f" (tried {', '.join(tried)})" if tried and tried != [name] else ""
    return ImageNotFound(f"{name}: manifest list not known{also}")


def _not_a_list(name: str, media_type: str) -> NotAList:
    return NotAList(
        f"{name}: is an image ({media_type}), not a manifest list; "
        "make a list with `clusterimage manifest create`"
    )


# -- editing ----------------------------------------------------------------------------------


def _store_index(store: Store, data: dict[str, Any]) -> ImageIndex:
    """Write the index ``data`` as a blob (an OCI index once anything only OCI can say is
    in it, as podman's lists switch) and return it."""
    if data.get("mediaType") == mt.DOCKER_MANIFEST_LIST and _needs_oci(data):
        data["mediaType"] = mt.OCI_INDEX
    raw = canonical_json(data)
    store.put_bytes(raw)
    return ImageIndex(raw, str(data.get("mediaType") or mt.OCI_INDEX), data)


def _needs_oci(data: dict[str, Any]) -> bool:
    if data.get("annotations") or data.get("subject") or data.get("artifactType"):
        return True
    return any(
        e.get("annotations")
        or e.get("artifactType")
        or (e.get("platform") or {}).get("os.features")
        for e in data.get("manifests") or []
    )


def _entry(name: str, index: ImageIndex) -> dict[str, Any]:
    desc = index.descriptor(annotations={REF_NAME_ANNOTATION: name})
    return desc.to_dict()


def put_list(
    store: Store, full: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> ManifestList:
    """Store the list named ``full`` as ``change`` makes it from the list's current index data
    (a copy to change; None when there is no such list yet), and return it.

    One read-modify-write of index.json under its lock: the list is re-read there, so an edit
    that landed meanwhile is kept. A name that holds an image, not a list, is NotAList."""
    result: list[ManifestList] = []

    def update(entries: IndexEntries) -> IndexEntries:
        result.clear()
        position = next((i for i, e in enumerate(entries) if entry_name(e) == full), -1)
        current = None
        if position >= 0:
            current = copy.deepcopy(_list_of(store, full, entries[position], full).index.data)
        index = _store_index(store, change(current))
        out = list(entries)
        if position < 0:
            out.append(_entry(full, index))
        else:
            out[position] = _entry(full, index)
        result.append(ManifestList(full, index.descriptor(), index))
        return out

    # The new index blob is referenced only once index.json is written: hold gc off till then.
    with store.writing():
        store.update_index(update)
    store.note_stored(full, result[0].descriptor.digest)  # made or edited now: listed first
    return result[0]


def _edit(store: Store, name: str, change: Callable[[dict[str, Any]], None]) -> ManifestList:
    """Apply ``change`` to the list's index data, atomically (see :func:`put_list`)."""
    found = find_list(store, name)  # a clear error before the lock is taken

    def edited(data: dict[str, Any] | None) -> dict[str, Any]:
        if data is None:
            raise _unknown(name)  # removed meanwhile
        change(data)
        return data

    return put_list(store, found.name, edited)


def _put_entries(data: dict[str, Any], entries: Sequence[dict[str, Any]]) -> None:
    """Add ``entries``; one whose digest is listed already replaces that entry (at the end,
    as podman's AddInstance removes and appends)."""
    out = list(data.get("manifests") or [])
    for entry in entries:  # one at a time: the same image given twice is listed once
        out = [e for e in out if e.get("digest") != entry["digest"]]
        out.append(dict(entry))
    data["manifests"] = out


def create(
    store: Store,
    name: str,
    images: Sequence[str] = (),
    ctx: Context | None = None,
    *,
    all_images: bool = False,
    amend: bool = False,
    annotations: dict[str, str] | None = None,
) -> ManifestList:
    """``manifest create``: an empty OCI index under ``name`` (``localhost/NAME`` without a
    registry), with ``images`` added. An existing name is refused unless ``amend``, which
    then adds to that list (it must be one)."""
    ref = Reference.parse_local(name)
    if ref.digest is not None:
        raise InvalidReference(f"{name}: a manifest list is named by a tag, not a digest")
    full = str(ref)
    if not amend and any(entry_name(e) == full for e in store.read_index()["manifests"]):
        raise _exists(name, full)  # before any image is copied; checked again under the lock
    with store.writing():
        # Fetched before the list is made: a failing image leaves no half-made list.
        added = [e for image in images for e in _fetch(store, image, ctx, all_images, None)]

        def made(data: dict[str, Any] | None) -> dict[str, Any]:
            if data is None:
                data = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
            elif not amend:
                raise _exists(name, full)
            if annotations:
                data["annotations"] = {**(data.get("annotations") or {}), **annotations}
            _put_entries(data, added)
            return data

        return put_list(store, full, made)


def _exists(name: str, full: str) -> ClusterImageError:
    return ClusterImageError(
        f"{name}: {full} exists already; use --amend to add to that list, or another name"
    )


def add(
    store: Store,
    name: str,
    image: str,
    ctx: Context | None = None,
    *,
    all_images: bool = False,
    platform: PlatformFlags | None = None,
    annotations: dict[str, str] | None = None,
) -> tuple[ManifestList, list[Digest]]:
    """``manifest add``: put ``image`` (one platform of it, or with ``all_images`` each) in
    the list; returns the list and the digests added. ``platform`` flags override what the
    image's config (or the index it came from) says, and choose the platform of an index."""
    platform = platform or PlatformFlags()
    if all_images and platform.given():
        raise UsageError(
            "--all adds each image with its own platform: --os, --arch, --variant, "
            "--os-version and --features apply to one image"
        )
    find_list(store, name)  # before anything is copied
    with store.writing():
        entries = _fetch(store, image, ctx, all_images, platform)
        for entry in entries:
            if platform.given():
                entry["platform"] = platform.apply(entry.get("platform"))
                if entry["platform"] is None:
                    del entry["platform"]
            if annotations:
                entry["annotations"] = {**(entry.get("annotations") or {}), **annotations}
        found = _edit(store, name, lambda data: _put_entries(data, entries))
    return found, [Digest.parse(e["digest"]) for e in entries]


def annotate(
    store: Store,
    name: str,
    target: str | None,
    *,
    platform: PlatformFlags | None = None,
    annotations: dict[str, str] | None = None,
    on_index: bool = False,
) -> tuple[ManifestList, Digest | None]:
    """``manifest annotate``: set the platform fields and annotations of the entry ``target``
    names (a digest, or an image of the store), or with ``on_index`` the list's own
    annotations. Returns the list and the entry's digest."""
    platform = platform or PlatformFlags()
    if on_index:
        if platform.given():
            raise UsageError("--index annotates the list itself: only --annotation applies")
        if not annotations:
            raise UsageError("--index: give the annotations to set with --annotation KEY=VALUE")

        def change_index(data: dict[str, Any]) -> None:
            data["annotations"] = {**(data.get("annotations") or {}), **(annotations or {})}

        return _edit(store, name, change_index), None
    if target is None:
        raise UsageError("name the image to annotate: its digest, or its name in the store")
    if not platform.given() and not annotations:
        raise UsageError(
            "nothing to annotate: give --annotation, --os, --arch, --variant, --os-version, "
            "--features or --os-features"
        )
    found = find_list(store, name)
    digest = _target_digest(store, found, target)

    def change(data: dict[str, Any]) -> None:
        for entry in data.get("manifests") or []:
            if entry.get("digest") == str(digest):
                platform_dict = platform.apply(entry.get("platform"))
                if platform_dict is None:
                    entry.pop("platform", None)
                else:
                    entry["platform"] = platform_dict
                if annotations:
                    entry["annotations"] = {**(entry.get("annotations") or {}), **annotations}
                return
        raise ImageNotFound(f"{digest}: not in the manifest list {found.name}")

    return _edit(store, name, change), digest


def _target_digest(store: Store, found: ManifestList, target: str) -> Digest:
    """The entry ``target`` means: a digest as given, else the manifest digest of the image of
    that name in the store; ImageNotFound when the list has no such entry.

    A multi-platform image of the store (added with ``manifest add --all``) is in the list
    by its platforms' digests, not its own: the one of its platforms the list holds, or of
    several, this host's (as podman resolves a name to an image)."""
    try:
        digest = Digest.parse(target)
    except InvalidDigest:
        try:
            desc = store.resolve(target)
        except (ImageNotFound, InvalidReference) as exc:
            raise ImageNotFound(
                f"{target}: neither a digest nor an image in the store ({exc})"
            ) from None
        digest = desc.digest
        if digest not in found.digests() and desc.media_type in mt.INDEXES:
            digest = _platform_entry(store, found, target, desc)
    if digest not in found.digests():
        raise ImageNotFound(f"{digest}: not in the manifest list {found.name}")
    return digest


def _platform_entry(store: Store, found: ManifestList, target: str, desc: Descriptor) -> Digest:
    index = store.get_manifest(desc.digest, desc.media_type)
    assert isinstance(index, ImageIndex)
    listed = [e for e in index.manifests if e.digest in found.digests()]
    if len(listed) == 1:
        return listed[0].digest
    host = Platform.host()
    mine = [e for e in listed if e.platform is not None and host.matches(e.platform)]
    if mine:
        return mine[0].digest
    if not listed:
        return desc.digest  # not in the list: the caller says so
    platforms = ", ".join(str(e.platform or e.digest) for e in listed)
    raise ImageNotFound(
        f"{target}: {len(listed)} of its platforms are in the manifest list {found.name} "
        f"({platforms}), none this host's; give the digest of the one to annotate"
    )


def remove(store: Store, name: str, digest: str) -> ManifestList:
    """``manifest remove``: drop the entry with ``digest`` from the list."""
    try:
        wanted = Digest.parse(digest)
    except InvalidDigest as exc:
        raise UsageError(f"{exc}: manifest remove takes the digest of an entry") from None

    def change(data: dict[str, Any]) -> None:
        entries = data.get("manifests") or []
        kept = [e for e in entries if e.get("digest") != str(wanted)]
        if len(kept) == len(entries):
            raise ImageNotFound(f"{wanted}: not in the manifest list {name}")
        data["manifests"] = kept

    return _edit(store, name, change)


def delete(store: Store, names: Sequence[str]) -> list[tuple[str, Digest | None]]:
    """``manifest rm``: remove each list's name (and the list with its last name), never the
    images it lists. Every name is checked first: one that is no list removes nothing.
    Returns (name removed, list digest when the list left the store)."""
    # One list given twice (or by two spellings of its name) is removed once, as podman does.
    found = {item.name: item for item in (find_list(store, name) for name in names)}
    out: list[tuple[str, Digest | None]] = []
    for item in found.values():
        result = store.remove(item.name)
        out.append((item.name, result.deleted))
    return out


# -- bringing images in -----------------------------------------------------------------------


class _BlobsOnly(LayoutDestination):
    """Writes an image's blobs and manifests into the store, adding no index.json entry: the
    list that will name it is what keeps it (the caller holds gc off till then)."""

    def name_top(self, manifest: Manifest) -> None:
        return None


def _image_reference(store: Store, image: str) -> tuple[ImageReference | None, Descriptor | None]:
    """Where ``image`` is: TRANSPORT:REF as given; else an image of the store when there is
    one of that name (podman looks in local storage first), else ``docker://IMAGE``."""
    if is_transport_reference(image):
        ref = parse_transport(image)
        from clusterimage.transports.store import StoreReference

        if isinstance(ref, StoreReference) and ref.name:
            return None, store.resolve(ref.name)
        return ref, None
    try:
        return None, store.resolve(image)
    except ImageNotFound:
        pass
    return parse_transport(image, default="docker"), None


def _fetch(
    store: Store,
    image: str,
    ctx: Context | None,
    all_images: bool,
    platform: PlatformFlags | None,
) -> list[dict[str, Any]]:
    """The index entries for ``image``, its blobs copied into the store when they come from
    elsewhere (the caller holds the store's gc guard)."""
    ctx = ctx or Context(store_dir=store.root)
    ref, local = _image_reference(store, image)
    want = (platform.selection() if platform else None) or ctx.platform or Platform.host()
    hint = "choose one with --os/--arch/--variant, or add them all with --all"
    if local is not None:
        source: ImageSource = LayoutSource(store, local)
        top = source.get_manifest()
        digest = local.digest
        if isinstance(top, ImageIndex) and not all_images:
            digest = select_platform(top, want, source.get_manifest, where=image, hint=hint).digest
    else:
        assert ref is not None
        picked = dataclasses.replace(ctx, platform=want)
        with ref.new_source(picked) as remote:
            top = remote.get_manifest()  # read once: the copy starts from it
            dest = _BlobsOnly(store)
            try:
                options = CopyOptions(all_platforms=all_images)
                result = copy_from(remote, top, dest, picked, options, str(ref))
            finally:
                dest.close()
        digest = result.digest
    if isinstance(top, ImageIndex) and all_images:
        return [copy.deepcopy(e) for e in top.data.get("manifests") or []]
    listed = None
    if isinstance(top, ImageIndex):
        listed = next(
            (e for e in top.data.get("manifests") or [] if e.get("digest") == str(digest)), None
        )
    return [_image_entry(store, digest, listed)]


def _image_entry(store: Store, digest: Digest, listed: dict[str, Any] | None) -> dict[str, Any]:
    """The entry for the image manifest ``digest`` of the store: what the index it came from
    said of it (platform, annotations), the platform of its config where that said none."""
    manifest = store.get_manifest(digest)
    entry: dict[str, Any] = copy.deepcopy(listed) if listed else {}
    entry.update({"mediaType": manifest.media_type, "digest": str(digest), "size": manifest.size})
    artifact = manifest.data.get("artifactType")
    if isinstance(artifact, str) and artifact:
        entry["artifactType"] = artifact
    platform = entry.get("platform") or {}
    has_platform = platform.get("os") and platform.get("architecture")
    if (
        isinstance(manifest, ImageManifest)
        and not has_platform
        and manifest.config.media_type in _CONFIGS
    ):
        config = store.get_config(manifest).platform
        if config.os and config.architecture:
            entry["platform"] = {**config.to_dict(), **platform}
    return entry


# -- reading and pushing ----------------------------------------------------------------------


def inspect(store: Store | None, name: str, ctx: Context) -> Manifest:
    """``manifest inspect``: the list of that name in the store; else (no such image, or an
    image that is not a list, as podman does) the manifest at ``name`` in its registry, or at
    TRANSPORT:REF."""
    if not is_transport_reference(name) and store is not None:
        try:
            return find_list(store, name).index
        except (ImageNotFound, NotAList, InvalidReference):
            pass
    ref = parse_transport(name, default="docker")
    with ref.new_source(ctx) as source:
        return source.get_manifest()


def convert_manifest(manifest: Manifest, fmt: str) -> Manifest:
    """``manifest`` as an OCI (``oci``) or Docker schema2 (``v2s2``) document; the same object
    when it is one already. Configs stay the same bytes (both formats read them).
    ManifestError for what the other format cannot say (zstd layers in v2s2, an artifact)."""
    docker = fmt == "v2s2"
    where = f"manifest {manifest.digest}"
    if isinstance(manifest, ImageIndex):
        target = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    else:
        target = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    if manifest.media_type == target:
        return manifest
    data = copy.deepcopy(manifest.data)
    data["mediaType"] = target
    if docker:
        for key in ("annotations", "subject", "artifactType"):
            data.pop(key, None)
    if isinstance(manifest, ImageManifest):
        config = data.get("config") or {}
        if config.get("mediaType") not in _CONFIGS:
            raise ManifestError(
                f"{where}: config {config.get('mediaType')!r} is no image config; "
                f"it cannot be converted to {fmt}"
            )
        config["mediaType"] = mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG
        table = mt.OCI_TO_DOCKER_LAYERS if docker else mt.DOCKER_TO_OCI_LAYERS
        for layer in data.get("layers") or []:
            kind = layer.get("mediaType")
            if kind in table:
                layer["mediaType"] = table[kind]
            elif kind not in table.values():
                raise ManifestError(f"{where}: a {kind} layer cannot be written as {fmt}")
            if docker:
                layer.pop("annotations", None)
        raw = canonical_json(data)
        return ImageManifest(raw, target, data)
    raw = canonical_json(data)
    return ImageIndex(raw, target, data)


def _convert_entries(index: ImageIndex, fmt: str, children: dict[Digest, Manifest]) -> ImageIndex:
    """``index`` in format ``fmt``, its entries pointing at ``children`` (old digest -> the
    converted manifest) where they were converted."""
    converted = convert_manifest(index, fmt)
    data = copy.deepcopy(converted.data)
    for entry in data.get("manifests") or []:
        child = children.get(Digest.parse(entry["digest"]))
        if child is not None:
            entry.update(mediaType=child.media_type, digest=str(child.digest), size=child.size)
        if fmt == "v2s2":
            for key in ("annotations", "artifactType"):
                entry.pop(key, None)
            platform = entry.get("platform") or {}
            if not (platform.get("os") and platform.get("architecture")):
                raise ManifestError(
                    f"{entry['digest']}: no platform in the list; a v2s2 manifest list needs "
                    "one for each image (set it with manifest annotate --os --arch)"
                )
            platform.pop("os.features", None)
    if data == index.data:
        return index
    return ImageIndex(canonical_json(data), converted.media_type, data)


class _ListSource(ImageSource):
    """The list of the store as a copy source, its documents converted to ``fmt`` on the way
    (the blobs are the same bytes in both formats)."""

    supports_ranges = True

    def __init__(self, store: Store, found: ManifestList, fmt: str | None, images: bool) -> None:
        self._inner = LayoutSource(store, found.descriptor)
        self._store = store
        self._converted: dict[Digest, Manifest] = {}
        self.top: Manifest = found.index
        if fmt is not None:
            children: dict[Digest, Manifest] = {}
            if images:
                for entry in found.index.manifests:
                    child = store.get_manifest(entry.digest, entry.media_type)
                    new = convert_manifest(child, fmt)
                    if new is not child:
                        children[entry.digest] = new
                        self._converted[new.digest] = new
            self.top = _convert_entries(found.index, fmt, children)

    def get_manifest(self, digest: Digest | None = None) -> Manifest:
        if digest is None:
            return self.top
        return self._converted.get(digest) or self._inner.get_manifest(digest)

    @contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        with self._inner.open_blob(desc, offset) as stream:
            yield stream


class _ListReference(ImageReference):
    """A source-only reference over :class:`_ListSource` (what ``copy_image`` takes)."""

    transport = "store"

    def __init__(self, source: _ListSource, name: str) -> None:
        self._source = source
        self._name = name

    def new_source(self, ctx: Context) -> ImageSource:
        return self._source

    def new_destination(self, ctx: Context) -> ImageDestination:
        raise UsageError(f"store:{self._name}: a manifest list is read here, not written")

    def docker_reference(self) -> Reference | None:
        try:
            return Reference.parse(self._name)
        except InvalidReference:
            return None

    def __str__(self) -> str:
        return f"store:{self._name}"


def push(
    store: Store,
    name: str,
    destination: ImageReference,
    ctx: Context,
    *,
    all_images: bool = True,
    fmt: str | None = None,
    options: CopyOptions | None = None,
) -> CopyResult:
    """``manifest push``: the list, and with ``all_images`` (podman 4's default) every image
    it names, to ``destination``. Without them only the index goes, and the destination must
    hold the images already (a registry refuses a list naming manifests it lacks)."""
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected oci or v2s2")
    if fmt == "v2s2" and all_images and options and options.compression_format == "zstd":
        # The copy would rewrite each manifest as OCI (schema2 has no zstd layer type): the
        # list pushed would not be the v2s2 asked for. containers/image refuses it too.
        raise UsageError("--format v2s2 cannot carry zstd layers: use --compression-format gzip")
    found = find_list(store, name)
    source = _ListSource(store, found, fmt, all_images)
    if all_images:
        options = options or CopyOptions()
        options.all_platforms = True
        return copy_image(_ListReference(source, found.name), destination, ctx, options)
    top = source.top
    with destination.new_destination(ctx) as dest:
        stored = dest.put_manifest(top, top=True)
        dest.commit()
    return CopyResult(stored.digest, stored.media_type, stored.size, manifests=[stored.digest])
