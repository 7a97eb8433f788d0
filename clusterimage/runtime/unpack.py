"""``unpack``: several images laid out in one folder, as the cluster runtime lays them out.

``plain``: every image's layers into one root, in the order given (later files over earlier).
``sealos`` (what ``sealos run A B C`` does, lifecycle/pkg/apply and filesystem/rootfs): rootfs
and patch images into ``rootfs/``, each application into ``applications/<name>/workdir``; no
image's ``registry/`` is laid out with its files: all of them merge into the one registry cache
at ``rootfs/registry``, which the cluster's registry serves. Registry caches merge without
writing a blob twice (one already there, whole, is kept), and a tag that two images carry with
different digests ends with the later image's, with a warning naming both.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clusterimage.errors import InvalidReference
from clusterimage.image import resolve
from clusterimage.layers.extract import ExtractStats, extract_layer
from clusterimage.layers.tarsafe import open_tar
from clusterimage.oci.digest import Digest
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.runtime.command import APPLICATION, image_type
from clusterimage.store import Store
from clusterimage.transports._layout import LayoutSource

REGISTRY = "registry"
_TAGS = "docker/registry/v2/repositories"


class Layout(enum.StrEnum):
    plain = "plain"
    sealos = "sealos"


@dataclass
class UnpackedImage:
    name: str
    type: str
    root: str  # where its files went, relative to the target
    stats: ExtractStats


@dataclass
class UnpackResult:
    images: list[UnpackedImage] = field(default_factory=list)
    registry: str = REGISTRY  # the merged registry cache, relative to the target
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        images = [
            {
                "name": image.name,
                "type": image.type,
                "root": image.root,
                "files": image.stats.files,
                "bytes": image.stats.bytes,
                "kept": image.stats.kept,
            }
            for image in self.images
        ]
        return {"images": images, "registry": self.registry, "warnings": self.warnings}


def unpack(
    store: Store,
    names: Sequence[str],
    target: Path,
    *,
    layout: Layout = Layout.plain,
    platform: Platform | None = None,
    warn: Callable[[str], None] | None = None,
) -> UnpackResult:
    """Lay the store's images ``names`` out in ``target``, in order."""
    registry_parent = target / "rootfs" if layout is Layout.sealos else target
    result = UnpackResult(registry=(registry_parent / REGISTRY).relative_to(target).as_posix())
    owners: dict[str, str] = {}  # tag link -> the image whose digest it holds
    for name in names:
        desc, found = store.resolve_named(name)
        source = LayoutSource(store, desc)
        image = resolve(source, platform, where=name)
        kind = image_type(image.config.labels, where=name)
        root = target
        if layout is Layout.sealos:
            app = kind == APPLICATION
            root = target / (_app_dir(store, desc.digest, found) if app else "rootfs")

        def route(member: str, root: Path = root) -> Path:
            # registry/... of every image goes to the one cache; the rest to the image's root.
            if member == REGISTRY or member.startswith(f"{REGISTRY}/"):
                return registry_parent
            return root

        before = _tag_links(registry_parent / REGISTRY)
        stats = ExtractStats()
        for layer in image.manifest.layers:
            with source.open_blob(layer) as blob, open_tar(blob) as tar:
                one = extract_layer(tar, root, where=f"{name}: layer {layer.digest}", route=route)
            stats.files += one.files
            stats.bytes += one.bytes
            stats.kept += one.kept
        for link, digest in _tag_links(registry_parent / REGISTRY).items():
            earlier = before.get(link)
            if earlier is not None and earlier != digest and link in owners:
                message = (
                    f"registry/: {_tag_name(link)} is {earlier} in {owners[link]} and {digest} "
                    f"in {name}; {name}'s wins"
                )
                result.warnings.append(message)
                if warn is not None:
                    warn(message)
            if earlier != digest or link not in owners:
                owners[link] = name
        result.images.append(UnpackedImage(name, kind, root.relative_to(target).as_posix(), stats))
    return result


def _app_dir(store: Store, digest: Digest, found: str | None) -> str:
    """applications/<repository's last part>/workdir, from the name the image is stored under
    (found by ID or digest: its one name), never from an ID typed on the command line."""
    if found is None:
        names = sorted(set(store.names(digest)))
        found = names[0] if len(names) == 1 else None
    reference = None
    if found is not None:
        with contextlib.suppress(InvalidReference):
            reference = Reference.parse(found)
    app = reference.repository.rsplit("/", 1)[-1] if reference is not None else "app"
    return f"applications/{app}/workdir"


def _tag_links(registry: Path) -> dict[str, str]:
    """Every tag's current/link below a registry folder, and the digest it holds."""
    repositories = registry / _TAGS
    found: dict[str, str] = {}
    if not repositories.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(repositories, followlinks=False):
        if "link" in filenames and dirpath.endswith("/current") and "/_manifests/tags/" in dirpath:
            path = Path(dirpath) / "link"
            try:
                found[path.relative_to(repositories).as_posix()] = path.read_text().strip()
            except (OSError, UnicodeDecodeError):
                continue
        dirnames[:] = [d for d in dirnames if d not in ("_layers", "revisions", "index")]
    return found


def _tag_name(link: str) -> str:
    repository, _, rest = link.partition("/_manifests/tags/")
    return f"{repository}:{rest.split('/', 1)[0]}"
