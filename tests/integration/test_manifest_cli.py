"""`clusterimage manifest` against a real registry, skopeo and buildah: lists we make and push
read back byte for byte; a list buildah pushed is taken in, grown and pushed again; and every
bad input is one `error:` line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool, run_cli, run_tool
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    Image,
    isolated_auth,  # noqa: F401 - fixture
    one_line_error,
    skopeo,
    write_image,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _images(tmp_path: Path, *arches: str) -> dict[str, Image]:
    return {
        arch: write_image(tmp_path / f"img-{arch}", [3000 + n], seed=20 + n, architecture=arch)
        for n, arch in enumerate(arches)
    }


def _raw(ref: str) -> bytes:
    """The manifest at ``docker://ref`` as the registry serves it (skopeo inspect --raw)."""
    return skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").encode()


class _Buildah:
    """buildah with a private storage root (vfs) and a registries.conf that lets it speak
    plain HTTP to the loopback registry: its `manifest inspect` has no --tls-verify, and
    this buildah (1.28) reads --registries-conf, not $CONTAINERS_REGISTRIES_CONF."""

    def __init__(self, tmp_path: Path, registry: Registry) -> None:
        require_root("buildah with its own storage root")
        conf = tmp_path / "buildah-registries.conf"
        conf.write_text(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
        self.base = [
            require_tool("buildah"),
            "--registries-conf",
            str(conf),
            "--root",
            str(tmp_path / "buildah-root"),
            "--runroot",
            str(tmp_path / "buildah-run"),
            "--storage-driver",
            "vfs",
        ]

    def __call__(self, *args: str) -> str:
        return run_tool([*self.base, *args]).stdout


def test_create_add_push_read_back_by_skopeo_and_buildah(
    registry: Registry, tmp_path: Path
) -> None:
    images = _images(tmp_path, "amd64", "arm64")
    run_cli("pull", "-q", images["amd64"].transport_ref, "--name", "localhost/app:amd64")
    created = run_cli("manifest", "create", "app:v1", "--annotation", "org.example.k=v")
    assert created.stdout.strip().startswith("sha256:")
    run_cli("manifest", "add", "app:v1", "app:amd64")
    added = run_cli("manifest", "add", "app:v1", images["arm64"].transport_ref, "--variant", "v8")
    digest = added.stdout.strip()
    ours = run_cli("manifest", "inspect", "--raw", "app:v1").stdout.encode()
    assert _sha256(ours) == digest
    # The index JSON podman-style (indented) says the same as the raw bytes.
    shown = json.loads(run_cli("manifest", "inspect", "app:v1").stdout)
    assert shown == json.loads(ours)
    assert [e["digest"] for e in shown["manifests"]] == [
        images["amd64"].manifest_digest,
        images["arm64"].manifest_digest,
    ]
    assert shown["manifests"][1]["platform"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }

    dest = f"{registry.host}/lists/app:v1"
    digestfile = tmp_path / "list.digest"
    pushed = run_cli(
        "manifest", "push", "app:v1", f"docker://{dest}", "--tls-verify=false",
        "--digestfile", digestfile,
    )  # fmt: skip
    assert pushed.stdout.strip() == digest
    assert digestfile.read_text() == digest
    assert "Pushed localhost/app:v1" in pushed.stderr
    raw = _raw(dest)
    assert raw == ours and _sha256(raw) == digest
    for image in images.values():  # --all is the default: the images went too
        child = _raw(f"{registry.host}/lists/app@{image.manifest_digest}")
        assert child == image.manifest_bytes

    buildah = _Buildah(tmp_path, registry)
    seen = buildah("manifest", "inspect", dest)
    assert json.loads(seen) == json.loads(raw)
    compact = json.dumps(json.loads(seen), separators=(",", ":"), ensure_ascii=False).encode()
    assert _sha256(compact) == digest  # buildah shows the very bytes we pushed, indented

    # Our own inspect of the remote reference reads the same list.
    remote = run_cli("manifest", "inspect", "--raw", "--tls-verify=false", f"docker://{dest}")
    assert remote.stdout.encode() == raw

    # --all=false sends the index only: to a repository holding the images it is accepted.
    again = run_cli(
        "manifest", "push", "--all=false", "-q", "--json", "app:v1",
        f"{registry.host}/lists/app:again", "--tls-verify=false",
    )  # fmt: skip
    report = json.loads(again.stdout)
    assert report["digest"] == digest and report["blobsCopied"] == 0
    assert again.stderr == ""
    # ...and refused by the registry for a repository that lacks them.
    lacking = run_cli(
        "manifest", "push", "--all=false", "app:v1", f"{registry.host}/empty/app:v1",
        "--tls-verify=false", check=False,
    )  # fmt: skip
    assert lacking.returncode == 1
    one_line_error(lacking.stderr)


def test_push_default_destination_format_and_rm(registry: Registry, tmp_path: Path) -> None:
    images = _images(tmp_path, "amd64", "arm64")
    name = f"{registry.host}/lists/docker:v1"
    refs = [image.transport_ref for image in images.values()]
    run_cli("manifest", "create", name, *refs)
    pushed = run_cli("manifest", "push", "--format", "v2s2", "--rm", name, "--tls-verify=false")
    raw = _raw(name)  # DEST defaulted to the list's name
    assert _sha256(raw) == pushed.stdout.strip()
    listed = json.loads(raw)
    assert listed["mediaType"] == DOCKER_LIST
    for entry in listed["manifests"]:
        child = json.loads(_raw(f"{registry.host}/lists/docker@{entry['digest']}"))
        assert child["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    # skopeo copies the Docker list with every image, so it is whole in the registry.
    out = tmp_path / "copied"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{name}", f"oci:{out}:x")
    assert len(json.loads((out / "index.json").read_text())["manifests"]) == 1
    # --rm: the list left the store once pushed.
    assert json.loads(run_cli("images", "--json").stdout) == []


def test_a_list_buildah_pushed_is_grown_and_pushed_again(
    registry: Registry, tmp_path: Path
) -> None:
    buildah = _Buildah(tmp_path, registry)
    images = _images(tmp_path, "amd64", "arm64", "s390x")
    buildah("manifest", "create", "localhost/blist:v1")
    for arch in ("amd64", "arm64"):
        buildah("manifest", "add", "localhost/blist:v1", images[arch].transport_ref)
    theirs = f"{registry.host}/lists/buildah:v1"
    buildah(
        "manifest", "push", "--all", "--tls-verify=false", "localhost/blist:v1",
        f"docker://{theirs}",
    )  # fmt: skip
    their_raw = _raw(theirs)
    assert len(json.loads(their_raw)["manifests"]) == 2

    # Taken in with every image (--all), as the list buildah made, byte for byte.
    taken = run_cli("manifest", "create", "--all", "grown:v1", f"docker://{theirs}",
                    "--tls-verify=false")  # fmt: skip
    entries = json.loads(run_cli("manifest", "inspect", "grown:v1").stdout)["manifests"]
    assert entries == json.loads(their_raw)["manifests"]
    added = run_cli("manifest", "add", "grown:v1", images["s390x"].transport_ref)
    assert added.stdout.strip() != taken.stdout.strip()

    ours = f"{registry.host}/lists/grown:v1"
    pushed = run_cli("manifest", "push", "grown:v1", ours, "--tls-verify=false")
    raw = _raw(ours)
    assert _sha256(raw) == pushed.stdout.strip()
    listed = json.loads(raw)["manifests"]
    # buildah's push compressed the two images (new digests); the third is ours as written.
    theirs_listed = [e["digest"] for e in json.loads(their_raw)["manifests"]]
    assert [e["digest"] for e in listed] == [*theirs_listed, images["s390x"].manifest_digest]
    assert [e["platform"]["architecture"] for e in listed] == ["amd64", "arm64", "s390x"]
    # Every entry is there to pull: skopeo copies the list whole.
    out = tmp_path / "skopeo-out"
    skopeo(
        "copy", "--all", "--preserve-digests", "--src-tls-verify=false", f"docker://{ours}",
        f"oci:{out}:x",
    )  # fmt: skip
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == pushed.stdout.strip()
    # And buildah reads our list back as we pushed it.
    seen = buildah("manifest", "inspect", ours)
    assert json.loads(seen) == json.loads(raw)


def test_rm_and_remove(tmp_path: Path) -> None:
    images = _images(tmp_path, "amd64", "arm64")
    run_cli("pull", "-q", images["amd64"].transport_ref, "--name", "localhost/one:v1")
    run_cli("manifest", "create", "app:v1", "one:v1", images["arm64"].transport_ref)
    removed = run_cli("manifest", "remove", "app:v1", images["amd64"].manifest_digest)
    shown = json.loads(run_cli("manifest", "inspect", "app:v1").stdout)
    assert _sha256(run_cli("manifest", "inspect", "--raw", "app:v1").stdout.encode()) == (
        removed.stdout.strip()
    )
    assert [e["digest"] for e in shown["manifests"]] == [images["arm64"].manifest_digest]
    out = run_cli("manifest", "rm", "app:v1").stdout
    assert "Untagged: localhost/app:v1" in out and "Deleted: " in out
    # The list went; the image of the store it named stayed.
    names = [i["Names"] for i in json.loads(run_cli("images", "--json").stdout)]
    assert names == [["localhost/one:v1"]]
    run_cli("fsck")


# -- errors: one line each, exit 1 (2 for usage), nothing on stdout --------------------------


@pytest.fixture
def with_list(tmp_path: Path) -> Image:
    image = write_image(tmp_path / "img", [2000], seed=5)
    run_cli("pull", "-q", image.transport_ref, "--name", "localhost/img:v1")
    run_cli("manifest", "create", "app:v1", "img:v1")
    return image


@pytest.mark.parametrize(
    ("args", "status", "wanted"),
    [
        (("add", "nolist:v1", "img:v1"), 1, "nolist:v1: manifest list not known"),
        (("add", "img:v1", "img:v1"), 1, "img:v1: is an image"),
        (("annotate", "img:v1", "img:v1", "--arch", "arm64"), 1, "not a manifest list"),
        (("remove", "app:v1", "sha256:" + "0" * 64), 1, "not in the manifest list"),
        (("remove", "app:v1", "nodigest"), 2, "manifest remove takes the digest"),
        (("annotate", "app:v1", "sha256:" + "1" * 64, "--os", "linux"), 1, "not in the man"),
        (("add", "app:v1", "img:v1", "--annotation", "novalue"), 2, "expected KEY=VALUE"),
        (("create", "x:v1", "--annotation", "=v"), 2, "--annotation '=v': expected KEY=VALUE"),
        (("add", "app:v1", "img:v1", "--arch", "armv9000"), 2, "--arch 'armv9000': unknown"),
        (("add", "app:v1", "img:v1", "--os", "arm64"), 2, "not an operating system"),
        (("annotate", "app:v1", "img:v1"), 2, "nothing to annotate"),
        (("create", "app:v1"), 1, "exists already; use --amend"),
        (("create", "img:v1", "--amend"), 1, "img:v1: is an image"),
        (("rm", "app:v1", "img:v1"), 1, "img:v1: is an image"),
        (("push", "nolist:v1", "127.0.0.1:1/x:v1"), 1, "manifest list not known"),
        (("push", "app:v1", "127.0.0.1:1/x:v1", "--format", "docker"), 2, "expected oci or v2s2"),
        (("push", "app:v1", "127.0.0.1:1/x:v1", "--all=maybe"), 2, "--all: expected true"),
        (
            ("push", "app:v1", "127.0.0.1:1/x:v1", "-f", "v2s2", "--compression-format", "zstd"),
            2,
            "--format v2s2 cannot carry zstd layers",
        ),
    ],
)
def test_error_lines(args: tuple[str, ...], status: int, wanted: str, with_list: Image) -> None:
    result = run_cli("manifest", *args, check=False)
    assert result.returncode == status, result.stderr
    assert wanted in one_line_error(result.stderr)
    assert result.stdout == ""


def test_rm_of_a_non_list_removed_nothing(with_list: Image) -> None:
    run_cli("manifest", "rm", "app:v1", "img:v1", check=False)
    assert json.loads(run_cli("manifest", "inspect", "app:v1").stdout)["manifests"]


def test_rm_of_one_list_named_twice_removes_and_reports_it_once(with_list: Image) -> None:
    result = run_cli("manifest", "rm", "app:v1", "localhost/app:v1")
    assert result.stdout.count("Untagged: localhost/app:v1") == 1, result.stdout
    names = [i["Names"] for i in json.loads(run_cli("images", "--json").stdout)]
    assert names == [["localhost/img:v1"]]


def test_no_store_yet() -> None:
    result = run_cli("manifest", "add", "app:v1", "img:v1", check=False)
    assert result.returncode == 1
    assert "manifest list not known" in one_line_error(result.stderr)


@pytest.mark.parametrize("verb", ["create", "add", "annotate", "remove", "inspect", "rm", "push"])
def test_each_verb_has_help_with_examples(verb: str) -> None:
    result = run_cli("manifest", verb, "--help")
    assert result.stderr == ""
    examples = result.stdout[result.stdout.index("Examples") :]
    assert f"clusterimage manifest {verb} " in examples


def test_push_takes_a_bare_all(with_list: Image, tmp_path: Path) -> None:
    # podman's spelling: --all alone is true; the list and its image land in the layout.
    out = tmp_path / "layout"
    pushed = run_cli("manifest", "push", "-q", "--all", "app:v1", f"oci:{out}:v1")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == pushed.stdout.strip()
    assert (out / "blobs" / "sha256" / with_list.manifest_digest.split(":")[1]).is_file()
    assert pushed.stderr == ""
