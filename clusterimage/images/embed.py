"""Filling a cluster image's ``registry/``: every discovered image, in distribution's layout.

Images are fetched into a cache under ``$CLUSTERIMAGE_HOME/cache/images`` (itself a registry
folder, repositories named with their registry host), all at once through
:func:`clusterimage.copy.copy_many` (each blob once however many images share it), then laid out
in the build's ``registry/`` folder by hard links from the cache. With ``--pull missing`` (the
default) an image the cache holds for the platform is not asked for again, so an unchanged
rebuild, or one after editing a manifest that names the same images, downloads nothing.

The build's folder is kept per context: when the set of images (and archives) is unchanged it
is left as it is, untouched, so the layer cache sees the same files; otherwise it is laid out
again beside the old one and swapped in, so a killed build leaves either the old folder or the
new one, and the cache only ever holds whole, verified blobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterimage.copy import CopyEvent, CopyJob, CopyOptions, CopyResult, copy_many
from clusterimage.errors import ClusterImageError
from clusterimage.image import resolve
from clusterimage.images.found import Discovery
from clusterimage.oci.digest import Digest
from clusterimage.oci.platform import Platform
from clusterimage.pull import PullPolicy
from clusterimage.transports.base import Context, ImageReference
from clusterimage.transports.registry_dir import RegistryDirReference

REGISTRY = "registry"  # the folder the build overlays onto its context
#: The built manifest's record of the images its registry/ carries: {name: digest} as JSON,
#: so ``inspect`` and ``diff`` list them without unpacking anything.
IMAGES_ANNOTATION = "io.clusterimage.images"
_MARKER = "embedded.json"


@dataclass(frozen=True)
class EmbedItem:
    """One image to put into ``registry/``."""

    source: ImageReference  # docker://..., or an archive a tar.txt names
    repository: str  # its path in registry/ (no host)
    tag: str | None
    digest: Digest | None  # a digest the reference pinned (kept with or without a tag)
    origin: str  # where it was named (file:line), for messages
    cache_key: str | None = None  # the cache repository; None: not cached (a local archive)
    identity: str = ""  # what makes a local source the same as last time (size, mtime)

    @property
    def name(self) -> str:
        if self.tag is not None:
            return f"{self.repository}:{self.tag}"
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class EmbedSettings:
    platform: Platform | None = None  # None: this machine's
    all_platforms: bool = False  # --all: keep each image's whole index
    parallel: int = 5  # --max-pull-procs
    policy: PullPolicy = PullPolicy.missing


@dataclass
class EmbedResult:
    folder: Path  # the registry/ folder to overlay
    images: dict[str, Digest] = field(default_factory=dict)  # name in registry/ -> digest
    fetched: int = 0  # images copied into the cache by this run
    reused: bool = False  # the folder was already laid out for this set of images
    warnings: list[str] = field(default_factory=list)  # images of another platform only


def images_annotation(images: Mapping[str, Digest]) -> str:
    return json.dumps({name: str(digest) for name, digest in sorted(images.items())})


def cache_repository(registry: str, repository: str) -> str:
    """The cache's repository for an image: its host and path (``:`` of a port as ``_``)."""
    return f"{registry.replace(':', '_')}/{repository}"


def embed(
    items: Sequence[EmbedItem],
    folder: Path,
    cache: Path,
    ctx: Context,
    settings: EmbedSettings,
    on_event: Callable[[CopyEvent], None] | None = None,
) -> EmbedResult:
    """Lay ``items`` out in ``folder`` (the build's ``registry/``), replacing what it held."""
    ctx.platform = settings.platform
    key = _key(items, settings)
    marker = folder.parent / _MARKER
    unchanged = settings.policy is not PullPolicy.always and folder.is_dir()
    known = _read_marker(marker) if unchanged else {}
    if known.get("key") == key:
        images = {k: Digest.parse(v) for k, v in known["images"].items()}
        return EmbedResult(folder, images, 0, True, list(known.get("warnings") or []))
    fetched = fetch(items, cache, ctx, settings, on_event)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".registry-", dir=folder.parent))
    try:
        images = lay_out(items, staging, cache, ctx, settings, on_event)
        warnings = _foreign(items, staging, ctx, settings)
        _swap(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    data = {"key": key, "images": {k: str(v) for k, v in images.items()}, "warnings": warnings}
    _write_marker(marker, data)
    return EmbedResult(folder, images, fetched, False, warnings)


def _foreign(
    items: Sequence[EmbedItem], folder: Path, ctx: Context, settings: EmbedSettings
) -> list[str]:
    """What ``pull --platform`` says of an image that exists for one other platform only (a
    single-platform source offers no choice, so it is embedded as it is): one line each."""
    if settings.all_platforms:
        return []
    want = settings.platform or Platform.host()
    out = []
    for item in items:
        place = RegistryDirReference(folder, item.repository, item.tag, item.digest)
        try:
            with place.new_source(ctx) as source:
                have = resolve(source, want, where=item.name).platform
        except ClusterImageError:
            continue  # not an image (an artifact): it has no platform to disagree with
        if have.architecture and not want.matches(have):
            out.append(
                f"{item.origin}: image {item.source} is for {have}, not {want}: "
                "registry/ holds it as it is"
            )
    return out


def fetch(
    items: Sequence[EmbedItem],
    cache: Path,
    ctx: Context,
    settings: EmbedSettings,
    on_event: Callable[[CopyEvent], None] | None = None,
) -> int:
    """Copy into the cache the items the pull policy wants; returns how many."""
    ctx.platform = settings.platform
    options = CopyOptions(all_platforms=settings.all_platforms, on_event=on_event)
    wanted = [
        item for item in items if item.cache_key is not None and _wanted(item, cache, ctx, settings)
    ]
    jobs = [CopyJob(item.source, _cached(item, cache), options, _label(item)) for item in wanted]
    _run(jobs, ctx, settings)
    return len(wanted)


def lay_out(
    items: Sequence[EmbedItem],
    target: Path,
    cache: Path,
    ctx: Context,
    settings: EmbedSettings,
    on_event: Callable[[CopyEvent], None] | None = None,
) -> dict[str, Digest]:
    """Copy fetched items (and archives) into the registry folder ``target``, hard-linking
    blobs from the cache; returns each image's name -> digest."""
    options = CopyOptions(all_platforms=settings.all_platforms, on_event=on_event)
    jobs = []
    for item in items:
        source = _cached(item, cache) if item.cache_key is not None else item.source
        destination = RegistryDirReference(target, item.repository, item.tag, item.digest)
        jobs.append(CopyJob(source, destination, options, _label(item)))
    results = _run(jobs, ctx, settings)
    return {item.name: result.digest for item, result in zip(items, results, strict=True)}


def _cached(item: EmbedItem, cache: Path) -> RegistryDirReference:
    assert item.cache_key is not None
    return RegistryDirReference(cache, item.cache_key, item.tag, item.digest)


def _wanted(item: EmbedItem, cache: Path, ctx: Context, settings: EmbedSettings) -> bool:
    """Whether ``item`` must be fetched: always, or missing from the cache for the platform."""
    if settings.policy is PullPolicy.always:
        return True
    try:
        with _cached(item, cache).new_source(ctx) as source:
            top = source.get_manifest()
            if not settings.all_platforms:  # --all builds keep a cache of their own
                # The cache is this platform's (image_cache): an image of another platform
                # in it is the source's only one, and fetching it again gives the same.
                resolve(source, settings.platform or Platform.host(), where=item.name, top=top)
    except ClusterImageError:
        if settings.policy is PullPolicy.never:
            raise ClusterImageError(
                f"{item.origin}: {item.source} is not in the image cache and --pull never "
                "forbids fetching it"
            ) from None
        return True
    return False


def _run(jobs: list[CopyJob], ctx: Context, settings: EmbedSettings) -> list[CopyResult]:
    return copy_many(jobs, ctx, parallel=settings.parallel) if jobs else []


def _label(item: EmbedItem) -> str:
    # A bare registry error does not say which of a context's images broke the build.
    return f"{item.origin}: image {item.source}"


def _swap(staging: Path, folder: Path) -> None:
    """Put the new folder in place of the old one (renames: a reader sees one or the other)."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.rename(folder, old)
    os.rename(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _key(items: Sequence[EmbedItem], settings: EmbedSettings) -> str:
    data = {
        "images": sorted(
            (item.name, str(item.source), item.identity, item.cache_key or "") for item in items
        ),
        "platform": str(settings.platform) if settings.platform else "",
        "all": settings.all_platforms,
        "policy": settings.policy.value,
    }
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_marker(path: Path, data: dict[str, Any]) -> None:
    fd, temp = tempfile.mkstemp(prefix=".marker-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def items_for(discovery: Discovery, context: Path) -> list[EmbedItem]:
    """What to embed for a discovery: pulled images, cached under their host; archives named
    by tar.txt, read from the context each time they change."""
    from clusterimage import transports
    from clusterimage.transports.docker import DockerReference

    items = []
    for image in discovery.images:
        ref = image.reference
        items.append(
            EmbedItem(
                source=DockerReference(ref),
                repository=ref.repository,
                tag=ref.tag,
                digest=ref.digest,
                origin=", ".join(str(origin) for origin in image.origins),
                cache_key=cache_repository(ref.registry, ref.repository),
            )
        )
    for archive in discovery.archives:
        path = context / archive.path
        try:
            st = path.stat()
        except OSError:
            raise ClusterImageError(f"{archive.origin}: {archive.path}: no such archive") from None
        name = archive.name
        items.append(
            EmbedItem(
                source=transports.parse(archive.source(context)),
                repository=name.repository,
                tag=name.tag or "latest",
                digest=None,
                origin=str(archive.origin),
                identity=f"{st.st_size}:{st.st_mtime_ns}",
            )
        )
    return items
