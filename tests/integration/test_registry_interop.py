"""Round trips with other clients against the real registry: what clusterimage pushes, skopeo,
docker and oras pull; what skopeo, buildah and oras push, clusterimage pulls. Same digests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import oras.client
import pytest

from tests.conftest import require_root, require_tool, run_cli, run_tool
from tests.fixtures.dockerd import DockerDaemon
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    MiB,
    isolated_auth,  # noqa: F401 - fixture
    load,
    one_line_error,
    sha256,
    skopeo,
    skopeo_digest,
    write_image,
    write_multiarch,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]


def _blob_bytes(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def test_push_then_skopeo_pulls_the_same_bytes(registry: Registry, tmp_path: Path) -> None:
    image = write_image(tmp_path / "src", [2 * MiB, 300_000])
    name = f"{registry.host}/interop/app:v1"
    assert load(image, name) == image.manifest_digest
    pushed = run_cli("push", name, "--digestfile", tmp_path / "digest")
    assert pushed.stdout.strip() == image.manifest_digest
    assert (tmp_path / "digest").read_text() == image.manifest_digest
    assert skopeo_digest(f"docker://{name}", "--tls-verify=false") == image.manifest_digest
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}")
    assert raw.encode() == image.manifest_bytes
    out = tmp_path / "skopeo-out"
    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{name}", f"oci:{out}:got"
    )
    for digest in image.blob_digests:
        assert _blob_bytes(out, digest) == _blob_bytes(image.layout, digest)


def test_push_then_docker_pulls(registry: Registry, tmp_path: Path, dockerd: DockerDaemon) -> None:
    # docker needs a real rootfs tar: the layer holds one file, so `docker create` + `cp` work.
    image = write_image(tmp_path / "src", [100_000], seed=3)
    name = f"{registry.host}/interop/docker:v1"
    load(image, name)
    run_cli("push", name, "--compression-format", "gzip")
    gz_digest = skopeo_digest(f"docker://{name}", "--tls-verify=false")
    dockerd.cli("pull", name, timeout=120)
    inspect = json.loads(dockerd.cli("image", "inspect", name).stdout)[0]
    assert f"{registry.host}/interop/docker@{gz_digest}" in inspect["RepoDigests"]
    assert inspect["RootFS"]["Layers"] == list(image.layer_digests)  # diff_ids: tar digests
    dockerd.cli("rmi", name)


def test_push_then_oras_pulls_and_oras_push_then_pull(registry: Registry, tmp_path: Path) -> None:
    image = write_image(tmp_path / "src", [50_000], seed=4)
    name = f"{registry.host}/interop/oras:v1"
    load(image, name)
    run_cli("push", name)
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    files = client.pull(target=name, outdir=str(tmp_path / "oras-out"))
    got = {sha256(Path(f).read_bytes()) for f in files}
    assert got == set(image.layer_digests)

    payload = tmp_path / "artifact.txt"
    payload.write_bytes(os.urandom(10_000))
    cwd = Path.cwd()
    os.chdir(tmp_path)  # oras names the layer after the path it was given
    try:
        client.push(target=f"{registry.host}/interop/artifact:v1", files=["artifact.txt"])
    finally:
        os.chdir(cwd)
    out = tmp_path / "ci-out"
    run_cli("copy", f"docker://{registry.host}/interop/artifact:v1", f"oci:{out}:a")
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads(_blob_bytes(out, index["manifests"][0]["digest"]))
    [layer] = manifest["layers"]
    assert layer["annotations"]["org.opencontainers.image.title"] == "artifact.txt"
    assert _blob_bytes(out, layer["digest"]) == payload.read_bytes()


@pytest.mark.parametrize("fmt", ["v2s2", "oci"])
def test_skopeo_push_then_pull(registry: Registry, tmp_path: Path, fmt: str) -> None:
    image = write_image(tmp_path / "src", [1 * MiB], seed=5)
    name = f"{registry.host}/interop/skopeo-{fmt}:v1"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"--format={fmt}",
        image.transport_ref,
        f"docker://{name}",
    )
    remote = skopeo_digest(f"docker://{name}", "--tls-verify=false")
    pulled = run_cli("pull", name, "-q").stdout.strip()
    assert pulled == remote
    manifest = json.loads(run_cli("inspect", "-t", "manifest", name).stdout)
    wanted = {
        "v2s2": "application/vnd.docker.distribution.manifest.v2+json",
        "oci": "application/vnd.oci.image.manifest.v1+json",
    }[fmt]
    assert manifest["mediaType"] == wanted
    # And back out again: our push of what skopeo wrote keeps every byte.
    run_cli("push", name, f"{registry.host}/interop/again-{fmt}:v1")
    again = skopeo_digest(f"docker://{registry.host}/interop/again-{fmt}:v1", "--tls-verify=false")
    assert again == remote


def test_buildah_push_then_pull(registry: Registry, tmp_path: Path) -> None:
    require_root("buildah with its own storage root")
    buildah = require_tool("buildah")
    root, runroot = tmp_path / "buildah-root", tmp_path / "buildah-run"
    base = [buildah, "--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs"]
    ctr = run_tool([*base, "from", "scratch"]).stdout.strip()
    (tmp_path / "hello.txt").write_text("hello from buildah\n")
    run_tool([*base, "copy", ctr, str(tmp_path / "hello.txt"), "/hello.txt"])
    run_tool([*base, "config", "--label", "built.by=buildah", ctr])
    run_tool([*base, "commit", ctr, "localhost/built:v1"])
    name = f"{registry.host}/interop/buildah:v1"
    digestfile = tmp_path / "buildah.digest"
    run_tool(
        [
            *base,
            "push",
            "--tls-verify=false",
            "--digestfile",
            str(digestfile),
            "localhost/built:v1",
            f"docker://{name}",
        ]
    )
    pushed = digestfile.read_text().strip()
    assert run_cli("pull", name, "-q").stdout.strip() == pushed
    config = json.loads(run_cli("inspect", "-t", "config", name).stdout)
    assert config["config"]["Labels"]["built.by"] == "buildah"


def test_multiarch_index_with_platform_and_all(registry: Registry, tmp_path: Path) -> None:
    multi = write_multiarch(tmp_path / "multi")
    name = f"{registry.host}/interop/multi:v1"
    copied = run_cli("copy", "--all", multi.transport_ref, f"docker://{name}")
    assert copied.stdout.strip() == multi.index_digest
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}")
    assert hashlib.sha256(raw.encode()).hexdigest() == multi.index_digest.split(":")[1]
    arm = run_cli("pull", name, "--platform", "linux/arm64", "-q", "--name", "local/arm:v1")
    assert arm.stdout.strip() == multi.images["arm64"].manifest_digest
    every = run_cli("pull", name, "--all", "-q", "--name", "local/all:v1")
    assert every.stdout.strip() == multi.index_digest
    # Only one platform was copied for local/arm:v1: the amd64 layer arrived with --all only.
    out = tmp_path / "out"
    run_cli("copy", "--platform", "linux/amd64", f"docker://{name}", f"oci:{out}:amd")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == multi.images["amd64"].manifest_digest
    missing = run_cli("pull", name, "--platform", "linux/s390x", check=False)
    assert missing.returncode == 1
    line = one_line_error(missing.stderr)
    assert "linux/amd64" in line and "linux/arm64" in line and "--platform" in line
