"""``clusterimage images``: list the images in the local store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer

from clusterimage._humanize import count, human_ago, human_size, parse_time
from clusterimage.cli._common import print_json, store_dir, warn
from clusterimage.errors import BlobNotFound, ManifestError, StoreError
from clusterimage.oci.digest import Digest
from clusterimage.oci.reference import Reference
from clusterimage.store import ImageEntry, ImageSummary, Store


@dataclass(frozen=True)
class _Row:
    entry: ImageEntry
    summary: ImageSummary

    @property
    def repository(self) -> str:
        ref = self.entry.reference
        if ref is not None:
            return ref.name
        return self.entry.name or "<none>"

    @property
    def tag(self) -> str:
        ref = self.entry.reference
        return ref.tag if ref is not None and ref.tag else "<none>"


def register(app: typer.Typer) -> None:
    @app.command("images")
    def images(
        filter_: Annotated[
            str | None,
            typer.Argument(
                metavar="[FILTER]",
                help="Only images of this repository (nginx, quay.io/org/app, app:v1).",
            ),
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print image IDs only.")] = False,
        digests: Annotated[bool, typer.Option("--digests", help="Show manifest digests.")] = False,
        no_trunc: Annotated[
            bool, typer.Option("--no-trunc", help="Show full image IDs (sha256:...).")
        ] = False,
        json_output: Annotated[
            bool,
            typer.Option("--json", help="Print a JSON list of {name, digest, id, created, size}."),
        ] = False,
    ) -> None:
        """List the images in the local store, newest first.

        SIZE counts the manifest, the config and the layers; CREATED comes from the image
        config. A multi-platform image (an index) is one row.

        Examples:

          clusterimage images

          clusterimage images nginx --digests

          clusterimage images -q --no-trunc
        """
        if filter_ is not None:
            Reference.parse(filter_, default_tag=False)  # InvalidReference even with no images
        store = Store.existing(store_dir())
        rows = _rows(store, filter_) if store is not None else []  # None: nothing stored yet
        damaged = sorted({row.repository + ":" + row.tag for row in rows if _damaged(row)})
        if json_output:
            print_json([_json(row) for row in rows])
        elif quiet:
            seen: set[Digest] = set()
            for row in rows:
                if row.entry.digest not in seen:
                    seen.add(row.entry.digest)
                    typer.echo(_image_id(row.entry.digest, no_trunc))
        else:
            _print_table(rows, digests=digests, no_trunc=no_trunc)
        if damaged:
            verb = "misses blobs or is" if len(damaged) == 1 else "miss blobs or are"
            warn(
                f"{count(len(damaged), 'image')} {verb} damaged ({', '.join(damaged)}); "
                "run `clusterimage fsck` to see what, `clusterimage pull` again to repair"
            )


def _rows(store: Store, filter_: str | None) -> list[_Row]:
    entries = store.images()
    if filter_ is not None:
        entries = [e for e in entries if _matches(e, filter_)]
    summaries: dict[Digest, ImageSummary] = {}
    rows = []
    for entry in entries:
        if entry.digest not in summaries:
            summaries[entry.digest] = _summarize(store, entry)
        rows.append(_Row(entry, summaries[entry.digest]))
    rows.sort(key=_age_key)
    return rows


def _damaged(row: _Row) -> bool:
    return row.summary.missing > 0 or row.summary.size == 0


def _summarize(store: Store, entry: ImageEntry) -> ImageSummary:
    try:
        return store.summarize(entry.descriptor)
    except (BlobNotFound, ManifestError, StoreError):
        # A damaged image still gets its row (fsck says what is wrong with it); StoreError: a
        # blob that is not a regular file.
        desc = entry.descriptor
        return ImageSummary(desc.digest, desc.media_type, 0, None, missing=1)


def _matches(entry: ImageEntry, value: str) -> bool:
    """podman's rule: the repository equals the filter's, or ends with ``/`` + its path; a tag in
    the filter must match too."""
    wanted = Reference.parse(value, default_tag=False)  # InvalidReference for nonsense
    ref = entry.reference
    if ref is None:
        return entry.name == value
    if wanted.tag is not None and ref.tag != wanted.tag:
        return False
    if wanted.digest is not None and entry.digest != wanted.digest:
        return False
    path = value.split("@", 1)[0]
    if ":" in path.rsplit("/", 1)[-1]:
        path = path.rsplit(":", 1)[0]
    return ref.name == wanted.name or ref.name.endswith("/" + path)


def _age_key(row: _Row) -> float:
    created = parse_time(row.summary.created)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return -(created - epoch).total_seconds() if created else 0.0


def _image_id(digest: Digest, no_trunc: bool) -> str:
    return str(digest) if no_trunc else digest.short


def _json(row: _Row) -> dict[str, object]:
    return {
        "name": row.entry.name,
        "digest": str(row.entry.digest),
        "id": row.entry.id,
        "created": row.summary.created,
        "size": row.summary.size,
    }


def _print_table(rows: list[_Row], *, digests: bool, no_trunc: bool) -> None:
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED"]
    header.append("SIZE")
    table = [header]
    now = datetime.now(UTC)
    for row in rows:
        cells = [row.repository, row.tag]
        if digests:
            cells.append(str(row.entry.digest))
        cells += [
            _image_id(row.entry.digest, no_trunc),
            human_ago(row.summary.created, now),
            human_size(row.summary.size),
        ]
        table.append(cells)
    # Plain aligned columns like podman's tabwriter: stable for scripts, no terminal styling.
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for cells in table:
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        typer.echo(line.rstrip())
