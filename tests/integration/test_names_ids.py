"""Names and image IDs as podman and buildah users expect them (issue: names and IDs).

A name stored without a registry (tag, merge -t, load) is ``localhost/NAME``, and a short name
is looked up as ``localhost/NAME`` first, then ``docker.io/library/NAME``, so ``push myapp:v1``
never goes to Docker Hub. IMAGE ID is the config digest, as in podman, buildah and docker;
commands take a prefix of it or of the manifest digest. ``pull`` keeps Docker's rule.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import httpx
import pytest

from clusterimage.errors import ImageNotFound
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageManifest
from clusterimage.pull import PullPolicy, default_name, pull
from clusterimage.store import Store
from clusterimage.transports import Context, parse
from tests.conftest import require_tool, run_cli, run_tool
from tests.fixtures.oci_layout import OciImage, make_oci_layout
from tests.fixtures.registry import Registry

pytestmark = pytest.mark.integration


def _pulled(tmp_path: Path, name: str, content: bytes = b"app\n") -> OciImage:
    """An image in the default store under ``name`` (given whole, so pull's rule is moot)."""
    image = make_oci_layout(tmp_path / f"src-{content.hex()}", ref="v1", layers=({"f": content},))
    run_cli("pull", image.transport_ref, "--name", name, "-q")
    return image


def _names(store_dir: Path) -> dict[str, str]:
    """index.json ref name -> manifest digest."""
    index = json.loads((store_dir / "index.json").read_text())
    return {
        e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"]
        for e in index["manifests"]
        if "org.opencontainers.image.ref.name" in e.get("annotations", {})
    }


def _one_error_line(*args: str | Path, status: int = 1) -> str:
    result = run_cli(*args, check=False)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _prefixes(image: OciImage) -> dict[str, str]:
    """12 hex characters of the config digest (the image ID) and of the manifest digest."""
    return {
        "config": Digest.parse(image.config.digest).hex[:12],
        "manifest": Digest.parse(image.manifest.digest).hex[:12],
    }


# -- names without a registry are local ------------------------------------------------------


def test_tag_stores_a_short_name_under_localhost_and_finds_it(
    ci_home: Path, store_dir: Path, tmp_path: Path
) -> None:
    image = _pulled(tmp_path, "quay.io/org/img:v1")
    run_cli("tag", "quay.io/org/img:v1", "myapp:v1", "me/tool")
    names = _names(store_dir)
    assert names["localhost/myapp:v1"] == image.manifest.digest
    assert names["localhost/me/tool:latest"] == image.manifest.digest
    assert not any(n.startswith("docker.io/") for n in names)
    shown_ids = run_cli("images", "-q", "--no-trunc").stdout.split()
    assert shown_ids == [image.config.digest]  # one image, and its ID is the config digest
    shown = json.loads(run_cli("inspect", "myapp:v1").stdout)
    assert shown["Digest"] == image.manifest.digest
    assert "localhost/myapp:v1" in shown["RepoTags"]
    # A qualified target stays as it is, Docker Hub included when it is named.
    run_cli("tag", "myapp:v1", "docker.io/myapp:v1")
    assert "docker.io/library/myapp:v1" in _names(store_dir)


def test_a_short_name_finds_localhost_before_docker_hub(
    ci_home: Path, store_dir: Path, tmp_path: Path
) -> None:
    hub = _pulled(tmp_path, "docker.io/library/app:latest", b"hub\n")
    assert json.loads(run_cli("inspect", "app").stdout)["Digest"] == hub.manifest.digest
    local = _pulled(tmp_path, "localhost/app:latest", b"local\n")
    shown = json.loads(run_cli("inspect", "app").stdout)
    assert shown["Digest"] == local.manifest.digest
    assert shown["RepoTags"] == ["localhost/app:latest"]
    hub_shown = json.loads(run_cli("inspect", "docker.io/library/app").stdout)
    assert hub_shown["Digest"] == hub.manifest.digest
    result = run_cli("rmi", "app")  # the localhost/ name goes, Docker's stays
    assert "Untagged: localhost/app:latest" in result.stdout
    assert json.loads(run_cli("inspect", "app").stdout)["Digest"] == hub.manifest.digest


def test_a_name_not_found_says_what_was_tried(ci_home: Path, tmp_path: Path) -> None:
    _pulled(tmp_path, "localhost/other:v1")
    for command in ("inspect", "rmi", "push", "save"):
        args = ["-o", str(tmp_path / "x.tar")] if command == "save" else []
        line = _one_error_line(command, *args, "myapp:v1")
        assert (
            "myapp:v1: image not known (tried localhost/myapp:v1, docker.io/library/myapp:v1)"
            in line
        ), command


def test_push_of_a_short_name_goes_to_localhost_not_docker_hub(
    ci_home: Path, tmp_path: Path
) -> None:
    _pulled(tmp_path, "quay.io/org/img:v1")
    run_cli("tag", "quay.io/org/img:v1", "myapp:v1")
    # Nothing listens on localhost's HTTPS port here: the push fails there, on loopback.
    line = _one_error_line("push", "myapp:v1", "--retry", "0")
    assert "names its registry as 'localhost'" in line
    assert "docker.io" not in line and "registry-1" not in line
    assert "clusterimage push myapp:v1 docker://REGISTRY/myapp:v1" in line


def test_merge_names_the_result_localhost(ci_home: Path, store_dir: Path, tmp_path: Path) -> None:
    _pulled(tmp_path, "localhost/base:v1", b"base\n")
    _pulled(tmp_path, "localhost/app:v1", b"app\n")
    out = json.loads(run_cli("merge", "-t", "x", "base:v1", "app:v1", "--json").stdout)
    assert out["name"] == "localhost/x:latest"
    assert "localhost/x:latest" in _names(store_dir)
    assert "docker.io/library/x:latest" not in _names(store_dir)
    assert json.loads(run_cli("inspect", "x").stdout)["RepoTags"] == ["localhost/x:latest"]


def test_load_stores_an_unqualified_oci_ref_name_as_localhost(
    ci_home: Path, store_dir: Path, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    archive = tmp_path / "myapp.tar"
    # skopeo writes the ref name as given: org.opencontainers.image.ref.name = myapp:v1
    run_tool([skopeo, "copy", image.transport_ref, f"oci-archive:{archive}:myapp:v1"])
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.loads(member.read())
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "myapp:v1"}
    loaded = run_cli("load", "-i", archive, "--json")
    assert "localhost/myapp:v1" in loaded.stdout
    assert _names(store_dir) == {"localhost/myapp:v1": image.manifest.digest}
    assert json.loads(run_cli("inspect", "myapp:v1").stdout)["Digest"] == image.manifest.digest
    # A qualified ref name keeps its registry.
    qualified = tmp_path / "qualified.tar"
    run_tool([skopeo, "copy", image.transport_ref, f"oci-archive:{qualified}:quay.io/o/a:v1"])
    run_cli("load", "-i", qualified, "-q")
    assert "quay.io/o/a:v1" in _names(store_dir)
    # A docker-archive's RepoTags are Docker's familiar names (docker save writes myapp:v1
    # for docker.io/library/myapp:v1): they keep Docker's rule, as podman loads them.
    familiar = tmp_path / "docker.tar"
    run_cli("copy", image.transport_ref, f"docker-archive:{familiar}:myapp:v2")
    with tarfile.open(familiar) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        assert json.loads(member.read())[0]["RepoTags"] == ["myapp:v2"]
    run_cli("load", "-i", familiar, "-q")
    assert "docker.io/library/myapp:v2" in _names(store_dir)


def test_pull_of_a_short_name_keeps_dockers_rule(ci_home: Path, store_dir: Path) -> None:
    # No traffic leaves loopback: the name is checked where pull computes it, and with
    # --policy never, which must not pull at all.
    src = parse("myapp", default="docker")
    ctx = Context(store_dir=store_dir)
    assert str(default_name(src, ctx)) == "docker.io/library/myapp:latest"
    image = make_oci_layout(store_dir.parent / "layout", ref="v1")
    run_cli("pull", image.transport_ref, "--name", "localhost/myapp:latest", "-q")
    # The local image of that short name is not what `pull myapp` means.
    with pytest.raises(ImageNotFound, match=r"^docker.io/library/myapp:latest: not in the st"):
        pull(src, ctx, policy=PullPolicy.never)
    line = _one_error_line("pull", "myapp", "--policy", "never")
    assert "docker.io/library/myapp:latest: not in the store" in line


# -- image IDs ----------------------------------------------------------------------------------


def test_rmi_prints_the_config_digest_as_the_deleted_id(ci_home: Path, tmp_path: Path) -> None:
    image = _pulled(tmp_path, "localhost/app:v1")
    result = run_cli("rmi", "app:v1")
    assert result.stdout.splitlines() == [
        "Untagged: localhost/app:v1",
        f"Deleted: {Digest.parse(image.config.digest).hex}",  # as podman prints it
    ]


@pytest.mark.parametrize("kind", ["config", "manifest"])
def test_inspect_tag_save_take_an_id_prefix(
    kind: str, ci_home: Path, store_dir: Path, tmp_path: Path
) -> None:
    image = _pulled(tmp_path, "localhost/app:v1")
    _pulled(tmp_path, "localhost/other:v1", b"other\n")
    prefix = _prefixes(image)[kind]
    for given in (prefix, f"sha256:{prefix}"):
        shown = json.loads(run_cli("inspect", given).stdout)
        assert shown["Digest"] == image.manifest.digest, given
        assert shown["RepoTags"] == ["localhost/app:v1"]  # by ID: the image's names
    # save by ID: the archive names the image by its one name.
    archive = tmp_path / f"{kind}.tar"
    run_cli("save", "-o", archive, prefix)
    other_home = tmp_path / "other-home"
    run_cli("load", "-i", archive, "-q", env={"CLUSTERIMAGE_HOME": str(other_home)})
    assert _names(other_home / "store") == {"localhost/app:v1": image.manifest.digest}
    run_cli("tag", prefix, "byid:v1")
    assert _names(store_dir)["localhost/byid:v1"] == image.manifest.digest
    # Now two names: an archive of it by ID names neither (as podman save by ID).
    saved = run_cli("save", "-o", tmp_path / "two.tar", prefix, "--json").stdout
    assert [i["name"] for i in json.loads(saved)["images"]] == [None]


def test_save_writes_the_name_the_image_is_stored_under(ci_home: Path, tmp_path: Path) -> None:
    image = _pulled(tmp_path, "quay.io/org/img:v1")
    run_cli("tag", "quay.io/org/img:v1", "myapp:v1")
    for fmt in ("oci-archive", "docker-archive"):
        archive = tmp_path / f"{fmt}.tar"
        saved = json.loads(
            run_cli("save", "--format", fmt, "-o", archive, "myapp:v1", "--json").stdout
        )
        assert [i["name"] for i in saved["images"]] == ["localhost/myapp:v1"], saved
        other_home = tmp_path / f"home-{fmt}"
        run_cli("load", "-i", archive, "-q", env={"CLUSTERIMAGE_HOME": str(other_home)})
        # Not docker.io/library/myapp:v1: the round trip keeps the local name.
        names = _names(other_home / "store")
        assert list(names) == ["localhost/myapp:v1"], fmt
        if fmt == "oci-archive":
            assert names["localhost/myapp:v1"] == image.manifest.digest


@pytest.mark.parametrize("kind", ["config", "manifest"])
def test_rmi_by_id_prefix_removes_the_image_and_its_names(
    kind: str, ci_home: Path, store_dir: Path, tmp_path: Path
) -> None:
    image = _pulled(tmp_path, "localhost/app:v1")
    run_cli("tag", "app:v1", "app:v2")
    prefix = _prefixes(image)[kind]
    line = _one_error_line("rmi", prefix)
    assert "has several names (localhost/app:v1, localhost/app:v2)" in line
    assert "--force" in line
    result = run_cli("rmi", "-f", prefix)
    assert sorted(result.stdout.splitlines()) == [
        f"Deleted: {Digest.parse(image.config.digest).hex}",
        "Untagged: localhost/app:v1",
        "Untagged: localhost/app:v2",
    ]
    assert _names(store_dir) == {}


@pytest.mark.parametrize("kind", ["config", "manifest"])
def test_push_takes_an_id_prefix(
    kind: str, ci_home: Path, tmp_path: Path, registry: Registry
) -> None:
    image = _pulled(tmp_path, f"{registry.host}/apps/app:v1")
    prefix = _prefixes(image)[kind]
    # With a destination...
    out = run_cli("push", prefix, f"docker://{registry.host}/apps/copy:v1", "--tls-verify=false")
    assert out.stdout.strip() == image.manifest.digest
    # ...and without: by ID, the image's one name says where.
    out = run_cli("push", prefix, "--tls-verify=false")
    assert out.stdout.strip() == image.manifest.digest
    for repo in ("apps/copy", "apps/app"):
        response = httpx.head(
            f"{registry.url}/v2/{repo}/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert response.status_code == 200, repo
        assert response.headers["Docker-Content-Digest"] == image.manifest.digest
    # Two names: which one to push to is the user's to say.
    run_cli("tag", prefix, "localhost/second:v1")
    line = _one_error_line("push", prefix, "--tls-verify=false", status=2)  # a usage error
    assert f"{registry.host}/apps/app:v1, localhost/second:v1" in line
    assert "give a DST" in line


def _second_manifest_of_one_config(store_dir: Path, name: str, image: OciImage) -> str:
    """The image again under another manifest with the same config, as a recompressed copy
    (docker-archive load, --compression-format) is; returns its manifest digest."""
    store = Store.open(store_dir)
    manifest = store.get_manifest(Digest.parse(image.manifest.digest))
    assert isinstance(manifest, ImageManifest)
    other = ImageManifest.build(manifest.config, manifest.layers, annotations={"copy": "2"})
    store.put_bytes(other.raw, other.digest)
    store.set_ref(name, Descriptor(other.media_type, other.digest, other.size))
    return str(other.digest)


def test_an_ambiguous_prefix_is_one_line_listing_the_candidates(
    ci_home: Path, store_dir: Path, tmp_path: Path
) -> None:
    image = _pulled(tmp_path, "localhost/app:v1")
    second = _second_manifest_of_one_config(store_dir, "localhost/app:copy", image)
    prefix = _prefixes(image)["config"]
    for command in ("inspect", "rmi", "tag", "push", "save"):
        extra = {"tag": ["x:v1"], "save": ["-o", str(tmp_path / "x.tar")]}.get(command, [])
        args = [command, *extra, prefix] if command == "save" else [command, prefix, *extra]
        line = _one_error_line(*args)
        assert f"{prefix}: ambiguous image ID, matches 2 images:" in line, command
        assert f"localhost/app:v1 (ID {prefix}, manifest {_prefixes(image)['manifest']})" in line
        assert f"localhost/app:copy (ID {prefix}, manifest {Digest.parse(second).short})" in line
    # Each manifest digest still names one; the store is unchanged.
    assert json.loads(run_cli("inspect", second[7:19]).stdout)["Digest"] == second
    assert set(_names(store_dir)) == {"localhost/app:v1", "localhost/app:copy"}
    assert not (tmp_path / "x.tar").exists()


def test_diff_unpack_create_find_short_names_and_id_prefixes(ci_home: Path, tmp_path: Path) -> None:
    one = _pulled(tmp_path, "quay.io/org/one:v1", b"one\n")
    two = _pulled(tmp_path, "quay.io/org/two:v1", b"two\n")
    run_cli("tag", "quay.io/org/one:v1", "myapp:v1")
    by_config = _prefixes(two)["config"]
    diff = json.loads(run_cli("diff", "myapp:v1", by_config, "--json").stdout)
    assert diff["files"]["changed"] == ["f"]
    out = tmp_path / "out"
    unpacked = json.loads(run_cli("unpack", _prefixes(one)["config"], out, "--json").stdout)
    assert len(unpacked["images"]) == 1
    assert (out / "f").read_bytes() == b"one\n"
    created = json.loads(run_cli("create", "myapp:v1", "--json").stdout)
    assert "/applications/myapp/workdir" in created["workdir"]
    # By ID, an image with one name is titled by it (not by the ID read as a name).
    created = json.loads(run_cli("create", _prefixes(two)["manifest"], "--json").stdout)
    assert "/applications/two/workdir" in created["workdir"]
