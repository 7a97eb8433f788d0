"""Build engines: what turns a :class:`~clusterimage.build.plan.BuildPlan` into an image in the
store, and how one is chosen.

Every engine has the same small interface, :class:`Engine`::

    engine = select_engine("auto", plan)           # native, or buildah when the plan needs RUN
    descriptor = engine.build(plan, request)       # the image manifest, tagged in request.store

- ``native`` (:mod:`clusterimage.build.native`): no daemon, no root, no RUN; deterministic layers
  and a build cache.
- ``buildah`` (:mod:`clusterimage.build.buildah`): runs buildah for Kubefiles with RUN, then
  imports the result into the store.

:class:`BuildRequest` carries everything besides the plan: the store, tags, compression,
timestamp, cache use, the generated ``registry/`` folder, the context's ignore rules and a
callback for progress events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol

from clusterimage.build.baseimage import BaseImages
from clusterimage.build.dockerignore import IgnoreRules
from clusterimage.build.plan import BuildPlan, RunStep
from clusterimage.errors import ClusterImageError, UsageError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.store import Store
from clusterimage.transports.base import Context

ENGINES: Final = ("auto", "native", "buildah")

EventKind = Literal["stage", "step", "cached", "layer", "warning", "output", "tag"]


@dataclass(frozen=True)
class BuildEvent:
    """Something worth showing while a build runs (``kind`` says what; ``data`` for --json)."""

    kind: EventKind
    message: str
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass
class BuildRequest:
    """Everything a build needs besides the plan."""

    store: Store
    home: Path  # $CLUSTERIMAGE_HOME: cache/, tmp/, buildah/ live below it
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # --label (already in plan.config)
    envs: Mapping[str, str] = field(default_factory=dict)  # --env (already in plan.config)
    compression: str = "gzip"
    # Layers that copy only registry/ (already compressed blobs): "none" unless asked otherwise.
    registry_compression: str = "none"
    timestamp: int = 0  # --timestamp, else SOURCE_DATE_EPOCH, else 0
    use_cache: bool = True  # --no-cache: False
    registry_dir: Path | None = None  # the generated registry/ (None: an empty folder)
    # The context's ignore rules as the plan used them (parsed once); None: read them again.
    ignore: IgnoreRules | None = None
    discovered_images: tuple[str, ...] = ()  # images found for registry/ (image discovery)
    annotations: Mapping[str, str] = field(default_factory=dict)  # on the built manifest
    transport_context: Context | None = None  # for pulling base images
    pull: bool = True  # copy missing base images into the store
    base_images: BaseImages | None = None  # shared with the plan's base_config resolver
    on_event: Callable[[BuildEvent], None] | None = None

    def emit(self, kind: EventKind, message: str, **data: object) -> None:
        if self.on_event is not None:
            self.on_event(BuildEvent(kind, message, data))

    @property
    def context(self) -> Context:
        if self.transport_context is None:
            self.transport_context = Context(store_dir=self.store.root)
        return self.transport_context

    @property
    def images(self) -> BaseImages:
        if self.base_images is None:
            self.base_images = BaseImages(self.store, self.context, pull=self.pull)
        return self.base_images


class Engine(Protocol):
    name: str

    def build(self, plan: BuildPlan, request: BuildRequest) -> Descriptor:
        """Build ``plan`` into ``request.store``, tag it with ``request.tags``; returns the
        descriptor of the image manifest. Raises ClusterImageError subclasses for user errors."""
        ...


def require_base_images(plan: BuildPlan, images: BaseImages) -> bool:
    """Fetch every image a used stage starts FROM that the plan could not read, failing at the
    FROM line of one the store does not have and cannot get. True when one was fetched now: the
    plan was made without its config and must be made again."""
    fetched = False
    for stage in plan.stages_to_build():
        base = stage.base
        if base.kind == "image" and not stage.base_config_known:
            try:
                images.get(base.reference or base.name, stage.platform)
            except ClusterImageError as exc:
                raise stage.location.error(str(exc)) from None
            fetched = True
    return fetched


def first_run(plan: BuildPlan) -> RunStep | None:
    for stage in plan.stages_to_build():
        for step in stage.steps:
            if isinstance(step, RunStep):
                return step
    return None


def check_shell(plan: BuildPlan) -> None:
    """A shell-form RUN in a stage FROM scratch that nothing has been copied into yet has no
    /bin/sh to run it: say so at its line before anything runs (buildah would fail later, its
    message glued to the next one). Exec form, or files copied in first, may bring one."""
    for stage in plan.stages_to_build():
        if stage.base.kind != "scratch":
            continue
        for step in stage.steps:
            if isinstance(step, RunStep):
                if step.shell_form:
                    raise step.location.error(
                        "RUN needs a base image with a shell; FROM scratch has none (start "
                        "FROM an image that has /bin/sh, copy one in first, or use the exec "
                        'form RUN ["/path/to/tool", ...])'
                    )
                break
            if step.kind == "copy":
                break  # something was copied in (COPY or ADD): it may be a shell


def select_engine(name: str, plan: BuildPlan) -> Engine:
    """``auto`` is buildah when the plan needs RUN, else native."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r} (choose {', '.join(ENGINES)})")
    check_shell(plan)
    if name == "auto":
        name = "buildah" if plan.needs_run else "native"
    if name == "native":
        run = first_run(plan)
        if run is not None:
            raise run.location.error(
                "RUN needs the buildah engine (--engine buildah, or auto); the native engine "
                "does not run commands"
            )
        from clusterimage.build.native import NativeEngine

        return NativeEngine()
    return _BuildahAdapter()


class _BuildahAdapter:
    """The buildah engine behind the common interface."""

    name = "buildah"

    def build(self, plan: BuildPlan, request: BuildRequest) -> Descriptor:
        from clusterimage.build.buildah import BuildahEngine, BuildahOptions

        options = BuildahOptions(
            tags=request.tags,
            labels=dict(request.labels),
            envs=dict(request.envs),
            timestamp=request.timestamp,
            compression=request.compression,
            registry_dir=request.registry_dir,
            ignore=request.ignore,
            pull=request.pull,
            transport_context=request.context,
            output=lambda line: request.emit("output", line),
        )
        result = BuildahEngine(request.home).build(plan, request.store, options)
        manifest = request.store.get_manifest(result.copy.digest, result.copy.media_type)
        return request.store.describe(manifest)
