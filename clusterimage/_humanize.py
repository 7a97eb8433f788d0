"""Sizes, ages and counts the way podman prints them (docker/go-units' HumanSize and HumanDuration).

Hand-written: the Python libraries for this (humanize) round and word differently from the
podman/docker output users compare us with.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 blob``, ``2 blobs``, ``0 images``: the noun agrees with the number (``plural`` for
    the nouns that do not just take an s: ``count(n, "entry", "entries")``)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def human_size(size: int) -> str:
    """``123 B``, ``1.23 kB``, ``12.3 MB`` (decimal units, three significant digits)."""
    value = float(size)
    unit = 0
    while unit < len(_UNITS) - 1 and (value >= 1000 or f"{value:.3g}".startswith("1e+03")):
        value /= 1000
        unit += 1
    return f"{value:.3g} {_UNITS[unit]}"


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (``2024-05-01T10:00:00.123456789Z``) as an aware datetime."""
    if not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip())  # Python takes at most microseconds
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_ago(value: str | None, now: datetime | None = None) -> str:
    """``3 minutes ago``, ``About an hour ago``, ``2 years ago``; ``unknown`` without a time."""
    created = parse_time(value)
    if created is None:
        return "unknown"
    seconds = ((now or datetime.now(UTC)) - created).total_seconds()
    return f"{_duration(seconds)} ago"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
