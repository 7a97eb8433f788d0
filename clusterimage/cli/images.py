"""``clusterimage images``: list the images in the local store."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from clusterimage._humanize import count, human_ago, human_size, parse_time
from clusterimage.cli import _template
from clusterimage.cli._common import complete_images, print_json, store_dir, warn
from clusterimage.errors import (
    BlobNotFound,
    ImageNotFound,
    InvalidReference,
    ManifestError,
    StoreError,
    UsageError,
)
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.digest import Digest
from clusterimage.oci.reference import Reference
from clusterimage.store import ImageEntry, ImageSummary, Store

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What CREATED says for an image whose config says 1970-01-01T00:00:00Z: reproducible builds
# (ours, `buildah --timestamp 0`, SOURCE_DATE_EPOCH=0) write the epoch on purpose, so that
# the same input gives the same digest; "56 years ago" would read as a broken clock.
REPRODUCIBLE = "reproducible"

# --format fields and their table headers (podman's names: field words upper-cased, ID is
# IMAGE ID).
_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "IMAGE ID",
    "Digest": "DIGEST",
    "Digests": "DIGESTS",
    "Created": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedSince": "CREATED SINCE",
    "CreatedTime": "CREATED TIME",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Names": "NAMES",
    "RepoTags": "REPO TAGS",
    "RepoDigests": "REPO DIGESTS",
    "Dangling": "DANGLING",
}

FILTER_KEYS = ("reference", "label", "dangling", "before", "since", "after", "id", "digest")


@dataclass
class _Image:
    """What every row of one image shares: read once per manifest digest."""

    summary: ImageSummary
    image_id: Digest
    config: ImageConfig | None
    names: list[str] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        if self.config is None:
            return {}
        try:
            return self.config.labels
        except ManifestError:
            return {}


@dataclass
class _Row:
    entry: ImageEntry
    image: _Image
    stored: datetime | None  # when this name was stored; None: an older store, or another tool

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

    @property
    def created(self) -> datetime | None:
        return parse_time(self.image.summary.created)

    @property
    def order(self) -> datetime:
        """When the name was stored; for an entry without that record, the image's created
        time; without either, the epoch (listed last)."""
        return self.stored or self.created or _EPOCH


def register(app: typer.Typer) -> None:
    @app.command("images")
    def images(
        image: Annotated[
            str | None,
            typer.Argument(
                metavar="[IMAGE]",
                help="Only images this name matches (nginx, quay.io/org/app, app:v1, 'app*'): "
                "the same as --filter reference=IMAGE.",
                autocompletion=complete_images,
            ),
        ] = None,
        filters: Annotated[
            list[str] | None,
            typer.Option(
                "--filter",
                "-f",
                metavar="KEY=VALUE",
                help="Only images that match (repeatable; KEY!=VALUE negates): reference=GLOB, "
                "label=KEY[=VALUE], dangling=true|false, before=IMAGE, since=IMAGE, id=PREFIX, "
                "digest=sha256:PREFIX. Different keys must all match; a repeated reference, id "
                "or digest matches any of its values, a repeated label/before/since all.",
                autocompletion=_complete_filter,
            ),
        ] = None,
        format_: Annotated[
            str | None,
            typer.Option(
                "--format",
                metavar="TEMPLATE",
                help="A Go template per image (podman's fields: .Repository .Tag .ID .Digest "
                ".Size .Created .CreatedAt .Labels .Names .Dangling ...), 'table ...' for "
                "a header and aligned columns, or json.",
            ),
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print image IDs only, each once.")
        ] = False,
        digests: Annotated[bool, typer.Option("--digests", help="Show manifest digests.")] = False,
        no_trunc: Annotated[
            bool, typer.Option("--no-trunc", help="Show full image IDs (sha256:...).")
        ] = False,
        no_heading: Annotated[
            bool, typer.Option("--noheading", "-n", help="No header row.")
        ] = False,
        json_output: Annotated[
            bool,
            typer.Option(
                "--json",
                help="Print JSON with podman's keys (Id, Names, Digest, Created, Size, Labels, "
                "...), one object per row.",
            ),
        ] = False,
    ) -> None:
        """List the images in the local store, the most recently stored first.

        IMAGE ID is the config digest, as podman, buildah and docker show it; --digests adds the
        manifest digest. The order is when each name was stored (built, pulled, tagged, loaded),
        newest first. CREATED comes from the image config; an image created at the epoch
        (1970-01-01, what reproducible builds write) says "reproducible". SIZE counts the
        manifest, the config and the layers. A multi-platform image (an index) is one row,
        whose ID is the index digest.

        Examples:

          clusterimage images

          clusterimage images nginx --digests

          clusterimage images --filter label=sealos.io.type=application --filter dangling=false

          clusterimage images --format '{{.Repository}}:{{.Tag}} {{.ID}}'

          clusterimage images --format 'table {{.ID}}\\t{{.Size}}\\t{{.Labels}}'

          clusterimage images -q --no-trunc
        """
        template = _parse_format(format_)
        if image is not None and filters:
            raise UsageError("images: give an IMAGE or --filter reference=..., not both")
        wanted = list(filters or [])
        if image is not None:
            if not _GLOB.search(image):
                Reference.parse(image, default_tag=False)  # InvalidReference even with no images
            wanted.append(f"reference={image}")
        parsed = _parse_filters(wanted)  # a bad key is an error even with nothing stored
        store = Store.existing(store_dir())
        rows = _rows(store) if store is not None else []  # None: nothing stored yet
        if store is not None and parsed:
            match = _compile(parsed, store, rows)
            rows = [row for row in rows if match(row)]
        damaged = sorted({row.repository + ":" + row.tag for row in rows if _damaged(row)})
        if json_output or (format_ is not None and _template.is_json(format_)):
            print_json([_json(row) for row in rows])
        elif quiet:
            seen: set[str] = set()
            for row in rows:
                shown = _image_id(row.image.image_id, no_trunc)
                if shown not in seen:
                    seen.add(shown)
                    typer.echo(shown)
        elif template is not None:
            header = None if no_heading else _header()
            records = (_record(row, no_trunc) for row in rows)
            typer.echo(_template.render_all(template, records, header), nl=False)
        else:
            _print_table(rows, digests=digests, no_trunc=no_trunc, heading=not no_heading)
        if damaged:
            verb = "misses blobs or is" if len(damaged) == 1 else "miss blobs or are"
            warn(
                f"{count(len(damaged), 'image')} {verb} damaged ({', '.join(damaged)}); "
                "run `clusterimage fsck` to see what, `clusterimage pull` again to repair"
            )


def _complete_filter(incomplete: str) -> list[str]:
    return [f"{key}=" for key in FILTER_KEYS if f"{key}=".startswith(incomplete)]


def _parse_format(value: str | None) -> _template.Template | None:
    if value is None or _template.is_json(value):
        return None
    template = _template.parse(value)
    template.check_fields(_HEADERS, "images")
    return template


# -- rows ------------------------------------------------------------------------------------------


def _rows(store: Store) -> list[_Row]:
    times = store.stored_times()
    images: dict[Digest, _Image] = {}
    rows = []
    for entry in store.images():
        if entry.digest not in images:
            images[entry.digest] = _describe(store, entry)
        image = images[entry.digest]
        if entry.name is not None:
            image.names.append(entry.name)
        rows.append(_Row(entry, image, _stored(times.get(str(entry.digest), {}), entry.name)))
    # Newest first; the sort is stable, so rows stored at one instant keep index.json's order.
    rows.sort(key=lambda row: row.order, reverse=True)
    return rows


def _stored(times: dict[str, str], name: str | None) -> datetime | None:
    """When ``name`` was stored for this image; an untagged entry without a time of its own
    takes the latest of the image's."""
    own = parse_time(times.get(name or ""))
    if own is not None or name is not None:
        return own
    known = [t for t in (parse_time(v) for v in times.values()) if t is not None]
    return max(known) if known else None


def _describe(store: Store, entry: ImageEntry) -> _Image:
    summary = _summarize(store, entry)  # first: it notes the config digest image_id needs
    return _Image(summary, entry.image_id, summary.config)


def _summarize(store: Store, entry: ImageEntry) -> ImageSummary:
    try:
        return store.summarize(entry.descriptor)
    except (BlobNotFound, ManifestError, StoreError):
        # A damaged image still gets its row (fsck says what is wrong with it); StoreError: a
        # blob that is not a regular file.
        desc = entry.descriptor
        return ImageSummary(desc.digest, desc.media_type, 0, None, missing=1)

    return None


def _damaged(row: _Row) -> bool:
    return row.image.summary.missing > 0 or row.image.summary.size == 0


# -- filters ---------------------------------------------------------------------------------------

_GLOB = re.compile(r"[*?\[]")
_BOOLS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


@dataclass(frozen=True)
class _Filter:
    key: str
    value: str
    negate: bool


def _parse_filters(values: Iterable[str]) -> list[_Filter]:
    out = []
    dangling: set[bool] = set()
    for text in values:
        negate = "!=" in text.split("=", 1)[0] + "="
        key, sep, value = text.partition("!=" if negate else "=")
        if not sep:
            raise UsageError(
                f"--filter {text!r}: expected KEY=VALUE (keys: {', '.join(FILTER_KEYS)})"
            )
        key = key.strip()
        if key not in FILTER_KEYS:
            raise UsageError(
                f"--filter {text!r}: unknown filter {key!r} (known: {', '.join(FILTER_KEYS)})"
            )
        if key == "dangling":
            if value.lower() not in _BOOLS:
                raise UsageError(f"--filter {text!r}: dangling takes true or false")
            dangling.add(_BOOLS[value.lower()] != negate)
            if len(dangling) > 1:
                raise UsageError("--filter dangling= is given twice with opposite values")
        if key == "digest" and not re.fullmatch(r"(sha256|sha512):[a-f0-9]*", value):
            raise UsageError(f"--filter {text!r}: digest takes sha256:HEX (a prefix)")
        if key == "id" and not re.fullmatch(r"(sha256:|sha512:)?[a-f0-9]+", value):
            raise UsageError(f"--filter {text!r}: id takes hex digits (a prefix of IMAGE ID)")
        if key == "label" and not value.split("=", 1)[0]:
            raise UsageError(f"--filter {text!r}: label takes KEY or KEY=VALUE")
        out.append(_Filter("since" if key == "after" else key, value, negate))
    return out


Match = Callable[[_Row], bool]


def _compile(filters: list[_Filter], store: Store, rows: list[_Row]) -> Match:
    """One predicate: every key's group must match (AND); within a group reference, id and
    digest match any value (OR), label, before and since all of them; a negated value must not
    match (as podman's libimage)."""
    groups: dict[str, list[_Filter]] = {}
    for f in filters:
        groups.setdefault(f.key, []).append(f)
    checks: list[Match] = []
    for key, group in groups.items():
        tests = [(f.negate, _predicate(f, store, rows)) for f in group]
        wanted = [test for negate, test in tests if not negate]
        unwanted = [test for negate, test in tests if negate]
        any_of = key in ("reference", "id", "digest")
        checks.append(_group(wanted, unwanted, any_of))
    return lambda row: all(check(row) for check in checks)


def _group(wanted: list[Match], unwanted: list[Match], any_of: bool) -> Match:
    def check(row: _Row) -> bool:
        if any(test(row) for test in unwanted):
            return False
        if not wanted:
            return True
        return any(t(row) for t in wanted) if any_of else all(t(row) for t in wanted)

    return check


def _predicate(f: _Filter, store: Store, rows: list[_Row]) -> Match:
    value = f.value
    if f.key == "reference":
        return lambda row: _reference_matches(row, value)
    if f.key == "label":
        key, has_value, label_value = value.partition("=")
        return lambda row: _label_matches(row.image.labels, key, label_value if has_value else None)
    if f.key == "dangling":
        want = _BOOLS[value.lower()]
        return lambda row: (row.entry.name is None) == want
    if f.key == "id":
        algorithm, _, hex_part = value.rpartition(":")
        return lambda row: (
            row.image.image_id.hex.startswith(hex_part)
            and (not algorithm or row.image.image_id.algorithm == algorithm)
        )
    if f.key == "digest":
        return lambda row: str(row.entry.digest).startswith(value)
    at = _time_of(f, store, rows)
    if f.key == "before":
        return lambda row: row.order < at
    return lambda row: row.order > at  # since


def _time_of(f: _Filter, store: Store, rows: list[_Row]) -> datetime:
    """The time ``before=IMAGE``/``since=IMAGE`` compare with: when IMAGE's name was stored
    (the order ``images`` lists in); by ID or digest, when the image was first stored."""
    try:
        desc, name = store.resolve_named(f.value)  # one lookup, not two
    except (ImageNotFound, InvalidReference) as exc:
        raise ImageNotFound(f"--filter {f.key}={f.value}: {exc}") from None
    same = [row for row in rows if row.entry.digest == desc.digest]
    if name is not None:
        same = [row for row in same if row.entry.name == name] or same
    if not same:  # one platform of a stored index: no row of its own
        raise ImageNotFound(f"--filter {f.key}={f.value}: not an image listed by `images`")
    return min(row.order for row in same)


def _reference_matches(row: _Row, pattern: str) -> bool:
    """podman's reference filter: the pattern (a glob, ``*`` not crossing ``/``) matches the
    whole name, or it without its registry, or its last component, each with or without the
    tag or digest. ``NAME@DIGEST`` matches the image of that manifest digest under a name that
    NAME matches, whatever its tag: a stored name keeps the tag, not the digest it was pulled by."""
    name = row.entry.name
    if name is None:
        return False
    name_pattern, at, digest = pattern.partition("@")
    if at:
        return str(row.entry.digest) == digest and _reference_matches(row, name_pattern)
    ref = row.entry.reference
    candidates = [name]
    if ref is not None:
        full = str(ref)
        trimmed = ref.name
        suffix = full[len(trimmed) :]  # :tag, @digest or both
        path = ref.repository
        candidates += [path, full.rsplit("/", 1)[-1], trimmed, path + suffix]
        candidates.append(trimmed.rsplit("/", 1)[-1])
    return any(_path_match(pattern, candidate) for candidate in candidates)


def _path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: ``*`` and ``?`` never match ``/``; ``[...]`` classes; ``\\`` escapes."""
    regex: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            regex.append("[^/]*")
        elif char == "?":
            regex.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            regex.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return False  # Go: ErrBadPattern, which podman treats as no match
            body = pattern[i + 1 : end]
            negated = body.startswith("^")
            body = body[1:] if negated else body
            regex.append("[" + ("^" if negated else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            regex.append(re.escape(char))
        i += 1
    try:
        return re.fullmatch("".join(regex), name) is not None
    except re.error:
        return False


def _label_matches(labels: dict[str, str], key: str, value: str | None) -> bool:
    """podman's MatchLabelFilters: the key (a pattern when it holds ``*``) is there, with
    ``value`` when one is given. As podman's matchPattern, ``/`` becomes ``|`` on both sides
    first, so a ``*`` spans it (``apps.sealos.io*`` finds ``apps.sealos.io/type``)."""
    pattern = f"*{key}*".replace("/", "|")
    for label_key, label_value in labels.items():
        if value and label_value != value:  # podman: an empty value matches any
            continue
        if label_key == key or ("*" in key and _path_match(pattern, label_key.replace("/", "|"))):
            return True
    return False


# -- output ----------------------------------------------------------------------------------------


def _image_id(digest: Digest, no_trunc: bool) -> str:
    return str(digest) if no_trunc else digest.short


def _created_text(row: _Row, now: datetime) -> str:
    created = row.created
    if created is not None and created == _EPOCH:
        return REPRODUCIBLE
    return human_ago(row.image.summary.created, now)


def _rfc3339(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _repo_digests(row: _Row) -> list[str]:
    """``repo@digest`` for each repository the image is named in (podman's RepoDigests)."""
    out: list[str] = []
    for name in row.image.names:
        try:
            repo = Reference.parse(name).name
        except InvalidReference:
            continue
        item = f"{repo}@{row.entry.digest}"
        if item not in out:
            out.append(item)
    return out


def _json(row: _Row) -> dict[str, Any]:
    """podman's ``images --format json`` keys, for what the store knows: no ParentId,
    Containers, SharedSize (no containers, no parent chain). Created is unix seconds (null
    when the config has no time), CreatedAt the same time in RFC 3339."""
    created = row.created
    return {
        "Id": row.image.image_id.hex,
        "RepoTags": list(row.image.names),
        "RepoDigests": _repo_digests(row),
        "Created": int(created.timestamp()) if created is not None else None,
        "CreatedAt": _rfc3339(created),
        "Size": row.image.summary.size,
        "Labels": row.image.labels or None,
        "Names": list(row.image.names),
        "Digest": str(row.entry.digest),
        "Digests": [str(row.entry.digest)],
        "Dangling": row.entry.name is None,
        "Repository": row.repository,
        "Tag": row.tag,
    }


def _record(row: _Row, no_trunc: bool, now: datetime | None = None) -> _template.Record:
    now = now or datetime.now(UTC)
    created = row.created
    # podman's CreatedAt is Go's time.String() of the UTC time.
    created_at = created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC") if created else ""
    since = _created_text(row, now)
    fields = {
        "Repository": row.repository,
        "Tag": row.tag,
        "ID": _image_id(row.image.image_id, no_trunc),
        "Digest": str(row.entry.digest),
        "Digests": [str(row.entry.digest)],
        "Created": since,
        "CreatedAt": created_at,
        "CreatedSince": since,
        "CreatedTime": created_at,
        "Size": human_size(row.image.summary.size),
        "Labels": _template.Map(row.image.labels),  # {{.Labels.absent}}: <no value>
        "Names": list(row.image.names),
        "RepoTags": list(row.image.names),
        "RepoDigests": _repo_digests(row),
        "Dangling": row.entry.name is None,
    }
    return _template.Record(fields, _json(row))


def _header() -> _template.Record:
    return _template.Record({k: _template.Header(v) for k, v in _HEADERS.items()})


def _print_table(rows: list[_Row], *, digests: bool, no_trunc: bool, heading: bool) -> None:
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED"]
    header.append("SIZE")
    table = [header] if heading else []
    now = datetime.now(UTC)
    for row in rows:
        cells = [row.repository, row.tag]
        if digests:
            cells.append(str(row.entry.digest))
        cells += [
            _image_id(row.image.image_id, no_trunc),
            _created_text(row, now),
            human_size(row.image.summary.size),
        ]
        table.append(cells)
    if not table:
        return
    # Plain aligned columns like podman's tabwriter: stable for scripts, no terminal styling.
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for cells in table:
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        typer.echo(line.rstrip())
