"""A stored blob damaged on disk: fsck finds it, and one command repairs the store, either a
pull of the image (it re-checks the image's stored blobs and fetches the bad one again) or
``fsck --repair`` (it removes the bad blob and names the pull that restores the image)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    Image,
    MiB,
    isolated_auth,  # noqa: F401 - fixture
    write_image,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]


def _pulled(registry: Registry, tmp_path: Path, repo: str) -> tuple[Image, str]:
    image = write_image(tmp_path / "src", [2 * MiB, 1 * MiB], seed=77)
    name = f"{registry.host}/{repo}:v1"
    run_cli("copy", image.transport_ref, f"docker://{name}")
    assert run_cli("pull", name, "-q").stdout.strip() == image.manifest_digest
    return image, name


def _flip_byte(store_dir: Path, digest: str) -> Path:
    path = store_dir / "blobs" / "sha256" / digest.split(":", 1)[1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return path


def _fsck() -> tuple[int, dict[str, object]]:
    done = run_cli("fsck", "--json", check=False)
    return done.returncode, json.loads(done.stdout)


def _layer_gets(registry: Registry, mark: int, digest: str) -> list[int]:
    return [
        e.status
        for e in registry.requests(mark)
        if e.method == "GET" and e.path.endswith(f"/blobs/{digest}")
    ]


def test_pull_fetches_again_a_stored_layer_that_went_bad(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image, name = _pulled(registry, tmp_path, "repair/pull")
    bad = image.layer_digests[0]
    _flip_byte(store_dir, bad)
    code, report = _fsck()
    assert code == 1
    assert [(p["kind"], p["digest"]) for p in report["problems"]] == [("corrupt-blob", bad)]

    mark = registry.log_mark()
    pulled = run_cli("pull", name)
    assert pulled.returncode == 0
    assert f"warning: blob {bad} is corrupt" in pulled.stderr, pulled.stderr
    assert "fetched again" in pulled.stderr
    # Only the bad layer travelled: the sound one was checked and kept.
    assert _layer_gets(registry, mark, bad) == [200]
    assert _layer_gets(registry, mark, image.layer_digests[1]) == []
    code, report = _fsck()
    assert (code, report["ok"]) == (0, True), report

    # A pull of a sound image warns about nothing and fetches no blob.
    mark = registry.log_mark()
    again = run_cli("pull", name, "--json")
    assert "warning" not in again.stderr
    assert json.loads(again.stdout)["blobsCopied"] == 0
    assert not [e for e in registry.requests(mark) if "/blobs/" in e.path and e.method == "GET"]


def test_pull_replaces_a_stored_layer_of_the_wrong_size(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image, name = _pulled(registry, tmp_path, "repair/short")
    bad = image.layer_digests[1]
    path = store_dir / "blobs" / "sha256" / bad.split(":", 1)[1]
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.truncate(1000)
    pulled = run_cli("pull", name)
    assert f"blob {bad} is 1000 bytes, the manifest says" in pulled.stderr, pulled.stderr
    assert _fsck()[0] == 0


def test_fsck_repair_removes_the_blob_and_names_the_pull_that_restores_it(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image, name = _pulled(registry, tmp_path, "repair/fsck")
    # A second image sharing nothing, which the repair must leave alone.
    other = write_image(tmp_path / "other", [64 * 1024], seed=78)
    run_cli("copy", other.transport_ref, "store:localhost/other:v1")
    bad = image.layer_digests[1]
    path = _flip_byte(store_dir, bad)

    repaired = run_cli("fsck", "--repair", check=False)
    assert repaired.returncode == 1  # the image still lacks the blob until it is pulled
    lines = repaired.stderr.splitlines()
    assert f"removed {bad}: blob {bad} is corrupt: content hashes to sha256:" in lines[0], lines
    assert f"warning: {name} is now incomplete; to restore it: clusterimage pull {name}" in lines
    assert f"error: {name}: missing layer 2 blob {bad}" in lines
    assert not path.exists()
    assert "localhost/other:v1" not in repaired.stderr

    # --json says the same, and a second repair finds nothing more to remove.
    again = json.loads(run_cli("fsck", "--repair", "--json", check=False).stdout)
    assert again["ok"] is False
    assert again["repaired"] == {"removed": [], "incomplete": []}
    assert [p["kind"] for p in again["problems"]] == ["missing-blob"]

    mark = registry.log_mark()
    run_cli("pull", name, "-q")
    assert _layer_gets(registry, mark, bad) == [200]
    assert run_cli("fsck").stdout.startswith("ok: ")


def test_fsck_repair_json_of_a_damaged_manifest(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image, name = _pulled(registry, tmp_path, "repair/manifest")
    _flip_byte(store_dir, image.manifest_digest)
    done = run_cli("fsck", "--repair", "--json", check=False)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["repaired"]["removed"][0]["digest"] == image.manifest_digest
    assert report["repaired"]["incomplete"] == [
        {"image": name, "restore": f"clusterimage pull {name}"}
    ]
    # The pull writes the manifest again; the store is whole.
    assert run_cli("pull", name, "-q").stdout.strip() == image.manifest_digest
    assert _fsck()[0] == 0


def test_pull_repairs_a_damaged_manifest(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image, name = _pulled(registry, tmp_path, "repair/pullmanifest")
    _flip_byte(store_dir, image.manifest_digest)
    assert _fsck()[0] == 1
    pulled = run_cli("pull", name)
    assert f"blob {image.manifest_digest} is corrupt" in pulled.stderr, pulled.stderr
    assert _fsck()[0] == 0


def test_damage_that_keeps_the_mtime_is_fetched_again_once_fsck_has_seen_it(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    """A pull trusts a blob hashed before and not written since (its stamp: size and mtime),
    so bit rot that leaves the mtime alone is found by fsck, which drops the stamp: the next
    pull then hashes the blob and fetches it again."""
    image, name = _pulled(registry, tmp_path, "repair/rot")
    bad = image.layer_digests[0]
    path = store_dir / "blobs" / "sha256" / bad.split(":", 1)[1]
    assert os.getxattr(path, "user.clusterimage.verified")  # stamped when written
    before = path.stat()
    _flip_byte(store_dir, bad)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as bit rot would: no mtime

    mark = registry.log_mark()
    run_cli("pull", name, "-q")  # trusted: nothing read, nothing fetched
    assert _layer_gets(registry, mark, bad) == []
    assert _fsck()[0] == 1  # fsck always reads every byte

    mark = registry.log_mark()
    pulled = run_cli("pull", name)
    assert f"blob {bad} is corrupt" in pulled.stderr, pulled.stderr
    assert _layer_gets(registry, mark, bad) == [200]
    assert _fsck()[0] == 0
