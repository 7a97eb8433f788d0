"""Every real Kubefile of the corpus plans without an error, as ``build --dry-run`` would.

The plan's image config is also checked against what buildah really builds (buildah is the
engine sealos uses) for corpus Kubefiles with a complete context and for a Kubefile that
exercises every expansion rule.

The corpus is ``../shared/corpus`` beside the repository (CI copies ``shared/`` next to its
clone) or wherever ``CLUSTERIMAGE_CORPUS`` points. Rootfs Kubefiles under ``runtime/`` get the
labels their home repository passes on the command line (corpus README).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterimage.build.plan import BuildPlan, CopyStep, plan_build
from clusterimage.kubefile import DEFAULT_PATH
from tests.fixtures.tools import REPO_ROOT, require_root, require_tool, run_tool

KUBEFILE_NAMES = ("Kubefile", "Dockerfile", "Sealfile")
EXPECTED_COUNT = 258
ROOTFS_LABELS = {"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1"}


def _corpus_location() -> Path:
    configured = os.environ.get("CLUSTERIMAGE_CORPUS")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "corpus"


def _kubefiles(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        path for path in root.rglob("*") if path.name in KUBEFILE_NAMES and path.is_file()
    )


CORPUS = _corpus_location()
KUBEFILES = _kubefiles(CORPUS)


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(
            f"the Kubefile corpus is not at {CORPUS}: copy shared/ beside the repository or set "
            "CLUSTERIMAGE_CORPUS to the corpus folder"
        )
    return CORPUS


def _labels_for(relative: Path) -> dict[str, str]:
    return dict(ROOTFS_LABELS) if relative.parts[0] == "runtime" else {}


def _plan(corpus: Path, relative: str) -> BuildPlan:
    kubefile = corpus / relative
    return plan_build(kubefile.parent, kubefile, labels=_labels_for(Path(relative)))


def test_corpus_is_complete(corpus: Path) -> None:
    assert len(KUBEFILES) == EXPECTED_COUNT, f"expected {EXPECTED_COUNT} Kubefiles in {corpus}"


@pytest.mark.parametrize(
    "relative",
    [str(path.relative_to(CORPUS)) for path in KUBEFILES],
)
def test_dry_run(corpus: Path, relative: str) -> None:
    plan = _plan(corpus, relative)
    assert plan.stages, relative
    assert plan.config.env[0] == f"PATH={DEFAULT_PATH}"
    assert plan.image_type in ("rootfs", "patch", "application")
    assert plan.needs_run is False  # no corpus Kubefile has RUN: all build natively
    if Path(relative).parts[0] == "runtime":
        assert plan.image_type == "rootfs"
        assert plan.image_version == "v1beta1"
    # the plan and its rendering never fail and always serialise
    assert plan.render()
    assert plan.to_dict()["kubefile"] == str(corpus / relative)


def test_containerd_rootfs(corpus: Path) -> None:
    plan = _plan(corpus, "runtime/containerd/Kubefile")
    assert plan.image_type == "rootfs"
    assert plan.image_version == "v1beta1"
    labels = plan.config.labels
    assert labels["init"] == "init-cri.sh $registryDomain $registryPort && bash init.sh"
    assert labels["clean"] == "clean.sh && bash clean-cri.sh $criData"
    assert labels["vip"] == "$defaultVIP"
    assert plan.hooks["init-registry"] == "init-registry.sh $registryData $registryConfig"
    env = plan.config.env_dict()
    assert env["criData"] == "/var/lib/containerd"
    assert env["registryDomain"] == "sealos.hub"
    assert env["SEALOS_SYS_CRI_ENDPOINT"] == "/var/run/containerd/containerd.sock"
    assert plan.config.author == "sealos"
    assert plan.config.cmd is None
    assert plan.copies_registry is True
    (copy,) = [step for step in plan.target_stage.steps if isinstance(step, CopyStep)]
    assert copy.context_paths == (".",)
    assert copy.dest_path == "/"


def test_k3s_type_comes_from_its_own_labels(corpus: Path) -> None:
    kubefile = corpus / "runtime/k3s/Kubefile"
    plan = plan_build(kubefile.parent, kubefile)  # no command-line labels at all
    assert plan.image_type == "rootfs"
    assert plan.image_version == "v1beta1"
    assert plan.config.labels["apps.sealos.io/distribution"] == "k3s"
    assert plan.hooks["init-cri"] == "init-cri.sh"


def test_helm_application_defaults(corpus: Path) -> None:
    plan = _plan(corpus, "cluster-image/applications/minio/latest/Kubefile")
    env = plan.config.env_dict()
    assert env["NAME"] == "minio"
    assert env["NAMESPACE"] == "minio"
    assert env["CHARTS"] == "./charts/minio"
    assert env["HELM_OPTS"].startswith(" --set service.type=NodePort --set consoleService")
    assert env["HELM_OPTS"].endswith("--set persistence.size=10Gi ")
    assert plan.config.cmd == (
        "helm upgrade -i $(NAME) $(CHARTS) -n $(NAMESPACE) --create-namespace $(HELM_OPTS)",
    )
    assert plan.image_type == "application"


def test_patch_and_dockerfile_named_contexts(corpus: Path) -> None:
    patch = _plan(corpus, "cluster-image/applications/podman/latest/Kubefile")
    assert patch.image_type == "patch"
    assert patch.config.cmd == ("cp -rn podman-linux-amd64/usr podman-linux-amd64/etc /",)
    dockerfile = _plan(corpus, "cluster-image/applications/kafka-operator/0.37.0/Dockerfile")
    assert dockerfile.config.env_dict()["NAMESPACE"] == "kafka-system"
    assert dockerfile.missing_sources == ()


def test_incomplete_contexts_are_warnings_not_errors(corpus: Path) -> None:
    complete = incomplete = 0
    for path in KUBEFILES:
        plan = _plan(corpus, str(path.relative_to(corpus)))
        if plan.missing_sources:
            incomplete += 1
            assert all(str(m.error()).startswith(str(path)) for m in plan.missing_sources)
        else:
            complete += 1
    # most contexts were completed by download scripts; many are complete as copied
    assert complete > 0 and incomplete > 0


def test_whole_corpus_plans_quickly(corpus: Path) -> None:
    started = time.monotonic()
    for path in KUBEFILES:
        _plan(corpus, str(path.relative_to(corpus)))
    assert time.monotonic() - started < 20


# -- the plan's config is what buildah builds -------------------------------------------------

BUILDAH_CASES = (
    "runtime/containerd/Kubefile",
    "runtime/k3s/Kubefile",
    "cluster-image/applications/minio/latest/Kubefile",
    "cluster-image/applications/kafka-operator/0.37.0/Dockerfile",
)

# No EXPOSE port range here: Docker expands 7000-7001 into one key per port (what we do, and
# what OCI's key format allows); buildah keeps "7000-7001/tcp" as a single key.
TRICKY_KUBEFILE = """\
ARG G=glob
FROM scratch AS base
MAINTAINER someone <a@b>
ENV E1=k BASEV=1 PATHLESS="a b"
CMD ["base-cmd"]
LABEL keep=yes
COPY a.txt /
FROM base
ARG G
ARG X=1
ENTRYPOINT run.sh --x $X
ENV A=${X}a B="q w" C=$A F=${E1:+alt} I='$E1' J="$E1" K=\\$E1 L=$(E1) G=$G
ENV HELM=${HELM:-" \\
--set a=b \\
"}
LABEL init="init-cri.sh \\$registryDomain" "apps.sealos.io/type"=rootfs
ENV LEG some value  here
WORKDIR app
WORKDIR ../b/./c
USER 1000:1000
VOLUME /data ["/x"]
VOLUME ["/y", "/z"]
EXPOSE 80 90/udp
STOPSIGNAL SIGKILL
COPY . .
"""


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    require_root("buildah with its own storage root")
    binary = require_tool("buildah")
    root = tmp_path_factory.mktemp("buildah-storage")
    yield [
        binary,
        "--root",
        str(root / "root"),
        "--runroot",
        str(root / "run"),
        "--storage-driver",
        "vfs",
    ]
    shutil.rmtree(root, ignore_errors=True)


def _buildah_config(
    buildah: list[str],
    context: Path,
    kubefile: Path,
    name: str,
    *,
    build_args: dict[str, str],
    labels: dict[str, str],
    envs: dict[str, str],
) -> dict[str, Any]:
    argv = [*buildah, "bud", "--isolation", "chroot", "--identity-label=false", "-f", str(kubefile)]
    for flag, values in (("--build-arg", build_args), ("--label", labels), ("--env", envs)):
        argv += [item for key, value in values.items() for item in (flag, f"{key}={value}")]
    run_tool([*argv, "-t", name, str(context)], timeout=600)
    inspected = json.loads(run_tool([*buildah, "inspect", "--type", "image", name]).stdout)
    image = inspected["OCIv1"]
    config = dict(image.get("config") or {})
    labels_seen = dict(config.get("Labels") or {})
    labels_seen.pop("io.buildah.version", None)  # older buildah ignores --identity-label
    config["Labels"] = labels_seen
    config["author"] = image.get("author")
    return config


def _plan_config(plan: BuildPlan) -> dict[str, Any]:
    config = plan.config.to_oci()
    config.setdefault("Labels", {})
    config["author"] = plan.config.author
    return config


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    keys = ("Env", "Labels", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts")
    out = {key: config.get(key) or None for key in keys}
    out.update(
        Volumes=config.get("Volumes") or None,
        StopSignal=config.get("StopSignal") or None,
        author=config.get("author") or None,
    )
    return out


@pytest.mark.integration
@pytest.mark.parametrize("relative", BUILDAH_CASES)
def test_plan_config_matches_buildah(corpus: Path, buildah: list[str], relative: str) -> None:
    kubefile = corpus / relative
    labels = _labels_for(Path(relative))
    plan = plan_build(kubefile.parent, kubefile, labels=labels)
    assert plan.missing_sources == ()
    name = "corpus-" + relative.replace("/", "-").lower()
    built = _buildah_config(
        buildah, kubefile.parent, kubefile, name, build_args={}, labels=labels, envs={}
    )
    assert _comparable(_plan_config(plan)) == _comparable(built)


@pytest.mark.integration
def test_tricky_kubefile_matches_buildah(tmp_path: Path, buildah: list[str]) -> None:
    (tmp_path / "Kubefile").write_text(TRICKY_KUBEFILE)
    (tmp_path / "a.txt").write_text("a\n")
    build_args = {"X": "5", "UNUSED": "1"}
    labels = {"keep": "cli", "extra": "1"}
    envs = {"E1": "v"}
    plan = plan_build(tmp_path, None, build_args=build_args, labels=labels, envs=envs)
    assert plan.unused_build_args == ("UNUSED",)
    built = _buildah_config(
        buildah,
        tmp_path,
        tmp_path / "Kubefile",
        "tricky",
        build_args=build_args,
        labels=labels,
        envs=envs,
    )
    assert _comparable(_plan_config(plan)) == _comparable(built)
