"""``unpack`` as the cluster runtime does it, end to end on loopback: a rootfs image and two
applications, each carrying images in registry/ (sharing blobs, one tag in two of them),
unpacked with ``--layout sealos``; the one merged registry served by ``registry serve`` and by
stock docker-registry; skopeo and docker pull every image; ``create`` gives the commands in
order. And layers that try to leave the folder, and an unpack that is killed."""

from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require_tool, run_cli, run_tool
from tests.fixtures.dockerd import DockerDaemon
from tests.fixtures.mirror import Mirror
from tests.fixtures.oci_layout import make_oci_layout
from tests.fixtures.registry import Registry
from tests.helpers.images import write_blob
from tests.integration.test_serve import ACCEPT, _digest, _get, _start

pytestmark = pytest.mark.integration

BUSYBOX = "docker.io/library/busybox:1.36.1"
NGINX = "docker.io/library/nginx:1.25.3-alpine"


def _context(root: Path, kubefile: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "Kubefile").write_text(kubefile)
    return root


def _build_three(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    rootfs = _context(
        tmp_path / "rootfs",
        'FROM scratch\nLABEL sealos.io.type="rootfs"\nCOPY . .\nCMD ["bash init.sh"]\n',
        {"init.sh": "echo init\n", "manifests/base.yaml": f"image: {BUSYBOX}\n"},
    )
    app1 = _context(
        tmp_path / "app1",
        'FROM scratch\nCOPY . .\nCMD ["kubectl apply -f manifests/"]\n',
        {"manifests/app.yaml": f"a:\n  image: {NGINX}\nb:\n  image: {BUSYBOX}\n"},
    )
    # app2 carries busybox:1.36.1 too, from an archive: another digest under the same tag.
    other = make_oci_layout(tmp_path / "other", ref="v1", layers=[{"other": b"other busybox\n"}])
    app2 = _context(
        tmp_path / "app2",
        'FROM scratch\nCOPY . .\nCMD ["helm install app2 charts/"]\n',
        {"images/skopeo/tar.txt": "oci-archive:busybox.tar@library/busybox:1.36.1\n"},
    )
    run_cli("copy", other.transport_ref, f"oci-archive:{app2}/images/skopeo/busybox.tar")
    names = ["localhost/e2e/rootfs:v1", "localhost/e2e/app1:v1", "localhost/e2e/app2:v1"]
    embedded: dict[str, str] = {}
    for context, name in zip((rootfs, app1, app2), names, strict=True):
        built = json.loads(run_cli("build", context, "-t", name, "--json").stdout)
        embedded.update(built["images"])  # a later image's tag wins, as in the merged cache
    return names, embedded


def test_three_images_unpacked_as_sealos_lays_them_out_serve_every_image(
    tmp_path: Path,
    ci_home: Path,
    image_mirror: Mirror,
    dockerd: DockerDaemon,
    registry_factory: Callable[..., Registry],
) -> None:
    skopeo = require_tool("skopeo")
    names, embedded = _build_three(tmp_path)
    target = tmp_path / "cluster"
    result = run_cli("unpack", "--layout", "sealos", *names, target, "--json")
    unpacked = json.loads(result.stdout)
    assert [i["root"] for i in unpacked["images"]] == [
        "rootfs",
        "applications/app1/workdir",
        "applications/app2/workdir",
    ]
    assert (target / "rootfs" / "init.sh").is_file()
    assert (target / "applications/app1/workdir/manifests/app.yaml").is_file()
    assert not (target / "applications/app1/workdir/registry").exists()  # merged, not copied
    (warning,) = unpacked["warnings"]
    assert "library/busybox:1.36.1" in warning and "localhost/e2e/app2:v1's wins" in warning

    registry = target / "rootfs" / "registry"
    process, host = _start([str(registry)])
    stock = registry_factory(config={"storage": {"filesystem": {"rootdirectory": str(registry)}}})
    try:
        for name, digest in embedded.items():
            raw = run_tool([skopeo, "inspect", "--raw", "--tls-verify=false",
                            f"docker://{host}/{name}"]).stdout  # fmt: skip
            assert _digest(raw) == digest, name
            path = f"/v2/{name.replace(':', '/manifests/')}"
            assert _get(host, path, ACCEPT)[2] == _get(stock.host, path, ACCEPT)[2]
        docker = [dockerd.docker, "-H", dockerd.host]
        run_tool([*docker, "pull", "-q", f"{host}/library/nginx:1.25.3-alpine"])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    lines = run_cli("create", *names).stdout.strip().splitlines()
    assert [line.rsplit("&& ", 1)[-1] for line in lines] == [
        "bash init.sh",
        "kubectl apply -f manifests/",
        "helm install app2 charts/",
    ]
    # Again over the same folder: no blob written again; only the tag link the two images
    # disagree on flips back and forth, as the replay says.
    again = json.loads(run_cli("unpack", "--layout", "sealos", *names, target, "--json").stdout)
    assert sum(i["bytes"] for i in again["images"]) < 1000
    assert sum(i["kept"] for i in again["images"]) > 20


def _hostile_image(tmp_path: Path, members: list[tarfile.TarInfo], name: str) -> str:
    """An image whose one layer is the tar ``members`` make, stored as ``name``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    layout = tmp_path / "hostile"
    image = make_oci_layout(layout, ref="v1")
    data = buffer.getvalue()
    layer = write_blob(layout, data)
    manifest = json.loads((layout / "blobs/sha256" / image.manifest.digest[7:]).read_bytes())
    config = json.loads((layout / "blobs/sha256" / image.config.digest[7:]).read_bytes())
    config["rootfs"]["diff_ids"] = [layer]
    config_raw = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": write_blob(layout, config_raw),
                          "size": len(config_raw)}  # fmt: skip
    manifest["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": layer, "size": len(data)}]  # fmt: skip
    raw = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"],
             "digest": write_blob(layout, raw), "size": len(raw),
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}  # fmt: skip
    (layout / "index.json").write_text(json.dumps(index))
    run_cli("pull", f"oci:{layout}:v1", "--name", name, "-q")
    return name


def _file(name: str, size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (lambda out: [_file("../escape")], "points outside"),
        (lambda out: [_file("/abs/escape")], "points outside"),
        (lambda out: [_link("link", str(out)), _file("link/escape")], "through 'link'"),
    ],
)
def test_a_layer_that_tries_to_leave_writes_nothing_outside_and_fails_in_one_line(
    members: Callable[[Path], list[tarfile.TarInfo]], message: str, tmp_path: Path, ci_home: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    name = _hostile_image(tmp_path, members(outside), "localhost/hostile:v1")
    target = tmp_path / "target"
    result = run_cli("unpack", name, target, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape").exists()


def test_a_killed_unpack_is_finished_by_the_next(tmp_path: Path, ci_home: Path) -> None:
    layout = tmp_path / "big"
    payload = hashlib.sha256(b"seed").digest() * (128 << 15)  # 128 MiB, quick to make
    make_oci_layout(layout, ref="v1", layers=[{"big.bin": payload}, {"small.txt": b"small\n"}])
    run_cli("pull", f"oci:{layout}:v1", "--name", "localhost/big:v1", "-q")
    target = tmp_path / "target"
    process = subprocess.Popen(
        [sys.executable, "-m", "clusterimage", "unpack", "localhost/big:v1", str(target)],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    big = target / "big.bin"
    while process.poll() is None and time.monotonic() < deadline:
        if big.exists() and big.stat().st_size > (16 << 20):
            break
        time.sleep(0.002)
    assert process.poll() is None, "finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert big.stat().st_size < len(payload)
    resumed = run_cli("unpack", "localhost/big:v1", target)
    assert big.read_bytes() == payload and (target / "small.txt").read_text() == "small\n"
    # The plain layout unpacks into DIR itself: the line names DIR, not "DIR/.".
    assert f"-> {target}: " in resumed.stderr and "/.:" not in resumed.stderr, resumed.stderr


def test_an_application_unpacked_by_id_or_short_name_is_named_after_its_repository(
    tmp_path: Path, ci_home: Path
) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1", layers=[{"app.yaml": b"kind: x\n"}])
    run_cli("pull", image.transport_ref, "--name", "localhost/team/myapp:v1", "-q")
    image_id = run_cli("images", "-q").stdout.split()[0]
    for n, name in enumerate((image_id, "team/myapp:v1", image.manifest.digest[:19])):
        target = tmp_path / f"cluster{n}"
        result = json.loads(run_cli("unpack", "--layout", "sealos", name, target, "--json").stdout)
        # Never the ID typed on the command line: the name the image is stored under.
        assert [i["root"] for i in result["images"]] == ["applications/myapp/workdir"], name
        assert (target / "applications/myapp/workdir/app.yaml").is_file()
