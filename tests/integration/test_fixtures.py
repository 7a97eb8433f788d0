"""Prove that every shared server fixture really works, using real clients (skopeo, docker).

If one of these fails, the fixture is broken, not the product under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_tool, run_cli, run_tool
from tests.fixtures.dockerd import DockerDaemon
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.oci_layout import OciImage, make_oci_layout, sha256_digest
from tests.fixtures.registry import Registry

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def skopeo(*args: str) -> str:
    """Run skopeo and return its stdout; a failure fails the test showing both streams."""
    return run_tool([require_tool("skopeo"), *args], timeout=120).stdout


def skopeo_fails(*args: str) -> str:
    """Run skopeo, insist that it fails, and return its stderr."""
    result = run_tool([require_tool("skopeo"), *args], check=False, timeout=120)
    assert result.returncode != 0, f"skopeo {' '.join(args)} unexpectedly succeeded"
    return result.stderr


def with_digest(location: str, digest: str) -> httpx.URL:
    # httpx's params= replaces the query, which would drop the upload's _state: merge instead.
    return httpx.URL(location).copy_merge_params({"digest": digest})


def push_plain(image: OciImage, host: str, repo: str) -> None:
    skopeo("copy", "--dest-tls-verify=false", image.transport_ref, f"docker://{host}/{repo}")


def inspect_digest(*args: str) -> str:
    return str(json.loads(skopeo("inspect", *args))["Digest"])


# -- helpers from tests/conftest.py ---------------------------------------------------------


def test_require_tool_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Path(require_tool("skopeo")).is_absolute()
    monkeypatch.delenv("CLUSTERIMAGE_REQUIRE_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_tool("clusterimage-no-such-tool")
    monkeypatch.setenv("CLUSTERIMAGE_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception):
        require_tool("clusterimage-no-such-tool")


def test_run_cli_uses_ci_home(ci_home: Path, store_dir: Path) -> None:
    assert os.environ["CLUSTERIMAGE_HOME"] == str(ci_home)
    assert store_dir == ci_home / "store"
    version = run_cli("version")
    assert version.stdout.startswith("clusterimage ") and version.stderr == ""
    usage = run_cli("no-such-command", check=False)
    assert usage.returncode == 2 and usage.stdout == ""
    with pytest.raises(pytest.fail.Exception, match="no-such-command"):
        run_cli("no-such-command")


# -- plain registry ---------------------------------------------------------------------------


def test_registry_serves_skopeo_and_logs_requests(registry: Registry, oci_image: OciImage) -> None:
    push_plain(oci_image, registry.host, "fixtures/hello:v1")

    ref = f"docker://{registry.host}/fixtures/hello:v1"
    assert inspect_digest("--tls-verify=false", ref) == oci_image.manifest.digest
    raw = skopeo("inspect", "--tls-verify=false", "--raw", ref)
    assert raw.encode() == oci_image.manifest_bytes
    for digest in oci_image.blob_digests():
        assert registry.blob_path(digest).is_file()
    assert (registry.repository_path("fixtures/hello") / "_manifests/tags/v1").is_dir()

    uploads = registry.blob_uploads()
    assert any(e.method == "PUT" and e.status == 201 for e in uploads), uploads
    assert any(e.method == "GET" and e.path == "/v2/" for e in registry.requests())

    # The pattern for "nothing was uploaded": mark the log, act, look at what came after.
    mark = registry.log_mark()
    push_plain(oci_image, registry.host, "fixtures/hello:v1")
    assert registry.blob_uploads(since=mark) == []
    assert any(e.method == "HEAD" for e in registry.requests(since=mark))


def test_registry_factory_starts_independent_registries(
    registry_factory: Callable[..., Registry],
) -> None:
    first, second = registry_factory(), registry_factory()
    assert first.host != second.host and first.root != second.root
    assert first.host.startswith("127.0.0.1:")
    for reg in (first, second):
        response = httpx.get(f"{reg.url}/v2/", trust_env=False)
        assert response.status_code == 200
        assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    first.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{first.url}/v2/", trust_env=False, timeout=2)
    assert httpx.get(f"{second.url}/v2/", trust_env=False).status_code == 200


# -- TLS + htpasswd ---------------------------------------------------------------------------


def test_tls_registry_needs_ca_and_password(tls_registry: Registry, oci_image: OciImage) -> None:
    reg = tls_registry
    assert reg.url.startswith("https://127.0.0.1:")
    assert reg.cert_dir is not None and (reg.cert_dir / "ca.crt").is_file()
    assert reg.certs_d is not None and (reg.certs_d / reg.host / "ca.crt").is_file()
    ref = f"docker://{reg.host}/secure/hello:v1"

    skopeo(
        "copy",
        f"--dest-cert-dir={reg.cert_dir}",
        f"--dest-creds={reg.credentials}",
        oci_image.transport_ref,
        ref,
    )
    assert (
        inspect_digest(f"--cert-dir={reg.cert_dir}", f"--creds={reg.credentials}", ref)
        == oci_image.manifest.digest
    )

    wrong = skopeo_fails(
        "inspect", f"--cert-dir={reg.cert_dir}", f"--creds={reg.username}:wrong", ref
    )
    assert "unauthorized" in wrong.lower() or "401" in wrong
    untrusted = skopeo_fails("inspect", f"--creds={reg.credentials}", ref)
    assert "certificate" in untrusted.lower() or "x509" in untrusted.lower()

    assert reg.username is not None and reg.password is not None
    with httpx.Client(verify=reg.ssl_context(), trust_env=False) as client:
        assert client.get(f"{reg.url}/v2/").status_code == 401
        assert client.get(f"{reg.url}/v2/", auth=(reg.username, reg.password)).status_code == 200


def test_fault_proxy_fronts_a_tls_registry(
    tls_registry: Registry, fault_proxy_factory: Callable[..., FaultProxy], oci_image: OciImage
) -> None:
    proxy = fault_proxy_factory(tls_registry)
    creds = f"--creds={tls_registry.credentials}"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"--dest-creds={tls_registry.credentials}",
        oci_image.transport_ref,
        f"docker://{proxy.host}/through/tls:v1",
    )
    ref = f"docker://{tls_registry.host}/through/tls:v1"
    assert inspect_digest(f"--cert-dir={tls_registry.cert_dir}", creds, ref) == (
        oci_image.manifest.digest
    )
    assert proxy.count(method="PUT", path="/manifests/v1", status=201) == 1


# -- token auth -------------------------------------------------------------------------------


def test_token_registry_scopes_and_expiry(token_registry: Registry, oci_image: OciImage) -> None:
    reg = token_registry
    server = reg.token_server
    assert server is not None
    alice = f"alice:{server.users['alice']}"
    bob = f"bob:{server.users['bob']}"
    ref = f"docker://{reg.host}/alice/hello:v1"

    skopeo("copy", "--dest-tls-verify=false", f"--dest-creds={alice}", oci_image.transport_ref, ref)
    pushed = [t for t in server.issued_tokens if t.user == "alice"]
    assert any(
        a["name"] == "alice/hello" and "push" in a["actions"] for t in pushed for a in t.access
    )

    # bob may pull alice/* but not push there.
    assert inspect_digest("--tls-verify=false", f"--creds={bob}", ref) == oci_image.manifest.digest
    denied = skopeo_fails(
        "copy", "--dest-tls-verify=false", f"--dest-creds={bob}", oci_image.transport_ref, ref
    )
    assert "denied" in denied.lower() or "unauthorized" in denied.lower()

    rejected = server.rejected
    skopeo_fails("inspect", "--tls-verify=false", "--creds=alice:wrong", ref)
    assert server.rejected > rejected

    # A token really stops working after its lifetime, and a later operation gets a new one.
    with httpx.Client(trust_env=False) as client:
        answer = client.get(
            server.realm,
            params={"service": server.service, "scope": "repository:alice/hello:pull"},
            auth=("alice", server.users["alice"]),
        )
        assert answer.status_code == 200
        body = answer.json()
        assert body["expires_in"] == server.lifetime
        bearer = {"Authorization": f"Bearer {body['token']}"}
        tags_url = f"{reg.url}/v2/alice/hello/tags/list"
        assert client.get(tags_url, headers=bearer).status_code == 200
        issued_before = server.issued
        time.sleep(server.lifetime + 1.5)
        expired = client.get(tags_url, headers=bearer)
        assert expired.status_code == 401
        assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]

        anonymous = client.get(
            server.realm,
            params={"service": server.service, "scope": "repository:alice/hello:pull"},
        ).json()
        unscoped = {"Authorization": f"Bearer {anonymous['token']}"}
        assert client.get(tags_url, headers=unscoped).status_code == 401

    assert inspect_digest("--tls-verify=false", f"--creds={alice}", ref) == (
        oci_image.manifest.digest
    )
    assert server.issued > issued_before + 1


# -- fault proxy ------------------------------------------------------------------------------


def _repeating_chunks(total: int, piece: bytes) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = piece[: total - sent]
        sent += len(chunk)
        yield chunk


def test_fault_proxy_streams_big_bodies_and_rewrites_location(
    fault_proxy: FaultProxy, oci_image: OciImage
) -> None:
    proxy = fault_proxy
    push_plain(oci_image, proxy.host, "viaproxy/hello:v1")
    # Uploads went through the proxy: the registry's Location pointed back at it.
    assert proxy.count(method="PATCH", path="/blobs/uploads/", status=202) >= 1
    assert proxy.count(method="PUT", path=r"/blobs/uploads/.*digest=", status=201) >= 1
    assert inspect_digest("--tls-verify=false", f"docker://{proxy.host}/viaproxy/hello:v1") == (
        oci_image.manifest.digest
    )

    piece = hashlib.sha256(b"seed").digest() * (MiB // 32)
    size = 100 * MiB
    expected = hashlib.sha256()
    for chunk in _repeating_chunks(size, piece):
        expected.update(chunk)
    digest = "sha256:" + expected.hexdigest()

    tracemalloc.start()
    try:
        with httpx.Client(base_url=proxy.url, trust_env=False, timeout=60) as client:
            start = client.post("/v2/big/blob/blobs/uploads/")
            assert start.status_code == 202
            location = start.headers["Location"]
            assert location.startswith(proxy.url)
            patch = client.patch(location, content=_repeating_chunks(size, piece))
            assert patch.status_code == 202, patch.text
            put = client.put(with_digest(patch.headers["Location"], digest))
            assert put.status_code == 201, put.text
            received = hashlib.sha256()
            with client.stream("GET", f"/v2/big/blob/blobs/{digest}") as response:
                assert response.status_code == 200
                for chunk in response.iter_bytes():
                    received.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "sha256:" + received.hexdigest() == digest
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB: the proxy held a body whole"
    patched = [r for r in proxy.snapshot() if r.method == "PATCH" and "/big/blob/" in r.path]
    assert patched[-1].bytes_in == size


def test_fault_proxy_rejects_whole_blob_uploads(fault_proxy: FaultProxy, tmp_path: Path) -> None:
    proxy = fault_proxy
    proxy.configure(reject_monolithic=True, chunk_min_length=1024)
    data = os.urandom(4096)
    digest = sha256_digest(data)
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=30) as client:
        whole = client.post("/v2/mono/blob/blobs/uploads/", params={"digest": digest}, content=data)
        assert whole.status_code == 413

        session = client.post("/v2/mono/blob/blobs/uploads/")
        assert session.status_code == 202
        assert session.headers["OCI-Chunk-Min-Length"] == "1024"
        put_whole = client.put(with_digest(session.headers["Location"], digest), content=data)
        assert put_whole.status_code == 413

        session = client.post("/v2/mono/blob/blobs/uploads/")
        location = session.headers["Location"]
        for offset in range(0, len(data), 1024):
            part = data[offset : offset + 1024]
            patch = client.patch(
                location,
                content=part,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(part) - 1}",
                },
            )
            assert patch.status_code == 202, patch.text
            location = patch.headers["Location"]
        done = client.put(with_digest(location, digest))
        assert done.status_code == 201, done.text
        assert client.head(f"/v2/mono/blob/blobs/{digest}").status_code == 200
    assert proxy.count(fault="413") == 2

    # With a body limit, skopeo's streamed (whole-layer) PATCH is refused, as a proxy would.
    proxy.configure(reject_monolithic=False, max_body=1024)
    image = make_oci_layout(tmp_path / "big-layer", layers=[{"noise.bin": os.urandom(64 * 1024)}])
    skopeo_fails(
        "copy", "--dest-tls-verify=false", image.transport_ref, f"docker://{proxy.host}/mono/x:v1"
    )
    assert proxy.count(method="PATCH", status=413) >= 1


def test_fault_proxy_corrupts_a_blob(
    registry: Registry, fault_proxy: FaultProxy, oci_image: OciImage, tmp_path: Path
) -> None:
    push_plain(oci_image, registry.host, "corrupt/hello:v1")
    layer = oci_image.layers[0].digest
    fault_proxy.corrupt_blob(layer)

    error = skopeo_fails(
        "copy",
        "--src-tls-verify=false",
        f"docker://{fault_proxy.host}/corrupt/hello:v1",
        f"oci:{tmp_path / 'out'}:v1",
    )
    assert "digest" in error.lower()
    assert fault_proxy.count(fault="corrupt") >= 1

    # Straight from the registry the same copy works: the proxy did the damage.
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/corrupt/hello:v1",
        f"oci:{tmp_path / 'direct'}:v1",
    )


def test_fault_proxy_errors_drops_and_truncations(fault_proxy: FaultProxy) -> None:
    proxy = fault_proxy
    data = os.urandom(256 * 1024)
    digest = sha256_digest(data)
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=30) as client:
        session = client.post("/v2/faults/blob/blobs/uploads/", params={"digest": digest})
        location = session.headers["Location"]
        assert client.put(with_digest(location, digest), content=data).status_code == 201
        blob = f"/v2/faults/blob/blobs/{digest}"

        proxy.configure(error_rate=1.0, max_faults=2, retry_after=3)
        assert client.get("/v2/").status_code == 200  # the ping is not a fault path
        for _ in range(2):
            busy = client.get(blob)
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "3"
        assert client.get(blob).content == data  # faults are bounded by max_faults

        proxy.reseed(1)
        proxy.configure(error_rate=0.0, drop_rate=1.0, max_faults=1)
        with pytest.raises(httpx.TransportError):
            client.get(blob)
        assert client.get(blob).content == data

        proxy.reseed(2)
        proxy.configure(drop_rate=0.0, truncate_rate=1.0, max_faults=1)
        with pytest.raises(httpx.TransportError):
            client.get(blob)
        assert client.get(blob).content == data

    assert proxy.count(fault="503") == 2
    assert proxy.count(fault="drop") == 1
    assert proxy.count(fault="truncate") == 1

    # Fractions are drawn from a seeded generator: the same seed gives the same pattern.
    patterns = []
    for _ in range(2):
        proxy.reseed(42)
        proxy.configure(truncate_rate=0.0, error_rate=0.3, max_faults=1000)
        with httpx.Client(base_url=proxy.url, trust_env=False, timeout=30) as client:
            patterns.append([client.head(blob).status_code for _ in range(30)])
    assert patterns[0] == patterns[1]
    assert 0 < patterns[0].count(503) < 30


# -- dockerd ----------------------------------------------------------------------------------


def test_dockerd_pulls_from_registry_and_loads(
    dockerd: DockerDaemon, registry: Registry, oci_image: OciImage, tmp_path: Path
) -> None:
    push_plain(oci_image, registry.host, "fixtures/docker:v1")
    name = f"{registry.host}/fixtures/docker:v1"
    dockerd.cli("pull", name)
    repo_digests = json.loads(
        dockerd.cli("image", "inspect", "--format", "{{json .RepoDigests}}", name).stdout
    )
    assert f"{registry.host}/fixtures/docker@{oci_image.manifest.digest}" in repo_digests

    archive = tmp_path / "saved.tar"
    dockerd.cli("save", "-o", str(archive), name)
    dockerd.cli("rmi", name)
    loaded = dockerd.cli("load", "-i", str(archive)).stdout
    assert name in loaded
    dockerd.cli("rmi", name)
