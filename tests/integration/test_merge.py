"""``merge`` at the layer level against what sealos does: a generated Sealfile (FROM scratch,
merged LABEL/ENV/ENTRYPOINT/CMD, ``COPY --from=<image> . .`` per image) built by buildah. The
unpacked trees (files, modes, registry/ links) and the merged config must agree, and the merge
writes nothing but a config and a manifest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.oci_layout import make_oci_layout
from tests.integration.test_buildah_engine import image_config, require_buildah, tree, unpack

pytestmark = pytest.mark.integration

ROOTFS_KUBEFILE = """\
FROM scratch
LABEL sealos.io.type="rootfs" sealos.io.version="v1beta1" owner="base" keep="base"
ENV PATH=/usr/bin:/bin CLUSTER=base SHARED=from-base
COPY . .
ENTRYPOINT ["/bin/sh", "-c", "echo base-entry"]
CMD ["bash init.sh"]
"""

APP_KUBEFILE = """\
FROM scratch
LABEL sealos.io.type="application" owner="app"
ENV SHARED=from-app APP=1
COPY . .
CMD ["kubectl apply -f manifests/", "echo $(APP)"]
"""


def _context(root: Path, kubefile: str, files: dict[str, str], modes: dict[str, int]) -> Path:
    root.mkdir(parents=True)
    (root / "Kubefile").write_text(kubefile)
    (root / ".dockerignore").write_text("Kubefile\n")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(modes.get(name, 0o644))
    return root


def _registry_files(name: str, tag: str, digest: str) -> dict[str, str]:
    repo = f"registry/docker/registry/v2/repositories/{name}/_manifests"
    return {
        f"{repo}/tags/{tag}/current/link": digest,
        f"{repo}/tags/{tag}/index/sha256/{digest[7:]}/link": digest,
        f"{repo}/revisions/sha256/{digest[7:]}/link": digest,
    }


def _build_inputs(tmp_path: Path) -> tuple[str, str]:
    old = "sha256:" + "1" * 64
    new = "sha256:" + "2" * 64
    base = _context(
        tmp_path / "base",
        ROOTFS_KUBEFILE,
        {
            "init.sh": "echo init\n",
            "etc/config.yaml": "from: base\n",
            "bin/tool": "#!/bin/sh\necho tool\n",
            **_registry_files("library/pause", "3.9", old),
        },
        {"bin/tool": 0o755},
    )
    app = _context(
        tmp_path / "app",
        APP_KUBEFILE,
        {
            "manifests/app.yaml": "kind: Deployment\n",
            "etc/config.yaml": "from: app\n",  # over the base's
            **_registry_files("library/pause", "3.9", new),  # the later image's link wins
            **_registry_files("app/web", "v1", new),
        },
        {},
    )
    run_cli("build", base, "-t", "localhost/merge/base:v1", "-q")
    run_cli("build", app, "-t", "localhost/merge/app:v1", "-q")
    return "localhost/merge/base:v1", "localhost/merge/app:v1"


def _sealfile(images: list[str], config: dict[str, object]) -> str:
    """What sealos's MergeDockerfileFromImages writes for these images."""
    container = config["config"]
    assert isinstance(container, dict)
    labels = " \\\n\t".join(f'{k}="{v}"' for k, v in sorted(container["Labels"].items()))
    env = " \\\n\t".join(f'{e.split("=", 1)[0]}="{e.split("=", 1)[1]}"' for e in container["Env"])
    entry = ",".join(json.dumps(e) for e in container["Entrypoint"])
    cmd = ",".join(json.dumps(c) for c in container["Cmd"])
    copies = "\n".join(f"COPY --from={image}   . ." for image in images)
    return f"FROM scratch\nLABEL {labels}\nENV {env}\nENTRYPOINT [{entry}]\nCMD [{cmd}]\n{copies}\n"


def test_merge_equals_the_sealfile_sealos_generates(tmp_path: Path, ci_home: Path) -> None:
    require_buildah()
    store = ci_home / "store"
    base, app = _build_inputs(tmp_path)
    before = {p.name for p in (store / "blobs" / "sha256").iterdir()}
    started = time.monotonic()
    result = json.loads(
        run_cli("merge", "-t", "localhost/merge/all:v1", base, app, "--json").stdout
    )
    took = time.monotonic() - started
    after = {p.name for p in (store / "blobs" / "sha256").iterdir()}
    # Only the new config and manifest were written.
    assert after - before == {result["digest"][7:], result["config"][7:]}
    assert took < 5

    merged = image_config(store, "localhost/merge/all:v1")
    container = merged["config"]
    assert container["Labels"]["sealos.io.type"] == "rootfs"  # any rootfs input makes it rootfs
    assert container["Labels"]["apps.sealos.io/type"] == "rootfs"
    assert container["Labels"]["owner"] == "app" and container["Labels"]["keep"] == "base"
    assert container["Env"] == ["APP=1", "CLUSTER=base", "SHARED=from-app"]  # PATH dropped
    assert container["Entrypoint"] == ["/bin/sh", "-c", "echo base-entry"]
    assert container["Cmd"] == ["bash init.sh", "kubectl apply -f manifests/", "echo $(APP)"]

    context = tmp_path / "sealfile"
    context.mkdir()
    (context / "Sealfile").write_text(_sealfile([base, app], merged))
    run_cli("build", context, "-t", "localhost/merge/sealfile:v1", "--engine", "buildah", "-q")

    ours = tree(unpack(store, "localhost/merge/all:v1", tmp_path / "ours"))
    sealos = tree(unpack(store, "localhost/merge/sealfile:v1", tmp_path / "sealos"))
    assert ours == sealos
    assert ours["bin/tool"][:2] == ("file", 0o755)
    link = "registry/docker/registry/v2/repositories/library/pause/_manifests/tags/3.9/current/link"
    assert (tmp_path / "ours" / "rootfs" / link).read_text() == "sha256:" + "2" * 64
    sealfile_config = image_config(store, "localhost/merge/sealfile:v1")["config"]
    # buildah adds a default PATH to a FROM-scratch image; the rest must agree.
    assert [e for e in sealfile_config["Env"] if not e.startswith("PATH=")] == container["Env"]
    for key in ("Entrypoint", "Cmd"):
        assert sealfile_config[key] == container[key], key
    assert {k: v for k, v in sealfile_config["Labels"].items() if not k.startswith("io.")} == (
        container["Labels"]
    )


def test_merge_needs_two_images_of_one_platform(tmp_path: Path, ci_home: Path) -> None:
    base, _ = _build_inputs(tmp_path)
    result = run_cli("merge", "-t", "localhost/x:v1", base, check=False)
    assert result.returncode == 2 and "at least two images" in result.stderr
    result = run_cli("merge", "-t", "localhost/x:v1", base, "localhost/nope:v1", check=False)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1


def test_merge_warns_past_the_layers_docker_can_mount(tmp_path: Path, ci_home: Path) -> None:
    names = []
    for part in ("a", "b"):
        layers = tuple({f"{part}/{n}.txt": f"{part}{n}\n".encode()} for n in range(70))
        image = make_oci_layout(tmp_path / part, ref="v1", layers=layers)
        run_cli("pull", "-q", image.transport_ref, "--name", f"localhost/{part}:v1")
        names.append(f"localhost/{part}:v1")
    result = run_cli("merge", "-q", "-t", "localhost/many:v1", *names)
    assert result.stdout.startswith("sha256:")
    assert result.stderr == (
        'warning: localhost/many:v1 has 140 layers: docker and CRI-O mount at most 125 ("max '
        'depth exceeded"); sealos, buildah and podman (containers/storage) up to 500\n'
    )
    few = run_cli("merge", "-q", "-t", "localhost/few:v1", names[0], names[0])
    assert few.stderr == ""
