"""Discovery of the container images a build context needs, as ``sealos build`` finds them.

Scanned, in sealos's order: ``charts/`` (rendered with Helm), ``manifests/``, ``images/shim/``;
``images/skopeo/tar.txt`` lists archives in the context; ``.sealignore`` leaves images out.
Where we differ from sealos: a value followed by a YAML comment is still found, a tag+digest
reference keeps its digest, two sources for one stored path are an error rather than a silent
overwrite, and every image says where it was found.

    discovery = discover(Path("ctx"))
    for image in discovery.images:
        print(image.stored_path, ", ".join(map(str, image.origins)))
"""

from __future__ import annotations

from pathlib import Path

from clusterimage.errors import DiscoveryError
from clusterimage.images.charts import scan_charts
from clusterimage.images.found import Discovery, FoundImage, check_paths, merge
from clusterimage.images.manifests import scan_manifests
from clusterimage.images.sealignore import SEALIGNORE, read_ignore_list
from clusterimage.images.shim import scan_shim
from clusterimage.images.sightings import ChartOrigin, FileOrigin, Findings, Origin, Sighting
from clusterimage.images.tarlist import ArchiveImage, read_tar_list

__all__ = [
    "ArchiveImage",
    "ChartOrigin",
    "Discovery",
    "FileOrigin",
    "FoundImage",
    "Origin",
    "discover",
]


def discover(context: Path, *, ignore_file: Path | None = None) -> Discovery:
    """Every image the build context ``context`` needs.

    ``ignore_file`` replaces ``<context>/.sealignore`` (which may be absent; a file given here
    must exist). Raises :class:`DiscoveryError` (one line) for a chart that does not render, a
    bad tar.txt entry, or two images that would be stored under one path.
    """
    if not context.is_dir():
        raise DiscoveryError(f"{context}: the build context is not a folder")
    if ignore_file is not None and not ignore_file.is_file():
        raise DiscoveryError(f"{ignore_file}: no such ignore file")
    findings = Findings()
    charts_rendered = scan_charts(context, findings)
    scan_manifests(context, findings)
    scan_shim(context, findings)
    archives = read_tar_list(context)
    ignore = read_ignore_list(ignore_file or context / SEALIGNORE, context, findings.warnings)
    kept: list[Sighting] = []
    dropped: list[Sighting] = []
    for sighting in findings.sightings:
        (dropped if ignore.ignores(sighting.reference) else kept).append(sighting)
    images = merge(kept)
    check_paths(images, archives)
    return Discovery(
        images=tuple(images),
        archives=tuple(archives),
        ignored=tuple(merge(dropped)),
        warnings=tuple(findings.warnings),
        charts_rendered=charts_rendered,
    )
