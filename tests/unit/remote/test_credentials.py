"""Credential lookup (auth files, helpers, --creds), login's save and logout's remove."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from clusterimage.errors import AuthError, UsageError
from clusterimage.remote import credentials as cr
from clusterimage.remote.client import ClientOptions
from clusterimage.transports.base import Context


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME with no auth-related variables set."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return home


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_lookup_order_first_file_that_knows_the_registry_wins(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    env_file = tmp_path / "env-auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(env_file))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))
    _write(home / ".docker/config.json", {"auths": {"a.io": {"auth": _auth("docker", "d")}}})
    assert cr.lookup("a.io") == cr.Credentials("docker", "d")
    _write(tmp_path / "dockercfg/config.json", {"auths": {"a.io": {"auth": _auth("dc", "x")}}})
    assert cr.lookup("a.io").username == "dc"
    _write(home / ".config/containers/auth.json", {"auths": {"a.io": {"auth": _auth("cfg", "c")}}})
    assert cr.lookup("a.io").username == "cfg"
    _write(runtime / "containers/auth.json", {"auths": {"a.io": {"auth": _auth("run", "r")}}})
    assert cr.lookup("a.io").username == "run"
    _write(env_file, {"auths": {"a.io": {"auth": _auth("env", "e")}}})
    assert cr.lookup("a.io").username == "env"
    # A file that does not know the registry does not stop the search.
    _write(env_file, {"auths": {"other.io": {"auth": _auth("env", "e")}}})
    assert cr.lookup("a.io").username == "run"


def test_authfile_and_creds_override(home: Path, tmp_path: Path) -> None:
    _write(home / ".docker/config.json", {"auths": {"a.io": {"auth": _auth("docker", "d")}}})
    only = _write(tmp_path / "only.json", {"auths": {}})
    assert cr.lookup("a.io", auth_file=only).anonymous
    assert cr.lookup("a.io", creds="me:pa:ss") == cr.Credentials("me", "pa:ss")
    with pytest.raises(UsageError):
        cr.parse_creds("nocolon")


def test_docker_hub_keys_and_urls_normalise(home: Path) -> None:
    _write(
        home / ".docker/config.json",
        {"auths": {"https://index.docker.io/v1/": {"auth": _auth("hub", "h")}}},
    )
    assert cr.lookup("docker.io").username == "hub"
    assert cr.normalize_key("https://registry-1.docker.io/v2/") == "docker.io"
    assert cr.normalize_key("http://myreg:5000/v2/") == "myreg:5000"
    assert cr.normalize_key("quay.io/org") == "quay.io/org"


def test_scoped_entries_most_specific_first(home: Path) -> None:
    _write(
        home / ".config/containers/auth.json",
        {
            "auths": {
                "quay.io": {"auth": _auth("host", "1")},
                "quay.io/team": {"auth": _auth("team", "2")},
                "quay.io/team/app": {"auth": _auth("app", "3")},
            }
        },
    )
    assert cr.lookup("quay.io", "team/app").username == "app"
    assert cr.lookup("quay.io", "team/other").username == "team"
    assert cr.lookup("quay.io", "else/x").username == "host"


def test_identity_token_and_bad_entries(home: Path) -> None:
    path = _write(
        home / ".docker/config.json",
        {"auths": {"a.io": {"auth": _auth("u", "p"), "identitytoken": "refresh-me"}}},
    )
    found = cr.lookup("a.io")
    assert found.identity_token == "refresh-me" and found.username == "u"
    assert "refresh-me" not in repr(found) and "'p'" not in repr(found)
    _write(path, {"auths": {"a.io": {"auth": "!!notbase64"}}})
    with pytest.raises(AuthError, match="invalid 'auth'"):
        cr.lookup("a.io")
    path.write_text("{broken")
    with pytest.raises(AuthError, match="not valid JSON"):
        cr.lookup("a.io")


def _fake_helper(bin_dir: Path, name: str, store: Path) -> None:
    """A docker-credential-<name> that keeps its secrets in a JSON file (protocol: get/store/
    erase, server URL or JSON on stdin)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        f"""#!/usr/bin/env python3
import json, sys
path = {str(store)!r}
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {{}}
action = sys.argv[1]
payload = sys.stdin.read()
if action == "get":
    entry = data.get(payload.strip())
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": payload.strip(), **entry}}))
elif action == "store":
    item = json.loads(payload)
    data[item["ServerURL"]] = {{"Username": item["Username"], "Secret": item["Secret"]}}
    json.dump(data, open(path, "w"))
elif action == "erase":
    data.pop(payload.strip(), None)
    json.dump(data, open(path, "w"))
"""
    )
    script.chmod(0o755)


def test_credential_helpers(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    secrets = tmp_path / "helper.json"
    _fake_helper(bin_dir, "fake", secrets)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    secrets.write_text(
        json.dumps(
            {
                "a.io": {"Username": "helped", "Secret": "pw"},
                "https://index.docker.io/v1/": {"Username": "<token>", "Secret": "idtok"},
                "b.io": {"Username": "stored", "Secret": "pw2"},
            }
        )
    )
    config = _write(
        home / ".docker/config.json",
        {"credHelpers": {"a.io": "fake"}, "credsStore": "fake", "auths": {}},
    )
    assert cr.lookup("a.io") == cr.Credentials("helped", "pw")
    assert cr.lookup("docker.io") == cr.Credentials(identity_token="idtok")
    assert cr.lookup("b.io").username == "stored"  # credsStore
    assert cr.lookup("c.io").anonymous  # helper says "not found"
    # login through a helper named in the file it writes; logout erases there.
    path, where = cr.save("a.io", cr.Credentials("new", "pw3"), auth_file=config)
    assert where == "docker-credential-fake" and path == config
    assert json.loads(secrets.read_text())["a.io"]["Username"] == "new"
    assert cr.remove("a.io", auth_file=config) == ["a.io"]
    assert "a.io" not in json.loads(secrets.read_text())
    _write(config, {"credHelpers": {"x.io": "missing-helper"}})
    with pytest.raises(AuthError, match="docker-credential-missing-helper is not installed"):
        cr.lookup("x.io")


def test_save_writes_0600_in_0700_dirs_and_keeps_other_entries(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    path, _ = cr.save("myreg:5000", cr.Credentials("u", "p"))
    assert path == runtime / "containers" / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    cr.save("https://index.docker.io/v1/", cr.Credentials("hub", "h"))
    cr.save("myreg:5000", cr.Credentials("u2", "p2"))
    data = json.loads(path.read_text())
    assert set(data["auths"]) == {"myreg:5000", "docker.io"}
    assert cr.lookup("myreg:5000") == cr.Credentials("u2", "p2")
    assert cr.remove("docker.io") == ["docker.io"]
    assert cr.remove("docker.io") == []
    assert cr.remove(None) == ["myreg:5000"]
    assert json.loads(path.read_text())["auths"] == {}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_known_elsewhere_points_at_docker_config(home: Path) -> None:
    _write(home / ".docker/config.json", {"auths": {"a.io": {"auth": _auth("u", "p")}}})
    assert cr.known_elsewhere("a.io") == home / ".docker/config.json"
    assert cr.known_elsewhere("b.io") is None


def test_an_auth_file_that_is_not_utf8_is_a_one_line_error(home: Path) -> None:
    path = home / ".docker/config.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(json.dumps({"auths": {"a.io": {"auth": _auth("u", "p")}}}).encode("utf-16"))
    with pytest.raises(AuthError, match=f"{path}: not UTF-8"):
        cr.lookup("a.io")
    with pytest.raises(AuthError, match="not UTF-8"):
        cr.save("a.io", cr.Credentials("u", "p"), auth_file=path)


def test_an_auth_file_is_read_bounded(home: Path, tmp_path: Path) -> None:
    # /dev/zero as --authfile: a one-line error, not a process that fills memory.
    with pytest.raises(AuthError, match="/dev/zero: larger than 4 MiB, so not an auth file"):
        cr.lookup("a.io", auth_file=Path("/dev/zero"))
    # A pipe is read whole (--authfile <(...)), as podman reads it.
    fifo = tmp_path / "auth.fifo"
    os.mkfifo(fifo)
    entry = json.dumps({"auths": {"a.io": {"auth": _auth("u", "p")}}}).encode()

    def feed() -> None:
        with open(fifo, "wb") as writer:
            writer.write(entry)

    writer = threading.Thread(target=feed)
    writer.start()
    found = cr.lookup("a.io", auth_file=fifo)
    writer.join(timeout=5)
    assert found.username == "u" and found.has_password


def test_reprs_of_what_carries_command_line_credentials_hide_them() -> None:
    secret = "user:hunter2-secret"
    for carrier in (Context.for_registries(creds=secret), ClientOptions(creds=secret)):
        assert "hunter2" not in repr(carrier) and "hunter2" not in str(carrier)
