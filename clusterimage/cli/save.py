"""``clusterimage save``: images into a bundle file or folder (sealos's and podman's spelling)."""

from __future__ import annotations

from typing import Annotated

import typer

from clusterimage._humanize import count, human_size
from clusterimage.bundle import BundleFormat, SavedImage
from clusterimage.cli._common import CopyProgress, JsonOutput, StoredImage, info, print_json
from clusterimage.cli._registry_options import (
    DEFAULT_JOBS,
    NO_FLAGS,
    Jobs,
    RegistryCommand,
    RegistryFlags,
    SelectPlatform,
    with_registry_flags,
)


def register(app: typer.Typer) -> None:
    @app.command("save", cls=RegistryCommand)
    @with_registry_flags
    def save(
        images: Annotated[
            list[str],
            StoredImage(
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
        delta_from: Annotated[
            list[str] | None,
            typer.Option(
                "--delta-from",
                metavar="OLD",
                help="Leave out every layer OLD holds: an earlier bundle, or the JSON that "
                "`bundle inventory` printed for it (what a site sends back). Repeat for "
                "several (their union). OCI formats only.",
            ),
        ] = None,
        platform: SelectPlatform = None,
        registry: RegistryFlags = NO_FLAGS,
        jobs: Jobs = DEFAULT_JOBS,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet", "-q", help="Print nothing but warnings and errors (no progress)."
            ),
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

          clusterimage save -o app-v2-delta.tar --delta-from site-inventory.json app:v2

          clusterimage save -o app-v2-delta.tar --delta-from app-v1.tar app:v2

        With --delta-from, every manifest and config is written but a layer OLD holds is not;
        the bundle's index.json names OLD's inventory digest and what was left out, and
        `load` refuses it, before writing anything, where those blobs are not stored yet.
        """
        from clusterimage import bundle

        ctx = registry.context(jobs=jobs, platform=platform)
        with CopyProgress(enabled=False if quiet or json_output else None) as progress:
            result = bundle.save(
                images,
                output,
                ctx,
                format=format,
                multi_image=multi_image,
                delta_from=delta_from or (),
                on_event=progress,
            )
        if json_output:
            print_json(result.to_dict())
            return
        if not quiet:
            for image in result.images:
                assert isinstance(image, SavedImage)
                info(f"Saved {image.name or image.source} ({image.result.digest})")
            where = "standard output" if output == "-" else output
            info(f"Wrote {count(len(result.images), 'image')} to {where}")
            if result.delta is not None:
                delta = result.delta
                info(
                    f"Delta on {', '.join(delta.bases)}: left out {count(delta.count, 'blob')} "
                    f"({human_size(delta.bytes)}) the base holds"
                )
