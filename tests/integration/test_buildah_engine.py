"""The buildah engine against the native one, and RUN builds through ``--engine auto``.

Real tools: buildah (chroot isolation, as root), umoci to unpack what we stored, skopeo to export
an image of the store (an OCI layout) to a layout umoci reads.

The helpers at the top are shared with test_examples.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, require_root, require_tool, run_cli

pytestmark = pytest.mark.integration

RUN_STEP = REPO_ROOT / "Kubefile.examples" / "run-step"
BUSYBOX_BASE = "localhost/busybox-base:test"


# -- helpers (also used by test_examples.py) ------------------------------------------------------


def static_busybox() -> Path:
    """The host's busybox, which must be static: it runs inside an image with no libc."""
    path = Path(require_tool("busybox")).resolve()
    with path.open("rb") as handle:
        head = handle.read(64 * 1024)
    if b"/lib64/ld-linux" in head or b"/lib/ld-linux" in head or b"ld-musl" in head:
        pytest.fail(f"{path} is dynamically linked; install Debian's busybox-static", False)
    return path


def build_busybox_base(tmp_path: Path, tag: str = BUSYBOX_BASE) -> None:
    """Build the run-step example's base image as its README says: prepare.sh, then a native
    build of base/ (FROM scratch, no RUN)."""
    base = tmp_path / "busybox-base"
    shutil.copytree(RUN_STEP / "base", base)
    subprocess.run(
        ["/bin/sh", str(base / "prepare.sh"), str(static_busybox())],
        check=True,
        capture_output=True,
    )
    run_cli("build", base, "-t", tag, "--engine", "native", "-q")


def export_layout(store: Path, ref: str, dest: Path) -> Path:
    """Copy ``ref`` of the store (an OCI layout) to a layout of its own, tag ``image``."""
    skopeo = require_tool("skopeo")
    subprocess.run(
        [skopeo, "copy", "--quiet", f"oci:{store}:{ref}", f"oci:{dest}:image"],
        check=True,
        capture_output=True,
    )
    return dest


def unpack(store: Path, ref: str, dest: Path) -> Path:
    """``umoci unpack --rootless`` the image; returns the rootfs."""
    umoci = require_tool("umoci")
    layout = export_layout(store, ref, dest.with_name(dest.name + "-layout"))
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{layout}:image", str(dest)],
        check=True,
        capture_output=True,
    )
    return dest / "rootfs"


def tree(rootfs: Path) -> dict[str, tuple[str, int, str]]:
    """Every path below ``rootfs``: (kind, permission bits, sha256 of a file / link target)."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(rootfs).as_posix()
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, "")
            else:
                out[rel] = ("file", mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def image_config(store: Path, ref: str) -> dict[str, Any]:
    """The ``config`` object of the image's config blob, read from the store layout."""
    index = json.loads((store / "index.json").read_text())
    for entry in index["manifests"]:
        if (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref:
            manifest = json.loads(_blob(store, entry["digest"]))
            data: dict[str, Any] = json.loads(_blob(store, manifest["config"]["digest"]))
            return data
    raise AssertionError(f"{ref} is not in the store")


def _blob(store: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return (store / "blobs" / algorithm / hexdigest).read_bytes()


def require_buildah() -> None:
    require_tool("buildah")
    require_root("buildah's chroot isolation")


# -- native and buildah agree ---------------------------------------------------------------------

SAME_KUBEFILE = """\
ARG VERSION=v1.2.3
FROM scratch
ARG VERSION
LABEL sealos.io.type="application" \\
      sealos.io.version="v1beta1" \\
      org.opencontainers.image.version="${VERSION}"
ENV NAMESPACE=demo \\
    HELM_OPTS="--set a=b"
COPY manifests manifests
COPY charts/ charts/
COPY scripts/run.sh /opt/bin/run.sh
COPY --chmod=0640 secret.txt etc/secret.txt
COPY registry registry
COPY *.md docs/
ENTRYPOINT ["/bin/sh", "-c", "echo entry"]
CMD ["kubectl apply -f manifests/", "helm upgrade -i demo charts/demo $(HELM_OPTS)"]
"""


def _same_context(root: Path) -> Path:
    root.mkdir()
    (root / "Kubefile").write_text(SAME_KUBEFILE)
    (root / "manifests" / "sub").mkdir(parents=True)
    (root / "manifests" / "app.yaml").write_text("kind: Deployment\nimage: nginx:1.25\n")
    (root / "manifests" / "sub" / "svc.yaml").write_text("kind: Service\n")
    (root / "manifests" / "empty.yaml").write_text("")
    (root / "manifests" / "link.yaml").symlink_to("app.yaml")
    (root / "manifests" / "dangling").symlink_to("../nowhere")
    (root / "charts" / "demo" / "templates").mkdir(parents=True)
    (root / "charts" / "demo" / "Chart.yaml").write_text("name: demo\nversion: 0.1.0\n")
    (root / "charts" / "demo" / "templates" / "cm.yaml").write_text("kind: ConfigMap\n")
    (root / "charts" / "demo.values.yaml").write_text("replicas: 2\n")
    os.chmod(root / "charts" / "demo" / "templates", 0o750)
    (root / "scripts").mkdir()
    (root / "scripts" / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "scripts" / "run.sh", 0o755)
    (root / "secret.txt").write_text("s3cret\n")
    os.chmod(root / "secret.txt", 0o600)
    (root / "README.md").write_text("# demo\n")
    (root / "NOTES.md").write_text("notes\n")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / ".dockerignore").write_text("big.bin\n")
    return root


def test_native_and_buildah_build_the_same_image(tmp_path: Path, ci_home: Path) -> None:
    require_buildah()
    context = _same_context(tmp_path / "context")
    store = ci_home / "store"
    # Both engines overlay the same registry/: here an empty one (embedding has its own tests).
    no_images = "--save-image=false"
    run_cli("build", context, no_images, "-t", "localhost/same:native", "--engine", "native", "-q")
    run_cli(
        "build", context, no_images, "-t", "localhost/same:buildah", "--engine", "buildah", "-q"
    )

    native = tree(unpack(store, "localhost/same:native", tmp_path / "native"))
    buildah = tree(unpack(store, "localhost/same:buildah", tmp_path / "buildah"))
    # Nothing is ignored: for a FROM-scratch Kubefile without RUN buildah adds no file of its
    # own, and the parent folders COPY creates are 0755 in both.
    assert native == buildah
    assert native["opt/bin/run.sh"][:2] == ("file", 0o755)
    assert native["etc/secret.txt"][:2] == ("file", 0o640)
    assert native["manifests/link.yaml"] == ("symlink", 0, "app.yaml")
    assert native["registry"] == ("dir", 0o755, "")
    assert "big.bin" not in native
    assert {"docs/README.md", "docs/NOTES.md"} <= set(native)

    keys = ("Env", "Cmd", "Entrypoint", "Labels", "WorkingDir", "User")
    native_config = image_config(store, "localhost/same:native")
    buildah_config = image_config(store, "localhost/same:buildah")
    assert {k: native_config["config"].get(k) for k in keys} == {
        k: buildah_config["config"].get(k) for k in keys
    }
    assert native_config["config"]["Labels"]["org.opencontainers.image.version"] == "v1.2.3"
    assert "NAMESPACE=demo" in native_config["config"]["Env"]
    # buildah's own identity label is not added.
    assert not any(k.startswith("io.buildah") for k in buildah_config["config"]["Labels"])


def test_buildah_engine_passes_args_labels_env_and_timestamp(tmp_path: Path, ci_home: Path) -> None:
    require_buildah()
    context = _same_context(tmp_path / "context")
    store = ci_home / "store"
    run_cli(
        "build",
        context,
        "--save-image=false",
        "-t",
        "localhost/passed:v1",
        "-t",
        "localhost/passed:latest",
        "--engine",
        "buildah",
        "--build-arg",
        "VERSION=v9.9.9",
        "--label",
        "team=platform",
        "--env",
        "REGION=eu",
        "--timestamp",
        "1700000000",
        "-q",
    )
    config = image_config(store, "localhost/passed:v1")
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == "v9.9.9"
    assert config["config"]["Labels"]["team"] == "platform"
    assert config["config"]["Env"][-1] == "REGION=eu"
    assert config["created"].startswith("2023-11-14T22:13:20")
    assert image_config(store, "localhost/passed:latest") == config
    # The build's private buildah storage is gone.
    assert list((ci_home / "buildah" / "builds").iterdir()) == []


# -- RUN ------------------------------------------------------------------------------------------


def test_auto_engine_builds_run_with_buildah(tmp_path: Path, ci_home: Path) -> None:
    require_buildah()
    build_busybox_base(tmp_path)
    context = tmp_path / "run"
    context.mkdir()
    (context / "input.txt").write_text("hello\n")
    (context / "Kubefile").write_text(
        f"FROM {BUSYBOX_BASE}\n"
        "ARG GREETING=hi\n"
        "COPY input.txt /data/input.txt\n"
        "RUN tr a-z A-Z < /data/input.txt > /data/upper.txt && echo $GREETING > /data/greeting\n"
        "WORKDIR /data\n"
        'CMD ["cat upper.txt"]\n'
    )
    # --engine auto is the default; the native engine would refuse the RUN.
    run_cli("build", context, "-t", "localhost/ran:v1", "--build-arg", "GREETING=hey", "-q")
    rootfs = unpack(ci_home / "store", "localhost/ran:v1", tmp_path / "ran")
    assert (rootfs / "data" / "upper.txt").read_text() == "HELLO\n"
    assert (rootfs / "data" / "greeting").read_text() == "hey\n"
    assert (rootfs / "bin" / "busybox").is_file()
    config = image_config(ci_home / "store", "localhost/ran:v1")["config"]
    assert config["Cmd"] == ["cat upper.txt"]
    assert config["WorkingDir"] == "/data"
    # The user's folder is only read.
    assert sorted(p.name for p in context.iterdir()) == ["Kubefile", "input.txt"]
    assert list((ci_home / "buildah" / "builds").iterdir()) == []


def test_run_with_native_engine_is_a_one_line_error(tmp_path: Path, ci_home: Path) -> None:
    context = tmp_path / "run"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nRUN echo hi\n")
    result = run_cli("build", context, "-t", "localhost/x:v1", "--engine", "native", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Kubefile:2" in lines[0]


def test_failing_run_is_a_one_line_error(tmp_path: Path, ci_home: Path) -> None:
    require_buildah()
    build_busybox_base(tmp_path)
    context = tmp_path / "fail"
    context.mkdir()
    (context / "Kubefile").write_text(
        f"FROM {BUSYBOX_BASE}\n"
        "COPY Kubefile /Kubefile\n"
        "RUN echo checking the cluster >&2 && echo no kubeconfig found >&2 && exit 3\n"
        'CMD ["true"]\n'
    )
    result = run_cli("build", context, "-t", "localhost/fail:v1", "-q", check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: ") and "Kubefile:3" in line, line
    assert "exit status 3" in line and "no kubeconfig found" in line, line
    listed = run_cli("images", "--json").stdout
    assert "localhost/fail" not in listed
    assert list((ci_home / "buildah" / "builds").iterdir()) == []


def test_missing_base_image_names_the_from_line(tmp_path: Path, ci_home: Path) -> None:
    require_buildah()
    context = tmp_path / "nobase"
    context.mkdir()
    (context / "Kubefile").write_text(
        "FROM scratch\nCOPY Kubefile /k\nFROM localhost/not-there:v1\nRUN true\n"
    )
    # Pulling it is tried (localhost:443 refuses, on loopback) and fails.
    result = run_cli("build", context, "-t", "localhost/nobase:v1", check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Kubefile:3" in errors[0] and "localhost/not-there:v1" in errors[0], errors[0]
    # The build command fetches base images before any engine starts: no buildah folder then.
    builds = ci_home / "buildah" / "builds"
    assert not builds.exists() or list(builds.iterdir()) == []


def test_buildah_engine_passes_the_platform(tmp_path: Path, ci_home: Path) -> None:
    require_buildah()
    context = tmp_path / "context"
    context.mkdir()
    (context / "app.yaml").write_text("kind: ConfigMap\n")
    (context / "Kubefile").write_text(
        "FROM scratch\nARG TARGETPLATFORM\nARG TARGETARCH\n"
        'LABEL built.for="${TARGETPLATFORM}" built.arch="${TARGETARCH}"\n'
        "COPY app.yaml manifests/app.yaml\n"
    )
    store = ci_home / "store"
    configs = {}
    for engine in ("native", "buildah"):
        tag = f"localhost/platform:{engine}"
        argv = ["build", context, "-t", tag, "--engine", engine, "--platform", "linux/arm64"]
        built = json.loads(run_cli(*argv, "--json").stdout)
        assert built["engine"] == engine and built["platform"] == "linux/arm64"
        configs[engine] = image_config(store, tag)
    for config in configs.values():
        assert (config["os"], config["architecture"]) == ("linux", "arm64")
        assert config["config"]["Labels"] == {"built.for": "linux/arm64", "built.arch": "arm64"}
    native = tree(unpack(store, "localhost/platform:native", tmp_path / "native"))
    buildah = tree(unpack(store, "localhost/platform:buildah", tmp_path / "buildah"))
    assert native == buildah
    listed = {n for i in json.loads(run_cli("images", "--json").stdout) for n in i["Names"]}
    assert listed == {"localhost/platform:native", "localhost/platform:buildah"}
