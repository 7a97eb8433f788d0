"""Multi-platform builds (``build --platform P1,P2 [--manifest NAME]``): one build per platform,
each with its own registry/ of that platform's images, then an OCI image index under the tag.
What other tools see of it (skopeo, a pull per platform, docker), the cache, shared layers,
manifest lists, and the errors; also where an unqualified build tag is stored (localhost/)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterimage.build.engine import cannot_run
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest
from clusterimage.oci.platform import Platform
from clusterimage.store import Store
from tests.conftest import run_cli
from tests.fixtures.dockerd import DockerDaemon
from tests.fixtures.oci_layout import make_oci_layout
from tests.fixtures.registry import Registry
from tests.helpers.images import OciIndexImage, make_index_layout
from tests.integration.registry_support import one_line_error, skopeo

pytestmark = pytest.mark.integration

INDEX = "application/vnd.oci.image.index.v1+json"
BOTH = "linux/amd64,linux/arm64"
# manifests/ is the same for both platforms (one shared layer), registry/ is not.
KUBEFILE = (
    "FROM scratch\nARG TARGETARCH\nLABEL built.for=$TARGETARCH\n"
    "COPY manifests manifests\nCOPY registry registry\n"
)


def _source(tmp_path: Path, registry: Registry) -> tuple[OciIndexImage, str]:
    """A two-platform image (amd64 and arm64, different files) served by ``registry``."""
    multi = make_index_layout(tmp_path / "multi", ref="v3")
    name = f"{registry.host}/team/multi:v3"
    run_cli("copy", "--all", multi.transport_ref, f"docker://{name}")
    return multi, name


def _context(root: Path, image: str, kubefile: str = KUBEFILE) -> Path:
    (root / "manifests").mkdir(parents=True)
    (root / "Kubefile").write_text(kubefile)
    (root / "manifests" / "app.yaml").write_text(f"spec:\n  image: {image}\n")
    return root


def _names(store: Path) -> list[str | None]:
    data = json.loads((store / "index.json").read_text())
    return [
        (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        for m in data["manifests"]
    ]


def _layer_files(store: Store, manifest: ImageManifest) -> set[str]:
    names: set[str] = set()
    for layer in manifest.layers:
        with store.open_blob(layer.digest) as blob:
            data = blob.read()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            names.update(member.name.removeprefix("./") for member in tar.getmembers())
    return names


def _blob_path(digest: str) -> str:
    """Where distribution's layout keeps a blob (registry/ of a cluster image)."""
    hex_ = digest.split(":", 1)[1]
    return f"registry/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"


def test_two_platforms_make_an_index_that_skopeo_pull_and_docker_read(
    tmp_path: Path,
    ci_home: Path,
    registry_factory: Callable[..., Registry],
    dockerd: DockerDaemon,
) -> None:
    registry = registry_factory()
    multi, image = _source(tmp_path, registry)
    context = _context(tmp_path / "ctx", image)

    built = run_cli("build", "--platform", BOTH, "-t", "apps/cluster:v1", context, "--json")
    result = json.loads(built.stdout)
    assert result["mediaType"] == INDEX and result["tags"] == ["localhost/apps/cluster:v1"]
    by_platform = {entry["platform"]: entry for entry in result["platforms"]}
    assert list(by_platform) == ["linux/amd64", "linux/arm64"]
    for platform, entry in by_platform.items():
        # each platform's registry/ holds that platform's manifest of the embedded image
        assert entry["images"] == {"team/multi:v3": multi.images[platform].manifest.digest}
    # manifests/ is built once: arm64 reuses amd64's layer, its registry/ is its own
    cached = {p: [layer["cached"] for layer in e["layers"]] for p, e in by_platform.items()}
    assert cached["linux/amd64"] and not any(cached["linux/amd64"])
    assert cached["linux/arm64"][0] and not any(cached["linux/arm64"][1:])

    # Each platform has its registry/ folder, and the image cache keeps a foreign platform's
    # tags apart from this machine's (a tag there holds one platform's manifest).
    assert len(list((ci_home / "cache" / "registry").iterdir())) == 2
    foreign = next(p for p in by_platform if p != str(Platform.host()))
    caches = {p.name for p in (ci_home / "cache").iterdir() if p.name.startswith("images")}
    assert caches == {"images", f"images-{foreign.replace('/', '-')}"}

    # Stored once, under the tag: the platforms' images are reached through the index only.
    store_dir = ci_home / "store"
    assert _names(store_dir) == ["localhost/apps/cluster:v1"]
    store = Store(store_dir, create=False)
    index = store.get_manifest(store.resolve("apps/cluster:v1").digest)
    assert isinstance(index, ImageIndex) and str(index.digest) == result["digest"]
    manifests: dict[str, ImageManifest] = {}
    for desc in index.manifests:
        assert desc.platform is not None
        child = store.get_manifest(desc.digest, desc.media_type)
        assert isinstance(child, ImageManifest)
        config = store.get_config(child)
        assert config.platform == desc.platform
        manifests[str(desc.platform)] = child
    assert str(manifests["linux/arm64"].digest) == by_platform["linux/arm64"]["digest"]

    # registry/ of each image: its platform's image manifest, not the other's.
    for platform, other in (("linux/amd64", "linux/arm64"), ("linux/arm64", "linux/amd64")):
        files = _layer_files(store, manifests[platform])
        assert _blob_path(multi.images[platform].manifest.digest) in files
        assert _blob_path(multi.images[other].manifest.digest) not in files
        assert "manifests/app.yaml" in files

    # Layers whose content is the same for both platforms are one blob, referenced twice.
    amd = {str(layer.digest) for layer in manifests["linux/amd64"].layers}
    arm = {str(layer.digest) for layer in manifests["linux/arm64"].layers}
    shared = amd & arm
    assert shared and amd != arm
    referenced = {str(index.digest)} | amd | arm
    for child in manifests.values():
        referenced |= {str(child.digest), str(child.config.digest)}
    on_disk = {f"sha256:{p.name}" for p in (store_dir / "blobs" / "sha256").iterdir()}
    assert on_disk == referenced
    total_refs = 1 + sum(2 + len(child.layers) for child in manifests.values())
    assert len(on_disk) == total_refs - len(shared)

    # Pushed, the index is what skopeo sees: both platforms.
    remote = f"{registry.host}/apps/cluster:v1"
    run_cli("push", "--all", "apps/cluster:v1", f"docker://{remote}")
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{remote}"))
    assert raw["mediaType"] == INDEX
    assert sorted(
        f"{m['platform']['os']}/{m['platform']['architecture']}" for m in raw["manifests"]
    ) == ["linux/amd64", "linux/arm64"]

    # A pull of each platform into a fresh store gets that platform's image and config.
    for platform, arch in (("linux/arm64", "arm64"), ("linux/amd64", "amd64")):
        fresh = tmp_path / f"fresh-{arch}"
        pulled = run_cli(
            "--store", fresh, "pull", "-q", "--platform", platform, f"docker://{remote}"
        ).stdout.strip()
        assert pulled == by_platform[platform]["digest"]
        got = Store(fresh, create=False)
        manifest = got.get_manifest(got.resolve(remote).digest)
        assert isinstance(manifest, ImageManifest)
        config = got.get_config(manifest)
        assert config.platform is not None and config.platform.architecture == arch
        assert config.data["config"]["Labels"]["built.for"] == arch

    # docker on this host pulls the index and gets this machine's platform.
    dockerd.cli("pull", remote, timeout=120)
    inspected = json.loads(dockerd.cli("image", "inspect", remote).stdout)[0]
    assert inspected["Architecture"] == Platform.host().architecture
    assert inspected["Config"]["Labels"]["built.for"] == Platform.host().architecture
    dockerd.cli("rmi", remote)

    # The same build again: every layer from the cache, the same index.
    again = run_cli("build", "--platform", BOTH, "-t", "apps/cluster:v1", context)
    assert again.stdout.strip() == result["digest"]
    assert again.stderr.count("--> Using cache") == sum(
        len(entry["layers"]) for entry in result["platforms"]
    )
    for platform, entry in by_platform.items():
        assert f"{platform}: {entry['digest']}" in again.stderr
    assert _names(store_dir) == ["localhost/apps/cluster:v1"]


def test_manifest_creates_a_list_and_later_builds_add_or_replace_platforms(
    tmp_path: Path, ci_home: Path, registry_factory: Callable[..., Registry]
) -> None:
    _, image = _source(tmp_path, registry_factory())
    context = _context(tmp_path / "ctx", image)
    store = ci_home / "store"

    def entries() -> dict[str, str]:
        opened = Store(store, create=False)
        index = opened.get_manifest(opened.resolve("localhost/apps/list:v1").digest)
        assert isinstance(index, ImageIndex) and index.media_type == INDEX
        return {str(d.platform): str(d.digest) for d in index.manifests}

    first = json.loads(
        run_cli(
            "build", "--platform", "linux/amd64", "--manifest", "apps/list:v1", context, "--json"
        ).stdout
    )
    assert first["manifest"] == "localhost/apps/list:v1"
    assert entries() == {"linux/amd64": first["platforms"][0]["digest"]}

    second = run_cli(
        "build", "-q", "--platform", "linux/arm64", "--manifest", "apps/list:v1", context
    )
    assert second.stderr == "" and second.stdout.count("\n") == 1  # -q: the digest only
    listed = entries()
    assert list(listed) == ["linux/amd64", "linux/arm64"]
    assert listed["linux/amd64"] == first["platforms"][0]["digest"]
    assert second.stdout.strip() == str(
        Store(store, create=False).resolve("localhost/apps/list:v1").digest
    )

    # A changed arm64 image replaces the list's arm64 entry; amd64 stays.
    changed = json.loads(
        run_cli(
            "build",
            "--platform",
            "linux/arm64",
            "--label",
            "rev=2",
            "--manifest",
            "apps/list:v1",
            context,
            "--json",
        ).stdout
    )
    assert entries() == {
        "linux/amd64": first["platforms"][0]["digest"],
        "linux/arm64": changed["platforms"][0]["digest"],
    }
    assert listed["linux/arm64"] != changed["platforms"][0]["digest"]
    assert _names(store) == ["localhost/apps/list:v1"]

    # A name that holds an image, not a list, is refused before anything is built.
    run_cli("build", "-q", "-t", "apps/plain:v1", context)
    refused = run_cli(
        "build", "--platform", BOTH, "--manifest", "apps/plain:v1", context, check=False
    )
    assert refused.returncode != 0
    line = one_line_error(refused.stderr)
    assert "localhost/apps/plain:v1" in line and "not a manifest list" in line


def _foreign_platform() -> str:
    foreign = next(
        (
            p
            for p in ("linux/arm64", "linux/s390x", "linux/ppc64le")
            if cannot_run(Platform.parse(p))
        ),
        None,
    )
    if foreign is None:
        pytest.skip("this machine runs arm64, s390x and ppc64le programs (binfmt_misc)")
    return foreign


@pytest.mark.parametrize("with_host", [False, True], ids=["alone", "with-the-host"])
def test_run_for_a_platform_this_machine_cannot_run_is_one_line_before_building(
    with_host: bool, tmp_path: Path, ci_home: Path
) -> None:
    # Alone (one-platform build) or in a list: the same check, before buildah is started.
    foreign = _foreign_platform()
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kubefile").write_text('FROM scratch\nCOPY Kubefile /k\nRUN ["/bin/true"]\n')
    platforms = f"{Platform.host()},{foreign}" if with_host else foreign
    result = run_cli(
        "build", "--platform", platforms, "-t", "localhost/run:v1", context, check=False
    )
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert "Kubefile:3" in line and foreign in line and "binfmt_misc" in line
    assert "STEP" not in result.stderr  # buildah never started
    assert not (ci_home / "store" / "index.json").exists() or _names(ci_home / "store") == []


def test_dry_run_plans_every_platform(tmp_path: Path, ci_home: Path) -> None:
    context = _context(tmp_path / "ctx", "example.com/team/app:v1")
    text = run_cli("build", "--dry-run", "--platform", BOTH, context).stdout
    assert "platform   linux/amd64" in text and "platform   linux/arm64" in text
    assert "LABEL built.for=amd64" in text and "LABEL built.for=arm64" in text
    assert text.count("registry/: 1 image") == 1
    data = json.loads(run_cli("build", "--dry-run", "--json", "--platform", BOTH, context).stdout)
    assert [plan["platform"] for plan in data["platforms"]] == ["linux/amd64", "linux/arm64"]
    assert [plan["ociConfig"]["Labels"]["built.for"] for plan in data["platforms"]] == [
        "amd64",
        "arm64",
    ]
    assert data["registry"]["images"][0]["reference"] == "example.com/team/app:v1"
    assert not (ci_home / "store").exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--platform", "linux/amd64,linux/amd64"], "'linux/amd64': given twice"),
        (["--platform", "linux/arm64", "--platform", "linux/arm64/v8"], "given twice (as"),
        (["--platform", "linux/amd64,nope"], "invalid platform 'nope'"),
        (["--platform", "linux/amd64,"], "an empty platform in the list"),
        (["--manifest", "apps/list@sha256:" + "a" * 64], "not a digest"),
    ],
)
def test_bad_platform_lists_are_one_line(
    tmp_path: Path, ci_home: Path, flags: list[str], expected: str
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY Kubefile /k\n")
    for dry in ([], ["--dry-run"]):
        result = run_cli("build", *dry, *flags, "-t", "localhost/x:v1", context, check=False)
        assert result.returncode != 0
        assert expected in one_line_error(result.stderr)


def test_an_unqualified_tag_is_stored_under_localhost(tmp_path: Path, ci_home: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY Kubefile /k\n")
    digest = run_cli("build", "-q", "-t", "myapp:v1", context).stdout.strip()
    listed = json.loads(run_cli("images", "--json").stdout)
    assert [(item["Names"], item["Digest"]) for item in listed] == [
        (["localhost/myapp:v1"], digest)
    ]
    table = run_cli("images").stdout.splitlines()
    assert table[1].split()[:2] == ["localhost/myapp", "v1"]
    inspected = json.loads(run_cli("inspect", "myapp:v1").stdout)
    assert inspected["RepoTags"] == ["localhost/myapp:v1"] and inspected["Digest"] == digest
    assert _names(ci_home / "store") == ["localhost/myapp:v1"]


def test_run_for_this_machine_goes_to_buildah_and_into_a_list(
    tmp_path: Path, ci_home: Path
) -> None:
    from tests.integration.test_buildah_engine import (
        BUSYBOX_BASE,
        build_busybox_base,
        require_buildah,
    )

    require_buildah()
    build_busybox_base(tmp_path)
    context = tmp_path / "run"
    context.mkdir()
    (context / "Kubefile").write_text(
        f"FROM {BUSYBOX_BASE}\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n"
    )
    host = str(Platform.host())
    result = json.loads(
        run_cli("build", "--platform", host, "--manifest", "apps/ran:v1", context, "--json").stdout
    )
    assert [(p["platform"], p["engine"]) for p in result["platforms"]] == [(host, "buildah")]
    store = Store(ci_home / "store", create=False)
    index = store.get_manifest(store.resolve("apps/ran:v1").digest)
    assert isinstance(index, ImageIndex)
    assert [str(d.digest) for d in index.manifests] == [result["platforms"][0]["digest"]]
    assert _names(ci_home / "store") == [BUSYBOX_BASE, "localhost/apps/ran:v1"]


def test_each_platform_starts_from_its_own_base_image(
    tmp_path: Path, ci_home: Path, registry_factory: Callable[..., Registry]
) -> None:
    _, image = _source(tmp_path, registry_factory())
    context = _context(tmp_path / "ctx", image, f"FROM {image}\nCOPY manifests manifests\n")
    result = json.loads(
        run_cli("build", "--platform", BOTH, "-t", "apps/based:v1", context, "--json").stdout
    )
    store = Store(ci_home / "store", create=False)
    for entry in result["platforms"]:
        arch = entry["platform"].split("/")[1]
        manifest = store.get_manifest(Digest.parse(entry["digest"]))
        assert isinstance(manifest, ImageManifest)
        files = _layer_files(store, manifest)
        assert f"{arch}.txt" in files, (entry["platform"], files)
        assert store.get_config(manifest).platform == Platform.parse(entry["platform"])
    # The first platform pulled the base for itself; the second found that one was not its
    # own and fetched the base's index under its name, where every platform finds its image.
    base = store.get_manifest(store.resolve(image).digest)
    assert isinstance(base, ImageIndex) and len(base.manifests) == 2


def test_an_image_of_another_platform_only_is_embedded_with_a_warning_and_cached(
    tmp_path: Path, ci_home: Path, registry_factory: Callable[..., Registry]
) -> None:
    """A single-platform image offers no choice: registry/ holds it as it is, and the build
    says so, as `pull --platform` does; the next build takes it from the cache (it was fetched
    again on every build) and says so again."""
    registry = registry_factory()
    host = Platform.host()
    other = "arm64" if host.architecture != "arm64" else "amd64"
    source = make_oci_layout(tmp_path / "one", ref="v1", architecture=host.architecture)
    name = f"{registry.host}/team/only:v1"
    run_cli("copy", source.transport_ref, f"docker://{name}")
    context = _context(tmp_path / "ctx", name)
    warning = (
        f"manifests/app.yaml:2: image docker://{name} is for {host.os}/{host.architecture}, "
        f"not linux/{other}: "
        "registry/ holds it as it is"
    )
    for round_ in (1, 2):
        mark = registry.log_mark()
        built = run_cli("build", "--platform", f"linux/{other}", "--json", context)
        result = json.loads(built.stdout)
        assert result["images"] == {"team/only:v1": source.manifest.digest}
        assert warning in result["warnings"], result["warnings"]
        gets = [e for e in registry.requests(mark) if e.method == "GET" and "/blobs/" in e.path]
        assert (len(gets) > 0) == (round_ == 1), gets
    text = run_cli("build", "--platform", f"linux/{other}", context).stderr
    assert f"warning: {warning}\n" in text, text
