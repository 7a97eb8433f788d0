"""Running a build: the operation behind ``clusterimage build``, callable from Python.

:func:`plan` lints a context (parse, expand, plan; nothing written); :func:`build` plans, fetches
the base images the plan needs, picks the engine and builds into the store. The CLI only turns
flags into :class:`BuildSettings` and prints what comes back.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterimage.build.baseimage import BaseImages
from clusterimage.build.cache import chain_id
from clusterimage.build.context import load_ignore_rules
from clusterimage.build.dockerignore import IgnoreRules
from clusterimage.build.engine import (
    ENGINES,
    BuildEvent,
    BuildRequest,
    require_base_images,
    select_engine,
)
from clusterimage.build.layer import COMPRESSIONS
from clusterimage.build.plan import BuildPlan, plan_build
from clusterimage.copy import CopyEvent
from clusterimage.errors import ClusterImageError, UsageError
from clusterimage.images.embed import IMAGES_ANNOTATION, EmbedResult, images_annotation
from clusterimage.images.found import Discovery
from clusterimage.kubefile.parser import find_kubefile
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.paths import home_dir
from clusterimage.pull import PullPolicy
from clusterimage.store import Store
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
    platform: str | None = None
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
            Reference.parse(tag)  # a wrong -t fails a dry run too


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
            "chainID": chain_id(config.diff_ids),
            "tags": list(self.tags),
            "engine": self.engine,
            "platform": str(config.platform),
            "type": self.plan.image_type,
            "version": self.plan.image_version,
            "images": {
                k: str(v) for k, v in (self.embedded.images if self.embedded else {}).items()
            },
        }


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
    tags = tuple(str(Reference.parse(tag)) for tag in settings.tags)
    stamp = timestamp(settings.timestamp)
    ctx = _context(store, settings, ctx)
    images = BaseImages(store, ctx, pull=settings.pull is not PullPolicy.never)
    planner = _Planner(settings, images)
    the_plan = planner.plan()
    if the_plan.missing_sources:  # warnings in a dry run, errors in a build
        raise the_plan.missing_sources[0].error()
    if require_base_images(the_plan, images):
        the_plan = planner.plan()  # now with the base images' configs
    if on_plan is not None:
        on_plan(the_plan)
    engine = select_engine(settings.engine, the_plan)
    embedded = _embed(settings, ctx, on_copy) if settings.save_image else None
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
        ignore=planner.ignore,  # the rules the plan used: the engine does not parse them again
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


def registry_folder(context: Path) -> Path:
    """The registry/ a build of ``context`` lays out, kept between builds of that context."""
    key = hashlib.sha256(str(context.resolve()).encode()).hexdigest()[:16]
    return home_dir() / "cache" / "registry" / key / "registry"


def image_cache(all_platforms: bool = False) -> Path:
    """Every image fetched for a registry/, as a registry folder shared by all builds. Builds
    with --all keep their own: there a tag holds the whole index, elsewhere one platform's
    manifest, and a cache must never answer one for the other."""
    return home_dir() / "cache" / ("images-all" if all_platforms else "images")


def discover_images(settings: BuildSettings) -> Discovery:
    """The images the context names, as a build would put them in registry/."""
    from clusterimage.images import discover

    return discover(settings.context)


def _embed(
    settings: BuildSettings, ctx: Context, on_copy: Callable[[CopyEvent], None] | None
) -> EmbedResult:
    from clusterimage.images.embed import EmbedSettings, embed, items_for

    discovery = discover_images(settings)
    embed_settings = EmbedSettings(
        platform=None if settings.all_platforms else ctx.platform or Platform.host(),
        all_platforms=settings.all_platforms,
        parallel=settings.max_pull_procs,
        policy=settings.pull,
    )
    items = items_for(discovery, settings.context)
    folder = registry_folder(settings.context)
    cache = image_cache(settings.all_platforms)
    return embed(items, folder, cache, ctx, embed_settings, on_copy)
