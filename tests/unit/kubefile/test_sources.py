"""COPY sources: Go's filepath.Match, context cleaning, wildcard matching in a context."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clusterimage.kubefile import sources

# Go's filepath.Match test table (path/filepath/match_test.go), Unix rows.
MATCH_CASES: list[tuple[str, str, bool | None]] = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "\u03b1", True),  # Greek alpha
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", None),
    ("[-]", "-", None),
    ("[x-]", "x", None),
    ("[x-]", "-", None),
    ("[x-]", "z", None),
    ("[-x]", "x", None),
    ("[-x]", "-", None),
    ("[-x]", "a", None),
    ("\\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("a[", "ab", None),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    MATCH_CASES,
    ids=[f"{i}:{p}~{n}" for i, (p, n, _) in enumerate(MATCH_CASES)],
)
def test_go_match(pattern: str, name: str, expected: bool | None) -> None:
    # Match whole paths segment by segment, as Glob does.
    pattern_parts, name_parts = pattern.split("/"), name.split("/")
    if expected is None:
        with pytest.raises(sources.PatternError):
            for part in pattern_parts:
                sources.match(part, "x")
        return
    result = len(pattern_parts) == len(name_parts) and all(
        sources.match(p, n) for p, n in zip(pattern_parts, name_parts, strict=True)
    )
    assert result is expected


@pytest.mark.parametrize(
    ("source", "cleaned"),
    [
        (".", "."),
        ("./", "."),
        ("/", "."),
        ("a/b/../c", "a/c"),
        ("/etc/passwd", "etc/passwd"),
        ("./registry/", "registry"),
        ("../x", None),
        ("a/../../x", None),
        ("..", None),
        ("/../x", None),
        ("...", "..."),
        ("..a", "..a"),
    ],
)
def test_clean_source(source: str, cleaned: str | None) -> None:
    assert sources.clean_source(source) == cleaned


@pytest.mark.parametrize(
    ("pattern", "has"),
    [("a", False), ("a*", True), ("a?", True), ("[ab]", True), ("a\\*", False), ("a\\\\*", True)],
)
def test_has_wildcards(pattern: str, has: bool) -> None:
    assert sources.has_wildcards(pattern) is has


def test_is_remote() -> None:
    assert sources.is_remote("https://example.com/a.tgz")
    assert sources.is_remote("HTTP://x")
    assert sources.is_remote("git@github.com:o/r.git")
    assert not sources.is_remote("charts")


@pytest.fixture
def context(tmp_path: Path) -> Path:
    for name in (
        "a.yaml",
        "b.yaml",
        ".hidden.yaml",
        "c.txt",
        "charts/x/Chart.yaml",
        "charts/y.tgz",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "sub" / "deep" / "f.yaml").write_text("x")
    return tmp_path


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.yaml", [".hidden.yaml", "a.yaml", "b.yaml"]),
        ("?.yaml", ["a.yaml", "b.yaml"]),
        ("[ab].yaml", ["a.yaml", "b.yaml"]),
        ("charts/*", ["charts/x", "charts/y.tgz"]),
        ("*/x/Chart.yaml", ["charts/x/Chart.yaml"]),
        ("**/f.yaml", []),  # ** is not special: one segment only
        ("*/*/f.yaml", ["sub/deep/f.yaml"]),
        ("c.txt", ["c.txt"]),
        ("nope*", []),
        ("missing", []),
    ],
)
def test_glob(context: Path, pattern: str, expected: list[str]) -> None:
    assert sources.glob(context, pattern) == expected


def test_glob_extra_top(context: Path) -> None:
    assert sources.glob(context, "registry", extra_top=("registry",)) == ["registry"]
    assert "registry" in sources.glob(context, "*", extra_top=("registry",))
    assert sources.glob(context, "registry/x", extra_top=("registry",)) == []


def test_glob_does_not_follow_symlinks_out(
    context: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.yaml").write_text("x")
    os.symlink(outside, context / "link")
    os.symlink(outside / "secret.yaml", context / "file-link")
    assert sources.glob(context, "link/*.yaml") == []
    # the link itself exists (it is copied as a link, never followed)
    assert sources.glob(context, "file-link") == ["file-link"]
    os.symlink(context / "charts", context / "inner")
    assert sources.glob(context, "inner/*") == ["inner/x", "inner/y.tgz"]


def test_exists_with_ignore(context: Path) -> None:
    assert sources.exists(context, ".") == ["."]
    ignored = sources.exists(context, "*.yaml", is_ignored=lambda path: path.startswith("."))
    assert ignored == ["a.yaml", "b.yaml"]
    assert sources.exists(context, "c.txt", is_ignored=lambda path: True) == []


def test_validate() -> None:
    sources.validate("a/b*/[xy]")
    with pytest.raises(sources.PatternError):
        sources.validate("a/[b")
