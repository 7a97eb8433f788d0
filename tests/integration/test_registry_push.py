"""Push and copy behaviour seen from the registry's access log: mounts instead of uploads,
nothing uploaded on a re-push, registry-to-registry streaming, tags, inspect, pull policies."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.conftest import run_cli
from tests.fixtures.registry import Registry
from tests.integration.registry_support import (
    MiB,
    isolated_auth,  # noqa: F401 - fixture
    load,
    one_line_error,
    skopeo,
    skopeo_digest,
    write_image,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home", "isolated_auth")]


def _uploads(registry: Registry, since: int) -> list[str]:
    """Blob upload requests that carried data or started an upload (mounts excluded)."""
    return [
        f"{e.method} {e.path} {e.status}"
        for e in registry.blob_uploads(since)
        if not (e.method == "POST" and "mount=" in e.path and e.status == 201)
    ]


def test_second_repository_mounts_and_repush_uploads_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", [3 * MiB, 1 * MiB, 200_000])
    first = f"{registry.host}/team/app:v1"
    load(image, first)
    mark = registry.log_mark()
    run_cli("push", first)
    assert len([u for u in _uploads(registry, mark) if u.startswith("PUT")]) == 4

    mark = registry.log_mark()
    result = json.loads(run_cli("push", first, f"{registry.host}/other/app:v2", "--json").stdout)
    assert result["blobsMounted"] == 4 and result["blobsCopied"] == 0
    assert _uploads(registry, mark) == []  # no PUT, no PATCH, no plain POST: mounts only
    mounts = [e for e in registry.blob_uploads(mark) if "mount=" in e.path]
    assert len(mounts) == 4 and all("from=team%2Fapp" in e.path for e in mounts)

    mark = registry.log_mark()
    started = time.monotonic()
    result = json.loads(run_cli("push", first, "--json").stdout)
    elapsed = time.monotonic() - started
    assert result["blobsSkipped"] == 4 and result["bytesCopied"] == 0
    assert registry.blob_uploads(mark) == []
    methods = sorted({e.method for e in registry.requests(mark)})
    assert methods == ["GET", "HEAD", "PUT"]  # ping, HEADs, the manifest
    assert elapsed < 5  # the whole CLI, Python start-up included
    assert skopeo_digest(f"docker://{first}", "--tls-verify=false") == image.manifest_digest


def test_copy_between_registries_streams_and_mounts_within_one(
    registry_factory: Callable[..., Registry], tmp_path: Path, ci_home: Path
) -> None:
    one, two = registry_factory(), registry_factory()
    image = write_image(tmp_path / "src", [2 * MiB, 100_000], seed=7)
    src = f"{one.host}/a/app:v1"
    load(image, src)
    run_cli("push", src)
    mark = two.log_mark()
    copied = run_cli("copy", f"docker://{src}", f"docker://{two.host}/b/app:v1", "-q")
    assert copied.stdout.strip() == image.manifest_digest
    assert len([e for e in two.blob_uploads(mark) if e.method == "PUT"]) == 3
    tmp = ci_home / "tmp"
    assert not tmp.exists() or not list(tmp.iterdir())  # streamed: no temporary files
    mark = two.log_mark()
    run_cli("copy", f"docker://{two.host}/b/app:v1", f"docker://{two.host}/c/app:v1")
    assert _uploads(two, mark) == []  # same registry: mounted from b/app
    assert skopeo_digest(f"docker://{two.host}/c/app:v1", "--tls-verify=false") == (
        image.manifest_digest
    )


def test_push_with_recompression_to_zstd(registry: Registry, tmp_path: Path) -> None:
    image = write_image(tmp_path / "src", [1 * MiB], seed=8)
    name = f"{registry.host}/zstd/app:v1"
    load(image, name)
    pushed = json.loads(run_cli("push", name, "--compression-format", "zstd", "--json").stdout)
    manifest = json.loads(run_cli("inspect", "-t", "manifest", f"docker://{name}").stdout)
    assert pushed["digest"] != image.manifest_digest
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert manifest["config"]["digest"] == image.config_digest
    # skopeo reads the zstd image back and its diff_id matches the tar we started from.
    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"dir:{out}")
    assert (out / layer["digest"].split(":")[1]).exists()
    bad = run_cli("push", name, "--compression-format", "lz4", check=False)
    assert bad.returncode == 2 and "gzip or zstd" in bad.stderr


def _zstd_push(*refs: str) -> dict[str, Any]:
    result = run_cli("push", *refs, "--compression-format", "zstd", "--json")
    return cast(dict[str, Any], json.loads(result.stdout))


def test_repush_with_recompression_recompresses_and_uploads_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", [2 * MiB, 1 * MiB], seed=10)
    name = f"{registry.host}/zstd/again:v1"
    load(image, name)
    first = _zstd_push(name)
    assert (first["blobsRecompressed"], first["blobsCopied"]) == (2, 3)

    mark = registry.log_mark()
    second = _zstd_push(name)
    assert second["digest"] == first["digest"]  # the manifest's bytes are the same
    assert second["blobsRecompressed"] == 0
    assert (second["blobsSkipped"], second["bytesCopied"]) == (3, 0)
    assert registry.blob_uploads(mark) == []

    # Another repository of the same registry: the zstd layers are mounted, not recompressed.
    mark = registry.log_mark()
    other = _zstd_push(name, f"{registry.host}/zstd/other:v1")
    assert other["digest"] == first["digest"]
    assert (other["blobsRecompressed"], other["blobsMounted"]) == (0, 3)
    assert _uploads(registry, mark) == []
    assert (
        skopeo_digest(f"docker://{registry.host}/zstd/other:v1", "--tls-verify=false")
        == (first["digest"])
    )


def test_recompression_falls_back_when_its_record_is_stale_or_damaged(
    registry: Registry, tmp_path: Path, ci_home: Path
) -> None:
    image = write_image(tmp_path / "src", [1 * MiB, 500_000], seed=11)
    name = f"{registry.host}/zstd/stale:v1"
    load(image, name)
    first = _zstd_push(name)
    manifest = json.loads(run_cli("inspect", "-t", "manifest", f"docker://{name}").stdout)
    big = manifest["layers"][0]["digest"]  # the larger layer comes first

    # The registry lost one recorded blob (deleted, or garbage-collected): that layer is
    # recompressed and uploaded again, the other is reused; the manifest is the same.
    deleted = httpx.delete(f"{registry.url}/v2/zstd/stale/blobs/{big}")
    assert deleted.status_code == 202
    mark = registry.log_mark()
    again = _zstd_push(name)
    assert again["digest"] == first["digest"] and again["blobsRecompressed"] == 1
    puts = [e.path for e in registry.blob_uploads(mark) if e.method == "PUT"]
    assert len(puts) == 1 and big.split(":")[1] in puts[0]

    # Records edited to name blobs nobody has: recompress (nothing to upload: the real blobs
    # are there), and the records are repaired for the next push.
    cache = ci_home / "cache" / "blob-info.db"
    with sqlite3.connect(cache) as db:
        db.execute("UPDATE recompressed SET digest = ?", ("sha256:" + "0" * 64,))
    mark = registry.log_mark()
    repaired = _zstd_push(name)
    assert repaired["digest"] == first["digest"] and repaired["blobsRecompressed"] == 2
    assert registry.blob_uploads(mark) == []
    assert _zstd_push(name)["blobsRecompressed"] == 0

    # A cache that is not a database at all is ignored: the push recompresses and succeeds.
    for path in cache.parent.glob("blob-info.db*"):
        path.unlink()
    cache.write_bytes(b"not a database" * 100)
    damaged = _zstd_push(name)
    assert damaged["digest"] == first["digest"] and damaged["blobsRecompressed"] == 2


def test_tags_inspect_without_pulling_and_pull_policies(
    registry: Registry, tmp_path: Path, store_dir: Path
) -> None:
    image = write_image(tmp_path / "src", [10_000], seed=9)
    repo = f"{registry.host}/tags/app"
    load(image, f"{repo}:v1")
    for tag in ("v1", "v2", "latest"):
        run_cli("push", f"{repo}:v1", f"{repo}:{tag}", "-q")
    assert json.loads(run_cli("tags", repo, "--json").stdout) == ["latest", "v1", "v2"]
    assert run_cli("tags", f"docker://{repo}").stdout.split() == ["latest", "v1", "v2"]
    bad = run_cli("tags", f"{repo}:v1", check=False)
    assert bad.returncode == 2 and "without tag" in bad.stderr

    run_cli("rmi", f"{repo}:v1")
    summary = json.loads(run_cli("inspect", f"docker://{repo}:v2").stdout)
    assert summary["Digest"] == image.manifest_digest
    assert "docker.io" not in json.dumps(summary)
    images = json.loads(run_cli("images", "--json").stdout)
    assert images == []  # inspect did not pull

    never = run_cli("pull", f"{repo}:v2", "--policy", "never", check=False)
    assert never.returncode == 1 and "--policy never" in one_line_error(never.stderr)
    mark = registry.log_mark()
    run_cli("pull", f"{repo}:v2", "--policy", "missing")
    assert any(e.method == "GET" and "/blobs/" in e.path for e in registry.requests(mark))
    mark = registry.log_mark()
    again = run_cli("pull", f"{repo}:v2", "--policy", "missing", "-q")
    assert again.stdout.strip() == image.manifest_digest
    assert registry.requests(mark) == []  # in the store already: no request at all
    mark = registry.log_mark()
    run_cli("pull", f"{repo}:v2", "--policy", "always")
    assert not any("/blobs/" in e.path and e.method == "GET" for e in registry.requests(mark))
    missing = run_cli("pull", f"{repo}:nope", check=False)
    assert "not found" in one_line_error(missing.stderr)


def test_tls_verify_spellings_on_the_real_commands(registry: Registry, tmp_path: Path) -> None:
    image = write_image(tmp_path / "src", [1000], seed=30)
    name = f"{registry.host}/spell/app:v1"
    load(image, name)
    for flags in (["--tls-verify=false"], ["--tls-verify", "false"], ["--tls-verify", "0"]):
        assert run_cli("push", *flags, name, "-q").stdout.strip() == image.manifest_digest
    # A bare --tls-verify means true: plain HTTP is refused even on loopback, in one line.
    for flags in (["--tls-verify"], ["--tls-verify=true"], ["--tls-verify", "true"]):
        refused = run_cli("push", name, *flags, check=False)
        line = one_line_error(refused.stderr)
        assert "TLS" in line and "--tls-verify=false" in line
    wrong = run_cli("push", name, "--tls-verify=maybe", check=False)
    assert wrong.returncode == 2 and "expected true or false" in wrong.stderr
