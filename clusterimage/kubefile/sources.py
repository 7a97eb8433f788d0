"""COPY/ADD sources in the build context: cleaning, the context boundary, and Docker's wildcards.

Docker matches a source with wildcards the way Go's ``filepath.Glob`` does: each ``/``-separated
segment is a ``filepath.Match`` pattern (``*`` and ``?`` never cross ``/``; ``[...]`` classes,
negated with ``^`` only; ``\\`` escapes) and ``**`` is not special.
Dot files are matched like any other. The helpers here are shared by the plan (which only checks
that sources exist) and the builder (which copies them).

This matcher is hand-written because Python's ``fnmatch``/``glob`` differ from Go's on purpose
(``[!x]`` negation, ``*`` crossing ``/`` in ``fnmatch``, hidden files in ``glob``).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path


class PatternError(ValueError):
    """A source is not a valid ``filepath.Match`` pattern."""


def is_remote(source: str) -> bool:
    """ADD fetches ``http(s)://`` URLs and git repositories instead of reading the context."""
    lowered = source.lower()
    return lowered.startswith(("http://", "https://", "git@")) or lowered.endswith(".git")


def clean_source(source: str) -> str | None:
    """The context-relative, cleaned form of a source; ``.`` for the root.

    An absolute path means the same path inside the context (Docker's rule). None when the path
    climbs above the context root (``../x``, ``a/../../x``).
    """
    relative = source.lstrip("/")
    if not relative:
        return "."
    cleaned = posixpath.normpath(relative)
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return cleaned


def has_wildcards(pattern: str) -> bool:
    """Whether ``pattern`` uses ``*``, ``?`` or ``[`` unescaped (Go's hasMeta with escapes)."""
    escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "*?[":
            return True
    return False


def unescape(pattern: str) -> str:
    """A pattern without wildcards names a file; drop its escapes to get the name."""
    return re.sub(r"\\(.)", r"\1", pattern)


def match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` for one path segment pattern against a name."""
    return _compile(pattern).fullmatch(name) is not None


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i >= len(pattern):
                raise PatternError(f"syntax error in pattern {pattern!r}: trailing backslash")
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            i = _compile_class(pattern, i, out)
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def _compile_class(pattern: str, i: int, out: list[str]) -> int:
    # Go: '[' [ '^' ] { lo [ '-' hi ] } ']' with \ escapes; a class must be non-empty and closed.
    negate = i < len(pattern) and pattern[i] == "^"
    if negate:
        i += 1
    parts: list[str] = []
    while True:
        if i >= len(pattern):
            raise PatternError(f"syntax error in pattern {pattern!r}: unterminated [")
        ch = pattern[i]
        if ch == "]" and parts:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        if (
            i < len(pattern)
            and pattern[i] == "-"
            and i + 1 < len(pattern)
            and pattern[i + 1] != "]"
        ):
            hi, i = _class_char(pattern, i + 1)
            if hi < lo:
                raise PatternError(f"syntax error in pattern {pattern!r}: bad range {lo}-{hi}")
            parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
        else:
            parts.append(re.escape(lo))
    out.append(f"[{'^' if negate else ''}{''.join(parts)}]")
    return i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    ch = pattern[i]
    if ch in "-]":
        raise PatternError(f"syntax error in pattern {pattern!r}: unexpected {ch!r} in class")
    if ch == "\\":
        if i + 1 >= len(pattern):
            raise PatternError(f"syntax error in pattern {pattern!r}: trailing backslash")
        return pattern[i + 1], i + 2
    return ch, i + 1


def validate(pattern: str) -> None:
    """Raise :class:`PatternError` when a wildcard pattern is malformed."""
    for segment in pattern.split("/"):
        if has_wildcards(segment):
            _compile(segment)


def glob(
    root: str | os.PathLike[str],
    pattern: str,
    *,
    extra_top: Iterable[str] = (),
) -> list[str]:
    """Context-relative paths under ``root`` that a cleaned ``pattern`` matches, sorted.

    Directories are followed only where they stay inside ``root`` (symlinks pointing out are
    never followed). ``extra_top`` names entries to pretend exist at the top level (the
    generated ``registry/`` folder the builder overlays).
    """
    base = Path(root)
    real_root = os.path.realpath(base)
    candidates = [""]
    segments = pattern.split("/")
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        found: list[str] = []
        for parent in candidates:
            directory = base / parent if parent else base
            if parent and not _inside(real_root, directory):
                continue
            if has_wildcards(segment):
                names = _list(directory)
                if not parent:
                    names = sorted(set(names) | set(extra_top))
                found.extend(_join(parent, name) for name in names if match(segment, name))
            else:
                name = unescape(segment)
                path = _join(parent, name)
                if os.path.lexists(base / path) or (not parent and name in extra_top):
                    found.append(path)
        if not last:
            found = [path for path in found if _is_dir(base / path) or path in extra_top]
        candidates = found
    return sorted(candidates)


def exists(
    root: str | os.PathLike[str],
    source: str,
    *,
    extra_top: Iterable[str] = (),
    is_ignored: Callable[[str], bool] | None = None,
) -> list[str]:
    """What a cleaned context source names: its matches (wildcards) or itself, minus ignored."""
    if source == ".":
        return ["."]
    paths = glob(root, source, extra_top=extra_top)
    if is_ignored is not None:
        paths = [path for path in paths if not is_ignored(path)]
    return paths


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _list(directory: Path) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return sorted(entry.name for entry in entries)
    except OSError:
        return []


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _inside(real_root: str, path: Path) -> bool:
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)
