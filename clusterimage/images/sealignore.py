"""``.sealignore``: references the build must not save, one a line.

sealos compares each line with the discovered references as strings, so a line matches only the
spelling sealos normalises to. We compare normalised references, which matches that spelling and
every other spelling of the same image (``nginx:1.25`` leaves out ``docker.io/library/nginx:1.25``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from clusterimage.errors import InvalidReference
from clusterimage.images.context_files import list_lines, relative
from clusterimage.images.sightings import trim_quotes
from clusterimage.oci.reference import Reference

SEALIGNORE: Final = ".sealignore"


@dataclass(frozen=True)
class IgnoreList:
    references: frozenset[Reference] = frozenset()

    def ignores(self, reference: Reference) -> bool:
        if reference in self.references:
            return True
        # sealos writes a tag+digest reference as name:tag, so that line leaves it out too.
        return (
            reference.tag is not None
            and reference.digest is not None
            and reference.with_tag(reference.tag) in self.references
        )


def read_ignore_list(path: Path, context: Path, warnings: list[str]) -> IgnoreList:
    if not path.is_file():
        return IgnoreList()
    references: set[Reference] = set()
    for number, text in list_lines(path, context):
        value = trim_quotes(text)
        try:
            references.add(Reference.parse(value))
        except InvalidReference:
            warnings.append(
                f"{relative(path, context)}:{number}: {value!r} is not an image reference; "
                "it leaves out nothing"
            )
    return IgnoreList(frozenset(references))
