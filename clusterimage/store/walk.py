"""Walking a layout from ``index.json`` down to every blob it needs.

Both gc (what is reachable stays) and fsck (everything reachable must be there) start here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clusterimage.errors import BlobNotFound, ManifestError, StoreError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex
from clusterimage.store.layout import Layout


@dataclass(frozen=True)
class Problem:
    """One thing fsck found wrong; ``str()`` is the one-line message."""

    # layout | index | corrupt-blob | not-regular | missing-blob | size-mismatch | bad-manifest |
    # stray
    kind: str
    message: str
    digest: Digest | None = None
    ref: str | None = None

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "digest": str(self.digest) if self.digest else None,
            "ref": self.ref,
        }


@dataclass
class Walk:
    """The blobs the index needs (manifests, configs, layers) and what is wrong on the way."""

    reachable: set[Digest] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    images: int = 0
    # Manifests that are missing or unreadable: what they need is unknown, so ``reachable``
    # is incomplete and must not be used to delete anything (gc refuses).
    unresolved: list[Problem] = field(default_factory=list)


def walk(layout: Layout, skip: frozenset[Digest] = frozenset()) -> Walk:
    """Visit every entry of ``index.json``; blobs in ``skip`` (known corrupt) are not parsed."""
    result = Walk()
    visited: set[Digest] = set()
    for entry in layout.entries():
        label = entry.ref_name or str(entry.digest)
        result.images += 1
        _visit_manifest(layout, entry, label, "image", result, visited, skip)
    return result


def _visit_manifest(
    layout: Layout,
    desc: Descriptor,
    label: str,
    role: str,
    result: Walk,
    visited: set[Digest],
    skip: frozenset[Digest],
) -> None:
    result.reachable.add(desc.digest)
    if desc.digest in visited:
        return
    visited.add(desc.digest)
    if not _check_present(layout, desc, label, role, result, skip):
        result.unresolved.append(result.problems[-1])
        return
    if desc.digest in skip:
        return
    try:
        manifest = layout.get_manifest(desc.digest, desc.media_type)
    except (ManifestError, BlobNotFound, StoreError) as exc:  # StoreError: not a regular file
        _unresolved(result, Problem("bad-manifest", f"{label}: {exc}", desc.digest, label))
        return
    if isinstance(manifest, ImageIndex):
        try:
            children = manifest.manifests
        except ManifestError as exc:
            _unresolved(result, Problem("bad-manifest", f"{label}: {exc}", desc.digest, label))
            return
        for child in children:
            where = f"manifest for {child.platform}" if child.platform else "child manifest"
            _visit_manifest(layout, child, label, where, result, visited, skip)
        return
    try:
        blobs = [(manifest.config, "config")]
        blobs += [(layer, f"layer {i + 1}") for i, layer in enumerate(manifest.layers)]
    except ManifestError as exc:
        _unresolved(result, Problem("bad-manifest", f"{label}: {exc}", desc.digest, label))
        return
    for blob, blob_role in blobs:
        result.reachable.add(blob.digest)
        if blob.digest in visited:
            continue
        visited.add(blob.digest)
        if blob.urls and not layout.has_blob(blob.digest):
            continue  # a non-distributable layer is fetched from its URLs, never stored
        _check_present(layout, blob, label, blob_role, result, skip)


def _unresolved(result: Walk, problem: Problem) -> None:
    result.problems.append(problem)
    result.unresolved.append(problem)


def _check_present(
    layout: Layout,
    desc: Descriptor,
    label: str,
    role: str,
    result: Walk,
    skip: frozenset[Digest],
) -> bool:
    if desc.digest in skip:
        return True  # a damaged blob is reported once, by whoever found it damaged
    try:
        size = layout.blob_size(desc.digest)
    except BlobNotFound:
        result.problems.append(
            Problem(
                "missing-blob", f"{label}: missing {role} blob {desc.digest}", desc.digest, label
            )
        )
        return False
    if size != desc.size:
        result.problems.append(
            Problem(
                "size-mismatch",
                f"{label}: {role} blob {desc.digest} is {size} bytes, descriptor says {desc.size}",
                desc.digest,
                label,
            )
        )
    return True
