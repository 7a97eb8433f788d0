"""``images/shim/``: lists of references, one a line, in any file below the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from clusterimage.images.context_files import files_below, list_lines, relative
from clusterimage.images.sightings import FileOrigin, Findings, trim_quotes

SHIM_DIR: Final = Path("images", "shim")


def scan_shim(context: Path, findings: Findings) -> None:
    root = context / SHIM_DIR
    if not root.is_dir():
        return
    for path in files_below(root):
        name = relative(path, context)
        for number, text in list_lines(path, context):
            findings.add(trim_quotes(text), FileOrigin(name, number))
