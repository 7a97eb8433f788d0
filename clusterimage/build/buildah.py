"""The buildah engine: builds what the native engine cannot (RUN), then imports into the store.

``buildah build`` runs in a private storage root made for this one build under
``$CLUSTERIMAGE_HOME/buildah/builds/<id>`` (removed afterwards, so concurrent builds never share
state and nothing is left behind), with ``--isolation chroot`` (the only isolation that runs
RUN on hosts without a working OCI runtime setup), ``--pull=never`` and no identity label:

- base images (``FROM`` and ``COPY --from`` an image) come from our store: ``buildah pull`` reads
  them straight from the store's OCI layout (``oci:<store>:<ref name>``, the store holds the
  layout's index entry named by the full reference) and tags them with that reference, which
  buildah's lookup also finds for the short names a Kubefile writes;
- the context buildah sees is materialised in the build folder from the
  :class:`~clusterimage.build.context.BuildContext` tree: hard links to the user's files (copies
  across filesystems), the generated ``registry/`` overlaid, ignored files already left out
  (buildah gets an empty ignore file so rules are not applied twice). The user's folder is only
  read;
- the result is pushed to an OCI layout in the build folder (compressed once, by buildah) and
  copied into the store through the ``oci:`` transport by the copy engine, under every tag, so
  later commands see one kind of image whatever the engine.

A failure is one line naming the Kubefile instruction buildah stopped at and buildah's last
error line.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from filelock import FileLock, Timeout

from clusterimage.build import baseimage
from clusterimage.build.confined import Confined
from clusterimage.build.context import BuildContext, Overlay
from clusterimage.build.dockerignore import IgnoreRules
from clusterimage.build.fstree import Content, FsTree
from clusterimage.build.layer import open_content
from clusterimage.build.plan import REGISTRY_DIR, BuildPlan, StagePlan
from clusterimage.copy import CopyResult, copy_image
from clusterimage.errors import BuildError, ClusterImageError
from clusterimage.kubefile.instructions import Location
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.store.store import Store
from clusterimage.transports.base import Context
from clusterimage.transports.oci_layout import OciLayoutReference
from clusterimage.transports.store import StoreReference

DRIVERS: Final = ("overlay", "vfs")
#: Overrides the storage driver choice (``overlay`` or ``vfs``).
DRIVER_ENV: Final = "CLUSTERIMAGE_BUILDAH_DRIVER"
_COMPRESSION_FLAGS: Final = {
    "gzip": ("--compression-format", "gzip"),
    "zstd": ("--compression-format", "zstd"),
    "none": ("--disable-compression",),
}
_OUTPUT_TAIL = 40  # lines of buildah output kept for the error message
_STEP_RE = re.compile(r"^(?:\[(\d+)/(\d+)\] )?STEP (\d+)/(\d+): (.*)$")
_ERROR_PREFIX = "Error: "
_AT_STEP_RE = re.compile(r'^(?:error )?building at STEP "(.*)": (.*)$', re.S)
_NOISE = ("subprocess exited with status", "time=", "level=")
# Transports buildah reads by itself in FROM and COPY --from.
_BUILDAH_READS = ("oci:", "oci-archive:", "docker-archive:")


@dataclass
class BuildahOptions:
    """What the build command line gives the engine besides the plan."""

    tags: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # --label, given to buildah as is
    envs: Mapping[str, str] = field(default_factory=dict)  # --env
    timestamp: int = 0  # created time and mtimes (the CLI resolves SOURCE_DATE_EPOCH)
    compression: str = "gzip"
    registry_dir: Path | None = None  # the generated registry/ (None: an empty folder)
    ignore: IgnoreRules | None = None  # the context's ignore rules (None: read them)
    pull: bool = True  # copy base images missing from the store into it
    transport_context: Context | None = None  # for those copies
    output: Callable[[str], None] | None = None  # gets buildah's output lines (progress)


@dataclass(frozen=True)
class BuildahResult:
    copy: CopyResult
    tags: tuple[str, ...]
    driver: str


def find_buildah() -> str:
    """The buildah executable; a one-line error saying how to get it when it is missing."""
    path = shutil.which("buildah") or shutil.which("buildah", path="/usr/sbin:/usr/local/bin")
    if path is None:
        raise BuildError(
            "RUN needs the buildah engine, and buildah is not installed "
            "(Debian: apt-get install buildah)"
        )
    return path


class BuildahEngine:
    """Builds a :class:`~clusterimage.build.plan.BuildPlan` with buildah into a :class:`Store`."""

    name = "buildah"

    def __init__(self, home: Path, buildah: str | None = None) -> None:
        self.home = Path(home) / "buildah"
        self.buildah = buildah or find_buildah()

    # -- public -------------------------------------------------------------------------------

    def build(self, plan: BuildPlan, store: Store, options: BuildahOptions) -> BuildahResult:
        if plan.missing_sources:
            raise plan.missing_sources[0].error()
        self.home.mkdir(parents=True, exist_ok=True)
        _sweep_stale(self.home / "builds")
        driver = self.storage_driver()
        with _BuildDir(self.home / "builds") as work:
            run = _Run(self, plan, store, options, work, driver)
            try:
                return run.execute()
            finally:
                run.cleanup()

    def storage_driver(self) -> str:
        """``overlay`` when it works here (measured once, remembered), else ``vfs``."""
        forced = os.environ.get(DRIVER_ENV)
        if forced:
            if forced not in DRIVERS:
                raise BuildError(f"{DRIVER_ENV}={forced!r}: expected one of {', '.join(DRIVERS)}")
            return forced
        remembered = self.home / "driver"
        with contextlib.suppress(OSError):
            value = remembered.read_text().strip()
            if value in DRIVERS:
                return value
        driver = "overlay" if self._overlay_works() else "vfs"
        tmp = remembered.with_name(f".driver.{os.getpid()}")
        tmp.write_text(driver + "\n")
        os.replace(tmp, remembered)
        return driver

    def _overlay_works(self) -> bool:
        # Mounting a container is what fails where overlay does not work (overlay on overlay,
        # some rootless setups); `from scratch` + `mount` + cleanup is the smallest real test.
        probe = self.home / f"probe-{secrets.token_hex(4)}"
        base = self._storage_args(probe, "overlay")
        try:
            created = self._quiet_run([*base, "from", "--quiet", "scratch"])
            if created is None:
                return False
            container = created.strip()
            ok = self._quiet_run([*base, "mount", container]) is not None
            self._quiet_run([*base, "rm", "--all"])
            return ok
        finally:
            shutil.rmtree(probe, ignore_errors=True)

    # -- helpers used by _Run ------------------------------------------------------------------

    def _storage_args(self, root: Path, driver: str) -> list[str]:
        return [
            self.buildah,
            "--root",
            str(root / "storage"),
            "--runroot",
            str(root / "run"),
            "--storage-driver",
            driver,
        ]

    def _quiet_run(self, argv: list[str]) -> str | None:
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
                env=_buildah_env(None),
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None


class _BuildDir:
    """``builds/<id>/`` for one build, held by a lock file while the build runs."""

    def __init__(self, parent: Path) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.path = parent / f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(6)}"
        self._lock = FileLock(str(self.path) + ".lock")

    def __enter__(self) -> Path:
        # Lock first: a sweep by another build only removes folders whose lock is free.
        self._lock.acquire()
        self.path.mkdir(mode=0o700)
        return self.path

    def __exit__(self, *exc: object) -> None:
        try:
            _remove_tree(self.path)
        finally:
            self._lock.release()
            with contextlib.suppress(OSError):
                os.unlink(str(self.path) + ".lock")


def _sweep_stale(parent: Path) -> None:
    """Remove build folders whose build process died (their lock is free)."""
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if not entry.is_dir():
            continue
        lock = FileLock(str(entry) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            _unmount_below(entry)
            _remove_tree(entry)
        finally:
            lock.release()
            with contextlib.suppress(OSError):
                os.unlink(str(entry) + ".lock")


def _unmount_below(root: Path) -> None:
    """Unmount what a killed buildah left mounted under ``root`` (overlay), deepest first."""
    prefix = str(root.resolve()) + "/"
    try:
        with open("/proc/self/mountinfo") as handle:
            points = [line.split()[4] for line in handle]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_tree(path: Path) -> None:
    def retry(
        func: Callable[..., object], name: str, info: tuple[type, BaseException, object]
    ) -> None:
        exc = info[1]
        if isinstance(exc, FileNotFoundError):
            return
        if isinstance(exc, PermissionError):
            # Layers keep the image's modes: a 0555 directory must be opened up first.
            os.chmod(os.path.dirname(name), 0o700)
            func(name)
            return
        raise exc

    if path.exists():
        shutil.rmtree(path, onerror=retry)  # onexc needs Python 3.12


def _buildah_env(tmpdir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    # buildah writes big temporary files (layer diffs, pushes) to TMPDIR: keep them in the build
    # folder so a failed build leaves nothing elsewhere.
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    env.pop("BUILDAH_ISOLATION", None)
    env.pop("BUILDAH_LAYERS", None)
    env.pop("BUILDAH_FORMAT", None)
    env.setdefault("LC_ALL", "C")
    return env


class _Run:
    """One build: prepare the storage and context, run buildah, import, clean up."""

    def __init__(
        self,
        engine: BuildahEngine,
        plan: BuildPlan,
        store: Store,
        options: BuildahOptions,
        work: Path,
        driver: str,
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.store = store
        self.options = options
        self.work = work
        self.driver = driver
        self.base = engine._storage_args(work, driver)
        self.tmp = work / "tmp"
        self.tmp.mkdir()
        self.image = f"localhost/clusterimage-build/{work.name}:latest"

    # -- the steps --------------------------------------------------------------------------

    def execute(self) -> BuildahResult:
        tags = tuple(str(Reference.parse(tag)) for tag in self.options.tags)
        self._load_base_images()
        context_dir = self._materialise_context()
        self._build(context_dir)
        layout = self.work / "out"
        self._push(layout)
        ctx = Context(store_dir=self.store.root)
        source = OciLayoutReference(layout, "image")
        # Without -t the image is stored untagged, as the native engine does.
        result = copy_image(source, StoreReference(tags[0] if tags else ""), ctx)
        for tag in tags[1:]:  # the blobs are there: only the index entry is new
            result = copy_image(source, StoreReference(tag), ctx)
        return BuildahResult(result, tags, self.driver)

    def cleanup(self) -> None:
        # Remove every container and image of this build's storage (unmounting overlay layers)
        # before the folder goes.
        for args in (["rm", "--all"], ["rmi", "--all", "--force"]):
            subprocess.run(
                [*self.base, *args],
                capture_output=True,
                check=False,
                stdin=subprocess.DEVNULL,
                env=_buildah_env(self.tmp),
            )
        _unmount_below(self.work)

    def _load_base_images(self) -> None:
        """Pull every image a used stage starts FROM or copies from, out of our store."""
        wanted: dict[str, tuple[Platform, Location]] = {}
        for stage in self.plan.stages_to_build():
            if stage.base.kind == "image" and stage.base.reference:
                wanted.setdefault(stage.base.reference, (stage.platform, stage.location))
            for step in stage.steps:
                from_image = getattr(step, "from_image", None)
                if from_image:
                    wanted.setdefault(from_image, (stage.platform, step.location))
        for ref, (platform, location) in wanted.items():
            self._load_base_image(ref, platform, location)

    def _load_base_image(self, name: str, platform: Platform, location: Location) -> None:
        if name.startswith(_BUILDAH_READS):
            return  # buildah reads a layout or an archive itself, as the Kubefile names it
        if name.startswith("store:"):
            raise location.error(
                f"{name}: the buildah engine cannot read store: references; name the image "
                "without 'store:' (the local store is searched first)"
            )
        ctx = self.options.transport_context or Context(store_dir=self.store.root)
        try:
            image = baseimage.ensure_image(self.store, name, platform, ctx, pull=self.options.pull)
        except ClusterImageError as exc:
            raise location.error(f"image {name}: {exc}") from None
        ref = Reference.parse(name.removeprefix("docker://"))
        named = any(entry.ref_name == str(ref) for entry in self.store.entries())
        with self.store.writing():  # keeps gc from removing blobs while buildah reads them
            if named and ":" not in str(self.store.root):
                source = f"oci:{self.store.root}:{ref}"
            else:
                # Not reachable by a ref name of the store (a digest reference): export it.
                layout = self.work / "bases" / secrets.token_hex(4)
                copy_image(
                    StoreReference(str(image.descriptor.digest)),
                    OciLayoutReference(layout, "base"),
                    Context(store_dir=self.store.root, platform=platform),
                )
                source = f"oci:{layout}:base"
            out = self._buildah(
                ["pull", "--quiet", "--platform", str(platform), source],
                what=f"loading base image {name}",
                location=location,
            )
        image_id = out.strip().splitlines()[-1] if out.strip() else ""
        self._buildah(["tag", image_id, _tag_for(ref)], what=f"tagging {name}", location=location)

    def _materialise_context(self) -> Path:
        """The context as buildah must see it, built from hard links; the user's folder is
        never written."""
        overlay = Overlay(REGISTRY_DIR, self.options.registry_dir)
        kubefile = Path(self.plan.kubefile)
        context = BuildContext.open(
            Path(self.plan.context), kubefile, (overlay,), ignore=self.options.ignore
        )
        target = self.work / "context"
        target.mkdir()
        _materialise(context.tree, target)
        return target

    def _build(self, context_dir: Path) -> None:
        plan = self.plan
        ignore = self.work / "empty.ignore"
        ignore.write_text("")
        argv = [
            "build",
            "--isolation",
            "chroot",
            "--pull=never",
            "--identity-label=false",
            "--format",
            "oci",
            "--layers=false",
            "--ignorefile",
            str(ignore),
            "--file",
            str(Path(plan.kubefile).resolve()),
            "--platform",
            str(plan.platform),
            "--timestamp",
            str(self.options.timestamp),
            "--tag",
            self.image,
        ]
        for key, value in plan.build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in self.options.labels.items():
            argv += ["--label", f"{key}={value}"]
        for key, value in self.options.envs.items():
            argv += ["--env", f"{key}={value}"]
        target = plan.target_stage
        if target.index != len(plan.stages) - 1:
            argv += ["--target", target.name or str(target.index)]
        argv.append(str(context_dir))
        self._buildah(argv, what="build", stream=True)

    def _push(self, layout: Path) -> None:
        compression = _COMPRESSION_FLAGS.get(self.options.compression)
        if compression is None:
            raise BuildError(f"unknown compression {self.options.compression!r}")
        self._buildah(
            ["push", "--quiet", "--format", "oci", *compression, self.image, f"oci:{layout}:image"],
            what="exporting the built image",
        )

    # -- running buildah --------------------------------------------------------------------

    def _buildah(
        self,
        args: list[str],
        *,
        what: str,
        location: Location | None = None,
        stream: bool = False,
    ) -> str:
        argv = [*self.base, *args]
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=_buildah_env(self.tmp),
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            raise BuildError(f"cannot run {self.engine.buildah}: {exc.strerror}") from None
        tracker = _OutputTracker(self.options.output if stream else None)
        stdout_lines: list[str] = []
        readers = [
            threading.Thread(target=tracker.read, args=(proc.stdout, False, stdout_lines)),
            threading.Thread(target=tracker.read, args=(proc.stderr, True, None)),
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        code = proc.wait()
        if code != 0:
            raise BuildError(self._failure(what, code, tracker, location))
        return "".join(stdout_lines)

    def _failure(
        self, what: str, code: int, tracker: _OutputTracker, location: Location | None
    ) -> str:
        last_error = tracker.last_error()
        detail = last_error or f"buildah exited with status {code}"
        step_text: str | None = None
        match = _AT_STEP_RE.match(detail)
        if match:
            step_text, detail = match.group(1), match.group(2)
        output = tracker.last_output()
        if output and output not in detail:
            detail = f"{detail} (last output: {output})"
        where = location or self._step_location(tracker.step)
        if where is None and step_text is None and tracker.step is not None:
            step_text = tracker.step[4]
        prefix = f"{where}: " if where is not None else ""
        step = f"{_flatten(step_text)}: " if step_text else ""
        return _one_line(f"{prefix}buildah {what} failed: {step}{detail}")

    def _step_location(
        self, step: tuple[int | None, int | None, int, int, str] | None
    ) -> str | None:
        """file:line of the instruction buildah reported as ``[s/S] STEP i/n``."""
        if step is None:
            return None
        stage_no, stage_count, index, _count, _text = step
        stages = self.plan.stages
        stage: StagePlan | None
        if stage_no is None:
            stage = self.plan.target_stage if len(stages) == 1 else None
            if stage is None:
                used = self.plan.stages_to_build()
                stage = used[0] if len(used) == 1 else None
        elif stage_count == len(stages) and 1 <= stage_no <= len(stages):
            stage = stages[stage_no - 1]
        else:
            stage = None
        if stage is None:
            return None
        if index == 1:
            return str(stage.location)
        if 2 <= index <= len(stage.steps) + 1:
            return str(stage.steps[index - 2].location)
        return None


class _OutputTracker:
    """Reads buildah's streams: keeps the last lines, the last STEP, forwards progress."""

    def __init__(self, forward: Callable[[str], None] | None) -> None:
        self.forward = forward
        self.lock = threading.Lock()
        self.stderr: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL)
        self.step: tuple[int | None, int | None, int, int, str] | None = None

    def read(self, stream: IO[str] | None, is_stderr: bool, keep: list[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            if keep is not None:
                keep.append(line)
            text = line.rstrip("\n")
            with self.lock:
                match = _STEP_RE.match(text)
                if match:
                    self.step = (
                        int(match.group(1)) if match.group(1) else None,
                        int(match.group(2)) if match.group(2) else None,
                        int(match.group(3)),
                        int(match.group(4)),
                        match.group(5),
                    )
                if is_stderr and text.strip():
                    self.stderr.append(text)
                if self.forward is not None and not _not_forwarded(text):
                    self.forward(text)

    def last_error(self) -> str | None:
        """buildah's own last error line, without its ``Error: `` prefix."""
        for line in reversed(self.stderr):
            if line.startswith(_ERROR_PREFIX):
                return line[len(_ERROR_PREFIX) :].strip()
        return None

    def last_output(self) -> str | None:
        """The last line the failing command itself wrote to stderr (not buildah's)."""
        for line in reversed(self.stderr):
            if line.startswith(_ERROR_PREFIX) or any(n in line for n in _NOISE):
                continue
            return line.strip()
        return None


def _not_forwarded(line: str) -> bool:
    """buildah's own error line (our one-line error says it again, with the Kubefile line), and
    its warning that the TARGET*/BUILD* args it defines itself for --platform were not consumed
    (noise about nothing the user gave)."""
    if line.startswith(_ERROR_PREFIX):
        return True
    match = re.match(r"^\[Warning\] one or more build args were not consumed: \[(.*)\]$", line)
    if match is None:
        return False
    return all(name.startswith(("TARGET", "BUILD")) for name in match.group(1).split())


def _flatten(text: str) -> str:
    return " ".join(text.split())


def _one_line(text: str, width: int = 400) -> str:
    flat = _flatten(text)
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _tag_for(parsed: Reference) -> str:
    """A name buildah can tag an image with for ``ref`` (a digest reference gets a tag of its
    own: buildah finds an image by repository and digest, whatever its tag)."""
    if parsed.tag:
        return f"{parsed.name}:{parsed.tag}"
    return f"{parsed.name}:clusterimage-base"


def _materialise(tree: FsTree, target: Path) -> None:
    """Write ``tree`` under ``target``: directories, symlinks, and regular files as hard links to
    their sources (copies when a link is not possible). Modes are kept; owners are root's, as
    COPY's default."""
    linked: dict[int, Path] = {}
    dirs: list[tuple[Path, int]] = []
    with Confined() as confined:
        for rel, node in tree.walk():
            if not rel:
                continue
            path = target / rel
            if node.kind == "dir":
                path.mkdir(mode=0o700, exist_ok=True)
                dirs.append((path, node.mode))
            elif node.kind == "symlink":
                os.symlink(node.linkname, path)
            elif node.kind == "file" and node.content is not None:
                if node.content.path is None:
                    raise BuildError(f"context file {rel} has no source to link")
                first = linked.get(id(node.content))
                if first is not None:
                    os.link(first, path)  # a hard link of the context stays one
                    continue
                _link_or_copy(node.content, path, node.mode, confined)
                linked[id(node.content)] = path
    # Directory modes last: a read-only directory must still be filled first.
    for path, mode in reversed(dirs):
        os.chmod(path, mode)


def _link_or_copy(content: Content, dest: Path, mode: int, confined: Confined) -> None:
    """A hard link to the context file (linked from its folder's fd, so never through a swapped
    folder, and checked to be the file the walk saw), else a copy of it."""
    assert content.path is not None
    if content.root is not None and content.stat_key is not None:
        what = f"{content.path} (for the buildah context)"
        dir_fd, name = confined.parent(content.root, content.rel, what)
        try:
            os.link(name, dest, src_dir_fd=dir_fd, follow_symlinks=False)
            st = os.stat(dest, follow_symlinks=False)
            if (st.st_dev, st.st_ino) != content.stat_key[:2]:
                os.unlink(dest)
                raise BuildError(f"{what} changed during the build; build again")
            if (st.st_mode & 0o7777) == mode:
                return
            os.unlink(dest)  # the tree says another mode than the file has: copy instead
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
    with (
        os.fdopen(open_content(content, "the buildah context", confined), "rb") as source,
        open(dest, "wb") as out,
    ):
        shutil.copyfileobj(source, out)
    os.chmod(dest, mode)


__all__ = [
    "DRIVERS",
    "DRIVER_ENV",
    "BuildahEngine",
    "BuildahOptions",
    "BuildahResult",
    "find_buildah",
]
