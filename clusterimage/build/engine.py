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
from clusterimage.oci.platform import Platform
from clusterimage.store import Store
from clusterimage.transports.base import Context

ENGINES: Final = ("auto", "native", "buildah")

EventKind = Literal["stage", "step", "cached", "layer", "warning", "output", "tag", "platform"]

BINFMT_MISC: Final = Path("/proc/sys/fs/binfmt_misc")
# GOARCH -> the name qemu (and so its binfmt_misc handlers, qemu-<name>) gives the architecture.
_QEMU_ARCH: Final = {
    "amd64": "x86_64",
    "386": "i386",
    "arm64": "aarch64",
    "arm": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64le": "mips64el",
    "mips64": "mips64",
    "mipsle": "mipsel",
    "mips": "mips",
    "loong64": "loongarch64",
}
# Architectures a host runs without emulation besides its own (the kernel's compat modes).
_NATIVE_COMPAT: Final = {"amd64": frozenset({"386"})}


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


def cannot_run(platform: Platform, binfmt: Path = BINFMT_MISC) -> str | None:
    """Why this machine cannot run ``platform``'s programs (RUN), or None when it can: its own
    architecture (and kernel compat modes such as 386 on amd64) runs natively, others need an
    enabled binfmt_misc handler (qemu-user), as buildah relies on."""
    host = Platform.host()
    if platform.os != host.os:
        return f"this machine runs {host.os} programs, not {platform.os} ones"
    if platform.architecture == host.architecture or platform.architecture in _NATIVE_COMPAT.get(
        host.architecture, frozenset()
    ):
        return None
    qemu = _QEMU_ARCH.get(platform.architecture, platform.architecture)
    how = (
        f"this {host} machine has no binfmt_misc handler for {qemu} in {binfmt} (register "
        f"qemu-user-static's, e.g. `docker run --privileged --rm tonistiigi/binfmt --install "
        f"{platform.architecture}`)"
    )
    status = binfmt / "status"
    try:
        if status.is_file() and status.read_text().strip() != "enabled":
            return f"binfmt_misc is disabled on this {host} machine ({status})"
        handlers = [p for p in binfmt.iterdir() if p.name not in ("status", "register")]
    except OSError:
        return how  # not mounted (a container), or not readable: nothing to run it with
    for handler in handlers:
        try:
            lines = handler.read_text().splitlines()
        except OSError:
            continue
        if not lines or lines[0].strip() != "enabled":
            continue
        interpreter = next(
            (line.split(None, 1)[1] for line in lines if line.startswith("interpreter ")), ""
        )
        # Named by the handler (qemu-aarch64) or its interpreter: qemu-aarch64[-static], or
        # Debian's /usr/libexec/qemu-binfmt/aarch64-binfmt-P.
        names = {handler.name, Path(interpreter.strip()).name}
        wanted = (f"qemu-{qemu}", f"qemu-{qemu}-static", f"{qemu}-binfmt-P")
        if any(n in wanted for n in names):
            return None
    return how


def check_runnable(plan: BuildPlan, engine: str, binfmt: Path = BINFMT_MISC) -> None:
    """Fail at the first RUN when the buildah engine would have to run programs of a platform
    this machine cannot run, before the build starts; the error names the platform and why.
    Stages of another platform (FROM --platform=...) are checked for their own."""
    if engine != "buildah":
        return
    for stage in plan.stages_to_build():
        run = next((step for step in stage.steps if isinstance(step, RunStep)), None)
        if run is None:
            continue
        reason = cannot_run(stage.platform, binfmt)
        if reason is not None:
            raise run.location.error(f"RUN for platform {stage.platform} cannot run: {reason}")


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
