"""The .dockerignore rules, checked against moby/patternmatcher's own test table."""

from __future__ import annotations

import pytest

from clusterimage.build.dockerignore import IgnoreRules
from clusterimage.errors import KubefileError

# (pattern, path, matches): patternmatcher_test.go TestMatches, paths without a trailing "/".
MOBY_TABLE = [
    ("**", "file", True),
    ("**/", "file", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    # Parent directories: a pattern naming a folder excludes what is below it.
    ("dir", "dir/sub/file", True),
    ("dir/sub", "dir/sub/file", True),
    ("*/sub", "dir/sub/file", True),
    ("dir", "dirx/file", False),
    # A leading "/" and "./" mean the context root; patterns are cleaned.
    ("/dir/file", "dir/file", True),
    ("./dir//file", "dir/file", True),
    ("dir/../other", "other", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MOBY_TABLE)
def test_pattern_table(pattern: str, path: str, expected: bool) -> None:
    assert IgnoreRules.parse(pattern).ignored(path) is expected


def test_exclusions_last_match_wins() -> None:
    rules = IgnoreRules.parse("*.md\n!README.md\ndocs\n!docs/keep.txt\n")
    assert rules.ignored("CHANGES.md")
    assert not rules.ignored("README.md")
    assert rules.ignored("docs/other.txt")
    assert not rules.ignored("docs/keep.txt")
    assert not rules.ignored("manifests/app.yaml")
    assert rules.has_exclusions


def test_exclusion_then_exclude_again() -> None:
    rules = IgnoreRules.parse("*.yaml\n!keep*.yaml\nkeep-not.yaml\n")
    assert rules.ignored("a.yaml")
    assert not rules.ignored("keep-me.yaml")
    assert rules.ignored("keep-not.yaml")


def test_comments_blank_lines_and_spaces() -> None:
    # As moby's ignorefile.ReadAll: a comment is a "#" in the first column, checked before the
    # spaces are trimmed, so an indented "#" line is a pattern; lines end at "\n" ("\r\n" too).
    text = "# a comment\r\n\n   build   \r\n  # indented\nform\x0cfeed\n"
    rules = IgnoreRules.parse(text)
    assert rules.ignored("build")
    assert rules.ignored("build/out.bin")
    assert not rules.ignored("# a comment")
    assert rules.ignored("# indented")
    assert rules.ignored("form\x0cfeed") and not rules.ignored("form")
    assert [p.text for p in rules.patterns] == ["build", "# indented", "form\x0cfeed"]


def test_kubefile_and_ignore_file_are_ordinary_paths() -> None:
    rules = IgnoreRules.parse("Kubefile\n.dockerignore\n")
    assert rules.ignored("Kubefile")
    assert rules.ignored(".dockerignore")
    assert not IgnoreRules.parse("*.txt").ignored("Kubefile")


def test_lone_bang_is_an_error_with_file_and_line() -> None:
    with pytest.raises(KubefileError, match=r"^ctx/\.dockerignore:3: illegal exclusion"):
        IgnoreRules.parse("a\nb\n!\n", "ctx/.dockerignore")


def test_invalid_class_is_an_error() -> None:
    with pytest.raises(KubefileError, match="invalid pattern"):
        IgnoreRules.parse("[z-a]")


def test_empty_rules_ignore_nothing() -> None:
    rules = IgnoreRules.empty()
    assert not rules
    assert not rules.ignored("anything/at/all")
