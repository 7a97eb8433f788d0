"""``clusterimage build``: a Kubefile and its context → a layered OCI image in the local store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clusterimage._humanize import count
from clusterimage.build import runner
from clusterimage.build.engine import BuildEvent
from clusterimage.build.plan import BuildPlan, parse_assignments
from clusterimage.build.runner import BuildSettings
from clusterimage.cli._common import CopyProgress, JsonOutput, print_json, stderr, store_dir
from clusterimage.cli._registry_options import (
    NO_FLAGS,
    RegistryCommand,
    RegistryFlags,
    parse_bool,
    with_registry_flags,
)
from clusterimage.errors import UsageError
from clusterimage.images.found import Discovery
from clusterimage.pull import PullPolicy
from clusterimage.store import Store


def _warn(message: str) -> None:
    stderr.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


class _Printer:
    """Progress lines on stderr; events kept for --json."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.layers: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        # Several platforms: each one's layers, in the order they were built.
        self.platform_layers: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, event: BuildEvent) -> None:
        if event.kind == "platform":
            self.layers = self.platform_layers.setdefault(str(event.data["platform"]), [])
        if event.kind in ("layer", "cached"):
            self.layers.append({**event.data, "cached": event.kind == "cached"})
        if event.kind == "warning":
            if self.platform_layers and event.message in self.warnings:
                return  # the same warning from another platform's build: said once
            self.warnings.append(event.message)
            _warn(event.message)
            return
        if not self.quiet:
            stderr.print(event.message, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("build", cls=RegistryCommand)
    @with_registry_flags
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
            list[str] | None,
            typer.Option(
                "--platform",
                metavar="OS/ARCH[/VARIANT][,...]",
                help="Platform of the image (default: this machine's). Several (comma-separated "
                "or repeated): one build each, stored as an OCI image index under the tags.",
            ),
        ] = None,
        manifest: Annotated[
            str | None,
            typer.Option(
                "--manifest",
                metavar="NAME",
                help="Add the built images to the manifest list NAME (created if missing; "
                "entries of the same platform are replaced), as podman does.",
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
        save_image: Annotated[
            str,
            typer.Option(
                "--save-image",
                metavar="BOOL",
                help="Discover the images the context names (charts/, manifests/, images/shim/, "
                "images/skopeo/tar.txt) and put them in registry/ (default true).",
            ),
        ] = "true",
        max_pull_procs: Annotated[
            int,
            typer.Option("--max-pull-procs", min=1, help="Images fetched at once for registry/."),
        ] = 5,
        all_platforms: Annotated[
            bool,
            typer.Option("--all", help="registry/ keeps every platform of each image."),
        ] = False,
        pull: Annotated[
            PullPolicy,
            typer.Option(
                "--pull",
                help="missing: fetch images not in the cache yet; always: ask the registries "
                "again (only missing blobs travel); never: use the cache and the store only.",
            ),
        ] = PullPolicy.missing,
        registry: RegistryFlags = NO_FLAGS,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Print the plan, write nothing; exit 1 only for a wrong Kubefile.",
            ),
        ] = False,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet", "-q", help="Print only the image's digest: no steps, no progress."
            ),
        ] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Build an image from a Kubefile and its context into the local store.

        COPY/ADD make one layer each (deterministic: the same inputs give the same digest), an
        unchanged layer is reused from the build cache, registry/ is generated and overlaid onto
        the context. RUN needs the buildah engine (chosen by --engine auto). Several platforms
        build once each (RUN only for platforms this machine runs, natively or by binfmt_misc)
        into an OCI image index: its digest on stdout, one line per platform on stderr.

        Examples:

          clusterimage build -t hub.example.com/apps/nginx:v1 .

          clusterimage build -f Kubefile.prod --build-arg VERSION=1.2 -t app:1.2 ./ctx

          clusterimage build --label sealos.io.type=rootfs -t rootfs:v1 -q runtime/containerd

          clusterimage build --dry-run --json ./ctx

          clusterimage build --platform linux/amd64,linux/arm64 -t apps/app:v1 .

          clusterimage build --platform linux/arm64 --manifest apps/app:v1 .
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
            platform=",".join(platform) if platform else None,
            manifest=manifest,
            target=target,
            compression=compression,
            timestamp=timestamp,
            use_cache=not no_cache,
            engine=engine,
            save_image=parse_bool(save_image, "--save-image") is not False,
            all_platforms=all_platforms,
            max_pull_procs=max_pull_procs,
            pull=pull,
        )
        if dry_run:
            existing = None
            if store_dir().joinpath("index.json").is_file():
                existing = Store(store_dir(), create=False)
            plans = runner.plans(settings, existing)
            discovery = runner.discover_images(settings) if settings.save_image else None
            _print_plans(plans, discovery, json_output, several=len(settings.platforms()) > 1)
            # Also on stderr, so a linter run (`--dry-run > /dev/null`, or --json) shows them.
            said: set[str] = set()
            for plan in plans:
                for warning in [*plan.warnings, *(discovery.warnings if discovery else ())]:
                    if str(warning) not in said:
                        said.add(str(warning))
                        _warn(str(warning))
            return
        store = Store(store_dir())

        shown: set[str] = set()  # an index build plans once per platform: each warning once

        def show_plan(plan: BuildPlan) -> None:
            untagged = (
                "no -t given: the image is stored untagged (find it with `clusterimage images`)"
            )
            if (
                not tags
                and not manifest
                and not quiet
                and not json_output
                and untagged not in shown
            ):
                shown.add(untagged)
                _warn(untagged)
            for warning in plan.warnings:
                if str(warning) not in shown:
                    shown.add(str(warning))
                    _warn(str(warning))

        printer = _Printer(quiet or json_output)
        ctx = registry.context(platform=platform[0] if platform and not settings.multi else None)
        if settings.multi:
            with CopyProgress(enabled=False if quiet or json_output else None) as progress:
                index = runner.build_index(
                    settings, store, ctx=ctx, on_event=printer, on_plan=show_plan, on_copy=progress
                )
            _print_index(index, store, printer, quiet, json_output)
            return
        with CopyProgress(enabled=False if quiet or json_output else None) as progress:
            outcome = runner.build(
                settings, store, ctx=ctx, on_event=printer, on_plan=show_plan, on_copy=progress
            )
        if outcome.images and not quiet and not json_output:
            stderr.print(
                f"registry/ holds {count(len(outcome.images), 'image')}: "
                + ", ".join(sorted(outcome.images)),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if json_output:
            warnings = [str(w) for w in outcome.plan.warnings] + printer.warnings
            print_json(outcome.summary(store) | {"layers": printer.layers, "warnings": warnings})
            return
        typer.echo(str(outcome.descriptor.digest))


def _print_index(
    index: runner.IndexOutcome, store: Store, printer: _Printer, quiet: bool, json_output: bool
) -> None:
    """Several platforms: the index digest on stdout, a line per platform on stderr (--json:
    the index, and each platform's image with its layers)."""
    if json_output:
        summary = index.summary(store)
        # Built in this order, each after its platform event: the printer kept them so.
        layers = list(printer.platform_layers.values())
        for entry, built in zip(summary["platforms"], layers, strict=True):
            entry["layers"] = built
        warnings: list[str] = []
        for outcome in index.builds:
            warnings += [str(w) for w in outcome.plan.warnings if str(w) not in warnings]
        print_json(summary | {"warnings": warnings + printer.warnings})
        return
    if not quiet:
        for outcome in index.builds:
            images = outcome.images
            held = (
                f"; registry/ holds {count(len(images), 'image')}: " + ", ".join(sorted(images))
                if images
                else ""
            )
            stderr.print(
                f"{outcome.plan.platform}: {outcome.descriptor.digest}{held}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    typer.echo(str(index.descriptor.digest))


def _print_plans(
    plans: list[BuildPlan], discovery: Discovery | None, json_output: bool, several: bool
) -> None:
    if not several:
        _print_plan(plans[0], discovery, json_output)
        return
    if json_output:
        extra = {"registry": discovery.to_json()} if discovery is not None else {}
        print_json({"platforms": [plan.to_dict() for plan in plans], **extra})
        return
    for plan in plans:
        typer.echo(plan.render())
        typer.echo("")
    _print_registry(discovery)


def _print_plan(plan: BuildPlan, discovery: Discovery | None, json_output: bool) -> None:
    if json_output:
        extra = {"registry": discovery.to_json()} if discovery is not None else {}
        print_json({**plan.to_dict(), **extra})
        return
    typer.echo(plan.render())
    _print_registry(discovery)


def _print_registry(discovery: Discovery | None) -> None:
    if discovery is None:
        return
    found = [*discovery.images, *discovery.archives]
    typer.echo(f"registry/: {count(len(found), 'image')}")
    for image in discovery.images:
        where = ", ".join(str(origin) for origin in image.origins)
        typer.echo(f"  {image.stored_path}  <- {image.reference}  ({where})")
    for archive in discovery.archives:
        typer.echo(
            f"  {archive.stored_path}  <- {archive.transport}:{archive.path}  ({archive.origin})"
        )
