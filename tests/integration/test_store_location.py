"""Which commands create the store: those that add images (pull, copy into store:, build).
Commands that only read it or change what it holds never create it: a missing --store or
$CLUSTERIMAGE_STORE folder is a one-line error, and a fresh install's missing default store
holds no images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.oci_layout import OciImage, make_oci_layout


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(tmp_path / "src", ref="v1")


# Every command that adds no image, with arguments that would succeed on a store holding app:1.
READERS = {
    "images": ["images"],
    "images --json": ["images", "--json"],
    "inspect": ["inspect", "app:1"],
    "inspect store:": ["inspect", "-t", "manifest", "store:app:1"],
    "fsck": ["fsck"],
    "tag": ["tag", "app:1", "app:2"],
    "rmi": ["rmi", "app:1"],
    "rmi --all": ["rmi", "--all"],
    "prune": ["prune"],
    "copy from store:": ["copy", "store:app:1", "oci:{tmp}/out:v1"],
}


def _args(name: str, tmp: Path) -> list[str]:
    return [a.format(tmp=tmp) for a in READERS[name]]


@pytest.mark.parametrize("how", ["--store", "CLUSTERIMAGE_STORE"])
@pytest.mark.parametrize("command", list(READERS))
def test_a_missing_chosen_store_is_refused(
    command: str, how: str, ci_home: Path, tmp_path: Path
) -> None:
    typo = tmp_path / "typo" / "store"
    if how == "--store":
        result = run_cli("--store", typo, *_args(command, tmp_path), check=False)
    else:
        result = run_cli(
            *_args(command, tmp_path), env={"CLUSTERIMAGE_STORE": str(typo)}, check=False
        )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"error: no store at {typo} (a folder that does not exist); "
        "check --store or CLUSTERIMAGE_STORE\n"
    )
    assert not (tmp_path / "typo").exists()
    assert list(ci_home.iterdir()) == []


FRESH = {
    "images": ("REPOSITORY  TAG  IMAGE ID  CREATED  SIZE\n", 0),
    "images --json": ("[]\n", 0),
    "fsck": ("ok: 0 blobs, 0 images checked\n", 0),
    "prune": ("Freed 0 B: 0 images, 0 blobs\n", 0),
    "rmi --all": ("", 0),
    "inspect": ("", 1),
    "inspect store:": ("", 1),
    "tag": ("", 1),
    "rmi": ("", 1),
    "copy from store:": ("", 1),
}


@pytest.mark.parametrize("command", list(READERS))
def test_a_fresh_install_has_no_images_and_creates_no_store(
    command: str, ci_home: Path, tmp_path: Path
) -> None:
    stdout, status = FRESH[command]
    result = run_cli(*_args(command, tmp_path), check=False)
    assert (result.returncode, result.stdout) == (status, stdout), result.stderr
    if status:
        assert result.stderr == (
            f"error: app:1: image not known (nothing is stored in {ci_home / 'store'} yet)\n"
        )
    else:
        assert result.stderr == ""
    assert list(ci_home.iterdir()) == []


def test_fsck_json_of_a_fresh_install(ci_home: Path) -> None:
    report = json.loads(run_cli("fsck", "--json").stdout)
    assert report == {"ok": True, "blobs": 0, "images": 0, "problems": []}
    assert not (ci_home / "store").exists()


def test_an_empty_chosen_folder_reads_as_an_empty_store(tmp_path: Path, ci_home: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert json.loads(run_cli("--store", empty, "images", "--json").stdout) == []
    assert "ok: 0 blobs" in run_cli("--store", empty, "fsck").stdout
    assert list(empty.iterdir()) == []  # read, not initialised


@pytest.mark.parametrize("how", ["--store", "CLUSTERIMAGE_STORE", "default"])
def test_commands_that_add_images_create_the_store(
    how: str, ci_home: Path, tmp_path: Path, image: OciImage
) -> None:
    new = tmp_path / "new" / "store"
    env = {"CLUSTERIMAGE_STORE": str(new)} if how == "CLUSTERIMAGE_STORE" else None
    flags = ["--store", str(new)] if how == "--store" else []
    where = ci_home / "store" if how == "default" else new
    run_cli(*flags, "pull", "-q", image.transport_ref, "--name", "app:1", env=env)
    assert (where / "oci-layout").is_file()
    run_cli(*flags, "copy", image.transport_ref, "store:app:2", env=env)
    run_cli(*flags, "tag", "app:1", "app:3", env=env)
    listed = json.loads(run_cli(*flags, "images", "--json", env=env).stdout)
    # pull --name and store: keep Docker's rule; tag stores a short name as localhost/.
    assert sorted(f"{i['Repository']}:{i['Tag']}" for i in listed) == [
        "docker.io/library/app:1",
        "docker.io/library/app:2",
        "localhost/app:3",
    ]
    assert "ok: 3 blobs, 3 images checked" in run_cli(*flags, "fsck", env=env).stdout


def test_copy_into_a_chosen_missing_store_creates_it(
    ci_home: Path, tmp_path: Path, image: OciImage
) -> None:
    new = tmp_path / "copied"
    run_cli("--store", new, "copy", image.transport_ref, "store:app:1")
    assert json.loads(run_cli("--store", new, "images", "--json").stdout)[0]["Names"] == [
        "docker.io/library/app:1"
    ]
