""".dockerignore: which context files COPY and ADD never see.

The rules are moby/patternmatcher's (what Docker, BuildKit and buildah apply), ported because no
Python package implements them exactly (gitignore libraries differ on ``**``, ``!`` and parents):

- one pattern a line; lines starting with ``#`` and blank lines are skipped; surrounding
  spaces are trimmed;
- ``!pattern`` re-includes what an earlier pattern excluded; the last matching pattern wins;
- patterns are cleaned like Go's ``filepath.Clean`` and a leading ``/`` is dropped;
- ``*`` and ``?`` never match ``/``; ``**`` matches any number of directories, none included;
  ``[...]`` classes and ``\\`` escapes as in ``filepath.Match``;
- a pattern that matches a directory excludes everything below it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from clusterimage.errors import KubefileError

# Characters regexp treats specially that filepath.Match does not (patternmatcher.shouldEscape).
_ESCAPE: Final = frozenset(".+()|{}$")


@dataclass(frozen=True)
class Pattern:
    text: str  # as cleaned
    exclusion: bool  # a "!" pattern
    regex: re.Pattern[str]

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1  # "**/" is "**"
                # "**" at the end matches everything; elsewhere any number of directories.
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in _ESCAPE:
            out.append("\\" + ch)
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
        else:
            out.append(re.escape(ch) if ch == "^" and out[-1] != "[" else ch)
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise KubefileError(f"invalid pattern {pattern!r}: {exc}", where) from None


def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern) if pattern else "."
    if cleaned.startswith("//"):  # normpath keeps a leading "//"; Go's Clean does not
        cleaned = "/" + cleaned.lstrip("/")
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


class IgnoreRules:
    """A parsed ignore file. ``ignored(path)`` answers for a context-relative ``/`` path."""

    def __init__(self, patterns: list[Pattern], source: str | None = None) -> None:
        self.patterns = patterns
        self.source = source

    @classmethod
    def parse(cls, text: str, source: str = ".dockerignore") -> IgnoreRules:
        patterns: list[Pattern] = []
        text = text.removeprefix("\ufeff")  # a UTF-8 BOM, as Docker's ignorefile.ReadAll drops
        # As ignorefile.ReadAll: lines end at "\n" only (a trailing "\r" dropped, as
        # bufio.ScanLines does), and a comment is a "#" in the first column, checked before
        # the spaces are trimmed: "  #x" is a pattern.
        for number, raw in enumerate(text.split("\n"), start=1):
            raw = raw.removesuffix("\r")
            if raw.startswith("#"):
                continue
            line = raw.strip()
            if not line:
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
                if not line:
                    raise KubefileError('illegal exclusion pattern: "!"', source, number)
            cleaned = _clean(line)
            patterns.append(Pattern(cleaned, exclusion, _compile(cleaned, f"{source}:{number}")))
        return cls(patterns, source)

    @classmethod
    def empty(cls) -> IgnoreRules:
        return cls([])

    @classmethod
    def load(cls, path: Path) -> IgnoreRules:
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return cls.empty()
        return cls.parse(text, str(path))

    @property
    def has_exclusions(self) -> bool:
        """Whether a ``!`` pattern may bring back something below an ignored directory."""
        return any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def ignored(self, path: str) -> bool:
        """patternmatcher.MatchesOrParentMatches: the last pattern matching the path or one of
        its parent directories decides."""
        if not self.patterns:
            return False
        parent = posixpath.dirname(path)
        parent_dirs = parent.split("/") if parent else []
        matched = False
        for pattern in self.patterns:
            # An inclusion only matters while not matched, an exclusion only once matched.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parent:
                for i in range(len(parent_dirs)):
                    if pattern.match("/".join(parent_dirs[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched
