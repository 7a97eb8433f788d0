"""Builds on images: FROM an image in the store, an OCI layout (oci:DIR:TAG), a registry image
pulled when missing, and COPY --from an image; base layers and config carry over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_tool, run_cli, run_tool
from tests.fixtures.registry import Registry

pytestmark = pytest.mark.integration

BASE = "localhost/base:v1"


def _base(tmp_path: Path) -> str:
    """A base image in the store with /etc/passwd, ENV and a CMD; returns its digest."""
    ctx = tmp_path / "base"
    (ctx / "etc").mkdir(parents=True)
    (ctx / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1001:1001::/:/bin/sh\n")
    (ctx / "etc" / "group").write_text("root:x:0:\napp:x:1001:\n")
    (ctx / "tools").mkdir()
    (ctx / "tools" / "helm").write_text("#!/bin/sh\necho helm\n")
    (ctx / "Kubefile").write_text(
        'FROM scratch\nENV BASE=1 PATH=/tools\nCOPY etc /etc\nCOPY tools /tools\nCMD ["base"]\n'
    )
    return run_cli("build", "-q", "-t", BASE, ctx).stdout.strip()


def _app(tmp_path: Path, from_: str, name: str = "app") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "data.yaml").write_text("data: 1\n")
    (ctx / "Kubefile").write_text(
        f"FROM {from_}\nCOPY --chown=app:app data.yaml /srv/\nENV APP=1\n"
        f"COPY --from={from_} /tools/helm /bin/helm\n"
    )
    return ctx


def _image(store: Path, digest: str) -> tuple[dict[str, object], dict[str, object]]:
    blobs = store / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.partition(":")[2]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].partition(":")[2]).read_text())
    return manifest, config


def _check_app(store: Path, base_digest: str, app_digest: str) -> None:
    base_manifest, base_config = _image(store, base_digest)
    manifest, config = _image(store, app_digest)
    assert manifest["layers"][:2] == base_manifest["layers"]  # type: ignore[index]
    assert len(manifest["layers"]) == 4  # type: ignore[arg-type]
    inner = config["config"]
    # scratch starts with Docker's PATH; ENV replaces it in place (BuildKit's order).
    assert inner["Env"] == ["PATH=/tools", "BASE=1", "APP=1"]  # type: ignore[index]
    assert inner["Cmd"] == ["base"]  # type: ignore[index]
    history = config["history"]
    assert history[: len(base_config["history"])] == base_config["history"]  # type: ignore[index,arg-type]


def test_from_an_image_in_the_store(tmp_path: Path, ci_home: Path) -> None:
    base = _base(tmp_path)
    digest = run_cli("build", "-q", "-t", "app:v1", _app(tmp_path, BASE)).stdout.strip()
    _check_app(ci_home / "store", base, digest)
    umoci = require_tool("umoci")
    bundle = tmp_path / "bundle"
    run_tool(
        [
            umoci,
            "unpack",
            "--rootless",
            "--image",
            f"{ci_home / 'store'}:localhost/app:v1",
            str(bundle),
        ]
    )
    rootfs = bundle / "rootfs"
    assert (rootfs / "srv" / "data.yaml").read_text() == "data: 1\n"
    assert (rootfs / "bin" / "helm").read_text().startswith("#!/bin/sh")
    assert (rootfs / "etc" / "passwd").exists()


def test_from_an_oci_layout(tmp_path: Path, ci_home: Path) -> None:
    skopeo = require_tool("skopeo")
    base = _base(tmp_path)
    layout = tmp_path / "layout"
    run_tool([skopeo, "copy", "--quiet", f"oci:{ci_home / 'store'}:{BASE}", f"oci:{layout}:base"])
    # A fresh store: the base comes only from the layout.
    home = tmp_path / "fresh-home"
    ref = f"oci:{layout}:base"
    digest = run_cli(
        "build", "-q", "-t", "app:v1", _app(tmp_path, ref), env={"CLUSTERIMAGE_HOME": str(home)}
    ).stdout.strip()
    _check_app(home / "store", base, digest)


def test_from_a_registry_image_pulled_when_missing(
    tmp_path: Path, ci_home: Path, registry: Registry
) -> None:
    skopeo = require_tool("skopeo")
    base = _base(tmp_path)
    remote = f"{registry.host}/library/base:v1"
    run_tool(
        [skopeo, "copy", "--quiet", "--dest-tls-verify=false",
         f"oci:{ci_home / 'store'}:{BASE}", f"docker://{remote}"]
    )  # fmt: skip
    home = tmp_path / "fresh-home"
    env = {"CLUSTERIMAGE_HOME": str(home)}
    digest = run_cli("build", "-q", "-t", "app:v1", _app(tmp_path, remote), env=env).stdout
    _check_app(home / "store", base, digest.strip())
    listed = json.loads((home / "store" / "index.json").read_text())
    names = {m["annotations"]["org.opencontainers.image.ref.name"] for m in listed["manifests"]}
    assert f"{remote}" in names  # the pulled base is kept, tagged
    again = run_cli("build", "-q", "-t", "app:v1", _app(tmp_path, remote, "app2"), env=env)
    assert again.returncode == 0


def test_missing_base_image_names_the_from_line(tmp_path: Path, ci_home: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kubefile").write_text("# base\nFROM 127.0.0.1:1/nothing/here:v1\nCOPY Kubefile /\n")
    result = run_cli("build", "--engine", "native", "-t", "x:v1", ctx, check=False)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Kubefile:2: 127.0.0.1:1/nothing/here:v1 is not" in line
