"""``save`` and ``load``: images to files and back, in the three formats, through the CLI.

What a delivery engineer does: save several images into one bundle, carry it, load it where no
registry reaches. The bundle appears only whole; a load that is killed leaves a store that
``fsck`` passes and that the next load completes; bad bundles fail in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require_tool, run_cli, run_tool
from tests.fixtures.oci_layout import OciImage, make_oci_layout
from tests.helpers.images import big_bytes, make_big_image

pytestmark = pytest.mark.integration

FORMATS = ("oci-archive", "docker-archive", "oci-dir")


def _store_two(tmp_path: Path) -> list[tuple[str, OciImage]]:
    """Two small images in the store sharing one layer, named localhost/bundle/{a,b}:v1."""
    shared = {"shared.txt": b"in both images\n"}
    made = []
    for name in ("a", "b"):
        image = make_oci_layout(
            tmp_path / f"src-{name}",
            ref="v1",
            layers=[shared, {f"{name}.txt": f"only in {name}\n".encode()}],
            labels={"image": name},
        )
        ref = f"localhost/bundle/{name}:v1"
        run_cli("pull", image.transport_ref, "--name", ref, "-q")
        made.append((ref, image))
    return made


def _store_index(store: Path) -> dict[str, str]:
    index = json.loads((store / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
        if "annotations" in m
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_then_load_brings_back_every_image_and_name(
    fmt: str, tmp_path: Path, ci_home: Path, store_dir: Path
) -> None:
    images = _store_two(tmp_path)
    before = _store_index(store_dir)
    bundle = tmp_path / ("bundle" if fmt == "oci-dir" else "bundle.tar")
    saved = json.loads(
        run_cli(
            "save", "-m", "--format", fmt, "-o", bundle, *(r for r, _ in images), "--json"
        ).stdout
    )
    assert saved["format"] == fmt and len(saved["images"]) == 2
    assert bundle.exists()
    # A second home: the site the bundle is carried to.
    site = tmp_path / "site"
    env = {"CLUSTERIMAGE_HOME": str(site)}
    loaded = run_cli("load", "-i", bundle, env=env)
    names = [line.removeprefix("Loaded image: ") for line in loaded.stdout.splitlines()]
    assert sorted(names) == sorted(r for r, _ in images)
    after = _store_index(site / "store")
    for ref, _ in images:
        if fmt == "docker-archive":
            # Plain tars in the archive, gzipped again on the way in: the image (config) is
            # the same, the manifest digest is not (see README).
            assert ref in after
        else:
            assert after[ref] == before[ref]
    fsck = run_cli("fsck", env=env)
    assert fsck.returncode == 0


def test_several_images_need_multi_image_archive(tmp_path: Path, ci_home: Path) -> None:
    images = _store_two(tmp_path)
    result = run_cli("save", "-o", tmp_path / "x.tar", *(r for r, _ in images), check=False)
    assert result.returncode == 2
    assert "-m/--multi-image-archive" in result.stderr
    assert not (tmp_path / "x.tar").exists()


def test_save_to_stdout_and_load_from_stdin(tmp_path: Path, ci_home: Path) -> None:
    (ref, _), _ = _store_two(tmp_path)
    out = tmp_path / "piped.tar"
    with open(out, "wb") as stream:
        subprocess.run(
            [sys.executable, "-m", "clusterimage", "save", "-o", "-", ref],
            stdout=stream,
            check=True,
            stdin=subprocess.DEVNULL,
        )
    site = tmp_path / "site"
    env = {**os.environ, "CLUSTERIMAGE_HOME": str(site)}
    with open(out, "rb") as stream:
        loaded = subprocess.run(
            [sys.executable, "-m", "clusterimage", "load", "-q"],
            stdin=stream,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    assert loaded.stdout.strip().startswith("sha256:")
    assert ref in _store_index(site / "store")


def test_docker_loads_our_multi_image_archive_and_we_load_what_docker_saves(
    tmp_path: Path, ci_home: Path, store_dir: Path, dockerd: object
) -> None:
    images = _store_two(tmp_path)
    ours = tmp_path / "ours.tar"
    run_cli("save", "-m", "--format", "docker-archive", "-o", ours, *(r for r, _ in images))
    docker = [dockerd.docker, "-H", dockerd.host]  # type: ignore[attr-defined]
    loaded = run_tool([*docker, "load", "-i", str(ours)]).stdout
    for ref, _ in images:
        assert ref in loaded
    theirs = tmp_path / "theirs.tar"
    run_tool([*docker, "save", "-o", str(theirs), *(r for r, _ in images)])
    site = tmp_path / "site"
    env = {"CLUSTERIMAGE_HOME": str(site)}
    names = run_cli("load", "-i", theirs, "--json", env=env)
    got = {image["name"] for image in json.loads(names.stdout)["images"]}
    assert got == {r for r, _ in images}
    for ref, image in images:
        config = json.loads(run_cli("inspect", "-t", "config", ref, env=env).stdout)
        assert config["config"]["Labels"]["image"] == ref.split("/")[-1].split(":")[0]
        assert config["rootfs"]["diff_ids"] == list(image.diff_ids)
    assert run_cli("fsck", env=env).returncode == 0


def test_skopeo_reads_our_oci_archive_with_the_same_digest(
    tmp_path: Path, ci_home: Path, store_dir: Path
) -> None:
    skopeo = require_tool("skopeo")
    (ref, _), _ = _store_two(tmp_path)
    archive = tmp_path / "one.tar"
    run_cli("save", "-o", archive, ref)
    raw = run_tool([skopeo, "inspect", "--raw", f"oci-archive:{archive}"]).stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == _store_index(store_dir)[ref]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a tar at all" * 100, "not a tar archive"),
        (b"", "not a tar archive"),
    ],
)
def test_loading_what_is_no_bundle_is_one_line(
    content: bytes, message: str, tmp_path: Path, ci_home: Path
) -> None:
    path = tmp_path / "bad.tar"
    path.write_bytes(content)
    result = run_cli("load", "-i", path, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_a_truncated_archive_fails_in_one_line_and_stores_nothing(
    tmp_path: Path, ci_home: Path, store_dir: Path
) -> None:
    (ref, _), _ = _store_two(tmp_path)
    archive = tmp_path / "whole.tar"
    run_cli("save", "-o", archive, ref)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    site = tmp_path / "site"
    env = {"CLUSTERIMAGE_HOME": str(site)}
    result = run_cli("load", "-i", cut, env=env, check=False)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (site / "store" / "index.json").exists() or not _store_index(site / "store")


# -- interrupted commands ---------------------------------------------------------------------


def _big_in_store(tmp_path: Path, size: int = 192 << 20) -> str:
    layout = tmp_path / "big"
    make_big_image(layout, big_bytes(size), ref="big")
    ref = "localhost/bundle/big:v1"
    run_cli("pull", f"oci:{layout}:big", "--name", ref, "-q")
    return ref


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clusterimage", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(process: subprocess.Popen[bytes], ready: object, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not ready() and process.poll() is None:  # type: ignore[operator]
        assert time.monotonic() < deadline, "the command never got going"
        time.sleep(0.005)
    assert process.poll() is None, "finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("fmt", ("oci-archive", "docker-archive"))
def test_a_killed_save_leaves_nothing_at_the_target(
    fmt: str, tmp_path: Path, ci_home: Path
) -> None:
    ref = _big_in_store(tmp_path)
    target = tmp_path / "out" / "bundle.tar"
    target.parent.mkdir()

    def writing() -> bool:
        return any(p.stat().st_size > (8 << 20) for p in target.parent.iterdir())

    _kill_when(_start(["save", "--format", fmt, "-o", str(target), ref]), writing)
    assert not target.exists()
    # The next save completes, and cleans nothing it should not.
    run_cli("save", "--format", fmt, "-o", target, ref)
    assert target.is_file()


def test_a_killed_load_leaves_fsck_clean_and_the_next_load_completes(
    tmp_path: Path, ci_home: Path
) -> None:
    ref = _big_in_store(tmp_path)
    archive = tmp_path / "big.tar"
    run_cli("save", "-o", archive, ref)
    site = tmp_path / "site"
    env = {"CLUSTERIMAGE_HOME": str(site)}
    store = site / "store"

    def copying() -> bool:
        ingest = store / "ingest"
        blobs = store / "blobs" / "sha256"
        sizes = [p.stat().st_size for d in (ingest, blobs) if d.is_dir() for p in d.iterdir()]
        return any(size > (8 << 20) for size in sizes)

    _kill_when(_start(["load", "-i", str(archive)], env), copying)
    assert run_cli("fsck", env=env, check=False).returncode == 0
    run_cli("load", "-i", archive, env=env)
    assert ref in _store_index(store)
    assert run_cli("fsck", env=env).returncode == 0


def test_we_read_what_skopeo_and_buildah_wrote_as_oci_archives_with_their_digests(
    tmp_path: Path, ci_home: Path
) -> None:
    skopeo = require_tool("skopeo")
    buildah = require_tool("buildah")
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    by_skopeo = tmp_path / "skopeo.tar"
    run_tool([skopeo, "copy", image.transport_ref, f"oci-archive:{by_skopeo}:v1"])
    storage = ["--root", str(tmp_path / "b-root"), "--runroot", str(tmp_path / "b-run"),
               "--storage-driver", "vfs"]  # fmt: skip
    run_tool([buildah, *storage, "pull", "-q", image.transport_ref])
    by_buildah = tmp_path / "buildah.tar"
    images = json.loads(run_tool([buildah, *storage, "images", "--json"]).stdout)
    run_tool([buildah, *storage, "push", images[0]["id"], f"oci-archive:{by_buildah}:v1"])
    for archive in (by_skopeo, by_buildah):
        raw = run_tool([skopeo, "inspect", "--raw", f"oci-archive:{archive}"]).stdout
        theirs = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
        ours = run_cli("copy", f"oci-archive:{archive}", f"oci:{tmp_path}/{archive.stem}:v1")
        assert ours.stdout.strip() == theirs, archive
    run_tool([buildah, *storage, "rmi", "--all", "--force"], check=False)


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive", "registry-dir"])
def test_from_takes_each_new_place(fmt: str, tmp_path: Path, ci_home: Path) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1", layers=[{"base.txt": b"base\n"}])
    place = {
        "oci-archive": f"oci-archive:{tmp_path / 'base.tar'}:v1",
        "docker-archive": f"docker-archive:{tmp_path / 'base-docker.tar'}:localhost/base:v1",
        "registry-dir": f"registry-dir:{tmp_path / 'registry'}:base:v1",
    }[fmt]
    run_cli("copy", image.transport_ref, place)
    context = tmp_path / "context"
    context.mkdir()
    (context / "app.txt").write_text("app\n")
    (context / "Kubefile").write_text(f"FROM {place}\nCOPY app.txt app.txt\n")
    run_cli("build", context, "-t", "localhost/from-place:v1", "-q")
    config = json.loads(run_cli("inspect", "-t", "config", "localhost/from-place:v1").stdout)
    assert config["rootfs"]["diff_ids"][0] == image.diff_ids[0]
    assert len(config["rootfs"]["diff_ids"]) == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_bundle_verify_passes_a_whole_bundle_and_names_a_flipped_byte(
    fmt: str, tmp_path: Path, ci_home: Path
) -> None:
    images = _store_two(tmp_path)
    bundle = tmp_path / ("bundle" if fmt == "oci-dir" else "bundle.tar")
    run_cli("save", "-m", "--format", fmt, "-o", bundle, *(r for r, _ in images))
    ok = run_cli("bundle", "verify", bundle)
    assert ok.stdout.startswith("ok: 2 images, ") and fmt in ok.stdout
    assert re.search(r", [\d.]+ (B|kB|MB) verified ", ok.stdout), ok.stdout  # a size people read
    data = json.loads(run_cli("bundle", "verify", bundle, "--json").stdout)
    assert data["ok"] and data["images"] == 2 and data["blobs"] >= 5
    # Flip one byte of the layer only the second image has.
    own = images[1][1].layers[1]
    if fmt == "oci-dir":
        path = bundle / "blobs" / "sha256" / own.digest[7:]
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
        wanted = own.digest
    else:
        raw = bytearray(bundle.read_bytes())
        content = bundle.read_bytes()
        marker = b"only in b\n" if fmt == "docker-archive" else None
        if marker is None:  # gzip layers in an oci-archive: flip inside the blob's bytes
            blob = (images[1][1].layout / "blobs" / "sha256" / own.digest[7:]).read_bytes()
            at = content.index(blob) + len(blob) // 2
            wanted = own.digest
        else:
            at = content.index(marker)
            wanted = images[1][1].diff_ids[1]  # a plain layer's digest is its diff_id
        raw[at] ^= 0xFF
        bundle.write_bytes(bytes(raw))
    bad = run_cli("bundle", "verify", bundle, check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert wanted in bad.stderr and ("damaged" in bad.stderr or "match" in bad.stderr)


def test_save_to_and_load_from_a_terminal_are_usage_errors(ci_home: Path, tmp_path: Path) -> None:
    # An archive is no text for a terminal, and a terminal holds no archive: exit 2, one line.
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    run_cli("pull", image.transport_ref, "--name", "localhost/app:v1", "-q")
    for args, where in ((["save", "-o", "-", "localhost/app:v1"], "stdout"), (["load"], "stdin")):
        primary, secondary = pty.openpty()
        try:
            streams = {"stdout": secondary} if where == "stdout" else {"stdin": secondary}
            result = subprocess.run(
                [sys.executable, "-m", "clusterimage", *args],
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                **({"stdout": subprocess.DEVNULL, "stdin": subprocess.DEVNULL} | streams),
            )
        finally:
            os.close(primary)
            os.close(secondary)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "terminal" in line and ("-o FILE" in line or "-i FILE" in line), line


def test_bundle_verify_goes_on_past_a_blob_whose_archive_size_is_wrong(tmp_path: Path) -> None:
    """An oci-archive member of the wrong size is one problem: the image's other blobs are
    still hashed, and a flipped byte in the next one is named too."""
    image = make_oci_layout(
        tmp_path / "layout", ref="v1", layers=({"a.txt": b"a" * 100}, {"b.txt": b"b" * 100})
    )
    longer, flipped = (
        tmp_path / "layout" / "blobs" / "sha256" / x.digest[7:] for x in image.layers
    )
    longer.write_bytes(longer.read_bytes() + b"X")
    data = bytearray(flipped.read_bytes())
    data[5] ^= 0xFF
    flipped.write_bytes(bytes(data))
    archive = tmp_path / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(tmp_path / "layout" / name, arcname=name)
    result = run_cli("bundle", "verify", "--json", archive, check=False)
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 2, problems
    assert f"blob {image.layers[0].digest} has 111 bytes, its descriptor says 110" in problems[0]
    assert f"blob {image.layers[1].digest} is damaged" in problems[1]
    assert all(p.count(f"oci-archive:{archive}") == 1 for p in problems), problems
