"""`images --filter`: the parsing and the matching rules taken from podman's libimage."""

from __future__ import annotations

import pytest

from clusterimage.cli.images import _label_matches, _parse_filters, _path_match
from clusterimage.errors import UsageError


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("nginx", "nginx", True),
        ("ngi*", "nginx", True),
        ("*", "library/nginx", False),  # Go's path.Match: * stops at /
        ("*/*", "library/nginx", True),
        ("ng?nx", "nginx", True),
        ("ng[a-i]nx", "nginx", True),
        ("ng[^a-i]nx", "nginx", False),
        ("nginx:1.2?", "nginx:1.25", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("[unclosed", "[unclosed", False),  # a bad pattern matches nothing, as in podman
        ("app.v1", "appxv1", False),  # no regex leaks through
    ],
)
def test_path_match(pattern: str, name: str, matches: bool) -> None:
    assert _path_match(pattern, name) is matches


def test_label_matching() -> None:
    labels = {"sealos.io.type": "rootfs", "team": "blue"}
    assert _label_matches(labels, "team", None)
    assert _label_matches(labels, "team", "blue")
    assert not _label_matches(labels, "team", "red")
    assert not _label_matches(labels, "absent", None)
    assert _label_matches(labels, "sealos*", "rootfs")  # a key with * is a pattern
    assert not _label_matches({}, "team", None)


def test_parse_filters() -> None:
    parsed = _parse_filters(["reference=app", "label!=a=b", "after=x:v1", "dangling=TRUE"])
    assert [(f.key, f.value, f.negate) for f in parsed] == [
        ("reference", "app", False),
        ("label", "a=b", True),
        ("since", "x:v1", False),  # after is since, as in podman
        ("dangling", "TRUE", False),
    ]
    # The same value twice is fine; opposite values are refused.
    _parse_filters(["dangling=true", "dangling=1"])
    with pytest.raises(UsageError, match="opposite"):
        _parse_filters(["dangling=true", "dangling!=true"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope=1", "unknown filter 'nope' (known: reference, label, dangling, before, since"),
        ("reference", "expected KEY=VALUE"),
        ("label=", "label takes KEY or KEY=VALUE"),
        ("dangling=yes", "dangling takes true or false"),
        ("digest=abc", "digest takes sha256:HEX"),
        ("id=sha256:xyz", "id takes hex digits"),
    ],
)
def test_bad_filters(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _parse_filters([value])
