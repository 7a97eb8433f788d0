"""Sizes and ages as podman prints them in ``images`` (go-units HumanSize / HumanDuration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clusterimage._humanize import count, human_ago, human_size, parse_time


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (123, "123 B"),
        (999, "999 B"),
        (1000, "1 kB"),
        (1234, "1.23 kB"),
        (12_345_678, "12.3 MB"),
        (999_999, "1 MB"),
        (5_000_000_000, "5 GB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("number", "text"),
    [(0, "0 blobs"), (1, "1 blob"), (2, "2 blobs")],
)
def test_count_agrees_with_the_number(number: int, text: str) -> None:
    assert count(number, "blob") == text


def test_count_takes_an_irregular_plural() -> None:
    assert [count(n, "entry", "entries") for n in (0, 1, 5)] == [
        "0 entries",
        "1 entry",
        "5 entries",
    ]


NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=0.5), "Less than a second ago"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=42), "42 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=3), "3 minutes ago"),
        (timedelta(minutes=61), "About an hour ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=100), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
    ],
)
def test_human_ago(delta: timedelta, text: str) -> None:
    created = (NOW - delta).isoformat().replace("+00:00", "Z")
    assert human_ago(created, NOW) == text


def test_parse_time_variants() -> None:
    nanos = parse_time("2024-05-01T10:00:00.123456789Z")
    assert nanos == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    offset = parse_time("2024-05-01T12:00:00+02:00")
    assert offset is not None and offset.astimezone(UTC).hour == 10
    assert parse_time("2024-05-01T10:00:00") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
    assert human_ago(None) == "unknown"
