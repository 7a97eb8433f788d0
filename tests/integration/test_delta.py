"""Delta bundles: a site that has v1 of a cluster image receives only what v2 adds.

The fixture: eight small images, each one random layer on top of a base layer they all share,
pushed to a loopback docker-registry; a Kubefile whose manifests/ name them, built as v1, then
as v2 with one image replaced (team/img3:v1 -> team/img3:v2) in one manifest file. The native
builder writes registry/ as one layer per embedded image, so v2 shares seven of them with v1 and
a delta bundle of v2 against v1 carries the eighth, the manifests layer, and manifests and
configs only.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.registry import Registry, start_registry
from tests.fixtures.tools import require_tool, run_tool
from tests.helpers.images import make_raw_image

pytestmark = pytest.mark.integration

IMAGES = 8
LAYER_BYTES = 384 << 10
CHANGED = 3  # team/img3 is the image v2 replaces
KUBEFILE = 'FROM scratch\nCOPY manifests manifests\nCOPY registry registry\nCMD ["kubectl apply -f manifests"]\n'  # noqa: E501


@dataclass(frozen=True)
class Site:
    """Everything the tests share: the two builds' bundles, made once."""

    root: Path
    home: Path  # the builder's CLUSTERIMAGE_HOME (holds both versions)
    v1_full: Path
    v2_full: Path
    delta: Path
    v1_digest: str
    v2_digest: str
    registry: str  # host:port of the loopback registry the images came from

    def env(self, home: Path) -> dict[str, str | None]:
        return {"CLUSTERIMAGE_HOME": str(home), "SOURCE_DATE_EPOCH": None}


def _push_image(layout: Path, tag: str, layers: list[bytes], dest: str, home: Path) -> None:
    """One image (uncompressed random layers; their content does not matter to registries)
    into ``layout`` under ``tag``, copied to ``dest`` on the loopback registry."""
    layout.mkdir(parents=True, exist_ok=True)
    make_raw_image(layout, layers, ref=tag)
    run_cli(
        "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{dest}",
        env={"CLUSTERIMAGE_HOME": str(home)},
    )  # fmt: skip


def _context(root: Path, host: str, img3_tag: str) -> Path:
    root.mkdir(parents=True)
    (root / "Kubefile").write_text(KUBEFILE)
    manifests = root / "manifests"
    manifests.mkdir()
    for n in range(1, IMAGES + 1):
        tag = img3_tag if n == CHANGED else "v1"
        (manifests / f"app{n}.yaml").write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: app{n}\nspec:\n  containers:\n"
            f"    - name: app{n}\n      image: {host}/team/img{n}:{tag}\n"
        )
    return root


def build_site(root: Path, registry: Registry) -> Site:
    """Push the images, build v1 and v2, and save v1 full, v2 full and v2's delta on v1."""
    home = root / "builder-home"
    rng = random.Random(42)
    base = rng.randbytes(64 << 10)  # every image's first layer: a blob all eight share
    for n in range(1, IMAGES + 1):
        _push_image(
            root / "layouts" / f"img{n}",
            "v1",
            [base, rng.randbytes(LAYER_BYTES)],
            f"{registry.host}/team/img{n}:v1",
            home,
        )
    _push_image(
        root / "layouts" / "img3-v2",
        "v2",
        [base, rng.randbytes(LAYER_BYTES)],
        f"{registry.host}/team/img{CHANGED}:v2",
        home,
    )
    env = {"CLUSTERIMAGE_HOME": str(home), "SOURCE_DATE_EPOCH": None}
    digests = []
    for version, tag in (("v1", "v1"), ("v2", "v2")):
        context = _context(root / f"ctx-{version}", registry.host, tag)
        built = run_cli(
            "build", "-q", "--tls-verify=false", "--platform", "linux/amd64",
            "--timestamp", "1700000000", "-t", f"localhost/app:{version}", context, env=env,
        )  # fmt: skip
        digests.append(built.stdout.strip())
    bundles = root / "bundles"
    bundles.mkdir()
    run_cli("save", "-q", "-o", bundles / "v1.tar", "localhost/app:v1", env=env)
    run_cli("save", "-q", "-o", bundles / "v2.tar", "localhost/app:v2", env=env)
    run_cli(
        "save", "-q", "-o", bundles / "v2-delta.tar", "--delta-from", bundles / "v1.tar",
        "localhost/app:v2", env=env,
    )  # fmt: skip
    return Site(
        root,
        home,
        bundles / "v1.tar",
        bundles / "v2.tar",
        bundles / "v2-delta.tar",
        digests[0],
        digests[1],
        registry.host,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("delta")
    registry = start_registry(root / "registry")
    try:
        yield build_site(root, registry)
    finally:
        registry.stop()


def _layers(home: Path, name: str) -> list[str]:
    manifest = run_cli("inspect", "-t", "manifest", name, env={"CLUSTERIMAGE_HOME": str(home)})
    return [layer["digest"] for layer in json.loads(manifest.stdout)["layers"]]


def _store_state(home: Path) -> tuple[dict[str, str], list[dict[str, object]]]:
    """Every blob of a store (path -> sha256 of its bytes) and its index entries."""
    store = home / "store"
    blobs = {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((store / "blobs").rglob("*"))
        if p.is_file()
    }
    return blobs, json.loads((store / "index.json").read_text())["manifests"]


def _members(bundle: Path) -> dict[str, bytes]:
    """Each member of an archive bundle: a blob's name, or index.json with its content."""
    with tarfile.open(bundle) as tar:
        index = tar.extractfile("index.json")
        assert index is not None
        return {m.name: b"" for m in tar.getmembers()} | {"index.json": index.read()}


def _fsck(home: Path) -> str:
    return run_cli("fsck", env={"CLUSTERIMAGE_HOME": str(home)}).stdout


def test_registry_is_one_layer_per_image_so_v2_shares_seven_with_v1(site: Site) -> None:
    v1, v2 = _layers(site.home, "localhost/app:v1"), _layers(site.home, "localhost/app:v2")
    # manifests/ then one layer per image (no file belongs to none, so no last layer).
    assert len(v1) == len(v2) == 1 + IMAGES
    differ = [i for i, (a, b) in enumerate(zip(v1, v2, strict=True)) if a != b]
    assert differ == [0, CHANGED]  # the manifests layer and team/img3's
    config = json.loads(
        run_cli(
            "inspect", "-t", "config", "localhost/app:v2", env={"CLUSTERIMAGE_HOME": str(site.home)}
        ).stdout
    )
    history = [h["created_by"] for h in config["history"] if not h.get("empty_layer")]
    assert history[CHANGED].endswith("in /registry (image team/img3:v2)"), history
    assert history[1].endswith("in /registry (image team/img1:v1)"), history


def test_an_unchanged_rebuild_takes_every_image_layer_from_the_cache(site: Site) -> None:
    def build(*extra: str) -> tuple[str, list[str]]:
        result = run_cli(
            "build", "--tls-verify=false", "--platform", "linux/amd64", *extra,
            "--timestamp", "1700000000", "-t", "localhost/app:v2", site.root / "ctx-v2",
            env=site.env(site.home),
        )  # fmt: skip
        lines = result.stderr.splitlines()
        return result.stdout.strip().splitlines()[-1], [x for x in lines if x.startswith("-->")]

    digest, layers = build()
    assert digest == site.v2_digest
    assert len(layers) == 1 + IMAGES and all(x.startswith("--> Using cache") for x in layers)
    # Written again from scratch, the N layers of the registry step are the same bytes.
    digest, layers = build("--no-cache")
    assert digest == site.v2_digest
    assert len(layers) == 1 + IMAGES and not any("Using cache" in x for x in layers)


def test_the_delta_is_under_a_sixth_of_the_full_bundle(site: Site) -> None:
    full, delta = site.v2_full.stat().st_size, site.delta.stat().st_size
    assert delta * 6 < full, (delta, full)
    verified = json.loads(run_cli("bundle", "verify", "--json", site.delta).stdout)
    assert verified["ok"] and verified["delta"]["omittedBlobs"] == IMAGES - 1
    # Every manifest and config is in the delta; only layers were left out.
    with tarfile.open(site.delta) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        names = set(tar.getnames())
    inventory = json.loads(run_cli("bundle", "inventory", "-q", site.v1_full).stdout)
    base_digest = (
        "sha256:"
        + hashlib.sha256(
            json.dumps(inventory, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    )
    assert index["annotations"]["io.clusterimage.delta.base"] == base_digest
    assert index["annotations"]["io.clusterimage.delta.omitted"] == str(IMAGES - 1)
    full_inventory = json.loads(run_cli("bundle", "inventory", "-q", site.v2_full).stdout)
    for blob in full_inventory["blobs"]:
        member = "blobs/sha256/" + blob["digest"].split(":")[1]
        if blob["kind"] != "layer":
            assert member in names, blob


def test_v1_then_the_delta_is_the_same_store_as_v1_then_the_full_v2(
    site: Site, tmp_path: Path
) -> None:
    by_delta, by_full = tmp_path / "by-delta", tmp_path / "by-full"
    for home, second in ((by_delta, site.delta), (by_full, site.v2_full)):
        env = site.env(home)
        run_cli("load", "-q", "-i", site.v1_full, env=env)
        loaded = json.loads(run_cli("load", "--json", "-i", second, env=env).stdout)
        assert loaded["images"][0]["digest"] == site.v2_digest
    delta_load = json.loads(
        run_cli("load", "--json", "-i", site.delta, env=site.env(by_delta)).stdout
    )
    assert delta_load["delta"]["omittedBlobs"] == IMAGES - 1
    assert _store_state(by_delta) == _store_state(by_full)
    assert _fsck(by_delta).startswith("ok:") and _fsck(by_full).startswith("ok:")


def test_a_delta_where_v1_is_missing_fails_before_writing_naming_the_blobs(
    site: Site, tmp_path: Path
) -> None:
    home = tmp_path / "empty"
    result = run_cli("load", "-i", site.delta, env=site.env(home), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    v1_only = set(_layers(site.home, "localhost/app:v1")[1:]) - {
        _layers(site.home, "localhost/app:v2")[CHANGED]
    }
    named = [d for d in v1_only if d in lines[0]]
    assert len(named) == 3 and f"and {IMAGES - 1 - 3} more" in lines[0], lines[0]
    assert f"leaves out {IMAGES - 1} blobs the store" in lines[0]  # the plural, and then:
    assert not (home / "store").exists()  # nothing written, not even an empty store
    # With v1's blobs but one of them gone, the store is left as it was.
    partial = tmp_path / "partial"
    run_cli("load", "-q", "-i", site.v1_full, env=site.env(partial))
    victim = sorted(v1_only)[0]
    (partial / "store" / "blobs" / "sha256" / victim.split(":")[1]).unlink()
    before = _store_state(partial)
    again = run_cli("load", "-i", site.delta, env=site.env(partial), check=False)
    assert again.returncode == 1 and victim in again.stderr and "1 blob the store" in again.stderr
    assert _store_state(partial) == before


def _skopeo_digest(reference: str) -> str:
    raw = run_tool([require_tool("skopeo"), "inspect", "--raw", "--tls-verify=false", reference])
    return "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest()


def test_a_delta_loads_into_a_registry_that_has_v1_and_nowhere_else(
    site: Site, tmp_path: Path
) -> None:
    """load --to: the site's registry, not a store, is where the base must be."""
    env = site.env(tmp_path / "home")
    have, empty = f"{site.registry}/site-a", f"{site.registry}/site-b"
    loaded = run_cli("load", "-i", site.v1_full, "--to", have, "--tls-verify=false", env=env)
    assert loaded.stdout == f"Loaded image: {have}/app:v1\n"
    out = json.loads(
        run_cli(
            "load", "--json", "-i", site.delta, "--to", have, "--tls-verify=false", env=env
        ).stdout
    )
    assert out["images"][0]["name"] == f"{have}/app:v2"
    assert out["images"][0]["digest"] == site.v2_digest
    # Only the layer v1 lacks (and manifests, configs) went over the wire.
    assert out["images"][0]["blobsSkipped"] == IMAGES - 1
    assert _skopeo_digest(f"docker://{have}/app:v2") == site.v2_digest
    assert not (tmp_path / "home" / "store").exists()  # the store was never touched
    # Into a registry without v1: refused before anything is pushed, naming the blobs.
    result = run_cli(
        "load", "-i", site.delta, "--to", empty, "--tls-verify=false", env=env, check=False
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert f"leaves out {IMAGES - 1} blobs not in {empty}/app" in result.stderr
    assert "load its base bundle there first" in result.stderr
    repositories = site.root / "registry" / "storage" / "docker" / "registry" / "v2"
    assert (repositories / "repositories" / "site-a").is_dir()
    assert not (repositories / "repositories" / "site-b").exists()


def test_load_into_a_registry_refuses_unnamed_images_and_schemes(
    site: Site, tmp_path: Path
) -> None:
    env = site.env(tmp_path / "home")
    unnamed = tmp_path / "unnamed.tar"
    run_cli("load", "-q", "-i", site.v1_full, env=env)
    run_cli("tag", "localhost/app:v1", "localhost/other:v1", env=env)
    image_id = run_cli("images", "-q", env=env).stdout.split()[0]
    # Saved by ID, an image of two names goes without one (RepoTags [], as docker save).
    run_cli("save", "-q", "--format", "docker-archive", "-o", unnamed, image_id, env=env)
    to = f"{site.registry}/site-c"
    result = run_cli("load", "-i", unnamed, "--to", to, "--tls-verify=false", env=env, check=False)
    assert result.returncode == 1
    assert f"1 image with no name to push under into {to}" in result.stderr, result.stderr
    schemed = run_cli("load", "-i", site.v1_full, "--to", f"http://{to}", env=env, check=False)
    assert schemed.returncode == 1 and "without a scheme" in schemed.stderr


def test_one_flipped_byte_fails_bundle_verify_naming_the_blob(site: Site, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.tar"
    shutil.copy(site.v2_full, damaged)
    layer = _layers(site.home, "localhost/app:v2")[CHANGED]
    with tarfile.open(damaged) as tar:
        member = tar.getmember("blobs/sha256/" + layer.split(":")[1])
        offset = member.offset_data + member.size // 2
    with open(damaged, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = run_cli("bundle", "verify", damaged, check=False)
    assert result.returncode == 1
    assert f"blob {layer} is damaged" in result.stderr, result.stderr
    assert "ok:" in run_cli("bundle", "verify", site.v2_full).stdout
    delta = run_cli("bundle", "verify", site.delta).stdout
    assert delta.startswith("ok:") and "a delta on sha256:" in delta


def test_an_inventory_stands_for_its_bundle_and_bases_are_a_union(
    site: Site, tmp_path: Path
) -> None:
    env = site.env(site.home)
    inventory = tmp_path / "v1.inventory.json"
    inventory.write_text(run_cli("bundle", "inventory", "-q", site.v1_full).stdout)
    assert inventory.stat().st_size < 8 << 10  # small enough to send back by mail
    by_inventory = tmp_path / "by-inventory.tar"
    saved = json.loads(
        run_cli(
            "save", "--json", "-o", by_inventory, "--delta-from", inventory, "localhost/app:v2",
            env=env,
        ).stdout
    )  # fmt: skip
    # The same bundle (blobs arrive in the order parallel copies finish, so not the same bytes).
    assert _members(by_inventory) == _members(site.delta)
    assert saved["delta"]["omittedBlobs"] == IMAGES - 1
    assert saved["delta"]["omittedBytes"] > 6 * site.delta.stat().st_size
    # Against v1 and v2 together, v2 leaves out all of its layers; an OCI layout folder too.
    both = tmp_path / "both"
    run_cli(
        "save", "-q", "--format", "oci-dir", "-o", both, "--delta-from", inventory,
        "--delta-from", site.v2_full, "localhost/app:v2", env=env,
    )  # fmt: skip
    annotations = json.loads((both / "index.json").read_text())["annotations"]
    assert annotations["io.clusterimage.delta.omitted"] == str(1 + IMAGES)
    assert len(annotations["io.clusterimage.delta.base"].split(",")) == 2
    assert run_cli("bundle", "verify", both).stdout.startswith("ok:")


def test_bad_delta_requests_are_one_line_errors(site: Site, tmp_path: Path) -> None:
    env = site.env(site.home)
    docker = run_cli(
        "save", "--format", "docker-archive", "-o", tmp_path / "d.tar", "--delta-from",
        site.v1_full, "localhost/app:v2", env=env, check=False,
    )  # fmt: skip
    assert docker.returncode != 0 and "docker load cannot skip layers" in docker.stderr
    assert len(docker.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d.tar").exists()
    not_inventory = tmp_path / "other.json"
    not_inventory.write_text('{"format": "something-else", "blobs": []}')
    for old, words in ((not_inventory, "not a bundle inventory"), (tmp_path / "no", "no such")):
        result = run_cli(
            "save", "-o", tmp_path / "x.tar", "--delta-from", old, "localhost/app:v2",
            env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 1 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    # A delta whose omitted list does not match what it lacks is damaged, not a delta.
    forged = tmp_path / "forged"
    run_cli(
        "save", "-q", "--format", "oci-dir", "-o", forged, "--delta-from", site.v1_full,
        "localhost/app:v2", env=env,
    )  # fmt: skip
    index = json.loads((forged / "index.json").read_text())
    index["annotations"]["io.clusterimage.delta.omitted"] = "6"
    (forged / "index.json").write_text(json.dumps(index))
    verify = run_cli("bundle", "verify", forged, check=False)
    assert verify.returncode == 1 and "says it omits 6" in verify.stderr
    loaded = run_cli("load", "-i", forged, env=site.env(tmp_path / "h"), check=False)
    assert loaded.returncode == 1 and "says it omits 6" in loaded.stderr


def _diff(home: Path, a: str, b: str) -> dict[str, object]:
    env = {"CLUSTERIMAGE_HOME": str(home)}
    data: dict[str, object] = json.loads(run_cli("diff", a, b, "--json", env=env).stdout)
    return data


def _outside_registry(paths: object) -> list[str]:
    assert isinstance(paths, list)
    return [p for p in paths if not p.startswith("registry/")]


def test_diff_names_exactly_the_replaced_image_and_the_changed_file(site: Site) -> None:
    data = _diff(site.home, "localhost/app:v1", "localhost/app:v2")
    assert data["images"] == {
        "added": [f"team/img{CHANGED}:v2"],
        "removed": [f"team/img{CHANGED}:v1"],
        "changed": [],
    }
    files = data["files"]
    assert isinstance(files, dict)
    assert files["changed"] == [f"manifests/app{CHANGED}.yaml"]
    assert _outside_registry(files["added"]) == _outside_registry(files["removed"]) == []
    assert data["config"] == {}
    env = {"CLUSTERIMAGE_HOME": str(site.home)}
    text = run_cli("diff", "localhost/app:v1", "localhost/app:v2", env=env).stdout
    assert f"~ file manifests/app{CHANGED}.yaml" in text
    assert f"+ image team/img{CHANGED}:v2" in text and f"- image team/img{CHANGED}:v1" in text
    same = run_cli("diff", "localhost/app:v2", "localhost/app:v2", env=env)
    assert same.returncode == 0 and same.stdout == "" and same.stderr == ""


def test_diff_names_an_image_whose_tag_now_holds_other_content_as_changed(
    site: Site, tmp_path: Path
) -> None:
    """Same reference, new digest: v3 is v1's context built after team/img5:v1 was pushed
    again with another layer; nothing else differs."""
    home = tmp_path / "home"
    shutil.copytree(site.home, home, symlinks=True)
    rng = random.Random(7)
    _push_image(
        tmp_path / "img5-new",
        "v1",
        [rng.randbytes(LAYER_BYTES)],
        f"{site.registry}/team/img5:v1",
        home,
    )
    context = _context(tmp_path / "ctx-v3", site.registry, "v1")
    try:
        run_cli(
            "build", "-q", "--tls-verify=false", "--platform", "linux/amd64", "--pull", "always",
            "--timestamp", "1700000000", "-t", "localhost/app:v3", context,
            env={"CLUSTERIMAGE_HOME": str(home), "SOURCE_DATE_EPOCH": None},
        )  # fmt: skip
    finally:  # the registry is the module's: team/img5:v1 as the other tests know it
        run_cli(
            "copy", "-q", "--dest-tls-verify=false", f"oci:{site.root / 'layouts' / 'img5'}:v1",
            f"docker://{site.registry}/team/img5:v1", env={"CLUSTERIMAGE_HOME": str(home)},
        )  # fmt: skip
    data = _diff(home, "localhost/app:v1", "localhost/app:v3")
    images = data["images"]
    assert isinstance(images, dict)
    assert images["added"] == images["removed"] == []
    (changed,) = images["changed"]
    assert changed.startswith("team/img5:v1"), changed
    files = data["files"]
    assert isinstance(files, dict)
    assert _outside_registry(files["changed"]) == []
    assert _outside_registry(files["added"]) == _outside_registry(files["removed"]) == []


def test_an_inventory_comes_through_a_pipe(site: Site, tmp_path: Path) -> None:
    # As `--delta-from <(ssh site clusterimage bundle inventory app-v1.tar)` passes it.
    inventory = run_cli("bundle", "inventory", "-q", site.v1_full).stdout
    out = tmp_path / "piped.tar"
    script = (
        f"{sys.executable} -m clusterimage save -q -o {out} "
        f"--delta-from <(printf '%s' \"$INVENTORY\") localhost/app:v2"
    )
    subprocess.run(
        ["bash", "-c", script],
        env={
            **{k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"},
            "CLUSTERIMAGE_HOME": str(site.home),
            "INVENTORY": inventory,
        },
        check=True,
        timeout=120,
    )
    assert _members(out) == _members(site.delta)


def test_a_fifo_for_index_json_is_one_line_not_a_hang(site: Site, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    run_cli(
        "save",
        "-q",
        "--format",
        "oci-dir",
        "-o",
        bundle,
        "localhost/app:v1",
        env=site.env(site.home),
    )
    (bundle / "index.json").unlink()
    os.mkfifo(bundle / "index.json")
    for args in (["load", "-i", str(bundle)], ["bundle", "verify", str(bundle)]):
        result = run_cli(*args, env=site.env(tmp_path / "home"), check=False, timeout=60)
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "index.json is a FIFO, not a file" in line, line
