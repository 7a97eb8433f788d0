"""The overall progress of a copy: the totals its events add up to, and the "total" row a
terminal shows above the per-blob rows."""

from __future__ import annotations

import io
import re

from rich.console import Console

from clusterimage.cli._common import CopyProgress, TransferTotals
from clusterimage.copy import CopyEvent, CopyOptions, EventKind
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _blob(name: str, size: int) -> Descriptor:
    return Descriptor(LAYER, Digest.of(name.encode()), size)


def _feed(totals: TransferTotals, kind: EventKind, desc: Descriptor, done: int = 0) -> None:
    totals.feed(CopyEvent(kind, desc, done))


def test_planned_sizes_make_the_total_before_any_byte_moves() -> None:
    a, b, c = _blob("a", 1000), _blob("b", 300), _blob("c", 50)
    totals = TransferTotals()
    for desc in (a, b, c):
        _feed(totals, "blob-planned", desc)
    assert (totals.done, totals.total) == (0, 1350)
    _feed(totals, "blob-start", a, 0)
    _feed(totals, "blob-progress", a, 400)
    _feed(totals, "blob-start", b, 0)
    _feed(totals, "blob-progress", b, 100)
    assert (totals.done, totals.total) == (500, 1350)
    _feed(totals, "blob-done", a, 1000)
    _feed(totals, "blob-done", b, 300)
    _feed(totals, "blob-start", c, 0)
    _feed(totals, "blob-done", c, 50)
    assert (totals.done, totals.total) == (1350, 1350)


def test_blobs_the_destination_has_leave_the_total() -> None:
    a, b = _blob("a", 1000), _blob("b", 300)
    totals = TransferTotals()
    _feed(totals, "blob-planned", a)
    _feed(totals, "blob-planned", b)
    _feed(totals, "blob-skipped", a, 1000)
    assert (totals.done, totals.total) == (0, 300)
    _feed(totals, "blob-mounted", b, 300)
    assert (totals.done, totals.total) == (0, 0)
    # A blob only ever found (never planned) adds nothing either.
    _feed(totals, "blob-skipped", _blob("z", 99), 99)
    assert (totals.done, totals.total) == (0, 0)


def test_resumed_bytes_are_not_counted_as_transferred_now() -> None:
    a = _blob("a", 1000)
    totals = TransferTotals()
    _feed(totals, "blob-planned", a)
    _feed(totals, "blob-start", a, 600)  # 600 bytes kept from an interrupted pull
    assert (totals.done, totals.total) == (0, 400)
    _feed(totals, "blob-progress", a, 800)
    assert (totals.done, totals.total) == (200, 400)
    _feed(totals, "blob-done", a, 1000)
    assert (totals.done, totals.total) == (400, 400)


def test_a_retry_from_the_start_takes_its_bytes_back() -> None:
    a = _blob("a", 1000)
    totals = TransferTotals()
    _feed(totals, "blob-planned", a)
    _feed(totals, "blob-start", a, 0)
    _feed(totals, "blob-progress", a, 700)
    _feed(totals, "blob-progress", a, 0)  # the connection broke; the retry starts over
    assert (totals.done, totals.total) == (0, 1000)
    _feed(totals, "blob-progress", a, 1000)
    assert totals.done == 1000


def test_unplanned_blobs_and_shared_blobs_count_once() -> None:
    a, b = _blob("a", 1000), _blob("b", 200)
    totals = TransferTotals()
    _feed(totals, "blob-planned", a)
    _feed(totals, "blob-planned", a)  # a second image of the copy has the same layer
    _feed(totals, "blob-start", a, 0)
    _feed(totals, "blob-start", b, 0)  # never planned: counted when it starts
    assert totals.total == 1200
    _feed(totals, "blob-done", a, 1000)
    # The second image finds the layer the first brought: still counted as transferred.
    _feed(totals, "blob-skipped", a, 1000)
    _feed(totals, "blob-done", b, 200)
    assert (totals.done, totals.total) == (1200, 1200)


def test_a_terminal_shows_a_total_row_above_the_blob_rows() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system=None)
    a, b, c = _blob("a", 3_000_000), _blob("b", 1_000_000), _blob("c", 500_000)
    with CopyProgress(enabled=True, console=console) as progress:
        for desc in (a, b, c):
            progress(CopyEvent("blob-planned", desc))
        progress(CopyEvent("blob-skipped", c, c.size))
        progress(CopyEvent("blob-start", a, 0))
        progress(CopyEvent("blob-progress", a, 1_500_000))
        progress(CopyEvent("blob-start", b, 0))
        progress(CopyEvent("blob-done", b, b.size))
        progress(CopyEvent("blob-done", a, a.size))
    assert (progress.totals.done, progress.totals.total) == (4_000_000, 4_000_000)
    text = out.getvalue()
    # The final frame: the total row first, with bytes done of the total, then the blobs.
    final = text[text.rindex("total") :]
    lines = [line for line in final.splitlines() if line.strip()]
    assert re.search(r"^total\b.*4\.0/4\.0 MB", lines[0]), lines
    assert any(f"copying {a.digest.short}" in line and "3.0/3.0 MB" in line for line in lines)
    assert any(f"exists  {c.digest.short}" in line for line in lines)
    assert lines.index(next(line for line in lines if a.digest.short in line)) > 0


def test_no_terminal_no_rows() -> None:
    a = _blob("a", 10)
    with CopyProgress(enabled=False) as progress:
        progress(CopyEvent("blob-planned", a))
        progress(CopyEvent("blob-done", a, 10))
    # Disabled: nothing drawn, nothing accounted (the copy's result carries its own counts).
    assert progress.totals.total == 0


def test_the_copy_engine_plans_every_blob_before_moving_any() -> None:
    from clusterimage.copy import copy_image
    from tests.unit.test_copy import MemoryPlace, MemoryReference, _image

    src, dst = MemoryPlace(), MemoryPlace()
    manifest = _image(src, b"a" * 5000, b"b" * 3000, b"already there")
    src.top = manifest.digest
    dst.blobs[manifest.layers[2].digest] = b"already there"
    events: list[CopyEvent] = []
    totals = TransferTotals()

    def seen(event: CopyEvent) -> None:
        events.append(event)
        totals.feed(event)

    result = copy_image(
        MemoryReference(src), MemoryReference(dst), options=CopyOptions(on_event=seen)
    )
    kinds = [e.kind for e in events]
    planned = [e.descriptor.digest for e in events if e.kind == "blob-planned"]
    assert kinds[: len(planned)] == ["blob-planned"] * 4  # config and three layers, first
    assert set(planned) == {manifest.config.digest, *(d.digest for d in manifest.layers)}
    # The total is what travelled: the layer already there left it.
    assert totals.total == totals.done == result.bytes_copied == 5000 + 3000 + manifest.config.size
