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
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    AuthFile,
    CertDir,
    Creds,
    RegistryCommand,
    Retry,
    Timeout,
    TlsVerify,
    parse_bool,
    registry_context,
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
    @app.command("build", cls=RegistryCommand)
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
        retry: Retry = DEFAULT_RETRIES,
        timeout: Timeout = DEFAULT_TIMEOUT,
        creds: Creds = None,
        authfile: AuthFile = None,
        tls_verify: TlsVerify = None,
        cert_dir: CertDir = None,
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
        json_output: JsonOutput = False,
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
            save_image=parse_bool(save_image, "--save-image") is not False,
            all_platforms=all_platforms,
            max_pull_procs=max_pull_procs,
            pull=pull,
        )
        if dry_run:
            existing = None
            if store_dir().joinpath("index.json").is_file():
                existing = Store(store_dir(), create=False)
            plan = runner.plan(settings, existing)
            discovery = runner.discover_images(settings) if settings.save_image else None
            _print_plan(plan, discovery, json_output)
            # Also on stderr, so a linter run (`--dry-run > /dev/null`, or --json) shows them.
            for warning in [*plan.warnings, *(discovery.warnings if discovery else ())]:
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
        ctx = registry_context(
            tls_verify=tls_verify,
            cert_dir=cert_dir,
            authfile=authfile,
            creds=creds,
            retry=retry,
            timeout=timeout,
            platform=platform,
        )
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


def _print_plan(plan: BuildPlan, discovery: Discovery | None, json_output: bool) -> None:
    if json_output:
        extra = {"registry": discovery.to_json()} if discovery is not None else {}
        print_json({**plan.to_dict(), **extra})
        return
    typer.echo(plan.render())
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
