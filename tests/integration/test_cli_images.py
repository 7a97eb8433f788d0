"""The image commands end to end: pull, images, inspect, tag, rmi, prune, fsck, and bad input."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.oci_layout import OciImage, host_architecture, make_oci_layout
from tests.helpers.images import OciIndexImage, make_index_layout

APP = "docker.io/library/app:v1"


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(
        tmp_path / "src",
        ref="docker.io/library/app:v1",
        layers=({"etc/app.conf": b"a=1\n"}, {"bin/app": b"#!/bin/sh\n"}),
        config={"Env": ["MODE=prod"], "Cmd": ["app"], "Entrypoint": ["/bin/sh", "-c"]},
        labels={"sealos.io.type": "application", "sealos.io.version": "v1"},
    )


@pytest.fixture
def multi(tmp_path: Path) -> OciIndexImage:
    return make_index_layout(tmp_path / "multi", ref="v1")


def _size(image: OciImage) -> int:
    return image.manifest.size + image.config.size + sum(layer.size for layer in image.layers)


def test_pull_names_and_output(ci_home: Path, image: OciImage, multi: OciIndexImage) -> None:
    # oci:DIR:REF with a whole reference: REF names the image; stdout is the digest.
    result = run_cli("pull", image.transport_ref)
    assert result.stdout.strip() == image.manifest.digest
    assert f"Stored {APP}" in result.stderr
    assert run_cli("pull", "-q", image.transport_ref).stdout == image.manifest.digest + "\n"
    # A bare tag is not a name: --name is required.
    bare = run_cli("pull", multi.transport_ref, check=False)
    assert bare.returncode == 2
    assert bare.stderr.startswith("error: ") and "--name" in bare.stderr
    data = json.loads(
        run_cli("pull", "--json", multi.transport_ref, "--name", "m:all", "--all").stdout
    )
    assert data["name"] == "docker.io/library/m:all"
    assert data["digest"] == multi.index.digest
    assert data["source"] == multi.transport_ref
    assert data["blobsCopied"] == 4  # two configs, two layers
    arm = run_cli("pull", "-q", multi.transport_ref, "--name", "m:arm", "--platform", "linux/arm64")
    assert arm.stdout.strip() == multi.images["linux/arm64"].manifest.digest
    host = run_cli("pull", "-q", multi.transport_ref, "--name", "m:host")
    assert host.stdout.strip() == multi.images[f"linux/{host_architecture()}"].manifest.digest
    both = run_cli("pull", multi.transport_ref, "--all", "--platform", "linux/arm64", check=False)
    assert both.returncode == 2


def test_images_table_and_flags(ci_home: Path, image: OciImage, multi: OciIndexImage) -> None:
    run_cli("pull", "-q", image.transport_ref)
    run_cli("tag", APP, "quay.io/org/app:v2")
    run_cli("pull", "-q", multi.transport_ref, "--name", "localhost/multi:v1", "--all")
    short = image.config.digest.split(":")[1][:12]  # IMAGE ID: the config digest, as podman
    lines = run_cli("images").stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    rows = {tuple(re.split(r"\s{2,}", line)[:3]) for line in lines[1:]}
    assert rows == {
        ("docker.io/library/app", "v1", short),
        ("quay.io/org/app", "v2", short),
        ("localhost/multi", "v1", multi.index.digest.split(":")[1][:12]),
    }
    app_row = next(line for line in lines if line.startswith("docker.io/library/app"))
    assert "reproducible" in app_row  # created 1970-01-01, as reproducible builds write
    assert app_row.endswith(" B") or app_row.endswith(" kB")

    digests = run_cli("images", "--digests").stdout.splitlines()
    assert "DIGEST" in digests[0].split()
    assert any(image.manifest.digest in line for line in digests)
    assert any(
        image.config.digest in line for line in run_cli("images", "--no-trunc").stdout.splitlines()
    )
    ids = run_cli("images", "-q").stdout.split()
    assert sorted(ids) == sorted({short, multi.index.digest.split(":")[1][:12]})
    assert image.config.digest in run_cli("images", "-q", "--no-trunc").stdout.split()

    filtered = run_cli("images", "app").stdout.splitlines()[1:]
    assert sorted(line.split()[0] for line in filtered) == [
        "docker.io/library/app",
        "quay.io/org/app",
    ]
    assert len(run_cli("images", "app:v2").stdout.splitlines()) == 2

    listed = json.loads(run_cli("images", "--json").stdout)
    by_name = {f"{item['Repository']}:{item['Tag']}": item for item in listed}  # podman's keys
    assert set(by_name) == {APP, "quay.io/org/app:v2", "localhost/multi:v1"}
    app = by_name[APP]
    assert app["Names"] == [APP, "quay.io/org/app:v2"]
    assert app["Digest"] == image.manifest.digest
    assert app["Id"] == image.config.digest.split(":")[1]  # podman's image ID: the config
    assert (app["Created"], app["CreatedAt"]) == (0, "1970-01-01T00:00:00Z")
    assert app["Size"] == _size(image)
    index_size = multi.index.size + sum(_size(i) for i in multi.images.values())
    assert by_name["localhost/multi:v1"]["Size"] == index_size


def test_inspect(ci_home: Path, image: OciImage, multi: OciIndexImage) -> None:
    run_cli("pull", "-q", image.transport_ref)
    run_cli("tag", APP, "app:other")
    summary = json.loads(run_cli("inspect", "app:v1").stdout)
    assert summary["Digest"] == summary["ManifestDigest"] == image.manifest.digest
    assert summary["Id"] == image.config.digest.split(":")[1]  # the image ID, as podman's
    assert summary["RepoTags"] == [APP, "localhost/app:other"]  # tag: short is localhost/
    assert summary["RepoDigests"] == [
        f"docker.io/library/app@{image.manifest.digest}",
        f"localhost/app@{image.manifest.digest}",
    ]
    assert summary["Architecture"] == host_architecture()
    assert summary["Os"] == "linux"
    assert summary["Config"]["Env"] == ["MODE=prod"]  # podman's nesting: under Config
    assert summary["Config"]["Cmd"] == ["app"]
    assert summary["Config"]["Entrypoint"] == ["/bin/sh", "-c"]
    assert summary["Labels"] == {"sealos.io.type": "application", "sealos.io.version": "v1"}
    assert summary["RootFS"] == {"Type": "layers", "Layers": list(image.diff_ids)}
    assert summary["Size"] == summary["VirtualSize"] == _size(image)
    assert summary["ManifestType"] == "application/vnd.oci.image.manifest.v1+json"
    assert summary["Created"] == "1970-01-01T00:00:00Z"
    assert summary["History"] == [
        {"created": "1970-01-01T00:00:00Z", "created_by": "clusterimage tests"}
    ]
    assert summary["Index"] is None and summary["ClusterImageType"] == "application"
    for gone in ("Name", "Env", "Cmd", "Layers", "MediaType", "ConfigDigest"):
        assert gone not in summary  # the keys before podman's shape (README)
    manifest = json.loads(run_cli("inspect", "-t", "manifest", image.manifest.digest).stdout)
    assert manifest == json.loads(image.manifest_bytes)
    config = json.loads(run_cli("inspect", "--type", "config", "app:v1").stdout)
    assert config["config"]["Env"] == ["MODE=prod"]

    # Any transport, without the store: an oci: layout read in place.
    direct = json.loads(run_cli("inspect", f"oci:{multi.layout}:v1").stdout)
    host = multi.images[f"linux/{host_architecture()}"]
    # podman's Digest: the list's, pulled through one; ManifestDigest: this platform's.
    assert direct["Digest"] == direct["Index"]["Digest"] == multi.index.digest
    assert direct["ManifestDigest"] == host.manifest.digest
    assert direct["Index"]["Platforms"] == ["linux/amd64", "linux/arm64"]
    assert (direct["RepoTags"], direct["RepoDigests"]) == ([], [])  # oci:DIR:v1 names none
    arm = json.loads(
        run_cli("inspect", "--platform", "linux/arm64", f"oci:{multi.layout}:v1").stdout
    )
    assert arm["Architecture"] == "arm64"
    index = json.loads(run_cli("inspect", "-t", "manifest", f"oci:{multi.layout}:v1").stdout)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    missing = run_cli("inspect", "--platform", "linux/s390x", f"oci:{multi.layout}:v1", check=False)
    assert missing.returncode == 1
    assert (
        "no image for platform linux/s390x (available: linux/amd64, linux/arm64)" in missing.stderr
    )


def test_tag_rmi_prune_fsck(ci_home: Path, tmp_path: Path, image: OciImage) -> None:
    store = ci_home / "store"
    run_cli("pull", "-q", image.transport_ref)
    digest_hex = image.manifest.digest.split(":")[1]
    assert run_cli("tag", "app:v1", "app:a", "registry.example.com/x/app:b").stdout == ""
    assert len(json.loads(run_cli("images", "--json").stdout)) == 3

    out = run_cli("rmi", "app:a").stdout
    assert out == "Untagged: localhost/app:a\n"  # tag stored the short name as localhost/
    several = run_cli("rmi", digest_hex[:12], check=False)
    assert several.returncode == 1
    assert several.stderr.count("\n") == 1 and "several names" in several.stderr
    lines = run_cli("rmi", "-f", digest_hex[:12]).stdout.splitlines()
    assert sorted(lines[:-1]) == [f"Untagged: {APP}", "Untagged: registry.example.com/x/app:b"]
    assert lines[-1] == f"Deleted: {image.config.digest.split(':')[1]}"  # the image ID
    assert list((store / "blobs" / "sha256").iterdir()) == []  # freed at once

    run_cli("pull", "-q", image.transport_ref)
    run_cli("tag", "app:v1", "app:two")
    deleted = run_cli("rmi", "--all").stdout.splitlines()[-1]
    assert deleted == f"Deleted: {image.config.digest.split(':')[1]}"
    assert json.loads(run_cli("images", "--json").stdout) == []
    none = run_cli("rmi", check=False)
    assert none.returncode == 2 and none.stderr.startswith("error: ")

    run_cli("pull", "-q", image.transport_ref)
    assert "ok: 4 blobs, 1 image checked" in run_cli("fsck").stdout
    assert json.loads(run_cli("fsck", "--json").stdout) == {
        "ok": True,
        "blobs": 4,
        "images": 1,
        "problems": [],
    }
    # Pulling new content under the same name leaves the old image untagged, until prune.
    newer = make_oci_layout(tmp_path / "newer", ref="x", layers=({"new": b"content"},))
    run_cli("pull", "-q", newer.transport_ref, "--name", APP)
    rows = [re.split(r"\s{2,}", line)[:3] for line in run_cli("images").stdout.splitlines()[1:]]
    assert sorted(rows) == sorted(
        [
            ["docker.io/library/app", "v1", newer.config.digest.split(":")[1][:12]],
            ["<none>", "<none>", image.config.digest.split(":")[1][:12]],
        ]
    )
    pruned = run_cli("prune").stdout.splitlines()
    assert pruned[0] == f"Deleted: {digest_hex}"
    removed = {line.split()[2] for line in pruned if line.startswith("Removed blob sha256:")}
    assert removed == {image.manifest.digest, *image.blob_digests()}
    assert pruned[-1].startswith("Freed ") and "1 image, 4 blobs" in pruned[-1]
    assert json.loads(run_cli("prune", "--json").stdout) == {
        "images": [],
        "blobs": [],
        "partialFiles": 0,
        "freed": 0,
    }


def test_a_layout_that_names_its_manifest_by_sha512(ci_home: Path, image: OciImage) -> None:
    # --store on a layout another tool wrote with a sha512 manifest digest: images, inspect
    # and tag use that digest, not the sha256 of the manifest's bytes (which is not there).
    root = image.layout
    sha512 = hashlib.sha512(image.manifest_bytes).hexdigest()
    (root / "blobs" / "sha512").mkdir()
    (root / "blobs" / "sha512" / sha512).write_bytes(image.manifest_bytes)
    (root / "blobs" / "sha256" / image.manifest.digest.split(":")[1]).unlink()
    index = json.loads((root / "index.json").read_text())
    index["manifests"][0]["digest"] = f"sha512:{sha512}"
    (root / "index.json").write_text(json.dumps(index))
    [row] = json.loads(run_cli("--store", root, "images", "--json").stdout)
    assert row["Digest"] == f"sha512:{sha512}"
    assert row["Size"] == _size(image)
    run_cli("--store", root, "tag", APP, "quay.io/org/app:v2")
    summary = json.loads(run_cli("--store", root, "inspect", "quay.io/org/app:v2").stdout)
    assert sorted(summary["RepoTags"]) == [APP, "quay.io/org/app:v2"]
    assert run_cli("--store", root, "fsck").returncode == 0


def test_prune_and_rmi_keep_the_blobs_of_an_image_whose_manifest_is_damaged(
    ci_home: Path, tmp_path: Path, image: OciImage
) -> None:
    blobs = ci_home / "store" / "blobs" / "sha256"
    run_cli("pull", "-q", image.transport_ref)
    other = make_oci_layout(tmp_path / "other", ref="x", layers=({"o": b"other"},))
    run_cli("pull", "-q", other.transport_ref, "--name", "other:v1")
    (blobs / image.manifest.digest.split(":")[1]).write_bytes(b"{damaged")
    kept = {p.name for p in blobs.iterdir()}
    failed = run_cli("prune", check=False)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
    assert "gc removes nothing while a manifest cannot be read" in failed.stderr
    assert "clusterimage fsck" in failed.stderr
    # rmi of another image still untags it, warns, and leaves every blob in place.
    removed = run_cli("rmi", "other:v1")
    assert "Untagged: docker.io/library/other:v1" in removed.stdout
    assert "warning:" in removed.stderr and "cannot be read" in removed.stderr
    assert {p.name for p in blobs.iterdir()} == kept
    # Removing the damaged image itself lets gc free everything.
    run_cli("rmi", APP)
    run_cli("prune")
    assert list(blobs.iterdir()) == []


def test_pull_policy_counts_an_image_only_for_its_platform(
    ci_home: Path, multi: OciIndexImage
) -> None:
    amd, arm = multi.images["linux/amd64"], multi.images["linux/arm64"]

    def pull(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli("pull", multi.transport_ref, "--name", "app:m", *args, check=check)

    assert pull("--platform", "linux/arm64", "-q").stdout.strip() == arm.manifest.digest
    # The name holds arm64: for arm64 (arm64/v8 too) it is there, for amd64 it is not.
    kept = json.loads(pull("--platform", "linux/arm64/v8", "--policy", "missing", "--json").stdout)
    assert (kept["pulled"], kept["digest"]) == (False, arm.manifest.digest)
    never = pull("--platform", "linux/amd64", "--policy", "never", check=False)
    assert never.returncode == 1 and never.stderr.count("\n") == 1
    assert "holds it for linux/arm64, not linux/amd64" in never.stderr
    pulled = pull("--platform", "linux/amd64", "--policy", "missing", "-q")
    assert pulled.stdout.strip() == amd.manifest.digest
    # With --all the whole index is stored: then every platform of it counts.
    assert pull("--all", "-q").stdout.strip() == multi.index.digest
    for platform in ("linux/amd64", "linux/arm64"):
        again = pull("--platform", platform, "--policy", "never", "--json")
        assert json.loads(again.stdout)["digest"] == multi.index.digest


def test_pull_warns_when_a_single_platform_image_is_not_for_the_platform_asked(
    ci_home: Path, tmp_path: Path
) -> None:
    amd = make_oci_layout(tmp_path / "amd", ref="x", architecture="amd64")
    other = run_cli("pull", amd.transport_ref, "--name", "app:x", "--platform", "linux/arm64")
    assert other.stdout.strip().endswith(amd.manifest.digest)  # pulled as it is, as podman does
    assert "warning: the image is for linux/amd64, not the linux/arm64" in other.stderr
    same = run_cli("pull", amd.transport_ref, "--name", "app:x", "--platform", "linux/amd64")
    assert "warning" not in same.stderr


def _corrupt_blob(home: Path, tmp: Path, image: OciImage) -> tuple[list[str], str]:
    run_cli("pull", "-q", image.transport_ref)
    layer = image.layers[0].digest
    path = home / "store" / "blobs" / "sha256" / layer.split(":")[1]
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    return ["fsck"], f"blob {layer} is corrupt"


def _plain_folder(home: Path, tmp: Path, image: OciImage) -> tuple[list[str], str]:
    (tmp / "plain").mkdir()
    (tmp / "plain" / "notes.txt").write_text("not a layout")
    return ["--store", str(tmp / "plain"), "images"], "not an OCI image layout"


def _bad_index(home: Path, tmp: Path, image: OciImage) -> tuple[list[str], str]:
    (home / "store").mkdir()
    (home / "store" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (home / "store" / "index.json").write_text("{not json")
    return ["images"], "not an OCI image layout"


def _bad_index_entry(home: Path, tmp: Path, image: OciImage) -> tuple[list[str], str]:
    run_cli("pull", "-q", image.transport_ref)
    index_path = home / "store" / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"][0]["annotations"] = "hand-edited"
    index_path.write_text(json.dumps(index))
    return ["images"], "manifests[0]: annotations"


def _bad_config(home: Path, tmp: Path, image: OciImage) -> tuple[list[str], str]:
    make_oci_layout(tmp / "badcfg", ref="v1", config={"Labels": "not an object"})
    return ["inspect", f"oci:{tmp}/badcfg:v1"], "Labels"


def _args(
    args: list[str], expected: str
) -> Callable[[Path, Path, OciImage], tuple[list[str], str]]:
    def setup(home: Path, tmp: Path, image: OciImage) -> tuple[list[str], str]:
        run_cli("pull", "-q", image.transport_ref)
        return [a.format(layout=image.layout, tmp=tmp) for a in args], expected

    return setup


BAD_INPUT = {
    "inspect missing image": _args(["inspect", "nothere:1"], "image not known"),
    "rmi missing image": _args(["rmi", "nothere"], "nothere"),
    "tag missing image": _args(["tag", "nothere", "x:1"], "image not known"),
    "pull missing ref": _args(
        ["pull", "oci:{layout}:nope", "--name", "x:1"], "no image named 'nope'"
    ),
    "inspect invalid reference": _args(["inspect", "UPPER:case"], "invalid reference"),
    "tag invalid target": _args(["tag", "app:v1", "bad ref"], "invalid reference"),
    "pull invalid name": _args(
        ["pull", "oci:{layout}:docker.io/library/app:v1", "--name", "Bad/Name"],
        "invalid reference",
    ),
    "images invalid filter": _args(["images", "a@b"], "invalid reference"),
    "oci folder missing": _args(
        ["pull", "oci:{tmp}/absent:x", "--name", "a"], "not an OCI image layout"
    ),
    "store folder not a layout": _plain_folder,
    "store with bad index.json": _bad_index,
    "store with a malformed index entry": _bad_index_entry,
    "inspect a config of the wrong shape": _bad_config,
    "fsck corrupt blob": _corrupt_blob,
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line(case: str, ci_home: Path, tmp_path: Path, image: OciImage) -> None:
    args, expected = BAD_INPUT[case](ci_home, tmp_path, image)
    result = run_cli(*args, check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
