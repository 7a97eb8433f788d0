"""Pulling: an image from any transport into the local store, under a name, by a policy.

The operation behind ``clusterimage pull`` (and the base images of a build): the CLI parses and
prints, this decides. Policies are podman's: ``always`` copies (only missing blobs travel; a
stored blob found damaged counts as missing), ``missing`` copies only when the store has no
image of that name for the platform, ``never`` uses the store's and fails without it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from clusterimage.copy import CopyEvent, CopyOptions, CopyResult, copy_image
from clusterimage.errors import ImageNotFound, UsageError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.store import Store
from clusterimage.store.fsck import blob_damage, remove_blob
from clusterimage.transports.base import Context, ImageReference
from clusterimage.transports.oci_layout import OciLayoutReference, whole_reference
from clusterimage.transports.store import StoreReference


class PullPolicy(enum.StrEnum):
    always = "always"
    missing = "missing"
    never = "never"


@dataclass(frozen=True)
class PullResult:
    name: Reference
    source: ImageReference
    pulled: bool  # False: the store's image was used (--policy missing or never)
    result: CopyResult  # of the copy; for an image already there, its top manifest only
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": str(self.name),
            "source": str(self.source),
            "pulled": self.pulled,
        } | self.result.to_dict()


def default_name(src: ImageReference, ctx: Context) -> Reference:
    """The name a pulled image is stored under when none is given: the reference the source
    names (a registry's, or a layout's or archive's ref name when it is a whole reference)."""
    if isinstance(src, OciLayoutReference):
        ref_name = src.name or src.top().ref_name
        reference = whole_reference(ref_name)
        if reference is not None:
            return reference
        why = f"{ref_name!r} is not a whole image reference" if ref_name else "it has no name"
        raise UsageError(f"{src}: {why}; name it with --name (e.g. --name localhost/app:v1)")
    reference = src.docker_reference()
    if reference is not None:
        return reference
    held = src.list_images(ctx)  # an archive without REF: the name of its only image
    if len(held) == 1 and held[0] is not src:
        reference = held[0].docker_reference()
        if reference is not None:
            return reference
    raise UsageError(f"{src}: name the image with --name")


def pull(
    src: ImageReference,
    ctx: Context,
    *,
    name: Reference | None = None,
    policy: PullPolicy = PullPolicy.always,
    all_platforms: bool = False,
    on_event: Callable[[CopyEvent], None] | None = None,
) -> PullResult:
    """Copy ``src`` into the store (``ctx.store_dir``) as ``name`` unless ``policy`` says the
    store's image will do."""
    if all_platforms and ctx.platform is not None:
        raise UsageError("pull: --platform and --all exclude each other")
    target = name or default_name(src, ctx)
    dst = StoreReference(str(target))
    if policy is not PullPolicy.always:
        kept = _kept(dst.store(ctx), target, ctx, policy, all_platforms)
        if kept is not None:
            result = CopyResult(kept.digest, kept.media_type, kept.size)
            return PullResult(target, src, False, result)
    store = dst.store(ctx)
    warnings: list[str] = []
    options = CopyOptions(
        all_platforms=all_platforms,
        on_event=on_event,
        verify_existing=_verifier(store, warnings),
    )
    result = copy_image(src, dst, ctx, options)
    # Manifests are written as they are when the store has their digest: a damaged one is
    # removed and the copy made again (every blob is there by now, so only manifests travel).
    damaged = [d for d in result.manifests if _repaired(store, d, None, warnings)]
    if damaged:
        copy_image(src, dst, ctx, options)  # byte-identical manifests: the first result holds
    if ctx.platform is not None and not all_platforms:
        # A single-platform source has no list to choose from: it is pulled as it is. As
        # podman does, say so when it is not what --platform asked for.
        have = platforms(store, Descriptor(result.media_type, result.digest, result.size))
        if have and not any(ctx.platform.matches(p) for p in have):
            held = ", ".join(map(str, have))
            warnings.append(
                f"the image is for {held}, not the {ctx.platform} that --platform asked for"
            )
    return PullResult(target, src, True, result, warnings)


def _verifier(store: Store, warnings: list[str]) -> Callable[[Descriptor], bool]:
    """The copy's check of a blob the store already has: its size, then its hash.

    ``pull`` promises that only missing blobs travel, and a stored blob whose bytes went bad
    on disk is missing in all but name: it is removed and fetched again. That costs a read of
    the image's stored blobs (not the whole store's) on each pull of an image already there;
    the copy's workers hash several at once.
    """

    def verify(desc: Descriptor) -> bool:
        return not _repaired(store, desc.digest, desc.size, warnings)

    return verify


def _repaired(store: Store, digest: Digest, size: int | None, warnings: list[str]) -> bool:
    """True when the stored ``digest`` was damaged and is now removed (``warnings`` says so)."""
    why = blob_damage(store, digest, size)
    if why is None:
        return False
    remove_blob(store, digest)
    warnings.append(f"{why}; removed from the store and fetched again")
    return True


def _kept(
    store: Store, target: Reference, ctx: Context, policy: PullPolicy, all_platforms: bool
) -> Descriptor | None:
    """The store's image that makes a pull unneeded under ``policy``, if any."""
    try:
        existing = store.resolve(str(target))
    except ImageNotFound:
        if policy is PullPolicy.never:
            raise ImageNotFound(
                f"{target}: not in the store, and --policy never forbids pulling it"
            ) from None
        return None
    if all_platforms:
        return existing
    # As podman: an image of another platform under the name is not "the image".
    want = ctx.platform or Platform.host()
    have = platforms(store, existing)
    if any(want.matches(p) for p in have):
        return existing
    if policy is PullPolicy.never:
        held = ", ".join(map(str, have)) or "no platform"
        raise ImageNotFound(
            f"{target}: the store holds it for {held}, not {want}, and "
            "--policy never forbids pulling it"
        )
    return None


def platforms(store: Store, desc: Descriptor) -> list[Platform]:
    """The platforms a stored image is for: an index's entries, else its config's."""
    manifest = store.get_manifest(desc.digest, desc.media_type)
    if isinstance(manifest, ImageIndex):
        return [entry.platform for entry in manifest.manifests if entry.platform is not None]
    return [store.get_config(manifest).platform]
