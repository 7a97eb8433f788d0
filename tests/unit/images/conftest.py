"""A helper to lay out small build contexts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

MakeContext = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_context(tmp_path: Path) -> MakeContext:
    """{relative path: text} -> a context folder holding those files."""

    def make(files: dict[str, str]) -> Path:
        context = tmp_path / "context"
        for name, text in files.items():
            path = context / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        context.mkdir(exist_ok=True)
        return context

    return make
