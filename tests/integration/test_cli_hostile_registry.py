"""A registry that answers with crafted JSON or headers (issue 12): each command that reads it
fails in one ``error:`` line, exit 1, no traceback.

No real registry serves these bodies (docker-registry validates what it stores), so the server
here is a hostile one written for the test, on loopback: it answers the ping, manifests and a
token endpoint with JSON nested 100,000 levels deep, under every size cap, which
``json.loads`` turns into a ``RecursionError`` unless the reader bounds the depth first.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.http_server import LoopbackServer
from tests.fixtures.oci_layout import make_oci_layout

pytestmark = pytest.mark.integration

_DEEP = b"[" * 100_000
_INDEX = "application/vnd.oci.image.index.v1+json"
# What the line says: the manifest's depth, or (with a token server) that its answer is no JSON.
_EXPECTED = {False: "nested deeper than", True: "token server returned invalid JSON"}


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        owner: _Server = self.server.owner  # type: ignore[attr-defined]
        if self.path.startswith("/token"):
            self._send(200, _DEEP, {"Content-Type": "application/json"})
        elif owner.auth and "Authorization" not in self.headers:
            realm = f'Bearer realm="http://127.0.0.1:{owner.port}/token",service="hostile"'
            self._send(401, b"{}", {"WWW-Authenticate": realm, "Content-Type": "application/json"})
        elif self.path == "/v2/":
            self._send(200, b"{}", {"Content-Type": "application/json"})
        elif "/manifests/" in self.path:
            self._send(200, _DEEP, {"Content-Type": _INDEX})
        else:
            self._send(404, b"{}", {"Content-Type": "application/json"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        # An upload session whose Location is no URL (an unclosed IPv6 bracket).
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._send(202, b"", {"Location": "http://[::1", "Docker-Upload-UUID": "x"})


class _Server:
    def __init__(self, auth: bool) -> None:
        self.auth = auth
        self.http = LoopbackServer(_Hostile, self)
        self.port = 0

    def start(self) -> None:
        self.http.start()
        self.port = self.http.port


@pytest.fixture(params=[False, True], ids=["open", "token"])
def hostile(request: pytest.FixtureRequest) -> Iterator[_Server]:
    server = _Server(auth=request.param)
    server.start()
    yield server
    server.http.stop()


def _one_error_line(*args: str) -> str:
    result = run_cli(*args, "--tls-verify=false", "--retry", "0", check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["pull", "inspect", "copy", "create"])
def test_a_manifest_or_token_nested_too_deep_is_one_line(
    command: str, hostile: _Server, ci_home: Path, tmp_path: Path
) -> None:
    ref = f"127.0.0.1:{hostile.port}/app:v1"
    args = {
        "pull": ["pull", ref],
        "inspect": ["inspect", f"docker://{ref}"],
        "copy": ["copy", f"docker://{ref}", f"oci:{tmp_path / 'out'}:v1"],
        "create": ["create", f"docker://{ref}"],
    }[command]
    line = _one_error_line(*args)
    assert _EXPECTED[hostile.auth] in line
    assert not (tmp_path / "out").exists()


def test_build_from_a_registry_whose_manifest_is_nested_too_deep_is_one_line(
    hostile: _Server, ci_home: Path, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kubefile").write_text(f"FROM 127.0.0.1:{hostile.port}/base:v1\nLABEL a=b\n")
    line = _one_error_line("build", str(context), "-t", "localhost/x:v1", "--save-image=false")
    assert _EXPECTED[hostile.auth] in line


def test_login_to_a_token_server_answering_json_nested_too_deep_is_one_line(
    ci_home: Path,
) -> None:
    server = _Server(auth=True)
    server.start()
    try:
        result = run_cli(
            "login",
            f"127.0.0.1:{server.port}",
            "-u",
            "me",
            "--password-stdin",
            "--tls-verify=false",
            input="secret\n",
            check=False,
        )
    finally:
        server.http.stop()
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert _EXPECTED[True] in lines[0]
    assert "secret" not in result.stderr


def test_push_to_a_registry_whose_upload_location_is_no_url_is_one_line(
    ci_home: Path, tmp_path: Path
) -> None:
    server = _Server(auth=False)
    server.start()
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    try:
        line = _one_error_line("push", image.transport_ref, f"127.0.0.1:{server.port}/app:v1")
    finally:
        server.http.stop()
    assert "answered with a Location that is not a URL" in line
