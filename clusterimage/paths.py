"""Where clusterimage keeps its state, in one place for the CLI, the store and the builders."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """``$CLUSTERIMAGE_HOME``, else ``$XDG_DATA_HOME/clusterimage``, else
    ``~/.local/share/clusterimage``: the store, caches and build state live below it."""
    env = os.environ.get("CLUSTERIMAGE_HOME")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "clusterimage"


def home_store() -> Path:
    """``<home>/store``: the store nobody chose, the one folder created unasked."""
    return home_dir() / "store"


def default_store() -> Path:
    """``$CLUSTERIMAGE_STORE``, else ``<home>/store``."""
    store = os.environ.get("CLUSTERIMAGE_STORE")
    return Path(store) if store else home_store()
