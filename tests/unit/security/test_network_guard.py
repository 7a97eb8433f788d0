"""The test suite's own guard: in-process code may connect to loopback and Unix sockets only."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import NonLoopbackConnection, connection_guard


@pytest.fixture
def guard_log() -> Iterator[list[str]]:
    """A second guard, whose log this test reads (the autouse one's log would fail it)."""
    with connection_guard() as attempts:
        yield attempts


@pytest.mark.parametrize(
    ("family", "address"),
    [
        (socket.AF_INET, ("192.0.2.1", 9)),  # TEST-NET-1: routable nowhere, yet not loopback
        (socket.AF_INET6, ("2001:db8::1", 9, 0, 0)),
        (socket.AF_INET6, ("::ffff:192.0.2.1", 9, 0, 0)),
        (socket.AF_INET, ("example.invalid", 9)),  # a name other than localhost: refused unread
    ],
)
def test_non_loopback_connect_is_refused(
    guard_log: list[str], family: socket.AddressFamily, address: tuple[object, ...]
) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)  # without the guard: no hang, but no NonLoopbackConnection either
        with pytest.raises(NonLoopbackConnection):
            sock.connect(address)
        with pytest.raises(NonLoopbackConnection):
            sock.connect_ex(address)
    assert len(guard_log) == 2
    guard_log.clear()  # the attempts were the point of this test


def test_create_connection_to_non_loopback_is_refused(guard_log: list[str]) -> None:
    with pytest.raises(NonLoopbackConnection):
        socket.create_connection(("192.0.2.1", 9), timeout=0.5)
    assert guard_log
    guard_log.clear()


@pytest.mark.parametrize(
    ("bind", "host"),
    [("127.0.0.1", "127.0.0.1"), ("127.3.4.5", "127.3.4.5"), ("127.0.0.1", "localhost")],
)
def test_loopback_connect_is_allowed(guard_log: list[str], bind: str, host: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((bind, 0))
        server.listen(1)
        port = server.getsockname()[1]
        socket.create_connection((host, port), timeout=2).close()
    assert guard_log == []


def test_unix_socket_is_allowed(
    guard_log: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("sock") / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
    assert guard_log == []
