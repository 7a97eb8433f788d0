"""``clusterimage pull``: copy an image from any transport into the local store."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from clusterimage import transports
from clusterimage.cli._common import CopyProgress, info, print_json, warn
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    AuthFile,
    CertDir,
    Creds,
    Jobs,
    RegistryCommand,
    Retry,
    SelectPlatform,
    Timeout,
    TlsVerify,
    registry_context,
)
from clusterimage.copy import CopyOptions, CopyResult, copy_image
from clusterimage.errors import ImageNotFound, InvalidReference, UsageError
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.manifest import ImageIndex
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.store import Store
from clusterimage.transports.base import Context, ImageReference
from clusterimage.transports.oci_layout import OciLayoutReference
from clusterimage.transports.store import StoreReference


class PullPolicy(enum.StrEnum):
    always = "always"
    missing = "missing"
    never = "never"


def pull_context(
    *,
    platform: str | None = None,
    tls_verify: str | None = None,
    cert_dir: Path | None = None,
    authfile: Path | None = None,
    creds: str | None = None,
    retry: int = DEFAULT_RETRIES,
    jobs: int = DEFAULT_JOBS,
    timeout: float = DEFAULT_TIMEOUT,
) -> Context:
    """The transport context of a pull, built from the command's options in this one place."""
    return registry_context(
        platform=platform,
        tls_verify=tls_verify,
        cert_dir=cert_dir,
        authfile=authfile,
        creds=creds,
        retry=retry,
        jobs=jobs,
        timeout=timeout,
    )


def register(app: typer.Typer) -> None:
    @app.command("pull", cls=RegistryCommand)
    def pull(
        source: Annotated[
            str,
            typer.Argument(
                metavar="SRC",
                help="Where the image is: oci:DIR[:REF], docker://REF (a bare name means docker).",
            ),
        ],
        name: Annotated[
            str | None,
            typer.Option(
                "--name", metavar="REF", help="Store the image under this name (reference)."
            ),
        ] = None,
        platform: SelectPlatform = None,
        all_platforms: Annotated[
            bool, typer.Option("--all", help="Keep every platform of a multi-platform image.")
        ] = False,
        policy: Annotated[
            PullPolicy,
            typer.Option(
                "--policy",
                help="always: pull (only missing blobs travel); missing: only when the store "
                "has no image of that name for the platform; never: use the store's, fail "
                "without it.",
            ),
        ] = PullPolicy.always,
        retry: Retry = DEFAULT_RETRIES,
        timeout: Timeout = DEFAULT_TIMEOUT,
        creds: Creds = None,
        authfile: AuthFile = None,
        tls_verify: TlsVerify = None,
        cert_dir: CertDir = None,
        jobs: Jobs = DEFAULT_JOBS,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print only the manifest digest.")
        ] = False,
        json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Copy an image into the local store and name it.

        The name is --name, else the source's own: for oci:DIR:REF, REF when it is a whole
        image reference (nginx:1.25, quay.io/org/app:v1); a bare tag such as v1 needs --name.

        Examples:

          clusterimage pull oci:./layout:docker.io/library/nginx:1.25

          clusterimage pull oci:./layout:v1 --name localhost/myapp:v1

          clusterimage pull oci:./multiarch:app:v1 --all -q

          clusterimage pull registry.example.com/apps/nginx:v1 --policy missing

          clusterimage pull localhost:5000/app:v1 --tls-verify=false --creds ci:secret
        """
        if platform and all_platforms:
            raise UsageError("pull: --platform and --all exclude each other")
        src = transports.parse(source, default="docker")
        target = Reference.parse(name) if name else _default_name(src)
        dst = StoreReference(str(target))
        ctx = pull_context(
            platform=platform,
            tls_verify=tls_verify,
            cert_dir=cert_dir,
            authfile=authfile,
            creds=creds,
            retry=retry,
            jobs=jobs,
            timeout=timeout,
        )
        if policy is not PullPolicy.always:
            store = dst.store(ctx)
            try:
                existing = store.resolve(str(target))
            except ImageNotFound:
                if policy is PullPolicy.never:
                    raise ImageNotFound(
                        f"{target}: not in the store, and --policy never forbids pulling it"
                    ) from None
                existing = None
            if existing is not None and not all_platforms:
                # As podman: an image of another platform under the name is not "the image".
                want = ctx.platform or Platform.host()
                have = _platforms(store, existing)
                if not any(want.matches(p) for p in have):
                    if policy is PullPolicy.never:
                        held = ", ".join(map(str, have)) or "no platform"
                        raise ImageNotFound(
                            f"{target}: the store holds it for {held}, not {want}, and "
                            "--policy never forbids pulling it"
                        )
                    existing = None
            if existing is not None:
                if json_output:
                    # The keys of a pull that copied, so scripts read one shape: nothing copied.
                    kept = CopyResult(existing.digest, existing.media_type, existing.size)
                    print_json(
                        {"name": str(target), "source": str(src), "pulled": False} | kept.to_dict()
                    )
                elif not quiet:
                    info(f"{target} is in the store already (--policy {policy.value})")
                if not json_output:
                    typer.echo(str(existing.digest))
                return
        with CopyProgress(enabled=False if quiet or json_output else None) as progress:
            options = CopyOptions(all_platforms=all_platforms, on_event=progress)
            result = copy_image(src, dst, ctx, options)
        if ctx.platform is not None and not all_platforms:
            _warn_other_platform(dst.store(ctx), result, ctx.platform)
        if json_output:
            print_json({"name": str(target), "source": str(src), "pulled": True} | result.to_dict())
            return
        if not quiet:
            info(
                f"Stored {target} ({result.blobs_copied} blobs copied, "
                f"{result.blobs_skipped} already present)"
            )
        typer.echo(str(result.digest))


def _warn_other_platform(store: Store, result: CopyResult, want: Platform) -> None:
    # A single-platform source has no list to choose from: it is pulled as it is. As podman
    # does, say so when it is not what --platform asked for.
    desc = Descriptor(result.media_type, result.digest, result.size)
    have = _platforms(store, desc)
    if have and not any(want.matches(p) for p in have):
        held = ", ".join(map(str, have))
        warn(f"the image is for {held}, not the {want} that --platform asked for")


def _platforms(store: Store, desc: Descriptor) -> list[Platform]:
    """The platforms a stored image is for: an index's entries, else its config's."""
    manifest = store.get_manifest(desc.digest, desc.media_type)
    if isinstance(manifest, ImageIndex):
        return [entry.platform for entry in manifest.manifests if entry.platform is not None]
    return [store.get_config(manifest).platform]


def _default_name(src: ImageReference) -> Reference:
    if isinstance(src, OciLayoutReference):
        ref_name = src.name or src.top().ref_name
        if ref_name and _is_image_name(ref_name):
            return Reference.parse(ref_name)
        why = f"{ref_name!r} is not a whole image reference" if ref_name else "it has no name"
        raise UsageError(f"{src}: {why}; name it with --name (e.g. --name localhost/app:v1)")
    reference = getattr(src, "reference", None)  # registry transports carry their reference
    if isinstance(reference, Reference):
        return reference
    raise UsageError(f"{src}: name the image with --name")


def _is_image_name(value: str) -> bool:
    """A whole reference, not a bare tag: ``v1`` and ``latest`` are tags of some other name."""
    if not any(c in value for c in "/:@"):
        return False
    try:
        Reference.parse(value)
    except InvalidReference:
        return False
    return True
