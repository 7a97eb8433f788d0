"""Image discovery over every build context of the corpus, offline.

Discovery never fails with anything but a one-line :class:`ClusterImageError`; it lists images
for every context whose charts, manifests or shim lists name some; and it finds at least what
sealos finds: a plain re-implementation of sealos's line scan (below, kept deliberately naive)
run over the same files, and over each chart as Helm renders it with sealos's settings.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterimage.errors import ClusterImageError, InvalidReference
from clusterimage.images import ChartOrigin, Discovery, discover
from clusterimage.oci.reference import Reference
from tests.integration import test_corpus_dryrun as dryrun

# Where the corpus is and which Kubefiles it holds are decided once, by the dry-run corpus test;
# its fixture fails when the corpus is missing.
CORPUS = dryrun.CORPUS
corpus = dryrun.corpus

CONTEXTS = sorted({kubefile.parent for kubefile in dryrun.KUBEFILES})
SCANNED = ("charts", "manifests", "images/shim")


@dataclass
class Outcome:
    discovery: Discovery | None
    error: str | None  # a ClusterImageError's message
    crash: str | None  # anything else, with its traceback
    seconds: float


@pytest.fixture(scope="module")
def outcomes(corpus: Path) -> dict[Path, Outcome]:
    results = {}
    for context in CONTEXTS:
        start = time.perf_counter()
        discovery = error = crash = None
        try:
            discovery = discover(context)
        except ClusterImageError as exc:
            error = str(exc)
        except Exception:
            crash = traceback.format_exc()
        results[context] = Outcome(discovery, error, crash, time.perf_counter() - start)
    return results


def sealos_scan(text: str) -> set[Reference]:
    """sealos's parseImageRefFromLine over each line, without our additions."""
    found = set()
    for raw in text.split("\n"):
        line = raw.strip()
        if line.startswith("#") or "image:" not in line:
            continue
        value = line[line.index("image:") + len("image:") :].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if value:
            with contextlib.suppress(InvalidReference):
                found.add(Reference.parse(value))
    return found


def sealos_files(context: Path) -> set[Reference]:
    """What sealos finds in manifests/ and images/shim/."""
    found: set[Reference] = set()
    for path in sorted((context / "manifests").rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".tmpl"):
            found |= sealos_scan(path.read_text(errors="replace"))
    for path in sorted((context / "images/shim").rglob("*")):
        for line in path.read_text(errors="replace").splitlines() if path.is_file() else []:
            value = line.strip().strip("\"'")
            if value and not value.startswith("#"):
                with contextlib.suppress(InvalidReference):
                    found.add(Reference.parse(value))
    return found


def sealos_charts(context: Path) -> dict[str, set[Reference]]:
    """{chart: images} for each chart of charts/ that Helm renders as `helm template` would."""
    import helm_python

    rendered = {}
    charts = context / "charts"
    for source in sorted(charts.iterdir()) if charts.is_dir() else []:
        if not (source.is_dir() or source.name.endswith("tgz")):
            continue
        try:
            with helm_python.Chart.load(source) as chart:
                values_file = charts / f"{chart.name}.values.yaml"
                values = yaml.safe_load(values_file.read_text()) if values_file.exists() else {}
                output = chart.render(values or {}, name="dryrun")
        except helm_python.HelmError:
            continue
        found: set[Reference] = set()
        for text in output.values():
            found |= sealos_scan(text)
        rendered[source.relative_to(context).as_posix()] = found
    return rendered


def missing(expected: set[Reference], found: set[Reference]) -> set[str]:
    """What we do not cover; a name:tag we hold pinned by digest counts as covered."""
    pinned = {ref.with_tag(ref.tag) for ref in found if ref.tag and ref.digest}
    return {str(ref) for ref in expected if ref not in found and ref not in pinned}


@pytest.mark.parametrize("context", CONTEXTS, ids=[str(c.relative_to(CORPUS)) for c in CONTEXTS])
def test_discovery(outcomes: dict[Path, Outcome], context: Path) -> None:
    outcome = outcomes[context]
    assert outcome.crash is None, outcome.crash
    if outcome.error is not None:
        assert "\n" not in outcome.error
        pytest.fail(f"every corpus context builds with sealos, so must discover: {outcome.error}")
    assert outcome.discovery is not None
    found = {image.reference for image in outcome.discovery.images}
    expected = sealos_files(context)
    assert not missing(expected, found)

    for chart, chart_expected in sealos_charts(context).items():
        from_chart = {
            image.reference
            for image in outcome.discovery.images
            if any(isinstance(o, ChartOrigin) and o.chart == chart for o in image.origins)
        }
        assert not missing(chart_expected, from_chart), chart
        expected |= chart_expected
    if expected:
        assert outcome.discovery.images, "sealos finds images here; we list none"


def test_corpus_totals(outcomes: dict[Path, Outcome], record_property: Any) -> None:
    discoveries = [o.discovery for o in outcomes.values() if o.discovery is not None]
    with_sources = [c for c in CONTEXTS if any((c / name).exists() for name in SCANNED)]
    totals = {
        "contexts": len(outcomes),
        "contexts_with_sources": len(with_sources),
        "images": sum(len(d.images) for d in discoveries),
        "charts_rendered": sum(d.charts_rendered for d in discoveries),
        "errors": sum(o.error is not None for o in outcomes.values()),
        "warnings": sum(len(d.warnings) for d in discoveries),
        "seconds": round(sum(o.seconds for o in outcomes.values()), 2),
    }
    for name, value in totals.items():
        record_property(name, value)
    print(totals)
    assert totals["contexts"] == len(CONTEXTS) > 0
    # Every first-level chart of the corpus renders, as it does with sealos.
    assert totals["charts_rendered"] == sum(
        1
        for c in CONTEXTS
        if (c / "charts").is_dir()
        for p in (c / "charts").iterdir()
        if p.is_dir() or p.name.endswith("tgz")
    )
    assert totals["seconds"] < 60
