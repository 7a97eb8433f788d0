"""What the native builder writes, read by the reference tools: oci-image-tool, the OCI schemas,
umoci and skopeo."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool, run_cli, run_tool
from tests.helpers.oci_schemas import layout_errors, schema_errors

pytestmark = pytest.mark.integration

REF = "registry.example.com/apps/interop:v1"

KUBEFILE = """\
FROM scratch AS files
COPY --chmod=0640 secret.conf /etc/app/secret.conf

FROM scratch
LABEL sealos.io.type="application" sealos.io.version="v1beta1" \\
      org.opencontainers.image.title="interop"
ENV NAMESPACE=interop APP_HOME=/opt/app
COPY manifests manifests
COPY bin/ /opt/app/bin/
COPY --from=files /etc/app /etc/app
COPY links links
ADD bundle.tar.gz /opt/app/bundle/
COPY registry registry
WORKDIR /opt/app
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["kubectl apply -f manifests/"]
"""


def _bundle(path: Path) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("conf/a.yaml", b"a: 1\n"), ("conf/b.yaml", b"b: 2\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def built(tmp_path: Path, ci_home: Path) -> Path:
    """The store, after building a context that uses every kind of entry."""
    ctx = tmp_path / "ctx"
    (ctx / "manifests" / "deep" / "er").mkdir(parents=True)
    (ctx / "manifests" / "app.yaml").write_text("kind: Deployment\n")
    (ctx / "manifests" / "deep" / "er" / ("long-" + "n" * 120 + ".yaml")).write_text("x: 1\n")
    (ctx / "manifests" / "ünïcode.yaml").write_text("u: 1\n")
    (ctx / "bin").mkdir()
    (ctx / "bin" / "tool").write_bytes(os.urandom(200_000))
    (ctx / "bin" / "tool").chmod(0o755)
    os.link(ctx / "bin" / "tool", ctx / "bin" / "tool-hardlink")
    (ctx / "secret.conf").write_text("password=x\n")
    (ctx / "links").mkdir()
    (ctx / "links" / "to-app").symlink_to("../manifests/app.yaml")
    (ctx / "links" / "absolute").symlink_to("/etc/hostname")
    _bundle(ctx / "bundle.tar.gz")
    (ctx / "Kubefile").write_text(KUBEFILE)
    run_cli("build", "-q", "-t", REF, ctx)
    return ci_home / "store"


def _blob(store: Path, digest: str) -> Any:
    return json.loads((store / "blobs" / "sha256" / digest.partition(":")[2]).read_bytes())


def test_oci_image_tool_validates_the_image(built: Path) -> None:
    tool = require_tool("oci-image-tool")
    result = run_tool([tool, "validate", "--type", "image", "--ref", f"name={REF}", str(built)])
    assert "Validation succeeded" in result.stdout + result.stderr


def test_documents_pass_the_oci_schemas(built: Path) -> None:
    index = json.loads((built / "index.json").read_text())
    assert schema_errors(index, index["mediaType"]) == []
    assert layout_errors(json.loads((built / "oci-layout").read_text())) == []
    (entry,) = index["manifests"]
    manifest = _blob(built, entry["digest"])
    assert schema_errors(manifest, manifest["mediaType"]) == []
    config = _blob(built, manifest["config"]["digest"])
    assert schema_errors(config, manifest["config"]["mediaType"]) == []
    assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 7


def _tree(rootfs: Path) -> dict[str, tuple[str, int, str]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = path.relative_to(rootfs).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return out


def test_umoci_unpacks_what_was_copied(built: Path, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    bundle = tmp_path / "bundle"
    run_tool([umoci, "unpack", "--rootless", "--image", f"{built}:{REF}", str(bundle)])
    rootfs = bundle / "rootfs"
    files = _tree(rootfs)
    ctx = tmp_path / "ctx"
    assert files["manifests/app.yaml"][2] == hashlib.sha256(b"kind: Deployment\n").hexdigest()
    assert "manifests/deep/er/long-" + "n" * 120 + ".yaml" in files
    assert "manifests/ünïcode.yaml" in files
    tool = files["opt/app/bin/tool"]
    assert tool[:2] == ("file", 0o755)
    assert tool[2] == hashlib.sha256((ctx / "bin" / "tool").read_bytes()).hexdigest()
    assert (rootfs / "opt/app/bin/tool").stat().st_ino == (
        rootfs / "opt/app/bin/tool-hardlink"
    ).stat().st_ino
    assert files["etc/app/secret.conf"][:2] == ("file", 0o640)
    assert files["links/to-app"] == ("symlink", 0, "../manifests/app.yaml")
    assert files["links/absolute"] == ("symlink", 0, "/etc/hostname")
    assert files["opt/app/bundle/conf/a.yaml"][0] == "file"
    assert files["registry"] == ("dir", 0o755, "")
    config = json.loads((bundle / "config.json").read_text())
    assert "NAMESPACE=interop" in config["process"]["env"]
    assert config["process"]["cwd"] == "/opt/app"


def test_skopeo_inspect_shows_labels_and_env(built: Path) -> None:
    skopeo = require_tool("skopeo")
    result = run_tool([skopeo, "inspect", f"oci:{built}:{REF}"])
    data = json.loads(result.stdout)
    assert data["Labels"]["sealos.io.type"] == "application"
    assert data["Labels"]["org.opencontainers.image.title"] == "interop"
    assert "NAMESPACE=interop" in data["Env"] and "APP_HOME=/opt/app" in data["Env"]
    assert data["Created"] == "1970-01-01T00:00:00Z"
    config = json.loads(run_tool([skopeo, "inspect", "--config", f"oci:{built}:{REF}"]).stdout)
    assert config["config"]["Cmd"] == ["kubectl apply -f manifests/"]
    assert config["config"]["Entrypoint"] == ["/bin/sh", "-c"]


def test_skopeo_copies_the_image_out_unchanged(built: Path, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    out = tmp_path / "out"
    # The registry/ layer is uncompressed on purpose (its blobs are compressed already); skopeo
    # would gzip it for an oci: destination unless told to keep digests.
    run_tool(
        [skopeo, "copy", "--quiet", "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
         f"oci:{built}:{REF}", f"oci:{out}:copy"]
    )  # fmt: skip
    index = json.loads((built / "index.json").read_text())
    copied = json.loads((out / "index.json").read_text())
    assert copied["manifests"][0]["digest"] == index["manifests"][0]["digest"]
    subprocess.run([skopeo, "inspect", f"oci:{out}:copy"], check=True, capture_output=True)
