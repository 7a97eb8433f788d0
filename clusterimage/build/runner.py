"""Running a build: the operation behind ``clusterimage build``, callable from Python.

:func:`plan` lints a context (parse, expand, plan; nothing written); :func:`build` plans, fetches
the base images the plan needs, picks the engine and builds into the store. The CLI only turns
flags into :class:`BuildSettings` and prints what comes back.

Several platforms (``--platform linux/amd64,linux/arm64``, or ``--manifest NAME``):
:func:`plans` and :func:`build_index` make one build per platform, each with its own
``registry/`` of that platform's images, then an OCI image index of them stored under each tag
and under the manifest list (which keeps the entries of other platforms it held).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clusterimage import manifests
from clusterimage.build.baseimage import BaseImages
from clusterimage.build.cache import chain_id
from clusterimage.build.context import load_ignore_rules
from clusterimage.build.dockerignore import IgnoreRules
from clusterimage.build.engine import (
    ENGINES,
    BuildEvent,
    BuildRequest,
    check_runnable,
    require_base_images,
    select_engine,
)
from clusterimage.build.layer import COMPRESSIONS
from clusterimage.build.plan import BuildPlan, plan_build
from clusterimage.copy import CopyEvent
from clusterimage.errors import ClusterImageError, ImageNotFound, UsageError
from clusterimage.images.embed import IMAGES_ANNOTATION, EmbedResult, images_annotation
from clusterimage.images.found import Discovery
from clusterimage.kubefile.parser import find_kubefile
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.paths import home_dir
from clusterimage.pull import PullPolicy
from clusterimage.store import Store
from clusterimage.store.layout import entry_name
from clusterimage.transports.base import Context


@dataclass
class BuildSettings:
    """What a build is asked to do; every field is a flag of ``clusterimage build``."""

    context: Path = Path(".")
    file: str | None = None  # -f: the Kubefile (default: found in the context)
    tags: Sequence[str] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    envs: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None  # one, or several comma-separated: see platforms()
    manifest: str | None = None  # --manifest: add the built images to this manifest list
    target: str | None = None
    compression: str | None = None  # None: gzip, and none for layers of registry/ only
    timestamp: int | None = None  # None: $SOURCE_DATE_EPOCH, else 0
    use_cache: bool = True
    engine: str = "auto"
    save_image: bool = True  # discover the context's images and fill registry/ with them
    all_platforms: bool = False  # registry/ keeps each image's whole index
    max_pull_procs: int = 5
    pull: PullPolicy = PullPolicy.missing  # for registry/ (and FROM: never means never)

    def check(self) -> None:
        if self.compression is not None and self.compression not in COMPRESSIONS:
            raise UsageError(f"--compression {self.compression!r}: choose gzip, zstd or none")
        if self.engine not in ENGINES:
            raise UsageError(f"--engine {self.engine!r}: choose {', '.join(ENGINES)}")
        if not self.context.is_dir():
            raise UsageError(f"build context {str(self.context)!r} is not a directory")
        for tag in self.tags:
            Reference.parse_local(tag)  # a wrong -t fails a dry run too
        if self.manifest is not None:
            _manifest_reference(self.manifest)
        self.platforms()

    def platforms(self) -> list[Platform]:
        """The platforms asked for (empty: this machine's); see :func:`parse_platforms`."""
        return parse_platforms(self.platform)

    @property
    def multi(self) -> bool:
        """Whether this is an index build: several platforms, or --manifest."""
        return self.manifest is not None or len(self.platforms()) > 1


@dataclass(frozen=True)
class BuildOutcome:
    descriptor: Descriptor  # of the built image manifest, tagged in the store
    plan: BuildPlan
    engine: str
    tags: tuple[str, ...]
    embedded: EmbedResult | None = None  # what registry/ holds (None: --save-image=false)

    @property
    def images(self) -> dict[str, Digest]:
        return dict(self.embedded.images) if self.embedded is not None else {}

    def summary(self, store: Store) -> dict[str, Any]:
        """What ``build --json`` prints (layers and warnings are the caller's to add)."""
        manifest = store.get_manifest(self.descriptor.digest, self.descriptor.media_type)
        config = store.get_config(manifest)  # type: ignore[arg-type]
        return {
            "digest": str(self.descriptor.digest),
            "mediaType": self.descriptor.media_type,
            "size": self.descriptor.size,
            "config": str(config.digest),
            "chainId": chain_id(config.diff_ids),
            "tags": list(self.tags),
            "engine": self.engine,
            "platform": str(config.platform),
            "type": self.plan.image_type,
            "version": self.plan.image_version,
            "images": {
                k: str(v) for k, v in (self.embedded.images if self.embedded else {}).items()
            },
        }


@dataclass(frozen=True)
class IndexOutcome:
    """An index build: one :class:`BuildOutcome` per platform and the index that lists them."""

    descriptor: Descriptor  # of the OCI image index, stored under tags and manifest
    builds: tuple[BuildOutcome, ...]  # in --platform order; their images are untagged
    tags: tuple[str, ...]
    manifest: str | None  # the --manifest list, fully qualified

    def summary(self, store: Store) -> dict[str, Any]:
        """What ``build --json`` prints for several platforms (per-platform layers and the
        warnings are the caller's to add)."""
        return {
            "digest": str(self.descriptor.digest),
            "mediaType": self.descriptor.media_type,
            "size": self.descriptor.size,
            "tags": list(self.tags),
            "manifest": self.manifest,
            "platforms": [outcome.summary(store) for outcome in self.builds],
        }


def parse_platforms(value: str | Sequence[str] | None) -> list[Platform]:
    """``--platform`` values, each one platform or a comma-separated list of them (the flag
    may be repeated): each checked by :meth:`Platform.parse`, in order; a platform named twice
    (also as ``linux/arm64`` and ``linux/arm64/v8``, which are one) is refused."""
    if not value:
        return []  # --platform "" is this machine's, as before lists
    values = [value] if isinstance(value, str) else list(value)
    out: list[Platform] = []
    given: dict[Platform, str] = {}
    for item in values:
        for part in item.split(","):
            if not part.strip():
                raise UsageError(f"--platform {item!r}: an empty platform in the list")
            platform = Platform.parse(part)
            if platform in given:
                again = "" if given[platform] == part.strip() else f" (as {given[platform]!r})"
                raise UsageError(f"--platform {part.strip()!r}: given twice{again}")
            given[platform] = part.strip()
            out.append(platform)
    return out


def _manifest_reference(name: str) -> Reference:
    ref = Reference.parse_local(name)
    if ref.digest is not None:
        raise UsageError(f"--manifest {name!r}: a manifest list is named by a tag, not a digest")
    return ref


def timestamp(value: int | None) -> int:
    """``--timestamp``, else ``$SOURCE_DATE_EPOCH``, else 0."""
    if value is not None:
        if value < 0:
            raise UsageError(f"--timestamp {value}: must be >= 0 (seconds since the epoch)")
        return value
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not env:
        return 0
    try:
        parsed = int(env)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH={env!r}: not a number of seconds") from None
    if parsed < 0:
        raise UsageError(f"SOURCE_DATE_EPOCH={env!r}: must be >= 0")
    return parsed


def _ignore_rules(context: Path, kubefile: str | None) -> IgnoreRules:
    kubefile_path = Path(kubefile) if kubefile else None
    if kubefile_path is None:
        try:
            kubefile_path = find_kubefile(context)
        except ClusterImageError:
            kubefile_path = None  # plan_build reports the missing Kubefile
    return load_ignore_rules(context, kubefile_path)


class _Planner:
    """Makes the plan, again once the base images' configs are known."""

    def __init__(self, settings: BuildSettings, images: BaseImages | None) -> None:
        self.settings = settings
        self.images = images
        self.ignore = _ignore_rules(settings.context, settings.file)

    def plan(self) -> BuildPlan:
        s = self.settings
        return plan_build(
            s.context,
            s.file,
            build_args=s.build_args,
            labels=s.labels,
            envs=s.envs,
            platform=s.platform,
            target=s.target,
            base_config=self.images.config if self.images is not None else None,
            is_ignored=self.ignore.ignored,
        )


def _context(store: Store | None, settings: BuildSettings, ctx: Context | None) -> Context:
    ctx = ctx or Context()
    if store is not None:
        ctx.store_dir = store.root
    if settings.platform:
        ctx.platform = Platform.parse(settings.platform)
    return ctx


def plan(settings: BuildSettings, store: Store | None = None) -> BuildPlan:
    """The plan of a build, as ``--dry-run`` shows it: nothing is written or pulled; base
    images already in ``store`` lend their configs."""
    settings.check()
    if len(settings.platforms()) > 1:
        raise UsageError("several platforms: use plans()")
    ctx = _context(store, settings, None)
    images = BaseImages(store, ctx, pull=False) if store is not None else None
    return _Planner(settings, images).plan()


def build(
    settings: BuildSettings,
    store: Store,
    *,
    ctx: Context | None = None,
    on_event: Callable[[BuildEvent], None] | None = None,
    on_plan: Callable[[BuildPlan], None] | None = None,
    on_copy: Callable[[CopyEvent], None] | None = None,
) -> BuildOutcome:
    """Build into ``store``; ``ctx`` carries the registry settings for pulling base images.
    ``on_plan`` sees the final plan before the engine starts (to show its warnings)."""
    settings.check()
    if settings.multi:
        raise UsageError("several platforms or --manifest: use build_index()")
    tags = tuple(str(Reference.parse_local(tag)) for tag in settings.tags)
    stamp = timestamp(settings.timestamp)
    job = _Job(settings, store, _context(store, settings, ctx))
    # Missing sources (warnings in a dry run, errors here), and a RUN this machine cannot run
    # for the platform: one line now, as for several platforms, not buildah's exec failure.
    job.check()
    return job.run(tags, stamp, on_event, on_plan, on_copy)


class _Job:
    """One platform's build: planned first (so that every platform of an index build is
    checked before any is built), then its remaining base images fetched, registry/ filled,
    built."""

    def __init__(self, settings: BuildSettings, store: Store, ctx: Context) -> None:
        self.settings = settings
        self.store = store
        self.ctx = ctx
        self.images = BaseImages(store, ctx, pull=settings.pull is not PullPolicy.never)
        self.planner = _Planner(settings, self.images)
        self.plan = self.planner.plan()

    def check(self) -> None:
        """Fail now for what would fail this build later (a missing source, RUN where the
        engine or this machine cannot run it), before any platform is built."""
        if self.plan.missing_sources:
            raise self.plan.missing_sources[0].error()
        engine = select_engine(self.settings.engine, self.plan)
        check_runnable(self.plan, engine.name)

    def run(
        self,
        tags: tuple[str, ...],
        stamp: int,
        on_event: Callable[[BuildEvent], None] | None,
        on_plan: Callable[[BuildPlan], None] | None,
        on_copy: Callable[[CopyEvent], None] | None,
    ) -> BuildOutcome:
        settings, store, ctx, images, planner = (
            self.settings,
            self.store,
            self.ctx,
            self.images,
            self.planner,
        )
        the_plan = self.plan
        if require_base_images(the_plan, images):
            the_plan = self.plan = planner.plan()  # now with the base images' configs
        if on_plan is not None:
            on_plan(the_plan)
        engine = select_engine(settings.engine, the_plan)
        embedded = _embed(settings, ctx, on_copy) if settings.save_image else None
        for warning in embedded.warnings if embedded is not None else []:
            if on_event is not None:
                on_event(BuildEvent("warning", warning))
        request = BuildRequest(
            store=store,
            home=home_dir(),
            tags=tags,
            labels=settings.labels,
            envs=settings.envs,
            compression=settings.compression or "gzip",
            registry_compression=settings.compression or "none",
            timestamp=stamp,
            use_cache=settings.use_cache,
            ignore=planner.ignore,  # the rules the plan used: the engine does not parse them
            transport_context=ctx,
            base_images=images,
            on_event=on_event,
        )
        if embedded is not None:
            request.registry_dir = embedded.folder
            request.discovered_images = tuple(embedded.images)
            if embedded.images:
                request.annotations = {IMAGES_ANNOTATION: images_annotation(embedded.images)}
        descriptor = engine.build(the_plan, request)
        return BuildOutcome(descriptor, the_plan, engine.name, tags, embedded)


def plans(settings: BuildSettings, store: Store | None = None) -> list[BuildPlan]:
    """:func:`plan` for each platform asked for (one plan when one or none is)."""
    settings.check()
    platforms = settings.platforms()
    if len(platforms) <= 1:
        return [plan(settings, store)]
    return [plan(replace(settings, platform=str(p), manifest=None), store) for p in platforms]


def build_index(
    settings: BuildSettings,
    store: Store,
    *,
    ctx: Context | None = None,
    on_event: Callable[[BuildEvent], None] | None = None,
    on_plan: Callable[[BuildPlan], None] | None = None,
    on_copy: Callable[[CopyEvent], None] | None = None,
) -> IndexOutcome:
    """Build once per platform of ``settings`` (each untagged, with its own registry/), then
    store an OCI image index of them under every tag and under ``settings.manifest``, whose
    list, when it exists, keeps its entries of other platforms and loses those of the built
    ones. Every platform is planned and checked (RUN needs a machine that runs it) before
    any is built. ``on_event`` sees a ``platform`` event before each build."""
    settings.check()
    tags = tuple(str(Reference.parse_local(tag)) for tag in settings.tags)
    manifest = _manifest_reference(settings.manifest) if settings.manifest else None
    stamp = timestamp(settings.timestamp)
    base = ctx or Context()
    platforms = settings.platforms() or [base.platform or Platform.host()]
    jobs = []
    for platform in platforms:
        one = replace(settings, platform=str(platform), manifest=None)
        job = _Job(one, store, _context(store, one, replace(base, platform=platform)))
        job.check()
        jobs.append(job)
    if manifest is not None:
        _check_list_name(store, manifest)  # an image of that name is refused before building
    with store.writing():  # the untagged images are unreferenced until the index is stored
        before = {e.digest for e in store.images() if e.name is None}
        builds: list[BuildOutcome] = []
        try:
            for number, (platform, job) in enumerate(zip(platforms, jobs, strict=True), 1):
                if on_event is not None:
                    said = f"PLATFORM {number}/{len(platforms)}: {platform}"
                    on_event(BuildEvent("platform", said, {"platform": str(platform)}))
                builds.append(job.run((), stamp, on_event, on_plan, on_copy))
            entries = [_index_entry(store, outcome.descriptor) for outcome in builds]
            # (A list's previous version leaves index.json as the list moves, as podman
            # edits a list in place.)
            if manifest is not None:
                descriptor = _add_to_list(store, manifest, entries)
            else:
                index = ImageIndex.build(entries, media_type=mt.OCI_INDEX)
                store.put_bytes(index.raw, expected=index.digest)
                descriptor = index.descriptor()
            for name in tags:
                store.tag(descriptor, Reference.parse(name))
                if on_event is not None:
                    said = f"Successfully tagged {name}"
                    on_event(BuildEvent("tag", said, {"reference": name}))
            if manifest is not None and on_event is not None:
                said = f"Successfully tagged {manifest}"
                on_event(BuildEvent("tag", said, {"reference": str(manifest)}))
            if not tags and manifest is None:
                store.set_ref(None, descriptor)  # untagged, as one platform without -t
        except BaseException:
            # Failed or interrupted after some platforms were built: their untagged images
            # are no result of this build, and no index refers to them.
            with contextlib.suppress(ClusterImageError, OSError):
                _drop_untagged(store, builds, before)
            raise
        _drop_untagged(store, builds, before)
    return IndexOutcome(descriptor, tuple(builds), tags, str(manifest) if manifest else None)


def _drop_untagged(store: Store, builds: Sequence[BuildOutcome], before: set[Digest]) -> None:
    """Drop the unnamed entries of the platforms' images from index.json (the index, when
    stored, refers to them); an unnamed image that was listed before stays as it was."""
    mine = {str(outcome.descriptor.digest) for outcome in builds}
    store.update_index(
        lambda old: [
            e
            for e in old
            if entry_name(e) is not None
            or e.get("digest") not in mine
            or Digest.parse(e["digest"]) in before
        ]
    )


def _platform_key(platform: Platform | None) -> tuple[str, str, str] | None:
    """What makes two list entries the same platform (``arm64`` is ``arm64/v8``)."""
    if platform is None:
        return None
    p = platform.normalized()
    return p.os, p.architecture, p.variant or ""


def _index_entry(store: Store, desc: Descriptor) -> Descriptor:
    """An image's descriptor in an index: media type, digest, size, and the platform of its
    config (required there so that pulls pick it)."""
    described = store.describe(store.get_manifest(desc.digest, desc.media_type))
    if described.platform is None:
        raise ClusterImageError(f"built image {desc.digest} has no platform in its config")
    return Descriptor(desc.media_type, desc.digest, desc.size, platform=described.platform)


def _add_to_list(store: Store, ref: Reference, entries: list[Descriptor]) -> Descriptor:
    """Put ``entries`` in the manifest list ``ref`` (made when missing), replacing its entries
    of the same platforms; returns the list's new descriptor. The ``manifest`` verbs' one
    locked edit (:func:`manifests.put_list`): an edit that lands meanwhile is kept, and so are
    the list's own annotations and its other entries as they are."""
    built = {_platform_key(entry.platform) for entry in entries}

    def change(data: dict[str, Any] | None) -> dict[str, Any]:
        if data is None:
            data = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        data["manifests"] = [
            raw
            for raw in data.get("manifests") or []
            if _platform_key(Descriptor.from_dict(raw, f"{ref}").platform) not in built
        ]
        data["mediaType"] = mt.OCI_INDEX  # its entries are OCI images now
        data["manifests"] += [entry.to_dict() for entry in entries]
        return data

    try:
        return manifests.put_list(store, str(ref), change).descriptor
    except manifests.NotAList:
        raise _not_a_list(ref) from None


def _not_a_list(ref: Reference) -> UsageError:
    return UsageError(
        f"--manifest {ref}: that name is an image, not a manifest list (remove it with "
        "`clusterimage rmi`, or choose another name)"
    )


def _check_list_name(store: Store, ref: Reference) -> None:
    """An image of the name ``--manifest`` gives that is not a list is an error, as in podman."""
    try:
        manifests.find_list(store, str(ref))
    except ImageNotFound:
        pass  # made by this build
    except manifests.NotAList:
        raise _not_a_list(ref) from None


def registry_folder(context: Path, platform: Platform | None = None) -> Path:
    """The registry/ a build of ``context`` lays out, kept between builds of that context for
    that platform (None: every platform, --all), so the platforms of one build do not
    overwrite each other's."""
    where = str(context.resolve()) + "\0" + (str(platform) if platform else "all")
    key = hashlib.sha256(where.encode()).hexdigest()[:16]
    return home_dir() / "cache" / "registry" / key / "registry"


def image_cache(all_platforms: bool = False, platform: Platform | None = None) -> Path:
    """Every image fetched for a registry/, as a registry folder shared by builds. A tag there
    holds one platform's manifest (the whole index with --all), and a cache must never answer
    one for another: builds with --all keep their own, and so does each platform other than
    this machine's, so that the platforms of one build (or two builds at once) never replace
    each other's tags."""
    if all_platforms:
        return home_dir() / "cache" / "images-all"
    if platform is None or platform == Platform.host():
        return home_dir() / "cache" / "images"
    slug = str(platform).replace("/", "-")
    return home_dir() / "cache" / f"images-{slug}"


def discover_images(settings: BuildSettings) -> Discovery:
    """The images the context names, as a build would put them in registry/."""
    from clusterimage.images import discover

    return discover(settings.context)


def _embed(
    settings: BuildSettings, ctx: Context, on_copy: Callable[[CopyEvent], None] | None
) -> EmbedResult:
    from clusterimage.images.embed import EmbedSettings, embed, items_for

    discovery = discover_images(settings)
    platform = None if settings.all_platforms else ctx.platform or Platform.host()
    embed_settings = EmbedSettings(
        platform=platform,
        all_platforms=settings.all_platforms,
        parallel=settings.max_pull_procs,
        policy=settings.pull,
    )
    items = items_for(discovery, settings.context)
    folder = registry_folder(settings.context, platform)
    cache = image_cache(settings.all_platforms, platform)
    return embed(items, folder, cache, ctx, embed_settings, on_copy)
