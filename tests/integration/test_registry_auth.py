"""Authentication and TLS against the real registry: htpasswd over TLS with our own CA, token
auth with 5-second tokens, login/logout, and no credential ever in output or logs."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.pki import make_server_tls
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    MiB,
    isolated_auth,  # noqa: F401 - fixture
    load,
    one_line_error,
    skopeo_digest,
    write_image,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]


def _no_secret(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


def _auth_file() -> Path:
    """Where ``login`` writes in these tests (see ``isolated_auth``)."""
    return Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"


def test_tls_htpasswd_login_push_pull_logout(
    tls_registry: Registry, tmp_path: Path, ci_home: Path
) -> None:
    auth_file = _auth_file()
    assert tls_registry.password and tls_registry.cert_dir
    host, password = tls_registry.host, tls_registry.password
    cert_dir = str(tls_registry.cert_dir)
    outputs: list[str] = []

    def cli(
        *args: str, check: bool = True, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, check=check, input=input, env=env)
        outputs.extend([result.stdout, result.stderr])
        return result

    # Without our CA the TLS failure is one line that says what to do.
    failed = cli("login", host, "-u", "tester", "--password-stdin", input=password, check=False)
    line = one_line_error(failed.stderr)
    assert "--cert-dir" in line and "--tls-verify=false" in line

    wrong = cli(
        "login", host, "-u", "tester", "--password-stdin", "--cert-dir", cert_dir,
        input="not-the-password\n", check=False,
    )  # fmt: skip
    assert "refused" in one_line_error(wrong.stderr)
    assert not auth_file.exists()  # nothing saved for a failed login

    ok = cli(
        "login", host, "-u", "tester", "--password-stdin", "--cert-dir", cert_dir,
        input=password + "\n",
    )  # fmt: skip
    assert ok.stdout.strip() == "Login Succeeded!"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(auth_file.parent.stat().st_mode) == 0o700
    saved = json.loads(auth_file.read_text())
    assert list(saved["auths"]) == [host]

    image = write_image(tmp_path / "src", [1 * MiB], seed=11)
    name = f"{host}/secure/app:v1"
    load(image, name)
    cli("push", name, "--cert-dir", cert_dir)
    # skopeo reads the same auth file and trusts the same CA.
    assert skopeo_digest(f"docker://{name}", "--cert-dir", cert_dir) == image.manifest_digest
    cli("rmi", name)
    pulled = cli("pull", name, "--cert-dir", cert_dir, "-q")
    assert pulled.stdout.strip() == image.manifest_digest

    # certs.d lookup: ~/.config/containers/certs.d/HOST/ca.crt instead of --cert-dir.
    assert tls_registry.certs_d is not None
    config_home = tmp_path / "config-home"
    shutil.copytree(tls_registry.certs_d, config_home / "containers" / "certs.d")
    cli("tags", f"{host}/secure/app", env={"XDG_CONFIG_HOME": str(config_home)})
    insecure = cli("tags", f"{host}/secure/app", "--tls-verify=false", "--json")
    assert json.loads(insecure.stdout) == ["v1"]

    # --creds on the command line, REGISTRY_AUTH_FILE and --authfile are honoured too.
    other_auth = tmp_path / "other-auth.json"
    cli("logout", host)
    denied = cli("push", name, f"{host}/secure/b:v1", "--cert-dir", cert_dir, check=False)
    line = one_line_error(denied.stderr)
    assert f"run `clusterimage login {host}`" in line
    creds = f"tester:{password}"
    cli("push", name, f"{host}/secure/b:v1", "--cert-dir", cert_dir, "--creds", creds)
    cli(
        "login", host, "-u", "tester", "-p", password, "--cert-dir", cert_dir,
        "--authfile", str(other_auth),
    )  # fmt: skip
    assert stat.S_IMODE(other_auth.stat().st_mode) == 0o600
    cli("tags", f"{host}/secure/b", "--cert-dir", cert_dir, "--authfile", str(other_auth))
    cli(
        "tags", f"{host}/secure/b", "--cert-dir", cert_dir,
        env={"REGISTRY_AUTH_FILE": str(other_auth)},
    )  # fmt: skip
    bad_creds = cli(
        "push", name, f"{host}/secure/c:v1", "--cert-dir", cert_dir,
        "--creds", "tester:wrong-secret-123", check=False,
    )  # fmt: skip
    line = one_line_error(bad_creds.stderr)
    # Issue 12: --creds are what was sent, so `login` is no fix: say these were refused.
    assert "refused the credentials given with --creds (user tester)" in line
    assert "clusterimage login" not in line and "wrong-secret" not in line

    nothing = cli("logout", host, check=False)
    assert nothing.returncode == 1 and "not logged in" in nothing.stderr
    cli("logout", "--all", "--authfile", str(other_auth))
    assert json.loads(other_auth.read_text())["auths"] == {}

    # The password never shows: not in our output, not in our files, not in the registry log.
    logs = [tls_registry.read_log()]
    for path in ci_home.rglob("*"):
        if path.is_file():
            logs.append(path.read_bytes().decode(errors="replace"))
    _no_secret(password, *outputs, *logs)
    _no_secret("wrong-secret-123", *outputs)


def test_token_auth_long_push_refreshes_its_5_second_token(
    token_registry: Registry,
    fault_proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
) -> None:
    server = token_registry.token_server
    assert server is not None and token_registry.password
    creds = f"{token_registry.username}:{token_registry.password}"
    # Two injected 503s with Retry-After: 3 stretch the push beyond a token's 5 s lifetime.
    proxy = fault_proxy_factory(
        token_registry,
        error_rate=1.0,
        retry_after=3,
        max_faults=2,
        fault_paths=r"/blobs/uploads/.+",
    )
    image = write_image(tmp_path / "src", [2 * MiB, 1 * MiB, 100_000], seed=12)
    name = f"{proxy.host}/alice/app:v1"
    load(image, name)
    before = server.issued
    started = time.monotonic()
    pushed = run_cli("push", name, "--creds", creds, "--jobs", "1", "--json")
    elapsed = time.monotonic() - started
    assert elapsed > 6, "the push should outlive one token"
    assert json.loads(pushed.stdout)["digest"] == image.manifest_digest
    assert server.issued - before >= 2  # a fresh token after the first one expired
    assert proxy.faults_injected == 2
    log = token_registry.read_log()
    assert token_registry.password not in log + pushed.stdout + pushed.stderr

    # bob may only pull outside bob/*: pushing to alice's repository is denied, in one line.
    bob_password = "unknown"
    for user, password in server.users.items():
        if user == "bob":
            bob_password = password
    denied = run_cli(
        "push", name, f"{token_registry.host}/alice/other:v1", "--creds", f"bob:{bob_password}",
        check=False,
    )  # fmt: skip
    line = one_line_error(denied.stderr)
    assert line.startswith("error: ") and bob_password not in denied.stderr
    # Issue 12: the token was issued, it just does not grant the push: say so, not "refused".
    assert "lacks the scope repository:alice/other:push that push needs" in line, line
    assert "refused the credentials" not in line
    pulled = run_cli(
        "pull", f"{token_registry.host}/alice/app:v1", "--creds", f"bob:{bob_password}", "-q"
    )
    assert pulled.stdout.strip() == image.manifest_digest
    anonymous = run_cli("pull", f"{token_registry.host}/alice/app:v1", check=False)
    assert "clusterimage login" in one_line_error(anonymous.stderr)

    # login checks the password with the token server, then pushes need no --creds.
    host = token_registry.host
    refused = run_cli("login", host, "-u", "alice", "--password-stdin", input="nope", check=False)
    assert "refused" in one_line_error(refused.stderr)
    run_cli("login", host, "-u", "alice", "--password-stdin", input=token_registry.password)
    copied = run_cli("copy", f"docker://{host}/alice/app:v1", f"docker://{host}/alice/copy:v1")
    assert copied.stdout.strip() == image.manifest_digest
    assert token_registry.password not in copied.stdout + copied.stderr


def test_loopback_probe_loads_the_system_cas_when_it_meets_a_certificate(
    tls_registry: Registry, tmp_path: Path
) -> None:
    # The https probe of a loopback registry runs before the system CAs are loaded; a
    # certificate it cannot verify must make it load them and try again, not fail or fall back
    # to plain http. Our CA is the whole "system" store here: no --cert-dir, no certs.d.
    assert tls_registry.ca_path and tls_registry.password
    empty = tmp_path / "no-cas"
    empty.mkdir()
    system = {"SSL_CERT_FILE": str(tls_registry.ca_path), "SSL_CERT_DIR": str(empty)}
    ok = run_cli(
        "login", tls_registry.host, "-u", "tester", "--password-stdin",
        input=tls_registry.password + "\n", env=system,
    )  # fmt: skip
    assert ok.stdout.strip() == "Login Succeeded!"
    # With a system store that lacks our CA the same login is the one-line TLS error.
    other = tmp_path / "other-ca.pem"
    other.write_bytes(make_server_tls(tmp_path / "other-pki").ca_path.read_bytes())
    failed = run_cli(
        "login", tls_registry.host, "-u", "tester", "--password-stdin",
        input=tls_registry.password + "\n", env={**system, "SSL_CERT_FILE": str(other)},
        check=False,
    )  # fmt: skip
    assert "TLS certificate verification failed" in one_line_error(failed.stderr)


# -- what a refusal says: whose credentials, which scope ------------------------------------------


def _pushed(registry: Registry, tmp_path: Path, repo: str, creds: str) -> str:
    image = write_image(tmp_path / "src", [100_000], seed=90)
    name = f"{registry.host}/{repo}:v1"
    run_cli("copy", image.transport_ref, f"docker://{name}", "--dest-creds", creds, "-q")
    return name


def _token_password(registry: Registry, user: str) -> str:
    assert registry.token_server is not None
    return dict(registry.token_server.users)[user]


def _asking(
    kind: str, registry_factory: Callable[..., Registry], token_registry: Registry
) -> tuple[Registry, str]:
    """A registry that asks for credentials, by token (user alice) or basic auth (tester)."""
    if kind == "token":
        return token_registry, "alice"
    return registry_factory(users={"tester": "s3cret-pw"}), "tester"


@pytest.mark.parametrize("kind", ["token", "basic"])
def test_refused_creds_flag_names_the_flag_not_login(
    kind: str, registry_factory: Callable[..., Registry], token_registry: Registry
) -> None:
    registry, user = _asking(kind, registry_factory, token_registry)
    pulled = run_cli(
        "pull", f"{registry.host}/alice/app:v1", "--creds", f"{user}:wrong-pw", check=False
    )
    assert pulled.returncode == 1
    line = one_line_error(pulled.stderr)
    assert line == (
        f"error: registry {registry.host} refused the credentials given with --creds "
        f"(user {user}); check the user name and password"
    ), line
    assert "clusterimage login" not in line and "wrong-pw" not in pulled.stderr


def test_refused_copy_end_creds_name_that_end_s_flag(
    tmp_path: Path, registry_factory: Callable[..., Registry]
) -> None:
    registry = registry_factory(users={"tester": "s3cret-pw"})
    image = write_image(tmp_path / "src", [100_000], seed=13)
    pushed = run_cli(
        "copy", image.transport_ref, f"docker://{registry.host}/alice/app:v1",
        "--dest-creds", "tester:wrong-pw", "--retry", "0", check=False,
    )  # fmt: skip
    assert pushed.returncode == 1
    line = one_line_error(pushed.stderr)
    assert "refused the credentials given with --dest-creds (user tester)" in line, line
    pulled = run_cli(
        "copy", f"docker://{registry.host}/alice/app:v1", f"oci:{tmp_path / 'out'}:v1",
        "--src-creds", "tester:wrong-pw", "--retry", "0", check=False,
    )  # fmt: skip
    assert "refused the credentials given with --src-creds (user tester)" in one_line_error(
        pulled.stderr
    )
    assert "wrong-pw" not in pushed.stderr + pulled.stderr


@pytest.mark.parametrize("kind", ["token", "basic"])
def test_refused_stored_credentials_say_run_login(
    kind: str, registry_factory: Callable[..., Registry], token_registry: Registry
) -> None:
    registry, user = _asking(kind, registry_factory, token_registry)
    auth_file = _auth_file()
    auth_file.parent.mkdir(parents=True, exist_ok=True)
    secret = base64.b64encode(f"{user}:stale-pw".encode()).decode()
    auth_file.write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
    pulled = run_cli("pull", f"{registry.host}/alice/app:v1", check=False)
    assert pulled.returncode == 1
    line = one_line_error(pulled.stderr)
    assert line == (
        f"error: registry {registry.host} refused the stored credentials for {registry.host} "
        f"(user {user}, from {auth_file}); run `clusterimage login {registry.host}`"
    ), line
    assert "stale-pw" not in pulled.stderr


def test_token_without_push_scope_names_the_scope_push_needs(
    token_registry: Registry, tmp_path: Path
) -> None:
    host = token_registry.host
    name = _pushed(token_registry, tmp_path, "alice/app", f"alice:{token_registry.password}")
    bob = f"bob:{_token_password(token_registry, 'bob')}"
    run_cli("pull", name, "--creds", bob, "-q")  # bob may pull alice/app ...
    pushed = run_cli("push", name, f"{host}/alice/other:v1", "--creds", bob, check=False)
    assert pushed.returncode == 1  # ... but not push to alice/*
    line = one_line_error(pushed.stderr)
    assert line == (
        f"error: {host}: the token for {host} lacks the scope repository:alice/other:push "
        "that push needs (user bob)"
    ), line
    assert "refused the credentials" not in line


@pytest.mark.parametrize("reported", [-30, 0])
def test_negative_expires_in_is_the_default_lifetime_not_a_refusal(
    reported: int,
    token_registry_factory: Callable[..., Registry],
    fault_proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
) -> None:
    registry = token_registry_factory(lifetime=300, strict_expiry=False)
    server = registry.token_server
    assert server is not None and registry.password
    server.reported_expires_in = reported
    # One 503 with Retry-After: 3 makes the push outlast any too-short reading of the lifetime
    # (a token thought to lapse at once, or in 1 s, would be fetched again after the wait).
    proxy = fault_proxy_factory(
        registry, error_rate=1.0, retry_after=3, max_faults=1, fault_paths=r"/blobs/uploads/.+"
    )
    creds = f"alice:{registry.password}"
    image = write_image(tmp_path / "src", [300_000, 200_000, 100_000], seed=91)
    name = f"{proxy.host}/alice/neg:v1"
    load(image, name)
    before = server.issued
    pushed = run_cli("push", name, "--creds", creds, "--jobs", "1", "-q")
    assert pushed.stdout.strip() == image.manifest_digest
    assert proxy.faults_injected == 1
    # Valid for the default 60 s: the one token serves the whole push, wait included.
    # (1 s read as the lifetime: a second token after the 3 s wait; a 300 s one: a single.)
    assert server.issued - before == 1, server.issued_tokens[before:]
    run_cli("rmi", name)
    pulled = run_cli("pull", name, "--creds", creds, "-q")
    assert pulled.stdout.strip() == image.manifest_digest
