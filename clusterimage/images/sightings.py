"""Where an image reference was seen, and the running list of what the scanners saw.

Every scanner turns a value it found into a :class:`Sighting` through :meth:`Findings.add`, so
parsing, normalisation and the warning for an unparsable value live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clusterimage.errors import InvalidReference
from clusterimage.oci.reference import Reference


@dataclass(frozen=True)
class FileOrigin:
    """A line of a file in the build context (``file`` is relative to the context)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line}


@dataclass(frozen=True)
class ChartOrigin:
    """A line of a chart's rendered output: ``chart`` is the chart folder or archive relative
    to the context, ``template`` the path Helm names the rendered template by."""

    chart: str
    template: str
    line: int

    def __str__(self) -> str:
        return f"{self.chart} ({self.template}:{self.line}, rendered)"

    def to_json(self) -> dict[str, Any]:
        return {"chart": self.chart, "template": self.template, "line": self.line}


Origin = FileOrigin | ChartOrigin


@dataclass(frozen=True)
class Sighting:
    """One normalised reference and where it was written."""

    reference: Reference
    origin: Origin


@dataclass
class Findings:
    """What the scanners of one context saw, in scan order."""

    sightings: list[Sighting] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, value: str, origin: Origin) -> None:
        """Record ``value``; an unparsable one (a template left over) is a warning, not an
        error, as sealos skips it too."""
        try:
            reference = Reference.parse(value)
        except InvalidReference as exc:
            self.warnings.append(f"{origin}: skipped image {value!r}: {_reason(value, exc)}")
            return
        self.sightings.append(Sighting(reference, origin))


def trim_quotes(value: str) -> str:
    """sealos's TrimQuotes: one pair of matching surrounding quotes."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _reason(value: str, exc: InvalidReference) -> str:
    if "{{" in value:
        return "a template left unrendered"
    # Reference.parse says "invalid reference 'x': why"; the value is already in our message.
    text = str(exc)
    _, sep, why = text.partition("': ")
    return why if sep else text


def stored_path(reference: Reference) -> str:
    """Where ``registry/`` keeps an image: its reference without the registry host, as sealos
    stores it (``docker.io/library/nginx:1.25`` -> ``library/nginx:1.25``)."""
    return str(reference)[len(reference.registry) + 1 :]
