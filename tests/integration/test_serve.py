"""``registry serve``: the embedded read-only registry, against skopeo, docker and stock
docker-registry serving the same folder; under load, with hostile clients, and with auth."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, free_port, require_tool, run_cli, run_tool
from tests.fixtures.dockerd import DockerDaemon
from tests.fixtures.oci_layout import make_oci_layout
from tests.fixtures.registry import Registry
from tests.helpers.images import make_index_layout

pytestmark = pytest.mark.integration


@dataclass
class Served:
    host: str
    process: subprocess.Popen[bytes]
    images: dict[str, str]  # name:tag -> digest


def _fill(root: Path, tmp_path: Path) -> dict[str, str]:
    images = {}
    shared = {"shared.bin": b"s" * (512 << 10)}
    for n in range(4):
        image = make_oci_layout(
            tmp_path / f"src{n}", ref="v1", layers=[shared, {f"{n}.txt": f"{n}\n".encode()}]
        )
        name = f"team/app{n}:v1"
        images[name] = run_cli(
            "copy", image.transport_ref, f"registry-dir:{root}:{name}"
        ).stdout.strip()
    multi = make_index_layout(tmp_path / "multi", ref="v2")
    images["team/multi:v2"] = run_cli(
        "copy", "--all", multi.transport_ref, f"registry-dir:{root}:team/multi:v2"
    ).stdout.strip()
    return images


def _start(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    host = f"127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "clusterimage", "registry", "serve", *args, "--address", host],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, host
        except OSError:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(stderr) from None
            time.sleep(0.05)
    raise AssertionError("registry serve did not start")


@pytest.fixture
def served(tmp_path: Path, ci_home: Path) -> Iterator[Served]:
    root = tmp_path / "cache"
    images = _fill(root, tmp_path)
    process, host = _start([str(root)])
    yield Served(host, process, images)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0  # SIGTERM stops it cleanly


# What skopeo and docker send: every manifest type (distribution serves an OCI manifest only to
# a client that names OCI types).
ACCEPT = {
    "Accept": ", ".join(
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
    )
}


def _digest(raw: str) -> str:
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def _get(host: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(host, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_skopeo_and_docker_pull_every_image_with_its_digest(
    served: Served, tmp_path: Path, dockerd: DockerDaemon, registry_factory: Callable[..., Registry]
) -> None:
    skopeo = require_tool("skopeo")
    for name, digest in served.images.items():
        raw = run_tool(
            [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{served.host}/{name}"]
        ).stdout
        assert _digest(raw) == digest, name
    docker = [dockerd.docker, "-H", dockerd.host]
    run_tool([*docker, "pull", "-q", f"{served.host}/team/app0:v1"])
    # Stock docker-registry on the same folder gives the same answers.
    stock = registry_factory(
        config={"storage": {"filesystem": {"rootdirectory": str(tmp_path / "cache")}}}
    )
    for name in served.images:
        path = f"/v2/{name.replace(':', '/manifests/')}"
        ours, theirs = _get(served.host, path, ACCEPT), _get(stock.host, path, ACCEPT)
        assert ours[0] == theirs[0] == 200 and ours[2] == theirs[2]
        assert ours[1]["Docker-Content-Digest"] == theirs[1]["Docker-Content-Digest"]
    assert json.loads(_get(served.host, "/v2/_catalog")[2]) == json.loads(
        _get(stock.host, "/v2/_catalog")[2]
    )


def test_sixteen_concurrent_pulls_three_rounds_all_right(served: Served, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")

    def pull(job: tuple[int, str]) -> str:
        number, name = job
        out = tmp_path / f"pull-{number}"
        result = subprocess.run(
            [skopeo, "copy", "--quiet", "--all", "--src-tls-verify=false",
             f"docker://{served.host}/{name}", f"oci:{out}:x"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        index = json.loads((out / "index.json").read_text())
        return str(index["manifests"][0]["digest"])

    names = list(served.images)
    for round_number in range(3):
        jobs = [(round_number * 16 + i, names[i % len(names)]) for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            digests = list(pool.map(pull, jobs))
        assert digests == [served.images[name] for _, name in jobs]


def test_a_client_that_hangs_up_mid_blob_or_asks_a_bad_range_disturbs_no_one(
    served: Served,
) -> None:
    manifest = json.loads(_get(served.host, "/v2/team/app0/manifests/v1")[2])
    layer = manifest["layers"][0]
    path = f"/v2/team/app0/blobs/{layer['digest']}"
    for _ in range(5):  # ask for the whole blob, read a little, hang up
        connection = socket.create_connection(served.host.split(":"), timeout=5)  # type: ignore[arg-type]
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        connection.recv(100)
        connection.close()
    status, headers, _ = _get(served.host, path, {"Range": "bytes=999999999-"})
    assert status == 416 and headers["Content-Range"].startswith("bytes */")
    status, _, _ = _get(served.host, path, {"Range": "lines=1-2"})
    assert status == 416
    status, headers, body = _get(served.host, path, {"Range": "bytes=10-19"})
    assert status == 206 and len(body) == 10 and headers["Content-Range"].startswith("bytes 10-19/")
    status, _, body = _get(served.host, path)
    assert status == 200 and _digest_bytes(body) == layer["digest"]
    assert served.process.poll() is None


def _digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../../etc/passwd/manifests/latest",
        "/v2/%2e%2e/%2e%2e/etc/manifests/latest",
        "/v2/team/app0/blobs/..%2f..%2f..%2fetc%2fpasswd",
        "/v2/team/%2e%2e/app0/manifests/v1",
        "/v2/team/app0/manifests/..%2f..%2fetc",
    ],
)
def test_traversal_in_names_or_digests_is_a_404(served: Served, path: str) -> None:
    status, _, body = _get(served.host, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body


def test_writes_are_refused(served: Served) -> None:
    connection = http.client.HTTPConnection(served.host, timeout=5)
    connection.request("POST", "/v2/team/app0/blobs/uploads/")
    response = connection.getresponse()
    assert response.status == 405
    assert json.loads(response.read())["errors"][0]["code"] == "UNSUPPORTED"


def test_pagination_of_catalog_and_tags(served: Served) -> None:
    status, headers, body = _get(served.host, "/v2/_catalog?n=2")
    assert status == 200 and json.loads(body)["repositories"] == ["team/app0", "team/app1"]
    assert headers["Link"] == '</v2/_catalog?n=2&last=team/app1>; rel="next"'
    _, _, body = _get(served.host, "/v2/_catalog?n=2&last=team/app1")
    assert json.loads(body)["repositories"] == ["team/app2", "team/app3"]
    status, _, body = _get(served.host, "/v2/nothing/here/tags/list")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN"


def test_htpasswd_asks_for_credentials_and_takes_the_right_ones(
    tmp_path: Path, ci_home: Path
) -> None:
    htpasswd_tool = require_tool("htpasswd")
    root = tmp_path / "cache"
    images = _fill(root, tmp_path)
    users = tmp_path / "htpasswd"
    run_tool([htpasswd_tool, "-Bbc", str(users), "ci", "s3cret"])
    process, host = _start([str(root), "--htpasswd", str(users)])
    try:
        status, headers, _ = _get(host, "/v2/")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        good = "Basic " + base64.b64encode(b"ci:s3cret").decode()
        bad = "Basic " + base64.b64encode(b"ci:wrong").decode()
        assert _get(host, "/v2/", {"Authorization": bad})[0] == 401
        assert _get(host, "/v2/", {"Authorization": good})[0] == 200
        skopeo = require_tool("skopeo")
        raw = run_tool([skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", "ci:s3cret",
                        f"docker://{host}/team/app1:v1"]).stdout  # fmt: skip
        assert _digest(raw) == images["team/app1:v1"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_an_image_in_the_store_is_served_without_unpacking(
    tmp_path: Path, ci_home: Path, image_mirror: object
) -> None:
    context = REPO_ROOT / "Kubefile.examples" / "nginx-manifests"
    built = json.loads(run_cli("build", context, "-t", "localhost/served:v1", "--json").stdout)
    process, host = _start(["localhost/served:v1"])
    try:
        skopeo = require_tool("skopeo")
        for name, digest in built["images"].items():
            raw = run_tool(
                [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{name}"]
            ).stdout
            assert _digest(raw) == digest
        assert not any(p.name == "rootfs" for p in ci_home.rglob("rootfs"))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def _uploads(registry: Registry) -> int:
    log = registry.log_path.read_text(errors="replace")
    return sum(1 for line in log.splitlines() if '"PUT /v2/' in line or '"POST /v2/' in line)


@pytest.mark.parametrize("kind", ["folder", "image"])
def test_sync_copies_tags_and_digest_only_manifests_and_the_second_run_uploads_nothing(
    kind: str,
    tmp_path: Path,
    ci_home: Path,
    registry_factory: Callable[..., Registry],
    image_mirror: object,
) -> None:
    skopeo = require_tool("skopeo")
    root = tmp_path / "cache"
    if kind == "folder":
        images = _fill(root, tmp_path)
        loose = make_oci_layout(tmp_path / "loose", ref="x", layers=[{"l.txt": b"loose\n"}])
        digest = run_cli("copy", loose.transport_ref, f"registry-dir:{root}:team/app0").stdout
        images[f"team/app0@{digest.strip()}"] = digest.strip()
        source = str(root)
    else:
        context = REPO_ROOT / "Kubefile.examples" / "nginx-manifests"
        built = json.loads(run_cli("build", context, "-t", "localhost/sync:v1", "--json").stdout)
        images = built["images"]
        source = "localhost/sync:v1"
    target = registry_factory()
    first = json.loads(run_cli("registry", "sync", source, target.host, "--json").stdout)
    assert sorted(first["copied"]) == sorted(images) and first["skipped"] == []
    for name, digest in images.items():
        raw = run_tool([skopeo, "inspect", "--raw", "--tls-verify=false",
                        f"docker://{target.host}/{name}"]).stdout  # fmt: skip
        assert _digest(raw) == digest, name
    mark = _uploads(target)
    second = json.loads(run_cli("registry", "sync", source, target.host, "--json").stdout)
    assert second["copied"] == [] and sorted(second["skipped"]) == sorted(images)
    assert _uploads(target) == mark  # nothing uploaded the second time


def test_registry_copy_puts_one_image_under_its_path_and_create_lists_several_in_order(
    tmp_path: Path, ci_home: Path, registry_factory: Callable[..., Registry], image_mirror: object
) -> None:
    image = make_oci_layout(tmp_path / "src", ref="v1", config={"Cmd": ["echo first"]})
    run_cli("pull", image.transport_ref, "--name", "localhost/team/first:v1", "-q")
    other = make_oci_layout(tmp_path / "other", ref="v1", config={"Cmd": ["echo second"]})
    run_cli("pull", other.transport_ref, "--name", "localhost/team/second:v1", "-q")
    target = registry_factory()
    run_cli("registry", "copy", "store:localhost/team/first:v1", f"{target.host}/mirror", "-q")
    skopeo = require_tool("skopeo")
    raw = run_tool([skopeo, "inspect", "--raw", "--tls-verify=false",
                    f"docker://{target.host}/mirror/team/first:v1"]).stdout  # fmt: skip
    assert _digest(raw) == image.manifest.digest
    # A short name of the store goes under the name it is stored as (localhost/solo:v1 -> solo),
    # not Docker's reading of it (library/solo), found by name or by its image ID.
    run_cli("tag", "localhost/team/first:v1", "solo:v1")
    run_cli("registry", "copy", "store:solo:v1", f"{target.host}/short", "-q")
    image_id = json.loads(run_cli("inspect", "solo:v1").stdout)["Id"]
    run_cli("rmi", "localhost/team/first:v1")  # the ID now names one image with one name
    run_cli("registry", "copy", f"store:{image_id[:12]}", f"{target.host}/byid", "-q")
    for path in ("short/solo:v1", "byid/solo:v1"):
        raw = run_tool([skopeo, "inspect", "--raw", "--tls-verify=false",
                        f"docker://{target.host}/{path}"]).stdout  # fmt: skip
        assert _digest(raw) == image.manifest.digest, path
    run_cli("tag", "solo:v1", "localhost/team/first:v1")
    lines = run_cli("create", "localhost/team/first:v1", "localhost/team/second:v1").stdout
    first, second = lines.strip().splitlines()
    assert first.endswith("echo first") and second.endswith("echo second")
    listed = json.loads(
        run_cli("create", "--json", "localhost/team/first:v1", "localhost/team/second:v1").stdout
    )
    assert [entry["image"] for entry in listed] == [
        "localhost/team/first:v1",
        "localhost/team/second:v1",
    ]


def test_the_distribution_engine_serves_the_folder_with_the_template_config(
    tmp_path: Path, ci_home: Path
) -> None:
    require_tool("docker-registry")
    skopeo = require_tool("skopeo")
    root = tmp_path / "cache"
    images = _fill(root, tmp_path)
    process, host = _start([str(root), "--engine", "distribution"])
    try:
        for name, digest in images.items():
            raw = run_tool([skopeo, "inspect", "--raw", "--tls-verify=false",
                            f"docker://{host}/{name}"]).stdout  # fmt: skip
            assert _digest(raw) == digest
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    config = (ci_home / "tmp" / "registry-serve" / "registry-config.yml").read_text()
    assert str(root.resolve()) in config and "auth" not in config and "prometheus" in config
