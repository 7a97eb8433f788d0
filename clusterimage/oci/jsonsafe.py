"""``json.loads`` for documents from elsewhere: nesting is bounded.

Python's parser recurses once per ``[`` or ``{``: ``[`` repeated 100000 times raises
RecursionError, and a document just under the interpreter's limit parses, then fails wherever
it is walked or printed again. Manifests, configs, indexes and token bodies are a few levels
deep, so anything deeper than :data:`MAX_DEPTH` is refused as malformed.
"""

from __future__ import annotations

import json
from typing import Any, Final

#: Far above any real manifest, config or token body (under 10), far below Python's
#: recursion limit, so what is accepted can be walked and printed again.
MAX_DEPTH: Final = 128
_CONTAINERS: Final = (dict, list)


class TooDeep(ValueError):
    """A document nested deeper than :data:`MAX_DEPTH`; a ValueError, as a syntax error is,
    so that callers handling ``json.loads`` errors handle it too."""


def loads(raw: bytes | str) -> Any:
    """``raw`` parsed as JSON; TooDeep (a ValueError) when nested deeper than MAX_DEPTH."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels") from None
    # Too few brackets to be that deep: most documents skip the walk.
    if isinstance(raw, bytes):
        opened = raw.count(b"[") + raw.count(b"{")
    else:
        opened = raw.count("[") + raw.count("{")
    if opened > MAX_DEPTH and _too_deep(data):
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels")
    return data


def _too_deep(data: Any) -> bool:
    """Whether lists and objects nest deeper than MAX_DEPTH in ``data`` (walked without
    recursion, for the same reason); json.loads makes only dicts and lists."""
    stack: list[tuple[Any, int]] = [(data, 0)] if type(data) in _CONTAINERS else []
    while stack:
        value, depth = stack.pop()
        if depth == MAX_DEPTH:
            return True
        children = value.values() if type(value) is dict else value
        stack.extend([(child, depth + 1) for child in children if type(child) in _CONTAINERS])
    return False
