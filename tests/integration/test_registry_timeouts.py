"""A registry that accepts connections and never answers fails the command in one line within
``--timeout`` (default 30 s per request), naming what it waited for: before, ``pull`` waited on
it for minutes (a 120 s read timeout, retried by three layers, on both schemes)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterimage.cli._registry_options import DEFAULT_TIMEOUT
from clusterimage.remote.client import ClientOptions
from tests.conftest import run_cli

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port whose connections are accepted (by the kernel's backlog) and then
    never read from or answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@contextlib.contextmanager
def answers_ping_then_stalls() -> Iterator[int]:
    """A plain-http server that answers ``GET /v2/`` and then never answers anything else."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/v2/":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            release.wait(60)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _fails_in_one_line(args: list[str], within: float) -> str:
    started = time.monotonic()
    result = run_cli(*args, check=False, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < within, f"took {elapsed:.1f} s"
    return lines[0]


def test_a_silent_registry_fails_pull_within_the_timeout(ci_home: object) -> None:
    with silent_listener() as port:
        line = _fails_in_one_line(
            ["pull", "--timeout", "1", f"127.0.0.1:{port}/app:v1", "--quiet"], within=15
        )
    assert f"127.0.0.1:{port}: no answer to GET /v2/ within 1 s" in line
    assert "--timeout" in line


def test_a_registry_that_stalls_after_the_ping_names_the_request(
    ci_home: object, tmp_path: Path
) -> None:
    target = tmp_path / "layout"
    with answers_ping_then_stalls() as port:
        line = _fails_in_one_line(
            ["copy", "--timeout", "1", f"docker://127.0.0.1:{port}/app:v1", f"oci:{target}:v1"],
            within=15,
        )
    assert "no answer to manifest" in line and "within 1 s" in line
    assert not target.exists()  # the source failed before anything was created


def test_the_default_timeout_is_at_most_30_seconds_and_every_registry_command_takes_it() -> None:
    assert DEFAULT_TIMEOUT <= 30 and ClientOptions().timeout <= 30
    commands = ("pull", "push", "copy", "tags", "inspect", "create", "diff", "save", "build")
    for command in commands:
        assert "--timeout" in run_cli(command, "--help").stdout, command


@pytest.mark.parametrize("command", ["inspect", "create", "diff", "tags", "manifest inspect"])
def test_every_command_reading_a_registry_honours_the_timeout(
    command: str, ci_home: object, tmp_path: Path
) -> None:
    with silent_listener() as port:
        ref = f"127.0.0.1:{port}/app:v1"
        args = {
            "inspect": ["inspect", f"docker://{ref}"],
            "create": ["create", f"docker://{ref}"],
            "diff": ["diff", f"docker://{ref}", f"docker://{ref}"],
            "tags": ["tags", f"127.0.0.1:{port}/app"],
            "manifest inspect": ["manifest", "inspect", f"docker://{ref}"],
        }[command]
        line = _fails_in_one_line([*args, "--timeout", "1", "--retry", "0"], within=15)
    assert f"127.0.0.1:{port}: no answer to GET /v2/ within 1 s" in line
