"""Every folder of Kubefile.examples/ builds, and the image says what its README promises.

Each example without RUN builds standalone on a fresh store (``ci_home``), from a copy of its
folder, as ``clusterimage build Kubefile.examples/NAME`` would; run-step first builds its busybox
base image with the native builder, then goes through buildah (``--engine auto``). The image is
then read back with ``create --json`` (type, version, env, commands) and ``inspect``, and its
files with umoci.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, require_tool, run_cli, run_tool
from tests.fixtures.dockerd import DockerDaemon
from tests.fixtures.mirror import Mirror
from tests.fixtures.registry import Registry
from tests.integration.test_buildah_engine import (
    build_busybox_base,
    image_config,
    require_buildah,
    tree,
    unpack,
)

pytestmark = pytest.mark.integration

EXAMPLES = REPO_ROOT / "Kubefile.examples"
APP_DIR = "/var/lib/sealos/data/default/applications/{name}/workdir"
ROOTFS_DIR = "/var/lib/sealos/data/default/rootfs"

Files = dict[str, tuple[str, int, str]]


@dataclass(frozen=True)
class Example:
    name: str
    tag: str
    type: str
    env: dict[str, str]
    commands: list[str]
    files: set[str]
    absent: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)
    build_args: tuple[str, ...] = ()
    needs_run: bool = False
    prepare: bool = False  # run its prepare.sh first (it makes what the build reads)
    check: Callable[[Path, Files, dict[str, Any]], None] | None = None


def _check_rootfs(rootfs: Path, files: Files, create: dict[str, Any]) -> None:
    for script in (
        "init.sh",
        "init-cri.sh",
        "clean.sh",
        "clean-cri.sh",
        "check.sh",
        "init-registry.sh",
        "clean-registry.sh",
    ):
        assert files[f"scripts/{script}"][:2] == ("file", 0o755), script
    assert create["hooks"] == {
        "init": "init-cri.sh $registryDomain $registryPort && bash init.sh",
        "clean": "clean.sh && bash clean-cri.sh $criData",
        "check": "check.sh $registryData",
        "init-registry": "init-registry.sh $registryData $registryConfig",
        "clean-registry": "clean-registry.sh $registryData $registryConfig",
    }
    assert create["labels"]["vip"] == "$defaultVIP"
    assert create["commandLine"].startswith('export criData="/var/lib/containerd"; ')
    assert create["commandLine"].endswith(
        'export SEALOS_SYS_IMAGE_ENDPOINT="/var/run/image-cri-shim.sock";'
    )


def _check_patch(rootfs: Path, files: Files, create: dict[str, Any]) -> None:
    binary = rootfs / "bin" / "kube-nodecheck"
    assert files["bin/kube-nodecheck"][:2] == ("file", 0o755)
    assert binary.read_bytes() == (EXAMPLES / "patch-binary/bin/kube-nodecheck").read_bytes()


def _check_run(rootfs: Path, files: Files, create: dict[str, Any]) -> None:
    release = (rootfs / "etc" / "release").read_text()
    assert release == "version=v2.4.0\n"
    manifest = (rootfs / "manifests" / "guestbook.yaml").read_text()
    assert 'app.kubernetes.io/version: "v2.4.0"' in manifest and "__VERSION__" not in manifest
    sums = (rootfs / "manifests.sha256").read_text().split()
    assert sums == [hashlib.sha256(manifest.encode()).hexdigest(), "manifests/guestbook.yaml"]
    assert files["bin/busybox"][:2] == ("file", 0o755)
    assert files["bin/sh"] == ("symlink", 0, "busybox")


def _check_multi_stage(rootfs: Path, files: Files, create: dict[str, Any]) -> None:
    assert "stage.version" not in create["labels"]
    schedule = (rootfs / "manifests/samples/schedule.yaml").read_text()
    assert schedule == (EXAMPLES / "multi-stage/samples/schedule.yaml").read_text()


EXAMPLE_LIST = [
    Example(
        name="nginx-manifests",
        tag="localhost/examples/nginx:v1",
        type="application",
        env={"NAMESPACE": "nginx"},
        commands=[f"cd {APP_DIR.format(name='nginx')} && kubectl apply -f manifests/"],
        files={
            "manifests/namespace.yaml",
            "manifests/deployment.yaml",
            "manifests/service.yaml",
            "registry",
        },
        absent={"Kubefile", "README.md"},
        labels={"org.opencontainers.image.version": "1.25.3"},
    ),
    Example(
        name="helm-chart",
        tag="localhost/examples/whoami:0.4.0",
        type="application",
        env={
            "NAME": "whoami",
            "NAMESPACE": "whoami",
            "HELM_OPTS": "--set service.type=NodePort",
        },
        commands=[
            f"cd {APP_DIR.format(name='whoami')} && helm upgrade --install whoami charts/whoami "
            "--namespace whoami --create-namespace --values charts/whoami.values.yaml "
            "--set service.type=NodePort"
        ],
        files={
            "charts/whoami/Chart.yaml",
            "charts/whoami/values.yaml",
            "charts/whoami/templates/deployment.yaml",
            "charts/whoami/templates/_helpers.tpl",
            "charts/whoami.values.yaml",
            "registry",
        },
    ),
    Example(
        name="containerd-rootfs",
        tag="localhost/examples/containerd:v1.7.13",
        type="rootfs",
        env={
            "criData": "/var/lib/containerd",
            "registryData": "/var/lib/registry",
            "registryConfig": "/etc/registry",
            "registryDomain": "sealos.hub",
            "registryPort": "5000",
            "registryUsername": "admin",
            "registryPassword": "passw0rd",
            "disableApparmor": "false",
            "SEALOS_SYS_CRI_ENDPOINT": "/var/run/containerd/containerd.sock",
            "SEALOS_SYS_IMAGE_ENDPOINT": "/var/run/image-cri-shim.sock",
        },
        commands=[],
        files={"scripts/common.sh", "etc/config.toml.tmpl", "etc/registry_config.yml", "registry"},
        absent={"Kubefile", "README.md"},  # .dockerignore keeps them out of the rootfs
        check=_check_rootfs,
    ),
    Example(
        name="patch-binary",
        tag="localhost/examples/kube-nodecheck:v0.1.0",
        type="patch",
        env={"BIN_DIR": "/usr/local/bin"},
        commands=[
            f"cd {ROOTFS_DIR} && mkdir -p /usr/local/bin && cp -f bin/kube-nodecheck "
            "/usr/local/bin/kube-nodecheck && chmod +x /usr/local/bin/kube-nodecheck"
        ],
        files={"bin/kube-nodecheck"},
        check=_check_patch,
    ),
    Example(
        name="run-step",
        tag="localhost/examples/guestbook:v2.4.0",
        type="application",
        env={"NAMESPACE": "guestbook"},
        commands=[
            f"cd {APP_DIR.format(name='guestbook')} && kubectl apply -f manifests/ && "
            "kubectl -n guestbook rollout status deploy/guestbook"
        ],
        files={"manifests/guestbook.yaml", "manifests.sha256", "etc/release", "registry"},
        labels={"org.opencontainers.image.version": "v2.4.0"},
        build_args=("--build-arg", "VERSION=v2.4.0"),
        needs_run=True,
        check=_check_run,
    ),
    Example(
        name="offline-bundle",
        tag="localhost/examples/offline:v1",
        type="application",
        env={"NAMESPACE": "tools"},
        commands=[f"cd {APP_DIR.format(name='offline')} && kubectl apply -f manifests/"],
        files={
            "manifests/tools.yaml",
            "registry/docker/registry/v2/repositories/example/tools/_manifests/tags/v1/current/link",
            "registry/docker/registry/v2/repositories/example/config/_manifests/tags/v1/current/link",
        },
        absent={"src", "prepare.sh", "images"},
        prepare=True,
    ),
    Example(
        name="multi-stage",
        tag="localhost/examples/backup-operator:v0.9.2",
        type="application",
        env={"NAMESPACE": "backup-system"},
        commands=[
            f"cd {APP_DIR.format(name='backup-operator')} && kubectl apply -f manifests/crds/",
            f"cd {APP_DIR.format(name='backup-operator')} && kubectl apply -f manifests/operator/",
            f"cd {APP_DIR.format(name='backup-operator')} && kubectl apply -f manifests/samples/",
        ],
        files={
            "manifests/crds/backups.example.io.yaml",
            "manifests/operator/deployment.yaml",
            "manifests/operator/rbac.yaml",
            "manifests/samples/schedule.yaml",
            "registry",
        },
        absent={"manifests/samples/adhoc.yaml", "samples", "crds", "operator"},
        labels={"org.opencontainers.image.version": "v0.9.2"},
        check=_check_multi_stage,
    ),
]


def test_every_example_folder_is_tested() -> None:
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    assert folders == {e.name for e in EXAMPLE_LIST}
    for name in folders:
        assert (EXAMPLES / name / "README.md").is_file(), name
        assert (EXAMPLES / name / "Kubefile").is_file(), name
    assert len(folders) >= 6


@pytest.mark.parametrize("example", EXAMPLE_LIST, ids=lambda e: e.name)
def test_example_builds_and_reads_back(example: Example, tmp_path: Path, ci_home: Path) -> None:
    if example.needs_run:
        require_buildah()
        build_busybox_base(tmp_path)
    context = _copy_example(example, tmp_path)
    run_cli("build", context, "-t", example.tag, *example.build_args, "-q")

    created = json.loads(run_cli("create", example.tag, "--json").stdout)
    assert created["type"] == example.type
    assert created["version"] == "v1beta1"
    assert created["env"] == example.env
    assert list(created["env"]) == list(example.env)  # image ENV order
    assert created["commands"] == example.commands
    for key, value in example.labels.items():
        assert created["labels"][key] == value
    line = run_cli("create", example.tag).stdout.strip()
    assert line == created["commandLine"]

    inspected = json.loads(run_cli("inspect", example.tag).stdout)
    assert inspected["Labels"] == created["labels"]
    assert image_config(ci_home / "store", example.tag)["config"]["Labels"] == created["labels"]

    rootfs = unpack(ci_home / "store", example.tag, tmp_path / "unpacked")
    files = tree(rootfs)
    missing = example.files - set(files)
    assert not missing, f"missing from the image: {sorted(missing)}"
    present = example.absent & set(files)
    assert not present, f"should not be in the image: {sorted(present)}"
    if example.check is not None:
        example.check(rootfs, files, created)


def _copy_example(example: Example, tmp_path: Path) -> Path:
    context = tmp_path / example.name
    # A copy, so nothing the build might write could land in the repository's folder.
    shutil.copytree(EXAMPLES / example.name, context, symlinks=True)
    if example.prepare:
        cli = f"{sys.executable} -m clusterimage"
        subprocess.run([str(context / "prepare.sh"), cli], check=True, capture_output=True)
    return context


EMBEDDING = [
    e for e in EXAMPLE_LIST if e.name in ("nginx-manifests", "helm-chart", "offline-bundle")
]


@pytest.mark.parametrize("example", EMBEDDING, ids=lambda e: e.name)
def test_embedded_images_are_served_by_docker_registry_and_pulled_by_skopeo_and_docker(
    example: Example,
    tmp_path: Path,
    ci_home: Path,
    image_mirror: Mirror,
    registry_factory: Callable[..., Registry],
    dockerd: DockerDaemon,
) -> None:
    """The check that matters: unpack the built image, serve its registry/ with stock
    docker-registry, and pull every image it carries with the digest it had at its source."""
    skopeo = require_tool("skopeo")
    context = _copy_example(example, tmp_path)
    built = json.loads(run_cli("build", context, "-t", example.tag, "--json").stdout)
    embedded: dict[str, str] = built["images"]
    discovered = json.loads(run_cli("build", "--dry-run", "--json", context).stdout)["registry"]
    assert len(embedded) == len(discovered["images"]) + len(discovered["archives"]) >= 1
    for image in discovered["images"]:
        # Pulled through the mirror: the digest the source registry has.
        assert embedded[image["storedPath"]] == image_mirror.digests[image["reference"]]
    annotations = json.loads(run_cli("inspect", example.tag).stdout)["Annotations"]
    assert json.loads(annotations["io.clusterimage.images"]) == embedded

    rootfs = unpack(ci_home / "store", example.tag, tmp_path / "unpacked")
    served = registry_factory(
        config={"storage": {"filesystem": {"rootdirectory": str(rootfs / "registry")}}}
    )
    docker = [dockerd.docker, "-H", dockerd.host]
    for name, digest in embedded.items():
        raw = run_tool(
            [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{served.host}/{name}"]
        ).stdout
        assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == digest, name
        run_tool([skopeo, "copy", "--src-tls-verify=false",
                  f"docker://{served.host}/{name}", f"oci:{tmp_path}/pulled:x"])  # fmt: skip
        run_tool([*docker, "pull", "-q", f"{served.host}/{name}"])
        repo_digests = run_tool(
            [
                *docker,
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                f"{served.host}/{name}",
            ]
        ).stdout
        assert digest in repo_digests, (name, repo_digests)


def test_an_unchanged_rebuild_fetches_nothing_and_a_manifest_edit_no_blob(
    tmp_path: Path, ci_home: Path, image_mirror: Mirror
) -> None:
    example = next(e for e in EXAMPLE_LIST if e.name == "nginx-manifests")
    context = _copy_example(example, tmp_path)
    first = json.loads(run_cli("build", context, "-t", example.tag, "--json").stdout)
    mark = image_mirror.registry.log_path.stat().st_size
    again = json.loads(run_cli("build", context, "-t", example.tag, "--json").stdout)
    assert again["digest"] == first["digest"]
    assert _blob_gets(image_mirror, mark) == 0 and _requests(image_mirror, mark) == 0
    manifest = context / "manifests" / "deployment.yaml"
    manifest.write_text(manifest.read_text() + "# edited\n")
    edited = json.loads(run_cli("build", context, "-t", example.tag, "--json").stdout)
    assert edited["digest"] != first["digest"] and edited["images"] == first["images"]
    assert _blob_gets(image_mirror, mark) == 0


def _log_since(mirror: Mirror, mark: int) -> str:
    with open(mirror.registry.log_path, "rb") as log:
        log.seek(mark)
        return log.read().decode(errors="replace")


def _requests(mirror: Mirror, mark: int) -> int:
    return _log_since(mirror, mark).count('"GET /v2/') + _log_since(mirror, mark).count(
        '"HEAD /v2/'
    )


def _blob_gets(mirror: Mirror, mark: int) -> int:
    return sum(
        1
        for line in _log_since(mirror, mark).splitlines()
        if '"GET /v2/' in line and "/blobs/" in line
    )


def test_create_env_overlay_on_an_example(tmp_path: Path, ci_home: Path) -> None:
    context = tmp_path / "helm-chart"
    shutil.copytree(EXAMPLES / "helm-chart", context)
    run_cli("build", context, "-t", "localhost/examples/whoami:0.4.0", "-q")
    created = json.loads(
        run_cli(
            "create",
            "localhost/examples/whoami:0.4.0",
            "--json",
            "--env",
            "NAMESPACE=web",
            "--env",
            "EXTRA=1",
            "--cluster",
            "prod",
        ).stdout
    )
    assert created["env"] == {
        "NAME": "whoami",
        "NAMESPACE": "web",
        "HELM_OPTS": "--set service.type=NodePort",
        "EXTRA": "1",
    }
    assert created["workdir"] == "/var/lib/sealos/data/prod/applications/whoami/workdir"
    assert "--namespace web " in created["cmd"][0]
    bad = run_cli("create", "localhost/examples/whoami:0.4.0", "--env", "NOVALUE", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --env 'NOVALUE'")
    missing = run_cli("create", "localhost/examples/nope:v1", check=False)
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1
