"""``clusterimage build``: a Kubefile and its context → a layered OCI image in the local store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

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
from clusterimage.build.plan import BuildPlan, parse_assignments, plan_build
from clusterimage.cli._common import home_dir, print_json, stderr, store_dir
from clusterimage.errors import ClusterImageError, UsageError
from clusterimage.kubefile.parser import find_kubefile
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.store import Store
from clusterimage.transports.base import Context


def _timestamp(value: int | None) -> int:
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


def _warn(message: str) -> None:
    stderr.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


class _Printer:
    """Progress lines on stderr; events kept for --json."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.layers: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def __call__(self, event: BuildEvent) -> None:
        if event.kind in ("layer", "cached"):
            self.layers.append({**event.data, "cached": event.kind == "cached"})
        if event.kind == "warning":
            self.warnings.append(event.message)
            _warn(event.message)
            return
        if not self.quiet:
            stderr.print(event.message, markup=False, highlight=False, soft_wrap=True)


def _open_store() -> Store:
    return Store(store_dir())


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build(
        context: Annotated[
            Path,
            typer.Argument(help="The build context folder (default: the current folder)."),
        ] = Path("."),
        tags: Annotated[
            list[str] | None,
            typer.Option("--tag", "-t", metavar="REF", help="Name the image (repeatable)."),
        ] = None,
        file: Annotated[
            str | None,
            typer.Option(
                "--file",
                "-f",
                metavar="FILE",
                help="The Kubefile (default: the first of Kubefile, Sealfile, Dockerfile, "
                "Containerfile in the context).",
            ),
        ] = None,
        build_args: Annotated[
            list[str] | None,
            typer.Option("--build-arg", metavar="K=V", help="Set a build-time ARG (repeatable)."),
        ] = None,
        labels: Annotated[
            list[str] | None,
            typer.Option("--label", metavar="K=V", help="Add or override a label (repeatable)."),
        ] = None,
        envs: Annotated[
            list[str] | None,
            typer.Option("--env", metavar="K=V", help="Add or override an ENV (repeatable)."),
        ] = None,
        platform: Annotated[
            str | None,
            typer.Option(
                "--platform",
                metavar="OS/ARCH[/VARIANT]",
                help="Platform of the image (default: this machine's).",
            ),
        ] = None,
        target: Annotated[
            str | None,
            typer.Option("--target", metavar="STAGE", help="Build this stage (default: last)."),
        ] = None,
        compression: Annotated[
            str | None,
            typer.Option(
                "--compression",
                metavar="gzip|zstd|none",
                help="Layer compression: gzip, zstd or none (default: gzip, except layers that "
                "copy only registry/, whose blobs are compressed already: none).",
            ),
        ] = None,
        timestamp: Annotated[
            int | None,
            typer.Option(
                "--timestamp",
                metavar="SECONDS",
                help="created time and every file mtime (default: $SOURCE_DATE_EPOCH, else 0).",
            ),
        ] = None,
        no_cache: Annotated[
            bool, typer.Option("--no-cache", help="Build every layer again (no cache reuse).")
        ] = False,
        engine: Annotated[
            str,
            typer.Option(
                "--engine",
                metavar="auto|native|buildah",
                help="native (no RUN), buildah (RUN), or auto: buildah only when there is RUN.",
            ),
        ] = "auto",
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Print the plan, write nothing; exit 1 only for a wrong Kubefile.",
            ),
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print only the manifest digest.")
        ] = False,
        json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Build an image from a Kubefile and its context into the local store.

        COPY/ADD make one layer each (deterministic: the same inputs give the same digest), an
        unchanged layer is reused from the build cache, registry/ is generated and overlaid onto
        the context. RUN needs the buildah engine (chosen by --engine auto).

        Examples:

          clusterimage build -t hub.example.com/apps/nginx:v1 .

          clusterimage build -f Kubefile.prod --build-arg VERSION=1.2 -t app:1.2 ./ctx

          clusterimage build --label sealos.io.type=rootfs -t rootfs:v1 -q runtime/containerd

          clusterimage build --dry-run --json ./ctx
        """
        if compression is not None and compression not in COMPRESSIONS:
            raise UsageError(f"--compression {compression!r}: choose gzip, zstd or none")
        if engine not in ENGINES:
            raise UsageError(f"--engine {engine!r}: choose {', '.join(ENGINES)}")
        if quiet and json_output:
            raise UsageError("--quiet and --json exclude each other")
        refs = [str(Reference.parse(tag)) for tag in tags or ()]
        stamp = _timestamp(timestamp)
        args = parse_assignments(build_args or (), "--build-arg", from_environ=True)
        label_map = parse_assignments(labels or (), "--label")
        env_map = parse_assignments(envs or (), "--env", from_environ=True)
        if not context.is_dir():
            raise UsageError(f"build context {str(context)!r} is not a directory")
        ignore = _ignore_rules(context, file)
        store: Store | None = None
        if dry_run:
            if store_dir().joinpath("index.json").is_file():
                store = Store(store_dir(), create=False)
        else:
            store = _open_store()
        ctx = Context(store_dir=store.root if store else None)
        if platform:
            ctx.platform = Platform.parse(platform)
        images = BaseImages(store, ctx, pull=not dry_run) if store is not None else None

        def make_plan() -> BuildPlan:
            return plan_build(
                context,
                file,
                build_args=args,
                labels=label_map,
                envs=env_map,
                platform=platform,
                target=target,
                base_config=images.config if images is not None else None,
                is_ignored=ignore.ignored,
            )

        plan = make_plan()
        if dry_run:
            _print_plan(plan, json_output)
            # Also on stderr, so a linter run (`--dry-run > /dev/null`, or --json) shows them.
            for warning in plan.warnings:
                _warn(str(warning))
            return
        if plan.missing_sources:  # warnings in a dry run, errors in a build
            raise plan.missing_sources[0].error()
        assert store is not None and images is not None
        if require_base_images(plan, images):
            plan = make_plan()  # now with the base images' configs
        if not refs and not quiet and not json_output:
            _warn("no -t given: the image is stored untagged (find it with `clusterimage images`)")
        for warning in plan.warnings:
            _warn(str(warning))
        chosen = select_engine(engine, plan)
        printer = _Printer(quiet or json_output)
        request = BuildRequest(
            store=store,
            home=home_dir(),
            tags=tuple(refs),
            labels=label_map,
            envs=env_map,
            compression=compression or "gzip",
            registry_compression=compression or "none",
            timestamp=stamp,
            use_cache=not no_cache,
            ignore=ignore,  # the rules the plan used: the engine does not parse them again
            transport_context=ctx,
            base_images=images,
            on_event=printer,
        )
        descriptor = chosen.build(plan, request)
        if json_output:
            manifest = store.get_manifest(descriptor.digest, descriptor.media_type)
            config = store.get_config(manifest)  # type: ignore[arg-type]
            print_json(
                {
                    "digest": str(descriptor.digest),
                    "mediaType": descriptor.media_type,
                    "size": descriptor.size,
                    "config": str(config.digest),
                    "chainID": chain_id(config.diff_ids),
                    "tags": refs,
                    "engine": chosen.name,
                    "platform": str(config.platform),
                    "type": plan.image_type,
                    "version": plan.image_version,
                    "layers": printer.layers,
                    "warnings": [str(w) for w in plan.warnings] + printer.warnings,
                }
            )
            return
        typer.echo(str(descriptor.digest))


def _print_plan(plan: BuildPlan, json_output: bool) -> None:
    if json_output:
        print_json(plan.to_dict())
    else:
        typer.echo(plan.render())
