"""``clusterimage copy``: copy an image between any two transports (skopeo copy's spelling)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clusterimage.cli._common import JsonOutput, Quiet
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    NO_FLAGS,
    CompressionFormat,
    DigestFile,
    Jobs,
    RegistryCommand,
    RegistryFlags,
    SelectPlatform,
    parse_bool,
    resolve_creds,
    with_registry_flags,
)


def register(app: typer.Typer) -> None:
    @app.command("copy", cls=RegistryCommand)
    @with_registry_flags
    def copy(
        source: Annotated[
            str,
            typer.Argument(
                metavar="SRC",
                help="TRANSPORT:REF: docker://HOST/REPO:TAG, oci:DIR[:REF], store:NAME, ...",
            ),
        ],
        destination: Annotated[str, typer.Argument(metavar="DST", help="TRANSPORT:REF.")],
        all_platforms: Annotated[
            bool,
            typer.Option("--all", "-a", help="Copy every platform of a multi-platform image."),
        ] = False,
        platform: SelectPlatform = None,
        digestfile: DigestFile = None,
        compression_format: CompressionFormat = None,
        registry: RegistryFlags = NO_FLAGS,
        src_creds: Annotated[
            str | None,
            typer.Option("--src-creds", metavar="USER[:PASSWORD]", help="Credentials for SRC."),
        ] = None,
        dest_creds: Annotated[
            str | None,
            typer.Option("--dest-creds", metavar="USER[:PASSWORD]", help="Credentials for DST."),
        ] = None,
        src_authfile: Annotated[
            Path | None,
            typer.Option("--src-authfile", metavar="FILE", help="Auth file for SRC."),
        ] = None,
        dest_authfile: Annotated[
            Path | None,
            typer.Option("--dest-authfile", metavar="FILE", help="Auth file for DST."),
        ] = None,
        src_tls_verify: Annotated[
            str | None,
            typer.Option("--src-tls-verify", metavar="[=BOOL]", help="--tls-verify for SRC only."),
        ] = None,
        dest_tls_verify: Annotated[
            str | None,
            typer.Option("--dest-tls-verify", metavar="[=BOOL]", help="--tls-verify for DST only."),
        ] = None,
        src_cert_dir: Annotated[
            Path | None,
            typer.Option("--src-cert-dir", metavar="DIR", help="--cert-dir for SRC only."),
        ] = None,
        dest_cert_dir: Annotated[
            Path | None,
            typer.Option("--dest-cert-dir", metavar="DIR", help="--cert-dir for DST only."),
        ] = None,
        jobs: Jobs = DEFAULT_JOBS,
        quiet: Quiet = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Copy an image from SRC to DST, any transport to any other; prints the digest.

        Between two repositories of one registry blobs are mounted; between registries they
        stream through without touching the disk.

        Examples:

          clusterimage copy docker://quay.io/org/app:v1 docker://registry.local:5000/app:v1

          clusterimage copy --all docker://nginx:1.25 oci:./nginx-layout:1.25

          clusterimage copy store:app:v1 docker://localhost:5000/app:v1 --dest-tls-verify=false
        """
        from clusterimage import transports
        from clusterimage.cli._transfer import copy_options, run_copy

        src = transports.parse(source)
        dst = transports.parse(destination)
        ctx = registry.context(jobs=jobs, platform=platform)
        # Each end's own flags replace the shared ones for that end only (as skopeo).
        for end, end_creds, end_authfile, end_tls, end_cert_dir, prefix in (
            (ctx.source, src_creds, src_authfile, src_tls_verify, src_cert_dir, "--src"),
            (ctx.destination, dest_creds, dest_authfile, dest_tls_verify, dest_cert_dir, "--dest"),
        ):
            if end_creds is not None:
                end.creds = resolve_creds(end_creds, f"{prefix}-creds")
                end.creds_flag = f"{prefix}-creds"
            if end_authfile is not None:
                end.auth_file = end_authfile
            if end_tls is not None:
                end.tls_verify = parse_bool(end_tls, f"{prefix}-tls-verify")
            if end_cert_dir is not None:
                end.cert_dir = end_cert_dir
        options = copy_options(
            ctx, all_platforms=all_platforms, compression_format=compression_format
        )
        run_copy(
            src,
            dst,
            ctx,
            options,
            verb="Copied to",
            quiet=quiet,
            json_output=json_output,
            digestfile=digestfile,
        )
