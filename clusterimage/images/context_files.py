"""Reading the files of a build context that discovery scans."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from clusterimage.errors import DiscoveryError


def files_below(root: Path) -> Iterator[Path]:
    """Every file below ``root``, in a stable order; linked folders are not entered (sealos
    walks with filepath.Walk, which does not follow them either)."""
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            yield Path(folder, name)


def relative(path: Path, context: Path) -> str:
    """``path`` as the user knows it: relative to the context, with ``/``."""
    try:
        return path.relative_to(context).as_posix()
    except ValueError:
        return str(path)


def read_text(path: Path, context: Path) -> str:
    # Bytes that are not UTF-8 cannot hold a reference anyway: replace them, do not fail.
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise DiscoveryError(
            f"{relative(path, context)}: cannot read: {exc.strerror or exc}"
        ) from None


def list_lines(path: Path, context: Path) -> Iterator[tuple[int, str]]:
    """(line number, trimmed line) of a one-entry-a-line list, blank and ``#`` lines skipped."""
    for number, line in enumerate(read_text(path, context).split("\n"), start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, text
