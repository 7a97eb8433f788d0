"""``clusterimage save`` and ``load``: images to and from files (sealos's and podman's spelling)."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage.bundle import BundleFormat, LoadedImage, SavedImage
from clusterimage.cli._common import CopyProgress, info, print_json
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    AuthFile,
    CertDir,
    Creds,
    Jobs,
    JsonOutput,
    RegistryCommand,
    Retry,
    SelectPlatform,
    Timeout,
    TlsVerify,
    registry_context,
)


def register(app: typer.Typer) -> None:
    @app.command("save", cls=RegistryCommand)
    def save(
        images: Annotated[
            list[str],
            typer.Argument(
                metavar="IMAGE...",
                help="Images in the store (name, ID or digest), or TRANSPORT:REF.",
            ),
        ],
        output: Annotated[
            str,
            typer.Option(
                "--output",
                "-o",
                metavar="FILE",
                help="Where to write: a file, a folder for oci-dir, or - for standard output.",
            ),
        ],
        format: Annotated[
            BundleFormat,
            typer.Option(
                "--format",
                help="oci-archive (a tar of an OCI layout, as skopeo and sealos), "
                "docker-archive (what docker load reads) or oci-dir (an OCI layout folder).",
            ),
        ] = BundleFormat.oci_archive,
        multi_image: Annotated[
            bool,
            typer.Option(
                "--multi-image-archive", "-m", help="Save several images into one bundle."
            ),
        ] = False,
        platform: SelectPlatform = None,
        retry: Retry = DEFAULT_RETRIES,
        timeout: Timeout = DEFAULT_TIMEOUT,
        creds: Creds = None,
        authfile: AuthFile = None,
        tls_verify: TlsVerify = None,
        cert_dir: CertDir = None,
        jobs: Jobs = DEFAULT_JOBS,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")
        ] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Save images to an archive or folder, to carry them where no registry reaches.

        The bundle appears at its path only once it is whole. A docker-archive holds one
        platform of each image (--platform, default this machine's) with plain tar layers; the
        OCI formats keep each image as it is, every platform included.

        Examples:

          clusterimage save -o nginx.tar localhost/apps/nginx:v1

          clusterimage save -m -o bundle.tar app:v1 openebs:v3 kubernetes:v1.27

          clusterimage save --format docker-archive -o app.tar app:v1 && docker load -i app.tar

          clusterimage save --format oci-dir -o ./bundle app:v1

          clusterimage save -o - app:v1 | ssh site clusterimage load
        """
        from clusterimage import bundle

        ctx = registry_context(
            tls_verify=tls_verify,
            cert_dir=cert_dir,
            authfile=authfile,
            creds=creds,
            retry=retry,
            timeout=timeout,
            jobs=jobs,
            platform=platform,
        )
        with CopyProgress(enabled=False if quiet or json_output else None) as progress:
            result = bundle.save(
                images, output, ctx, format=format, multi_image=multi_image, on_event=progress
            )
        if json_output:
            print_json(result.to_dict())
            return
        if not quiet:
            for image in result.images:
                assert isinstance(image, SavedImage)
                info(f"Saved {image.name or image.source} ({image.result.digest})")
            where = "standard output" if output == "-" else output
            info(f"Wrote {len(result.images)} {_images(len(result.images))} to {where}")

    @app.command("load")
    def load(
        input: Annotated[
            str,
            typer.Option(
                "--input",
                "-i",
                metavar="FILE",
                help="The bundle: an oci-archive, docker-archive or OCI layout folder "
                "(told by content), or - for standard input.",
            ),
        ] = "-",
        jobs: Jobs = DEFAULT_JOBS,
        quiet: Annotated[
            bool,
            typer.Option("--quiet", "-q", help="Print only the digest of each image loaded."),
        ] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Load every image of a bundle into the store; prints the names loaded.

        Images the bundle names keep their names (a docker-archive's RepoTags, an OCI
        archive's ref names when they are whole references); the others are stored untagged.
        Blobs the store has already are not copied again; an interrupted load resumes.

        Examples:

          clusterimage load -i bundle.tar

          docker save nginx:1.25 | clusterimage load

          clusterimage load -i ./bundle --json
        """
        from clusterimage import bundle

        ctx = registry_context(jobs=jobs)

        def loaded(image: LoadedImage) -> None:
            if quiet:
                typer.echo(str(image.result.digest))
            elif not json_output:
                typer.echo(f"Loaded image: {image.name or image.result.digest}")

        with CopyProgress(enabled=False if quiet or json_output else None) as progress:
            result = bundle.load(input, ctx, on_event=progress, on_image=loaded)
        if json_output:
            print_json(result.to_dict())


def _images(count: int) -> str:
    return "image" if count == 1 else "images"
