"""The registry client against an in-memory registry: auth flows, token cache, retries,
errors, manifests, tags, streamed blob reads with resume, uploads (whole, chunked, resumed)."""

from __future__ import annotations

import gzip
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clusterimage.errors import (
    AuthError,
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    RegistryError,
    TransferInterrupted,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.remote import auth
from clusterimage.remote.client import ClientOptions, Registry, redact_url
from clusterimage.remote.repository import Repository
from clusterimage.remote.upload import MIN_CHUNK, BlobUploader, UploadSession
from clusterimage.retry import RetryPolicy
from tests.unit.remote.fakeregistry import HOST, FakeRegistry, sha256

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}}).encode()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> Iterator[list[float]]:
    """No real sleeping, no auth files from the machine, a clean token cache."""
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    slept: list[float] = []
    monkeypatch.setattr(
        RetryPolicy, "sleep", lambda self, attempt, retry_after=None: slept.append(retry_after)
    )
    auth.TOKENS.clear()
    yield slept
    auth.TOKENS.clear()


@pytest.fixture
def slept(_isolated: list[float]) -> list[float]:
    return _isolated


def client(fake: FakeRegistry, *, creds: str | None = None, retries: int = 3) -> Registry:
    return Registry(
        HOST,
        ClientOptions(creds=creds, retries=retries, transport=fake.transport()),
        repository="app",
    )


def test_anonymous_bearer_token_is_fetched_once_and_shared_by_threads() -> None:
    fake = FakeRegistry(auth="bearer")
    digest = fake.add_blob("app", b"layer")
    repo = Repository(client(fake), "app")
    results: list[int | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(repo.head_blob(Digest.parse(digest))))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [5] * 8
    assert fake.tokens_issued == 1
    token_request = next(r for r in fake.requests if r.url.path == "/token")
    assert token_request.url.params.get_list("scope") == ["repository:app:pull"]
    assert token_request.url.params["service"] == "fake-registry"
    assert "Authorization" not in token_request.headers  # anonymous


def test_expired_token_is_refreshed_on_401() -> None:
    fake = FakeRegistry(auth="bearer")
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    repo = Repository(client(fake, creds="alice:s3cret-pass"), "app", push=True)
    assert repo.head_blob(digest) == 5
    fake.expire_tokens()  # the registry no longer accepts the cached token
    assert repo.head_blob(digest) == 5
    assert fake.tokens_issued == 2
    token_request = next(r for r in fake.requests if r.url.path == "/token")
    assert token_request.url.params["account"] == "alice"
    assert token_request.url.params.get_list("scope") == ["repository:app:pull,push"]


def test_token_server_refusing_credentials_is_an_auth_error_without_secrets() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.add_blob("app", b"layer")
    repo = Repository(client(fake, creds="alice:wrong-password"), "app")
    with pytest.raises(AuthError) as info:
        repo.head_blob(Digest.parse(sha256(b"layer")))
    message = str(info.value)
    # The credentials came from --creds: `login` would not change what is sent.
    assert "refused the credentials given with --creds (user alice)" in message
    assert "clusterimage login" not in message
    assert "wrong-password" not in message and "\n" not in message


def test_identity_token_uses_the_oauth_refresh_grant() -> None:
    fake = FakeRegistry(auth="bearer")
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    registry = client(fake)
    from clusterimage.remote.credentials import Credentials

    registry.use_credentials(Credentials(identity_token="rt-1"))
    assert Repository(registry, "app").head_blob(digest) == 5
    token_request = next(r for r in fake.requests if r.url.path == "/token")
    assert token_request.method == "POST"
    assert b"grant_type=refresh_token" in token_request.content


def _token_requests(fake: FakeRegistry) -> list[httpx.Request]:
    return [r for r in fake.requests if r.url.path == "/token"]


@pytest.mark.parametrize(
    "realm",
    [
        "http://auth.example/token",  # another host, in clear text
        f"http://{HOST}/token",  # the https registry's own host, downgraded to http
    ],
)
def test_credentials_never_go_to_a_plain_http_realm(realm: str) -> None:
    from clusterimage.remote.credentials import Credentials

    fake = FakeRegistry(auth="bearer", realm=realm)
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    realm_host = httpx.URL(realm).host
    for registry in (client(fake, creds="alice:s3cret-pass"), client(fake)):
        if registry.credentials.anonymous:
            registry.use_credentials(Credentials(identity_token="rt-1"))
        with pytest.raises(AuthError) as info:
            Repository(registry, "app").head_blob(digest)
        message = str(info.value)
        assert message.startswith(f"{HOST}: refusing to send credentials to the token server ")
        assert f"server {realm_host} over plain http" in message and "\n" not in message
        assert "s3cret-pass" not in message and "rt-1" not in message
        with pytest.raises(AuthError, match="refusing to send credentials"):
            registry.check_login()
    assert _token_requests(fake) == []  # nothing was sent to the realm


def test_anonymous_token_requests_may_use_a_plain_http_realm() -> None:
    fake = FakeRegistry(auth="bearer", realm="http://auth.example/token")
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    assert Repository(client(fake), "app").head_blob(digest) == 5
    [token_request] = _token_requests(fake)
    assert token_request.url.scheme == "http" and token_request.url.host == "auth.example"
    assert "Authorization" not in token_request.headers


@pytest.mark.parametrize(
    "realm",
    [
        "https://auth.example/token",  # Docker Hub's layout: registry-1.docker.io, auth.docker.io
        "http://127.0.0.1:5001/token",  # a token server on this machine
        "http://[::1]:5001/token",
    ],
)
def test_credentials_go_to_an_https_realm_elsewhere_or_a_loopback_one(realm: str) -> None:
    fake = FakeRegistry(auth="bearer", realm=realm)
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    assert Repository(client(fake, creds="alice:s3cret-pass"), "app").head_blob(digest) == 5
    [token_request] = _token_requests(fake)
    assert token_request.url == httpx.URL(realm).copy_with(params=token_request.url.params)
    assert token_request.headers["Authorization"].startswith("Basic ")


def test_a_plain_http_registry_may_send_credentials_to_its_own_http_realm() -> None:
    """--tls-verify=false with a registry that speaks only http (Harbor on an intranet): Basic
    auth would send the password to that host in clear text too, so its own realm may have it;
    a realm on any other host over http still may not."""
    from clusterimage.remote.tls import TlsSettings

    def no_tls(request: httpx.Request) -> httpx.Response | None:
        if request.url.scheme == "https":
            raise httpx.ConnectError("wrong version number")
        return None

    for realm, allowed in ((f"http://{HOST}:8080/token", True), ("http://auth.example/t", False)):
        fake = FakeRegistry(auth="bearer", realm=realm, faults=[no_tls])
        digest = Digest.parse(fake.add_blob("app", b"layer"))
        options = ClientOptions(
            creds="alice:s3cret-pass", transport=fake.transport(), tls=TlsSettings(verify=False)
        )
        repo = Repository(Registry(HOST, options, repository="app"), "app")
        if allowed:
            assert repo.head_blob(digest) == 5
            assert _token_requests(fake)[0].headers["Authorization"].startswith("Basic ")
        else:
            with pytest.raises(AuthError, match=r"token server auth\.example over plain http"):
                repo.head_blob(digest)
            assert _token_requests(fake) == []


@pytest.mark.parametrize("realm", ["ftp://auth.example/token", "/token", "token"])
def test_a_realm_that_is_not_an_http_url_is_an_error(realm: str) -> None:
    fake = FakeRegistry(auth="bearer", realm=realm)
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    with pytest.raises(RegistryError, match=r"^registry\.test: the bearer challenge's realm"):
        Repository(client(fake), "app").head_blob(digest)
    assert _token_requests(fake) == []


def test_basic_auth_and_missing_credentials() -> None:
    fake = FakeRegistry(auth="basic")
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    assert Repository(client(fake, creds="alice:s3cret-pass"), "app").head_blob(digest) == 5
    assert fake.requests[-1].headers["Authorization"].startswith("Basic ")
    with pytest.raises(AuthError, match=r"authentication required; run `clusterimage login"):
        Repository(client(fake), "app").head_blob(digest)
    with pytest.raises(
        AuthError, match=r"refused the credentials given with --creds \(user alice\)"
    ) as info:
        Repository(client(fake, creds="alice:nope-nope"), "app").head_blob(digest)
    assert "nope-nope" not in str(info.value)


def test_check_login() -> None:
    fake = FakeRegistry(auth="basic")
    good = client(fake, creds="alice:s3cret-pass")
    good.check_login()
    with pytest.raises(AuthError):
        client(fake, creds="alice:bad").check_login()
    bearer = FakeRegistry(auth="bearer")
    client(bearer, creds="alice:s3cret-pass").check_login()
    with pytest.raises(AuthError):
        client(bearer, creds="alice:bad").check_login()


def test_retries_honour_retry_after_then_give_up(slept: list[float]) -> None:
    fake = FakeRegistry()
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    failures = iter([503, 429])

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith(str(digest)):
            status = next(failures, None)
            if status is not None:
                return httpx.Response(status, headers={"Retry-After": "2"})
        return None

    fake.faults.append(flaky)
    assert Repository(client(fake), "app").head_blob(digest) == 5
    assert slept == [2.0, 2.0]
    fake.faults[:] = [lambda r: httpx.Response(502) if "blobs" in r.url.path else None]
    with pytest.raises(RegistryError, match=r"HTTP 502 \(gave up after 3 attempts\)"):
        Repository(client(fake, retries=2), "app").head_blob(digest)


def test_connection_errors_are_retried(slept: list[float]) -> None:
    fake = FakeRegistry()
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    drops = iter([True, True])

    def drop(request: httpx.Request) -> httpx.Response | None:
        if "blobs" in request.url.path and next(drops, False):
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return None

    fake.faults.append(drop)
    assert Repository(client(fake), "app").head_blob(digest) == 5
    assert len(slept) == 2


def test_not_found_errors_name_what() -> None:
    fake = FakeRegistry()
    repo = Repository(client(fake), "app")
    with pytest.raises(ImageNotFound, match="manifest app:v9: not found"):
        repo.get_manifest("v9")
    with pytest.raises(BlobNotFound, match="blob sha256:"):
        repo.open_blob(Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(b"x")), 1))
    assert repo.head_blob(Digest.parse(sha256(b"x"))) is None


def test_manifests_by_tag_and_digest_are_verified() -> None:
    fake = FakeRegistry()
    digest = fake.add_manifest("app", MANIFEST, mt.OCI_MANIFEST, "v1")
    repo = Repository(client(fake), "app", push=True)
    got = repo.get_manifest("v1")
    assert got.raw == MANIFEST and got.media_type == mt.OCI_MANIFEST and str(got.digest) == digest
    accept = fake.requests[-1].headers["Accept"]
    assert all(t in accept for t in mt.ACCEPT_MANIFESTS)
    assert repo.get_manifest(digest).raw == MANIFEST
    head = repo.head_manifest("v1")
    assert head is not None and str(head.digest) == digest and head.size == len(MANIFEST)
    # The registry returns other bytes than those named by the digest: refused.
    fake.manifests[digest] = (MANIFEST + b" ", mt.OCI_MANIFEST)
    with pytest.raises(DigestMismatch):
        repo.get_manifest(digest)
    assert str(repo.put_manifest("v2", MANIFEST, mt.OCI_MANIFEST)) == digest
    assert fake.requests[-1].headers["Content-Type"] == mt.OCI_MANIFEST


def test_tags_follow_link_pagination() -> None:
    fake = FakeRegistry(page_size=2)
    for tag in ("a", "b", "c", "d", "e"):
        fake.add_manifest("app", MANIFEST, mt.OCI_MANIFEST, tag)
    assert list(Repository(client(fake), "app").tags()) == ["a", "b", "c", "d", "e"]
    assert fake.count("GET", "/tags/list") == 3


def test_tags_pagination_that_loops_is_an_error_not_an_endless_listing() -> None:
    fake = FakeRegistry()
    fake.add_manifest("app", MANIFEST, mt.OCI_MANIFEST, "a")
    again = '</v2/app/tags/list?n=1&last=a>; rel="next"'
    fake.faults.append(
        lambda r: (
            httpx.Response(200, json={"tags": ["a"]}, headers={"Link": again})
            if r.url.path.endswith("/tags/list")
            else None
        )
    )
    tags = Repository(client(fake), "app").tags()
    with pytest.raises(RegistryError, match="pagination loops"):
        for _ in range(10):
            next(tags)
    assert fake.count("GET", "/tags/list") == 2


def test_tags_pagination_stays_on_the_registry() -> None:
    # As containers/image: only the path and query of the Link are used.
    fake = FakeRegistry(auth="basic", page_size=2)
    for tag in ("a", "b", "c"):
        fake.add_manifest("app", MANIFEST, mt.OCI_MANIFEST, tag)
    elsewhere = '<https://elsewhere.example/v2/app/tags/list?n=2&last=b>; rel="next"'

    def first_page_points_elsewhere(request: httpx.Request) -> httpx.Response | None:
        first = request.url.path.endswith("/tags/list") and "last" not in request.url.params
        if first and request.headers.get("Authorization"):
            return httpx.Response(200, json={"tags": ["a", "b"]}, headers={"Link": elsewhere})
        return None

    fake.faults.append(first_page_points_elsewhere)
    tags = list(Repository(client(fake, creds="alice:s3cret-pass"), "app").tags())
    assert tags == ["a", "b", "c"]
    assert {r.url.host for r in fake.requests} == {HOST}


def test_blob_reader_stops_at_a_broken_connection_and_a_new_one_asks_for_the_rest() -> None:
    """The reader does not reconnect by itself: the copy engine is the one retry layer for
    transfers, and it resumes where the destination says the bytes stopped."""
    fake = FakeRegistry()
    data = os.urandom(300_000)
    digest = Digest.parse(fake.add_blob("app", data))
    fake.break_blob_after = 100_000
    desc = Descriptor(mt.OCI_LAYER_GZIP, digest, len(data))
    got = bytearray()
    with (
        pytest.raises(TransferInterrupted, match="connection lost at byte 100000"),
        Repository(client(fake), "app").open_blob(desc) as reader,
    ):
        while chunk := reader.read(1 << 16):
            got += chunk
    assert bytes(got) == data[:100_000]
    with Repository(client(fake), "app").open_blob(desc, len(got)) as reader:
        assert reader.read() == data[100_000:]
    gets = [r for r in fake.requests if r.method == "GET" and "blobs" in r.url.path]
    assert [r.headers.get("Range") for r in gets] == [None, "bytes=100000-"]
    assert gets[0].headers["Accept-Encoding"] == "identity"
    # Starting at an offset asks for the rest only.
    with Repository(client(fake), "app").open_blob(desc, 299_990) as reader:
        assert reader.read(1 << 20) == data[299_990:]


def test_a_dead_blob_is_tried_retries_plus_one_times_in_all(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One retry layer: a blob whose every GET fails costs ``--retry`` + 1 requests, not the
    product of the registry client's, the blob reader's and the copy engine's retries."""
    from clusterimage import retry
    from clusterimage.copy import copy_image
    from clusterimage.oci.manifest import ImageManifest
    from clusterimage.oci.reference import Reference
    from clusterimage.transports import docker, parse
    from clusterimage.transports.base import Context

    fake = FakeRegistry()
    config = fake.add_blob("app", b"{}")
    layer = fake.add_blob("app", os.urandom(1000))
    manifest = ImageManifest.build(
        Descriptor(mt.OCI_CONFIG, Digest.parse(config), 2),
        [Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(layer), 1000)],
    )
    fake.add_manifest("app", manifest.raw, manifest.media_type, "v1")

    def dead_layer(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and layer in request.url.path:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return None

    fake.faults.append(dead_layer)
    monkeypatch.setattr(retry.RetryPolicy, "delay", lambda self, attempt, after=None: 0.0)
    monkeypatch.setattr(
        docker, "client_options", lambda ctx, end: ClientOptions(transport=fake.transport())
    )
    source = docker.DockerReference(Reference.parse(f"{HOST}/app:v1"))
    with pytest.raises(TransferInterrupted, match="HTTP 503"):
        copy_image(source, parse(f"oci:{tmp_path / 'out'}:v1"), Context(retries=3))
    assert fake.count("GET", layer) == 4


def _upload(uploader: BlobUploader, data: bytes, offset: int = 0) -> None:
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(data)), len(data))
    session = uploader.start()
    uploader.upload(session, desc, io.BytesIO(data[offset:]))


def test_whole_blob_upload_is_one_streamed_put() -> None:
    fake = FakeRegistry()
    data = os.urandom(3 * MIN_CHUNK)
    _upload(BlobUploader(Repository(client(fake), "app", push=True)), data)
    assert fake.blobs[sha256(data)] == data
    assert fake.count("POST") == 1 and fake.count("PUT") == 1 and fake.count("PATCH") == 0
    put = next(r for r in fake.requests if r.method == "PUT")
    assert put.headers["Content-Length"] == str(len(data))
    assert put.url.params["digest"] == sha256(data)
    assert put.url.params["_state"].startswith("secret-state-")  # the session's query is kept


def test_413_switches_to_chunks_honouring_min_length() -> None:
    fake = FakeRegistry(reject_monolithic=True, chunk_min_length=MIN_CHUNK + MIN_CHUNK // 2)
    uploader = BlobUploader(Repository(client(fake), "app", push=True), chunk_size=MIN_CHUNK)
    data = os.urandom(4 * MIN_CHUNK)
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(data)), len(data))
    session = uploader.start()
    with pytest.raises(TransferInterrupted, match="413"):
        uploader.upload(session, desc, io.BytesIO(data))
    status = uploader.status(session)
    assert status is not None and status.offset == 0
    uploader.upload(status, desc, io.BytesIO(data))
    assert fake.blobs[sha256(data)] == data
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.headers["Content-Range"] for r in patches] == [
        f"0-{3 * MIN_CHUNK // 2 - 1}",
        f"{3 * MIN_CHUNK // 2}-{3 * MIN_CHUNK - 1}",
        f"{3 * MIN_CHUNK}-{4 * MIN_CHUNK - 1}",
    ]
    final = [r for r in fake.requests if r.method == "PUT"][-1]
    assert final.content == b"" and final.url.params["digest"] == sha256(data)


def _upload_with_second_patch_answered(
    answer: httpx.Response,
) -> tuple[
    FakeRegistry,
    BlobUploader,
    UploadSession,
    Descriptor,
    bytes,
    pytest.ExceptionInfo[TransferInterrupted],
]:
    """A 3-chunk upload whose second PATCH gets ``answer``; what it left behind."""
    fake = FakeRegistry(reject_monolithic=True)
    uploader = BlobUploader(Repository(client(fake), "app", push=True), chunk_size=MIN_CHUNK)
    uploader._monolithic = False
    data = os.urandom(3 * MIN_CHUNK)
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(data)), len(data))
    patches = 0

    def second_patch(request: httpx.Request) -> httpx.Response | None:
        nonlocal patches
        if request.method == "PATCH":
            patches += 1
            if patches == 2:
                request.read()
                return answer
        return None

    fake.faults.append(second_patch)
    session = uploader.start()
    with pytest.raises(TransferInterrupted) as info:
        uploader.upload(session, desc, io.BytesIO(data))
    return fake, uploader, session, desc, data, info


def test_interrupted_chunked_upload_resumes_where_the_registry_stopped() -> None:
    answer = httpx.Response(503, headers={"Retry-After": "1"})
    fake, uploader, session, desc, data, info = _upload_with_second_patch_answered(answer)
    assert info.value.retry_after == 1.0
    status = uploader.status(session)
    assert status is not None and status.offset == MIN_CHUNK
    uploader.upload(status, desc, io.BytesIO(data[MIN_CHUNK:]))
    assert fake.blobs[sha256(data)] == data


@pytest.mark.parametrize(("status", "resumable"), [(416, True), (400, False), (404, False)])
def test_a_416_on_a_chunk_resumes_the_session_other_refusals_end_it(
    status: int, resumable: bool
) -> None:
    answer = httpx.Response(status)
    fake, uploader, session, desc, data, info = _upload_with_second_patch_answered(answer)
    assert f"HTTP {status}" in str(info.value)
    assert session.broken is not resumable
    if resumable:  # the registry says where it stands, and the upload goes on from there
        status_now = uploader.status(session)
        assert status_now is not None and status_now.offset == MIN_CHUNK
        uploader.upload(status_now, desc, io.BytesIO(data[MIN_CHUNK:]))
        assert fake.blobs[sha256(data)] == data


def _uploader_told(location: str) -> BlobUploader:
    """An uploader whose registry answers the upload's POST with ``Location: location``."""
    fake = FakeRegistry()

    def opened(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": location})
        return None

    fake.faults.append(opened)
    return BlobUploader(Repository(client(fake), "app", push=True))


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("sess-1?_state=x", f"https://{HOST}/v2/app/blobs/uploads/sess-1?_state=x"),
        ("/v2/app/blobs/uploads/sess-2", f"https://{HOST}/v2/app/blobs/uploads/sess-2"),
        ("https://uploads.example/s3?sig=y", "https://uploads.example/s3?sig=y"),
    ],
)
def test_a_relative_upload_location_resolves_against_the_request_url(
    location: str, expected: str
) -> None:
    assert _uploader_told(location).start().location == expected


@pytest.mark.parametrize("location", ["http://[::1", "\x00bad", "ftp://files.example/x"])
def test_an_upload_location_that_is_no_url_is_a_one_line_registry_error(location: str) -> None:
    with pytest.raises(RegistryError, match="a Location that is not") as caught:
        _uploader_told(location).start()
    assert "\n" not in str(caught.value)


def test_registry_digest_refusal_is_a_digest_mismatch() -> None:
    fake = FakeRegistry()
    uploader = BlobUploader(Repository(client(fake), "app", push=True))
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(b"other")), 5)
    with pytest.raises(DigestMismatch, match="DIGEST_INVALID"):
        uploader.upload(uploader.start(), desc, io.BytesIO(b"bytes"))
    short = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(b"bytes!")), 6)
    with pytest.raises(DigestMismatch, match="source ended 1 bytes short"):
        uploader.upload(uploader.start(), short, io.BytesIO(b"bytes"))


def test_cross_repository_mount() -> None:
    fake = FakeRegistry(auth="bearer")
    digest = Digest.parse(fake.add_blob("base", b"shared"))
    repo = Repository(client(fake, creds="alice:s3cret-pass"), "app", push=True)
    result = repo.mount_blob(digest, "base")
    assert result.mounted and digest.__str__() in fake.repo_blobs["app"]
    token = [r for r in fake.requests if r.url.path == "/token"][-1]
    assert sorted(token.url.params.get_list("scope")) == [
        "repository:app:pull,push",
        "repository:base:pull",
    ]
    missing = repo.mount_blob(Digest.parse(sha256(b"nowhere")), "base")
    assert not missing.mounted and missing.location is not None  # an upload was opened


def test_error_messages_hide_upload_state_and_redact_urls() -> None:
    fake = FakeRegistry()
    fake.faults.append(
        lambda r: (
            httpx.Response(400, json={"errors": [{"code": "BAD", "message": "nope"}]})
            if r.method == "PUT"
            else None
        )
    )
    uploader = BlobUploader(Repository(client(fake), "app", push=True))
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(b"x")), 1)
    with pytest.raises(TransferInterrupted) as info:
        uploader.upload(uploader.start(), desc, io.BytesIO(b"x"))
    assert "secret-state" not in str(info.value) and "BAD: nope" in str(info.value)
    assert redact_url("https://h/v2/x?_state=abc&digest=d") == "https://h/v2/x"


def test_plain_http_only_for_loopback_or_tls_verify_false() -> None:
    remote = Registry("registry.example.com", ClientOptions())
    assert remote._candidate_bases() == ["https://registry.example.com"]
    local = Registry("127.0.0.1:5000", ClientOptions())
    assert local._candidate_bases() == ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
    from clusterimage.remote.tls import TlsSettings

    insecure = Registry("registry.example.com", ClientOptions(tls=TlsSettings(verify=False)))
    assert insecure._candidate_bases()[-1] == "http://registry.example.com"
    strict = Registry("localhost:5000", ClientOptions(tls=TlsSettings(verify=True)))
    assert strict._candidate_bases() == ["https://localhost:5000"]
    docker_hub = Registry("docker.io", ClientOptions())
    assert docker_hub._candidate_bases() == ["https://registry-1.docker.io"]


def test_credentials_go_to_the_registry_only_never_to_a_location_elsewhere() -> None:
    fake = FakeRegistry(auth="basic")
    registry = client(fake, creds="alice:s3cret-pass")
    scopes = Repository(registry, "app").scopes
    registry.request("GET", "/v2/app/tags/list", scopes=scopes, what="tags", ok=(200, 404))
    assert fake.requests[-1].headers["Authorization"].startswith("Basic ")
    # An upload Location (or any URL the registry hands out) on another host gets no secrets.
    registry.request(
        "GET", "https://storage.example/upload/1", scopes=scopes, what="upload", ok=(404,)
    )
    assert fake.requests[-1].url.host == "storage.example"
    assert "Authorization" not in fake.requests[-1].headers


def test_docker_source_names_a_missing_manifest_by_tag_or_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clusterimage.oci.reference import Reference
    from clusterimage.transports import docker
    from clusterimage.transports.base import Context

    fake = FakeRegistry()
    monkeypatch.setattr(
        docker, "client_options", lambda ctx, end: ClientOptions(transport=fake.transport())
    )
    # A tag that merely starts with "sha" is still a tag.
    source = docker.DockerSource(Reference.parse(f"{HOST}/app:sha-1"), Context())
    with pytest.raises(ImageNotFound, match=f"docker://{HOST}/app:sha-1"):
        source.get_manifest()
    digest = Digest.parse(sha256(b"nothing"))
    with pytest.raises(ImageNotFound, match=f"docker://{HOST}/app@{digest}"):
        source.get_manifest(digest)
    source.close()


def test_a_redirect_loop_is_a_one_line_registry_error() -> None:
    fake = FakeRegistry(auth="bearer")
    data = b"layer"
    digest = Digest.parse(fake.add_blob("app", data))
    loop = httpx.Response(307, headers={"Location": "https://storage.example/blob"})
    fake.faults.append(lambda r: loop if "blobs" in r.url.path or r.url.host != HOST else None)
    repo = Repository(client(fake), "app")
    desc = Descriptor(mt.OCI_LAYER_GZIP, digest, len(data))
    with pytest.raises(RegistryError, match="too many redirects"):
        repo.open_blob(desc)
    with pytest.raises(RegistryError, match="too many redirects"):
        repo.head_blob(digest)
    # The token server redirecting in circles is the same kind of error.
    fake.faults[:] = [lambda r: loop if r.url.path == "/token" or r.url.host != HOST else None]
    auth.TOKENS.clear()
    with pytest.raises(RegistryError, match="too many redirects"):
        Repository(client(fake), "other").head_blob(digest)


def test_numeric_headers_with_non_ascii_digits_are_ignored_not_a_crash() -> None:
    # httpx decodes a non-UTF-8 header as latin-1: b"\xb2" is "²", which str.isdigit() accepts
    # but int() refuses. A registry sending such junk must not crash the client.
    junk = "\u00b2".encode("latin-1")
    fake = FakeRegistry()
    digest = fake.add_blob("app", b"layer")

    def odd_headers(request: httpx.Request) -> httpx.Response | None:
        if request.method == "HEAD":
            headers = [(b"Content-Length", junk), (b"Docker-Content-Digest", digest.encode())]
            return httpx.Response(200, headers=headers)
        if request.method == "POST":
            headers = [(b"Location", b"/v2/app/blobs/uploads/x"), (b"OCI-Chunk-Min-Length", junk)]
            return httpx.Response(202, headers=headers)
        if request.method == "GET" and "/uploads/" in request.url.path:
            headers = [(b"Location", request.url.raw_path), (b"Range", b"0-" + junk)]
            return httpx.Response(204, headers=headers)
        if request.method == "GET" and "Range" in request.headers:
            headers = [(b"Content-Range", junk + b"-4/5")]
            return httpx.Response(206, headers=headers, content=b"ayer")
        return None

    fake.faults.append(odd_headers)
    repo = Repository(client(fake), "app", push=True)
    assert repo.head_blob(Digest.parse(digest)) == -1
    assert repo.head_manifest("latest") is None
    uploader = BlobUploader(repo)
    session = uploader.start()
    assert session.min_chunk == 0
    status = uploader.status(session)
    assert status is not None and status.offset == 0
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(digest), 5)
    with pytest.raises(RegistryError, match="asked for bytes from 1"):
        repo.open_blob(desc, 1)


class _Endless(httpx.SyncByteStream):
    """A body far larger than any registry API answer; counts what the client pulled."""

    def __init__(self, sent: list[int], total: int = 64 << 20) -> None:
        self._sent = sent
        self._total = total

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * (1 << 20)
        for _ in range(self._total >> 20):
            self._sent[0] += len(chunk)
            yield chunk


@pytest.mark.parametrize("where", ["ping", "token", "head-error", "tags", "upload-error"])
def test_huge_response_bodies_are_not_read_whole(where: str) -> None:
    sent = [0]
    fake = FakeRegistry(auth="bearer")
    digest = Digest.parse(fake.add_blob("app", b"layer"))
    fake.add_manifest("app", MANIFEST, mt.OCI_MANIFEST, "v1")

    def flood(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if where == "ping" and path == "/v2/":
            challenge = {"WWW-Authenticate": f'Bearer realm="https://{HOST}/token"'}
            return httpx.Response(401, headers=challenge, stream=_Endless(sent))
        if where == "token" and path == "/token":
            return httpx.Response(200, stream=_Endless(sent))
        if where == "head-error" and request.method == "HEAD":
            return httpx.Response(400, stream=_Endless(sent))
        if where == "tags" and path.endswith("/tags/list"):
            return httpx.Response(200, stream=_Endless(sent))
        if where == "upload-error" and request.method == "PUT":
            request.read()
            return httpx.Response(400, stream=_Endless(sent))
        return None

    fake.faults.append(flood)
    repo = Repository(client(fake, retries=0), "app", push=True)
    with pytest.raises((RegistryError, TransferInterrupted)):
        if where == "tags":
            list(repo.tags())
        elif where == "upload-error":
            uploader = BlobUploader(repo)
            desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(sha256(b"x")), 1)
            uploader.upload(uploader.start(), desc, io.BytesIO(b"x"))
        else:
            repo.head_blob(digest)
            if where == "ping":
                raise RegistryError("the ping went through")  # only its body is at stake
    assert sent[0] <= 20 << 20  # of the 64 MiB offered (a tags page may hold 16 MiB)


def test_a_compressed_api_body_is_bounded_once_decoded() -> None:
    # 64 MiB of zeros gzip to ~64 KiB: well under the wire limit, far over it once decoded.
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    assert len(bomb) < 1 << 20
    fake = FakeRegistry()
    fake.add_manifest("app", MANIFEST, mt.OCI_MANIFEST, "v1")
    asked: list[str | None] = []

    def flood(request: httpx.Request) -> httpx.Response | None:
        asked.append(request.headers.get("Accept-Encoding"))
        if request.url.path.endswith("/tags/list"):
            return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb)
        return None

    fake.faults.append(flood)
    repo = Repository(client(fake, retries=0), "app")
    with pytest.raises(RegistryError, match="larger than"):
        list(repo.tags())
    assert asked and set(asked) == {"identity"}  # we never ask for compressed answers


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_redirect_body_is_capped_and_never_decoded(encoding: str | None) -> None:
    # httpx reads a redirect's body whole before following it; nobody needs it.
    sent = [0]
    fake = FakeRegistry()
    data = b"layer"
    digest = Digest.parse(fake.add_blob("app", data))
    headers = {"Location": "https://storage.example/blob"}
    if encoding:
        headers["Content-Encoding"] = encoding  # a bomb would expand: it must not be decoded

    def redirect(request: httpx.Request) -> httpx.Response | None:
        if "blobs" in request.url.path and request.url.host == HOST:
            return httpx.Response(307, headers=headers, stream=_Endless(sent))
        return None

    fake.faults.append(redirect)
    repo = Repository(client(fake, retries=0), "app")
    with pytest.raises(RegistryError, match="redirect: response larger than"):
        repo.open_blob(Descriptor(mt.OCI_LAYER_GZIP, digest, len(data)))
    assert sent[0] <= 2 << 20  # of the 64 MiB offered

    # A redirect with a small body is followed as before.
    sent[0] = 0
    fake.faults[:] = [
        lambda r: (
            # stream=, not content=: httpx reads (and decodes) content= at construction.
            httpx.Response(307, headers=headers, stream=httpx.ByteStream(b"moved"))
            if "blobs" in r.url.path and r.url.host == HOST
            else (
                httpx.Response(200, stream=httpx.ByteStream(data))
                if r.url.host == "storage.example"
                else None
            )
        )
    ]
    with repo.open_blob(Descriptor(mt.OCI_LAYER_GZIP, digest, len(data))) as blob:
        assert blob.read() == data
