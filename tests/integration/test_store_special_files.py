"""Blobs that are not regular files: a FIFO, device or socket in blobs/ fails a command at once
with one line naming the blob and the layout, never blocks it; fsck reports them in the store."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.oci_layout import OciImage, make_oci_layout

# Far below what a blocked open would take (forever), far above a normal run on a busy machine.
DEADLINE = 60.0


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(tmp_path / "src", ref="v1", layers=({"a": b"one"}, {"b": b"two"}))


def _blob(image: OciImage, digest: str) -> Path:
    return image.layout / "blobs" / "sha256" / digest.split(":")[1]


def _make_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _one_line_error(args: list[str], expected: str) -> None:
    result = run_cli(*args, check=False, timeout=DEADLINE)  # TimeoutExpired: it blocked
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"error: {expected}\n"


CASES: dict[str, Callable[[OciImage], tuple[list[str], str]]] = {
    "copy, layer is a FIFO": lambda i: (
        ["copy", i.transport_ref, "store:app:1"],
        i.layers[1].digest,
    ),
    "copy to oci:, layer is a FIFO": lambda i: (
        ["copy", i.transport_ref, f"oci:{i.layout.parent / 'out'}:v1"],
        i.layers[0].digest,
    ),
    "inspect, config is a FIFO": lambda i: (["inspect", i.transport_ref], i.config.digest),
    "inspect, manifest is a FIFO": lambda i: (
        ["inspect", "-t", "manifest", i.transport_ref],
        i.manifest.digest,
    ),
    "pull, manifest is a FIFO": lambda i: (
        ["pull", i.transport_ref, "--name", "app:1"],
        i.manifest.digest,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fifo_in_an_oci_layout_fails_fast(case: str, ci_home: Path, image: OciImage) -> None:
    args, digest = CASES[case](image)
    _make_fifo(_blob(image, digest))
    _one_line_error(args, f"blob {digest} in {image.layout} is not a regular file (a FIFO)")


def test_device_behind_a_symlink_fails_fast(ci_home: Path, image: OciImage) -> None:
    # oci: layouts may link blobs (followed, as skopeo does); what the link leads to is checked.
    path = _blob(image, image.layers[0].digest)
    path.unlink()
    path.symlink_to("/dev/zero")
    _one_line_error(
        ["copy", image.transport_ref, "store:app:1"],
        f"blob {image.layers[0].digest} in {image.layout} is not a regular file "
        "(a character device)",
    )


def test_symlinked_blobs_of_an_oci_layout_are_read(
    ci_home: Path, image: OciImage, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "shared-blob"
    path = _blob(image, image.layers[0].digest)
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    run_cli("copy", image.transport_ref, "store:app:1", timeout=DEADLINE)
    stored = ci_home / "store" / "blobs" / "sha256" / path.name
    assert stored.is_file() and not stored.is_symlink()  # the store holds its own copy
    assert stored.read_bytes() == elsewhere.read_bytes()
    assert "ok: 4 blobs, 1 image checked" in run_cli("fsck").stdout


def test_fsck_reports_a_fifo_and_a_symlink_in_the_store(
    ci_home: Path, image: OciImage, tmp_path: Path
) -> None:
    run_cli("pull", "-q", image.transport_ref, "--name", "app:1")
    blobs = ci_home / "store" / "blobs" / "sha256"
    fifo, linked = image.layers[0].digest, image.config.digest
    _make_fifo(blobs / fifo.split(":")[1])
    target = tmp_path / "config-copy"
    target.write_bytes(_blob(image, linked).read_bytes())
    (blobs / linked.split(":")[1]).unlink()
    (blobs / linked.split(":")[1]).symlink_to(target)

    result = run_cli("fsck", check=False, timeout=DEADLINE)
    assert result.returncode == 1
    assert sorted(result.stderr.splitlines()) == sorted(
        [
            f"error: blob {fifo} is not a regular file (a FIFO)",
            f"error: blob {linked} is not a regular file (a symlink)",
        ]
    )
    report = json.loads(run_cli("fsck", "--json", check=False, timeout=DEADLINE).stdout)
    assert not report["ok"]
    assert sorted((p["kind"], p["digest"]) for p in report["problems"]) == sorted(
        [("not-regular", fifo), ("not-regular", linked)]
    )
    # images still lists the damaged image instead of failing or blocking.
    listed = json.loads(run_cli("images", "--json", timeout=DEADLINE).stdout)
    assert [item["Names"] for item in listed] == [["docker.io/library/app:1"]]
