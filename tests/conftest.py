"""Session-wide helpers and fixtures for every test.

Import the helpers in a test module with::

    from tests.conftest import require_tool, run_cli, free_port

- ``require_tool(name) -> str``: absolute path of a tool; a missing tool skips the test, or fails
  it when ``CLUSTERIMAGE_REQUIRE_TOOLS=1`` (CI).
- ``run_cli(*args, env=None, input=None, check=True, cwd=None, timeout=300)``: runs
  ``python -m clusterimage ARGS`` and returns ``CompletedProcess[str]`` (stdout, stderr apart).
- ``free_port() -> int``: a free TCP port on 127.0.0.1.
- ``connection_guard()``: a context manager that refuses (``NonLoopbackConnection``) and logs any
  connection an in-process socket attempts to a non-loopback address; an autouse fixture holds
  one around every test and fails the test if anything tried.
- fixtures ``ci_home`` (a temporary ``CLUSTERIMAGE_HOME``, set in the environment) and
  ``store_dir`` (``$CLUSTERIMAGE_HOME/store``, the default store; not created).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    "NonLoopbackConnection",
    "connection_guard",
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


class NonLoopbackConnection(AssertionError):
    """A test's in-process code tried to connect somewhere other than this machine."""


def _is_loopback_address(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) and address else address
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # any other name: it would be resolved, and could lead anywhere
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


@contextlib.contextmanager
def connection_guard() -> Iterator[list[str]]:
    """Refuse connections of AF_INET/AF_INET6 sockets to anything but loopback, in every thread
    of this process; yields the list of refused attempts (code under test may swallow the
    error, so the caller checks the list). Subprocesses are not covered: their fixtures and
    commands are given loopback addresses only."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback_address(address):
            attempts.append(repr(address))
            raise NonLoopbackConnection(f"test tried to connect to {address!r} (not loopback)")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    # Both are inherited from _socket.socket: patched on the subclass, restored by deleting
    # what was added (a nested guard restores the outer guard's functions instead).
    own = {name: socket.socket.__dict__.get(name) for name in ("connect", "connect_ex")}
    setattr(socket.socket, "connect", connect)  # noqa: B010 - mypy rejects the assignment
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
    try:
        yield attempts
    finally:
        for name, value in own.items():
            if value is None:
                delattr(socket.socket, name)
            else:
                setattr(socket.socket, name, value)


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """Tests send traffic nowhere but loopback: enforced for the test process itself."""
    with connection_guard() as attempts:
        yield
    if attempts:
        pytest.fail(f"connections to non-loopback addresses were attempted: {attempts}")
