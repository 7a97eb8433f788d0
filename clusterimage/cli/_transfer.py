"""Running one copy for push and copy: progress on stderr, the result on stdout, --digestfile."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from clusterimage._humanize import count
from clusterimage.cli._common import CopyProgress, print_json
from clusterimage.copy import CopyOptions, CopyResult, copy_image
from clusterimage.errors import UsageError
from clusterimage.transports.base import Context, ImageReference


def copy_options(
    ctx: Context,
    *,
    all_platforms: bool = False,
    compression_format: str | None = None,
) -> CopyOptions:
    from clusterimage.recompress import check_format

    if all_platforms and ctx.platform is not None:
        raise UsageError("--platform and --all exclude each other")
    return CopyOptions(
        all_platforms=all_platforms, compression_format=check_format(compression_format)
    )


def write_digestfile(path: Path, digest: str) -> None:
    """Write the digest atomically (a reader never sees a half-written file)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=".digest-", dir=directory)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(digest)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_copy(
    src: ImageReference,
    dst: ImageReference,
    ctx: Context,
    options: CopyOptions,
    *,
    verb: str,
    quiet: bool = False,
    json_output: bool = False,
    digestfile: Path | None = None,
) -> CopyResult:
    """Copy with progress bars (a TTY only), then report: JSON, or the digest on stdout."""
    with CopyProgress(enabled=False if quiet or json_output else None) as progress:
        options.on_event = progress
        result = copy_image(src, dst, ctx, options)
    if digestfile is not None:
        write_digestfile(digestfile, str(result.digest))
    if json_output:
        print_json({"source": str(src), "destination": str(dst), **result.to_dict()})
        return result
    if not quiet:
        typer.echo(
            f"{verb} {dst}: {count(result.blobs_copied, 'blob')} copied, "
            f"{result.blobs_mounted} mounted, "
            f"{result.blobs_skipped} already there",
            err=True,
        )
    typer.echo(str(result.digest))
    return result
