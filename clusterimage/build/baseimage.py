"""Images a build starts FROM or copies from: found in the store, else pulled into it; and their
filesystem as a tree, read from the layers' tar headers without unpacking them.

References: a plain reference (``nginx:1.25``, ``localhost/base:v1``) is looked up in the store
and pulled through ``docker://`` when missing; a transport reference (``oci:DIR:TAG``,
``docker://...``, ``oci-archive:...``, ``docker-archive:...``) is copied into the store by the copy
engine (tagged with its name for ``docker://``, untagged otherwise); ``store:REF`` must be there.

The tree of an image is the union of its layers with whiteouts applied (``.wh.NAME`` removes
NAME below, ``.wh..wh..opq`` empties its folder of what lower layers put there). Each layer's
listing (tar headers only) is cached as JSON under ``$CLUSTERIMAGE_HOME/cache/listings``; a file
of the tree knows its layer and member name (``Content.origin``) and is extracted only when a
COPY needs its bytes (:func:`extract`), in one pass per layer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clusterimage import transports
from clusterimage.build.archive import stage_member
from clusterimage.build.fstree import Content, FsTree, Node, sort_key
from clusterimage.copy import CopyOptions, copy_image
from clusterimage.errors import BuildError, ClusterImageError, ImageNotFound
from clusterimage.image import resolve
from clusterimage.layers.listing import Record, list_layer, member_path
from clusterimage.layers.tarsafe import open_tar
from clusterimage.layers.whiteout import apply_whiteouts, is_whiteout
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageManifest
from clusterimage.oci.platform import Platform
from clusterimage.store import Store
from clusterimage.transports._layout import LayoutSource
from clusterimage.transports.base import Context
from clusterimage.transports.store import StoreReference

# 2: file records carry their content digest, whoever wrote the layer (version 1 listings of
# other layers had none, so a base image's files were keyed by origin, then by digest).
_LISTING_VERSION: Final = 2


@dataclass(frozen=True)
class Image:
    """An image in the store: what to build on."""

    name: str  # as the Kubefile names it
    descriptor: Descriptor  # of the image manifest (one platform)
    manifest: ImageManifest
    config: ImageConfig


def ensure_image(
    store: Store, name: str, platform: Platform, ctx: Context, *, pull: bool = True
) -> Image:
    """The image ``name`` for ``platform``, from the store, copied into it when needed.

    Raises ImageNotFound (or the transport's error) when it cannot be had.
    """
    if name.startswith("store:"):
        return _load(store, name, store.resolve(name[len("store:") :]), platform)
    if transports.is_transport_reference(name):
        if not pull:
            raise ImageNotFound(f"{name}: not copied into the store yet")
        source = transports.parse(name)
        destination = StoreReference(
            name[len("docker://") :] if name.startswith("docker://") else ""
        )
        result = copy_image(source, destination, dataclasses.replace(ctx, platform=platform))
        manifest = store.get_manifest(result.digest, result.media_type)
        return _load(store, name, store.describe(manifest), platform)
    try:
        desc = store.resolve(name)
    except ImageNotFound:
        if not pull:
            raise
        try:
            copy_image(
                transports.parse(f"docker://{name}"),
                StoreReference(name),
                dataclasses.replace(ctx, platform=platform),
            )
        except ClusterImageError as exc:
            raise ImageNotFound(
                f"{name} is not in the local store and pulling it failed: {exc}"
            ) from None
        desc = store.resolve(name)
    image = _load(store, name, desc, platform)
    have = image.config.platform
    if have is None or not have.architecture or platform.matches(have):
        return image
    # The store holds the name for one platform only (pulled for this machine, say): a build
    # for another would get that image, silently. Its whole index is fetched under the name
    # instead (as `pull --all`), so every platform of this and later builds finds its own.
    if not pull:
        raise ImageNotFound(
            f"{name}: the store holds it for {have}, not {platform}, and pulling is off "
            f"(pull it with `clusterimage pull --all {name}`)"
        )
    try:
        copy_image(
            transports.parse(f"docker://{name}"),
            StoreReference(name),
            dataclasses.replace(ctx, platform=platform),
            CopyOptions(all_platforms=True),
        )
    except ClusterImageError as exc:
        raise ImageNotFound(
            f"{name}: the store holds it for {have}, not {platform}, and fetching it failed: {exc}"
        ) from None
    return _load(store, name, store.resolve(name), platform)


def _load(store: Store, name: str, desc: Descriptor, platform: Platform) -> Image:
    # Through clusterimage.image, as every reader: one platform choice, a verified config.
    found = resolve(LayoutSource(store, desc), platform, where=name)
    return Image(name, found.descriptor, found.manifest, found.config)


class BaseImages:
    """The images one build uses, each fetched once: the plan asks for their configs
    (:meth:`config`, the ``base_config`` resolver of ``plan_build``), the engine for the images.
    """

    def __init__(self, store: Store, ctx: Context, *, pull: bool = True) -> None:
        self.store = store
        self.ctx = ctx
        self.pull = pull
        self._images: dict[tuple[str, str], Image] = {}

    def get(self, name: str, platform: Platform) -> Image:
        key = (name, str(platform))
        if key not in self._images:
            self._images[key] = ensure_image(self.store, name, platform, self.ctx, pull=self.pull)
        return self._images[key]

    def config(self, reference: str, platform: Platform) -> Mapping[str, Any] | None:
        """The image's config JSON; None when it cannot be had (the build then names the
        failure with the Kubefile line that needs the image)."""
        try:
            return self.get(reference, platform).config.data
        except ClusterImageError:
            return None


# -- listings and trees ---------------------------------------------------------------------------


def layer_listing(store: Store, layer: Descriptor, cache_dir: Path) -> list[Record]:
    """The tar headers of a layer blob (cached by digest: a blob never changes)."""
    cached = cache_dir / f"{layer.digest.hex}.json"
    try:
        data = json.loads(cached.read_bytes())
        if data.get("version") == _LISTING_VERSION:
            return list(data["records"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    try:
        # open_blob, not blob_path: it refuses a FIFO or device instead of blocking on it.
        with store.open_blob(layer.digest) as blob:
            records = list_layer(blob)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"cannot read layer {layer.digest}: {exc}") from None
    save_listing(cache_dir, layer.digest, records)
    return records


def save_listing(cache_dir: Path, digest: Digest, records: list[Record]) -> None:
    """Remember the listing of the layer blob ``digest`` (see :func:`layer_listing`)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"{digest.hex}.json"
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    raw = json.dumps({"version": _LISTING_VERSION, "records": records}, ensure_ascii=False)
    tmp.write_bytes(raw.encode("utf-8", "surrogateescape"))
    os.replace(tmp, cached)


def entries_listing(entries: Mapping[str, Node]) -> list[Record]:
    """The listing of a layer written from ``entries``: what reading its tar headers would give
    (in the writer's order, later links of one file as hard links), plus file digests."""
    records: list[Record] = []
    first: dict[int, str] = {}
    for path in sorted(entries, key=sort_key):
        node = entries[path]
        content = node.content if node.kind == "file" else None
        kind: str = node.kind
        linkname = node.linkname
        size = digest = None
        if content is not None:
            if id(content) in first:
                kind, linkname = "hardlink", first[id(content)]
            else:
                first[id(content)] = path
                size, digest = content.size, content.digest
        record = [path, kind, node.mode, node.uid, node.gid, size or 0, linkname]
        records.append([*record, node.devmajor, node.devminor, *([digest] if digest else [])])
    return records


def apply_listing(tree: FsTree, layer: Descriptor, records: Iterable[Record]) -> None:
    """Lay one layer over ``tree``: whiteouts first (they refer to lower layers), then entries."""
    records = list(records)
    apply_whiteouts(tree, [path for record in records if (path := member_path(record[0]))])
    for record in records:
        name, kind, mode, uid, gid, size, linkname, devmajor, devminor = record[:9]
        digest = record[9] if len(record) > 9 else None
        path = member_path(name)
        if path is None:
            if kind == "dir":
                tree.set("", Node("dir", mode, uid, gid))
            continue
        if is_whiteout(path):
            continue
        if kind == "hardlink":
            target_path = member_path(linkname)
            target = tree.get(target_path) if target_path else None
            if target is None or target.kind != "file":
                continue  # a link to nothing: unpacking would fail the same way
            tree.set(path, Node("file", mode, uid, gid, content=target.content))
        elif kind == "file":
            content = Content(None, size, digest=digest, origin=f"{layer.digest}!{name}")
            tree.set(path, Node("file", mode, uid, gid, content=content))
        elif kind == "symlink":
            tree.set(path, Node("symlink", 0o777, uid, gid, linkname=linkname))
        else:
            tree.set(path, Node(kind, mode, uid, gid, devmajor=devmajor, devminor=devminor))


def image_tree(store: Store, image: Image, cache_dir: Path) -> FsTree:
    tree = FsTree()
    for layer in image.manifest.layers:
        apply_listing(tree, layer, layer_listing(store, layer, cache_dir))
    return tree


def extract(store: Store, contents: Iterable[Content], staging: Path) -> None:
    """Give every base-image file in ``contents`` a host copy: one pass per layer involved."""
    wanted: dict[str, dict[str, list[Content]]] = {}
    for content in contents:
        if content.path is not None or content.origin is None:
            continue
        layer, _, name = content.origin.partition("!")
        wanted.setdefault(layer, {}).setdefault(name, []).append(content)
    staging.mkdir(parents=True, exist_ok=True)
    for layer, members in wanted.items():
        digest = layer.partition(":")[2]
        try:
            with store.open_blob(Digest.parse(layer)) as blob, open_tar(blob) as tar:
                for member in tar:
                    targets = members.get(member.name)
                    if not targets or not member.isreg():
                        continue
                    out = staging / hashlib.sha256(f"{layer}!{member.name}".encode()).hexdigest()
                    staged = stage_member(tar, member, out)
                    for content in targets:
                        content.path, content.digest = out, staged.digest
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BuildError(f"cannot read layer {layer}: {exc}") from None
        missing = [m for m, cs in members.items() if any(c.path is None for c in cs)]
        if missing:
            raise BuildError(f"layer sha256:{digest} has no file {missing[0]!r}")


def read_text(store: Store, tree: FsTree, path: str, staging: Path) -> str | None:
    """A small text file of a tree (``etc/passwd`` for ``--chown`` names), or None."""
    node = tree.get(tree.resolve(path))
    if node is None or node.kind != "file" or node.content is None:
        return None
    extract(store, [node.content], staging)
    assert node.content.path is not None
    return node.content.path.read_text(errors="replace")
