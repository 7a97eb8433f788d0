"""The line scan sealos applies to ``manifests/`` and to rendered charts.

A line holds an image when, trimmed and not a ``#`` comment, it contains ``image:``; the value is
what follows, trimmed, without its quotes. We find what sealos finds, and also a value followed
by a YAML comment (``image: nginx:1.25  # pinned``), which sealos fails to parse and drops.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Final

from clusterimage.images.context_files import files_below, read_text, relative
from clusterimage.images.sightings import FileOrigin, Findings, Origin, trim_quotes

MANIFESTS_DIR: Final = "manifests"
MANIFEST_SUFFIXES: Final = (".yaml", ".yml", ".tmpl")
_KEY: Final = "image:"
# A YAML comment starts with "#" after whitespace; what remains after a closing quote may only
# be such a comment.
_COMMENT: Final = re.compile(r"\s+#.*$")
_AFTER_QUOTE: Final = re.compile(r"^\s*(?:#.*)?$")


def image_value(line: str) -> str | None:
    """The reference a line names after ``image:``, or None when it names none."""
    text = line.strip()
    if text.startswith("#"):
        return None
    at = text.find(_KEY)
    if at < 0:
        return None
    value = text[at + len(_KEY) :].strip()
    quote = value[:1]
    if quote in ("'", '"'):
        close = value.find(quote, 1)
        if close > 0 and _AFTER_QUOTE.match(value[close + 1 :]):
            return value[1:close] or None
        return trim_quotes(value) or None
    return _COMMENT.sub("", value) or None


def scan_text(text: str, origin_at: Callable[[int], Origin], findings: Findings) -> None:
    """Scan ``text`` line by line; ``origin_at(line_number)`` says where a line is."""
    # Lines end at "\n" only, as Go's bufio reader splits them (str.splitlines also splits at
    # form feeds and Unicode separators, which would shift the line numbers we report).
    for number, line in enumerate(text.split("\n"), start=1):
        value = image_value(line)
        if value is not None:
            findings.add(value, origin_at(number))


def scan_manifests(context: Path, findings: Findings) -> None:
    """``manifests/``: every ``*.yaml``, ``*.yml`` and ``*.tmpl`` below it (``.tmpl`` raw)."""
    root = context / MANIFESTS_DIR
    if not root.is_dir():
        return
    for path in files_below(root):
        if not path.name.endswith(MANIFEST_SUFFIXES):
            continue
        origin_at = partial(FileOrigin, relative(path, context))
        scan_text(read_text(path, context), origin_at, findings)
