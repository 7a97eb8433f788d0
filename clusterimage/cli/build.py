"""``clusterimage build``: a Kubefile and its context → a layered OCI image in the local store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clusterimage.build import runner
from clusterimage.build.engine import BuildEvent
from clusterimage.build.plan import BuildPlan, parse_assignments
from clusterimage.build.runner import BuildSettings
from clusterimage.cli._common import print_json, stderr, store_dir
from clusterimage.errors import UsageError
from clusterimage.store import Store


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
        if quiet and json_output:
            raise UsageError("--quiet and --json exclude each other")
        settings = BuildSettings(
            context=context,
            file=file,
            tags=tuple(tags or ()),
            build_args=parse_assignments(build_args or (), "--build-arg", from_environ=True),
            labels=parse_assignments(labels or (), "--label"),
            envs=parse_assignments(envs or (), "--env", from_environ=True),
            platform=platform,
            target=target,
            compression=compression,
            timestamp=timestamp,
            use_cache=not no_cache,
            engine=engine,
        )
        if dry_run:
            existing = None
            if store_dir().joinpath("index.json").is_file():
                existing = Store(store_dir(), create=False)
            plan = runner.plan(settings, existing)
            _print_plan(plan, json_output)
            # Also on stderr, so a linter run (`--dry-run > /dev/null`, or --json) shows them.
            for warning in plan.warnings:
                _warn(str(warning))
            return
        store = Store(store_dir())

        def show_plan(plan: BuildPlan) -> None:
            if not tags and not quiet and not json_output:
                _warn(
                    "no -t given: the image is stored untagged (find it with `clusterimage images`)"
                )
            for warning in plan.warnings:
                _warn(str(warning))

        printer = _Printer(quiet or json_output)
        outcome = runner.build(settings, store, on_event=printer, on_plan=show_plan)
        if json_output:
            warnings = [str(w) for w in outcome.plan.warnings] + printer.warnings
            print_json(outcome.summary(store) | {"layers": printer.layers, "warnings": warnings})
            return
        typer.echo(str(outcome.descriptor.digest))


def _print_plan(plan: BuildPlan, json_output: bool) -> None:
    if json_output:
        print_json(plan.to_dict())
    else:
        typer.echo(plan.render())
