"""``charts/``: each first-level chart folder or ``*.tgz``, rendered in-process by Helm's own Go
SDK (helm-python-sdk), then line-scanned like ``manifests/``.

Values are the chart's defaults coalesced, as Helm does, with ``charts/<name>.values.yaml``
when present (``name`` from Chart.yaml); the release is named ``dryrun``, as sealos names it.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from clusterimage.errors import DiscoveryError
from clusterimage.images.context_files import read_text, relative
from clusterimage.images.manifests import scan_text
from clusterimage.images.sightings import ChartOrigin, Findings

if TYPE_CHECKING:
    from types import ModuleType

    import helm_python

CHARTS_DIR: Final = "charts"
RELEASE_NAME: Final = "dryrun"
# Where Helm says a template failed: "name/templates/x.yaml:12" or ":12:5".
_LOCATION: Final = re.compile(r"(?P<template>[^\s():\"]+):(?P<line>\d+)(?::\d+)?")


def chart_sources(context: Path) -> list[Path]:
    """The charts sealos renders: first-level folders and ``*tgz`` files of ``charts/``."""
    root = context / CHARTS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() or p.name.endswith("tgz"))


def scan_charts(context: Path, findings: Findings) -> int:
    """Render and scan every chart; returns how many were rendered."""
    sources = chart_sources(context)
    for source in sources:
        label = relative(source, context)
        for template, text in sorted(render_chart(source, context).items()):
            scan_text(text, partial(ChartOrigin, label, template), findings)
    return len(sources)


def render_chart(source: Path, context: Path) -> dict[str, str]:
    """{template path: rendered text}; a chart that does not render is a one-line error."""
    helm = _helm()
    label = relative(source, context)
    if source.is_dir() and not (source / "Chart.yaml").is_file():
        # Checked first: Helm would read the whole folder before saying so.
        raise DiscoveryError(f"{label}: not a Helm chart: it has no Chart.yaml")
    with _load(helm, source, label) as chart:
        values = _values(helm, source.parent / f"{chart.name}.values.yaml", context)
        try:
            return chart.render(values, name=RELEASE_NAME)
        except helm.HelmRenderError as exc:
            first = exc
        except helm.HelmError as exc:
            raise DiscoveryError(f"{label}: cannot render: {_one_line(exc)}") from None
    # sealos renders with neither .Release.IsInstall nor .Release.IsUpgrade set, which this SDK
    # cannot do (it sets IsInstall unless asked for an upgrade). A guard that fails only on an
    # install does not stop sealos, so it must not stop us: try again as an upgrade. The chart
    # is loaded again because rendering drops disabled subcharts from the loaded chart.
    with _load(helm, source, label) as chart:
        try:
            return chart.render(values, name=RELEASE_NAME, is_upgrade=True)
        except helm.HelmError:
            pass
    raise DiscoveryError(render_error(label, first))


def render_error(label: str, exc: Exception) -> str:
    """Helm's message as one line that names the chart, then the template and line."""
    text = _one_line(exc)
    found = _LOCATION.search(text)
    if found is None:
        return f"{label}: cannot render: {text}"
    kind = "parse error" if "parse error" in text[: found.start()] else "cannot render"
    reason = text[found.end() :].lstrip("): ") or text
    return f"{label}: {kind} at {found['template']}:{found['line']}: {reason}"


def _helm() -> ModuleType:
    # Imported only when a context has charts: loading the Go library costs ~40 ms.
    try:
        import helm_python
    except ImportError as exc:
        raise DiscoveryError(f"charts/ needs helm-python-sdk to render charts: {exc}") from None
    except Exception as exc:  # HelmLibraryError: no usable native library on this system
        raise DiscoveryError(f"cannot load Helm to render charts/: {_one_line(exc)}") from None
    return helm_python


def _load(helm: ModuleType, source: Path, label: str) -> helm_python.Chart:
    try:
        chart: helm_python.Chart = helm.Chart.load(source)
    except helm.HelmError as exc:
        raise DiscoveryError(f"{label}: cannot load the chart: {_one_line(exc)}") from None
    return chart


def _values(helm: ModuleType, path: Path, context: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        # Helm's own YAML reading, so `yes`, `010` and friends mean what they mean to Helm.
        values: dict[str, Any] = helm.values_from_yaml(read_text(path, context))
    except helm.HelmError as exc:
        raise DiscoveryError(
            f"{relative(path, context)}: invalid values: {_one_line(exc)}"
        ) from None
    return values


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
