"""Session-wide helpers and fixtures for every test.

Import the helpers in a test module with::

    from tests.conftest import require_tool, run_cli, free_port

- ``require_tool(name) -> str``: absolute path of a tool; a missing tool skips the test, or fails
  it when ``CLUSTERIMAGE_REQUIRE_TOOLS=1`` (CI).
- ``run_cli(*args, env=None, input=None, check=True, cwd=None, timeout=300)``: runs
  ``python -m clusterimage ARGS`` and returns ``CompletedProcess[str]`` (stdout, stderr apart).
- ``free_port() -> int``: a free TCP port on 127.0.0.1.
- fixtures ``ci_home`` (a temporary ``CLUSTERIMAGE_HOME``, set in the environment) and
  ``store_dir`` (``$CLUSTERIMAGE_HOME/store``, the default store; not created).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.tools import (
    REPO_ROOT,
    free_port,
    require_root,
    require_tool,
    run_cli,
    run_tool,
    tools_required,
    wait_until,
)

__all__ = [
    "REPO_ROOT",
    "free_port",
    "require_root",
    "require_tool",
    "run_cli",
    "run_tool",
    "tools_required",
    "wait_until",
]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def pytest_configure(config: pytest.Config) -> None:
    # Tests talk to loopback servers only: never let an HTTP(S)_PROXY from the environment
    # route that traffic elsewhere (httpx, skopeo and docker all honour NO_PROXY).
    for name in ("NO_PROXY", "no_proxy"):
        present = [p for p in os.environ.get(name, "").split(",") if p]
        os.environ[name] = ",".join(present + [h for h in _LOOPBACK if h not in present])


@pytest.fixture
def ci_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``CLUSTERIMAGE_HOME`` for this test, exported to the environment."""
    home = tmp_path / "clusterimage-home"
    home.mkdir()
    monkeypatch.setenv("CLUSTERIMAGE_HOME", str(home))
    return home


@pytest.fixture
def store_dir(ci_home: Path) -> Path:
    """Where the default store of ``ci_home`` lives (created by the first command)."""
    return ci_home / "store"
