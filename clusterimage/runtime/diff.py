"""``diff A B``: what changed between two cluster images, from any transport, without unpacking.

Files come from the layers' listings (tar headers and content digests, the layers applied in
order with their whiteouts), embedded images from the ``io.clusterimage.images`` annotation a
build records (or, without it, from the registry/ links in the files), and the config's labels,
env, entrypoint, cmd and type. What a delivery engineer checks before shipping v2 to a site.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from clusterimage.image import ResolvedImage, resolve
from clusterimage.images.embed import IMAGES_ANNOTATION
from clusterimage.layers.listing import Record, list_layer, member_path
from clusterimage.layers.whiteout import apply_whiteouts, is_whiteout
from clusterimage.oci.digest import Digest
from clusterimage.oci.platform import Platform
from clusterimage.runtime.command import image_type
from clusterimage.transports.base import Context, ImageReference, ImageSource

_TAG_LINK = "/_manifests/tags/"


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass
class ImageDiff:
    files: Changes = field(default_factory=Changes)
    images: Changes = field(default_factory=Changes)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {"a":, "b":}

    def __bool__(self) -> bool:
        return bool(self.files or self.images or self.config)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files.to_dict(),
            "images": self.images.to_dict(),
            "config": self.config,
        }


def diff(
    a: ImageReference, b: ImageReference, ctx: Context, platform: Platform | None
) -> ImageDiff:
    with a.new_source(ctx) as source_a, b.new_source(ctx) as source_b:
        first = resolve(source_a, platform, where=str(a))
        second = resolve(source_b, platform, where=str(b))
        result = ImageDiff()
        if first.manifest.digest == second.manifest.digest:
            return result
        listings: dict[Digest, list[Record]] = {}
        files_a = _files(source_a, first, listings)
        files_b = _files(source_b, second, listings)
        result.files = _compare(files_a, files_b)
        result.images = _images(first, files_a, second, files_b)
        result.config = _config(first, second)
    return result


def _files(
    source: ImageSource, image: ResolvedImage, listings: dict[Digest, list[Record]]
) -> dict[str, str]:
    """Every path of the image's filesystem -> what identifies its content. ``listings``
    keeps each layer's records by digest: a layer both images have is read once."""
    tree: dict[str, str] = {}
    for layer in image.manifest.layers:
        records = listings.get(layer.digest)
        if records is None:
            with source.open_blob(layer) as stream:
                records = listings[layer.digest] = list_layer(stream)
        # Whiteouts first: they hide what lower layers hold, never what this one adds.
        apply_whiteouts(tree, [path for record in records if (path := member_path(record[0]))])
        for record in records:
            name = member_path(record[0])
            if name is None or is_whiteout(name):
                continue
            kind, mode, size, link = record[1], record[2], record[5], record[6]
            content = record[9] if kind == "file" and len(record) > 9 else link
            tree[name] = f"{kind}:{mode:o}:{size}:{content}"
    return tree


def _images(
    a: ResolvedImage, files_a: dict[str, str], b: ResolvedImage, files_b: dict[str, str]
) -> Changes:
    """Embedded images added, removed and changed: from the record builds make of them
    (reference -> manifest digest), or, when either image has none (built elsewhere, or
    merged), from both images' registry/ tag links: like is compared with like."""
    recorded_a, recorded_b = _recorded(a), _recorded(b)
    if recorded_a is None or recorded_b is None:
        return _compare(_linked(files_a), _linked(files_b))
    return _compare(recorded_a, recorded_b)


def _recorded(image: ResolvedImage) -> dict[str, str] | None:
    recorded = (image.manifest.annotations or {}).get(IMAGES_ANNOTATION)
    if recorded:
        try:
            data = json.loads(recorded)
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}
        except ValueError:
            pass
    return None


def _linked(files: dict[str, str]) -> dict[str, str]:
    """reference -> the content id of its tag link (which names its manifest digest)."""
    found = {}
    root = "registry/docker/registry/v2/repositories/"
    for path, identity in files.items():
        if path.startswith(root) and _TAG_LINK in path and path.endswith("/current/link"):
            repository, _, rest = path[len(root) :].partition(_TAG_LINK)
            found[f"{repository}:{rest.split('/', 1)[0]}"] = identity.rsplit(":", 1)[-1]
    return found


def _compare(a: dict[str, str], b: dict[str, str]) -> Changes:
    return Changes(
        added=sorted(set(b) - set(a)),
        removed=sorted(set(a) - set(b)),
        changed=sorted(k for k in set(a) & set(b) if a[k] != b[k]),
    )


def _config(a: ResolvedImage, b: ResolvedImage) -> dict[str, dict[str, Any]]:
    def view(image: ResolvedImage) -> dict[str, Any]:
        config = image.config
        return {
            "type": image_type(config.labels, where="diff"),
            "labels": config.labels,
            "env": config.env,
            "entrypoint": config.entrypoint,
            "cmd": config.cmd,
            "workdir": config.working_dir,
            "platform": str(config.platform),
        }

    first, second = view(a), view(b)
    return {k: {"a": first[k], "b": second[k]} for k in first if first[k] != second[k]}
