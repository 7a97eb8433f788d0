"""The store is a real OCI image layout: skopeo, umoci and oci-image-tool read it, we read what
they write with the same digests, and every JSON document in it passes the OCI schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterimage.oci import mediatypes as mt
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, parse_manifest
from clusterimage.store import Store
from tests.conftest import require_tool, run_cli, run_tool
from tests.fixtures.oci_layout import OciImage, make_oci_layout
from tests.helpers.images import OciIndexImage, make_index_layout
from tests.helpers.oci_schemas import layout_errors, schema_errors

NAME = "example.com/team/app:v1"


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(
        tmp_path / "src",
        ref="v1",
        layers=({"etc/app.conf": b"key=value\n"}, {"bin/run.sh": b"#!/bin/sh\necho hi\n"}),
        config={"Env": ["PATH=/usr/bin"], "Cmd": ["run.sh"], "WorkingDir": "/"},
        labels={"sealos.io.type": "application"},
    )


@pytest.fixture
def multi(tmp_path: Path) -> OciIndexImage:
    return make_index_layout(tmp_path / "multi", ref="v1")


def _skopeo(*args: str) -> str:
    skopeo = require_tool("skopeo")
    return run_tool([skopeo, "--insecure-policy", *args]).stdout


def _pull(store: Path, source: str, name: str, *extra: str) -> str:
    return run_cli("--store", store, "pull", "-q", source, "--name", name, *extra).stdout.strip()


def test_skopeo_reads_our_store(tmp_path: Path, image: OciImage, multi: OciIndexImage) -> None:
    store = tmp_path / "store"
    assert _pull(store, image.transport_ref, NAME) == image.manifest.digest
    assert _pull(store, multi.transport_ref, "example.com/team/multi:v1", "--all") == (
        multi.index.digest
    )

    info = json.loads(_skopeo("inspect", f"oci:{store}:{NAME}"))
    assert info["Digest"] == image.manifest.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Labels"] == {"sealos.io.type": "application"}
    raw = _skopeo("inspect", "--raw", f"oci:{store}:{NAME}")
    assert raw.encode() == image.manifest_bytes
    config = json.loads(_skopeo("inspect", "--config", f"oci:{store}:{NAME}"))
    assert config["config"]["Cmd"] == ["run.sh"]
    index_raw = _skopeo("inspect", "--raw", f"oci:{store}:example.com/team/multi:v1")
    assert Digest.of(index_raw.encode()) == Digest.parse(multi.index.digest)

    # skopeo copies every blob out of our store and checks each digest on the way.
    out = tmp_path / "out"
    _skopeo("copy", "--all", f"oci:{store}:example.com/team/multi:v1", f"oci:{out}:copied")
    _skopeo("copy", f"oci:{store}:{NAME}", f"oci:{out}:single")
    entries = json.loads((out / "index.json").read_text())["manifests"]
    digests = {e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"] for e in entries}
    assert digests == {"copied": multi.index.digest, "single": image.manifest.digest}


def test_we_import_layouts_skopeo_wrote(
    tmp_path: Path, image: OciImage, multi: OciIndexImage
) -> None:
    written = tmp_path / "skopeo"
    _skopeo("copy", image.transport_ref, f"oci:{written}:oci")
    _skopeo("copy", "--format", "v2s2", image.transport_ref, f"oci:{written}:docker")
    _skopeo("copy", "--all", multi.transport_ref, f"oci:{written}:multi")
    entries = json.loads((written / "index.json").read_text())["manifests"]
    by_name = {e["annotations"]["org.opencontainers.image.ref.name"]: e for e in entries}
    assert by_name["docker"]["mediaType"] == mt.DOCKER_MANIFEST

    store = tmp_path / "store"
    for tag, extra in (("oci", ()), ("docker", ()), ("multi", ("--all",))):
        digest = _pull(store, f"oci:{written}:{tag}", f"localhost/skopeo:{tag}", *extra)
        assert digest == by_name[tag]["digest"], tag
    assert Store(store).fsck() == []
    summary = json.loads(run_cli("--store", store, "inspect", "localhost/skopeo:docker").stdout)
    assert summary["ManifestType"] == mt.DOCKER_MANIFEST
    assert summary["Config"]["Cmd"] == ["run.sh"]


def test_umoci_reads_our_store_and_we_read_umoci(tmp_path: Path, image: OciImage) -> None:
    umoci = require_tool("umoci")
    store = tmp_path / "store"
    _pull(store, image.transport_ref, NAME)
    listed = run_tool([umoci, "ls", "--layout", str(store)]).stdout.split()
    assert listed == [NAME]
    run_tool([umoci, "stat", "--image", f"{store}:{NAME}"])
    bundle = tmp_path / "bundle"
    run_tool([umoci, "unpack", "--rootless", "--image", f"{store}:{NAME}", str(bundle)])
    assert (bundle / "rootfs" / "etc" / "app.conf").read_text() == "key=value\n"
    # umoci writes a new config and manifest into a layout; we import them unchanged.
    layout = tmp_path / "umoci"
    _skopeo("copy", image.transport_ref, f"oci:{layout}:base")
    run_tool(
        [umoci, "config", "--image", f"{layout}:base", "--config.env", "X=1", "--tag", "changed"]
    )
    entries = json.loads((layout / "index.json").read_text())["manifests"]
    changed = next(
        e for e in entries if e["annotations"]["org.opencontainers.image.ref.name"] == "changed"
    )
    assert _pull(store, f"oci:{layout}:changed", "localhost/umoci:changed") == changed["digest"]
    summary = json.loads(run_cli("--store", store, "inspect", "localhost/umoci:changed").stdout)
    assert "X=1" in summary["Config"]["Env"]


def test_oci_image_tool_validates_the_store(
    tmp_path: Path, image: OciImage, multi: OciIndexImage
) -> None:
    tool = require_tool("oci-image-tool")
    store = tmp_path / "store"
    _pull(store, image.transport_ref, NAME)
    _pull(store, multi.transport_ref, "example.com/team/multi:v1", "--all")
    run_cli("--store", store, "tag", NAME, "localhost/other:v2")
    # A partial write in the private state folder must not bother the validator.
    Store(store).blob_writer(Digest.of(b"x" * 10), 10).write(b"x" * 5)
    # Without --ref it validates every ref. (--ref is unreliable in 1.0.0-rc1: its filter
    # drops entries from the list it iterates, so it skips the entry after each removed one.)
    result = run_tool([tool, "validate", "--type", "image", str(store)])
    output = result.stdout + result.stderr
    assert "No ref specified, verify all refs" in output
    assert "Validation succeeded" in output
    single = tmp_path / "single"
    _pull(single, image.transport_ref, NAME)
    run_tool([tool, "validate", "--type", "image", "--ref", f"name={NAME}", str(single)])


def test_documents_pass_the_oci_schemas(
    tmp_path: Path, image: OciImage, multi: OciIndexImage
) -> None:
    store_dir = tmp_path / "store"
    _pull(store_dir, image.transport_ref, NAME)
    _pull(store_dir, multi.transport_ref, "example.com/team/multi:v1", "--all")
    out = tmp_path / "exported"
    run_cli("--store", store_dir, "tag", NAME, "localhost/untagged-later:v1")
    run_cli("--store", store_dir, "rmi", "localhost/untagged-later:v1")
    run_cli("--store", store_dir, "inspect", NAME)
    run_cli("--store", store_dir, "pull", f"oci:{multi.layout}:v1", "--name", "localhost/m:1")
    # An oci: layout we write ourselves, too.
    from clusterimage.copy import copy_image
    from clusterimage.transports import Context, parse

    copy_image(parse(f"store:{NAME}"), parse(f"oci:{out}:exported"), Context(store_dir=store_dir))

    for root in (store_dir, out):
        assert layout_errors(json.loads((root / "oci-layout").read_text())) == []
        index = json.loads((root / "index.json").read_text())
        assert schema_errors(index, mt.OCI_INDEX) == [], root
        store = Store(root)
        checked = 0
        pending = [Digest.parse(e["digest"]) for e in index["manifests"]]
        while pending:
            digest = pending.pop()
            manifest = parse_manifest(store.blob_path(digest).read_bytes())
            assert schema_errors(manifest.data, manifest.media_type) == [], digest
            checked += 1
            if isinstance(manifest, ImageIndex):
                pending += [child.digest for child in manifest.manifests]
            elif isinstance(manifest, ImageManifest):
                config = json.loads(store.blob_path(manifest.config.digest).read_bytes())
                assert schema_errors(config, manifest.config.media_type) == []
        # store: app, multi (index + 2 images), m:1; exported: app
        assert checked == (5 if root == store_dir else 1)
