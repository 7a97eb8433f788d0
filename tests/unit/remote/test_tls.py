"""TLS settings: loopback detection, certs.d lookup, CA and client certificate loading."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from clusterimage.errors import RegistryError
from clusterimage.remote import tls as tls_module
from clusterimage.remote.tls import (
    TlsSettings,
    host_cert_dir,
    is_loopback,
    load_system_cas,
    probing,
    ssl_context,
)
from tests.fixtures.pki import make_server_tls


def test_loopback_hosts() -> None:
    for host in ("localhost:5000", "127.0.0.1", "127.3.4.5:80", "[::1]:5000", "a.localhost"):
        assert is_loopback(host), host
    for host in ("example.com", "10.0.0.1:5000", "[2001:db8::1]:443", "localhost.example.com"):
        assert not is_loopback(host), host


def test_cert_dir_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    user_dir = tmp_path / "cfg/containers/certs.d/reg.example:5000"
    assert host_cert_dir("reg.example:5000", None) is None
    user_dir.mkdir(parents=True)
    assert host_cert_dir("reg.example:5000", None) == user_dir
    assert host_cert_dir("reg.example:5000", tmp_path) == tmp_path  # --cert-dir wins


def test_ca_from_cert_dir_is_trusted(tmp_path: Path) -> None:
    tls = make_server_tls(tmp_path / "pki")
    ctx = ssl_context("127.0.0.1:1", TlsSettings(cert_dir=tls.cert_dir))
    subjects = [str(cert["subject"]) for cert in ctx.get_ca_certs()]
    assert any("clusterimage test CA" in s for s in subjects)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_verify_false_and_client_certificates(tmp_path: Path) -> None:
    tls = make_server_tls(tmp_path / "pki")
    certs = tmp_path / "client"
    certs.mkdir()
    (certs / "client.cert").write_bytes(tls.cert_path.read_bytes())
    (certs / "client.key").write_bytes(tls.key_path.read_bytes())
    ctx = ssl_context("h", TlsSettings(verify=False, cert_dir=certs))
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    (certs / "client.key").unlink()
    with pytest.raises(RegistryError, match=r"without its key client\.key"):
        ssl_context("h", TlsSettings(cert_dir=certs))
    (certs / "client.cert").unlink()
    (certs / "lonely.key").write_text("x")
    with pytest.raises(RegistryError, match=r"without its certificate lonely\.cert"):
        ssl_context("h", TlsSettings(cert_dir=certs))
    (certs / "lonely.key").unlink()
    (certs / "bad.crt").write_text("not a certificate")
    with pytest.raises(RegistryError, match="not a PEM CA certificate"):
        ssl_context("h", TlsSettings(cert_dir=certs))
    with pytest.raises(RegistryError, match="not a directory"):
        ssl_context("h", TlsSettings(cert_dir=tmp_path / "missing"))


def test_system_cas_load_at_the_first_handshake_not_at_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh context per test: the shared ones are keyed by settings only.
    monkeypatch.setattr(tls_module, "_CONTEXTS", {})
    ca = make_server_tls(tmp_path / "pki").ca_path
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the "system" store: one known CA
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    ctx = ssl_context("127.0.0.1:1", TlsSettings())
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.cert_store_stats()["x509_ca"] == 0
    with socket.socket() as sock, probing():
        ctx.wrap_socket(sock, server_hostname="h", do_handshake_on_connect=False).close()
    assert ctx.cert_store_stats()["x509_ca"] == 0  # a probe may go without them
    with socket.socket() as sock:
        ctx.wrap_socket(sock, server_hostname="h", do_handshake_on_connect=False).close()
    assert ctx.cert_store_stats()["x509_ca"] == 1  # any other handshake loads them first
    assert not load_system_cas(ctx)  # once
    insecure = ssl_context("127.0.0.1:1", TlsSettings(verify=False))
    assert not load_system_cas(insecure)
