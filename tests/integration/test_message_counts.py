"""Counts in messages agree with their nouns (README, Output conventions): each message whose
count went through ``_humanize.count`` here, shown with 1 and with 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterimage.bundle import _missing
from tests.conftest import run_cli
from tests.fixtures.oci_layout import make_oci_layout

pytestmark = pytest.mark.integration


def _stored(tmp_path: Path, name: str, files: dict[str, bytes]) -> str:
    layout = make_oci_layout(
        tmp_path / name.split("/")[-1].split(":")[0], ref="v1", layers=(files,)
    )
    run_cli("pull", "-q", layout.transport_ref, "--name", name)
    return name


def _error(*args: str) -> str:
    result = run_cli(*args, check=False)
    assert result.returncode != 0 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_merge_counts_images_and_layers(ci_home: Path, tmp_path: Path) -> None:
    a = _stored(tmp_path, "localhost/a:v1", {"a.txt": b"a\n"})
    b = _stored(tmp_path, "localhost/b:v1", {"b.txt": b"b\n"})
    same = _stored(tmp_path, "localhost/same:v1", {"a.txt": b"a\n"})  # a's one layer
    two = run_cli("merge", "-t", "two:v1", a, b).stderr
    assert "Merged 2 images into localhost/two:v1 (2 layers)" in two
    one = run_cli("merge", "-t", "one:v1", a, same).stderr  # a layer both have: kept once
    assert "Merged 2 images into localhost/one:v1 (1 layer)" in one


def test_save_counts_images(ci_home: Path, tmp_path: Path) -> None:
    a = _stored(tmp_path, "localhost/a:v1", {"a.txt": b"a\n"})
    b = _stored(tmp_path, "localhost/b:v1", {"b.txt": b"b\n"})
    one = run_cli("save", "-o", tmp_path / "one.tar", a).stderr
    assert f"Wrote 1 image to {tmp_path / 'one.tar'}" in one
    two = run_cli("save", "-m", "-o", tmp_path / "two.tar", a, b).stderr
    assert f"Wrote 2 images to {tmp_path / 'two.tar'}" in two
    # An archive position past its end says how many it holds.
    assert _error("inspect", f"oci-archive:{tmp_path / 'one.tar'}:@1").endswith(
        "the archive holds 1 image"
    )
    assert _error("inspect", f"oci-archive:{tmp_path / 'two.tar'}:@5").endswith(
        "the archive holds 2 images"
    )
    run_cli("save", "--format", "docker-archive", "-o", tmp_path / "d1.tar", a)
    run_cli("save", "--format", "docker-archive", "-m", "-o", tmp_path / "d2.tar", a, b)
    assert _error("inspect", f"docker-archive:{tmp_path / 'd1.tar'}:@1").endswith(
        "the archive holds 1 image"
    )
    assert _error("inspect", f"docker-archive:{tmp_path / 'd2.tar'}:@2").endswith(
        "the archive holds 2 images"
    )


def test_template_function_arity(ci_home: Path, tmp_path: Path) -> None:
    a = _stored(tmp_path, "localhost/a:v1", {"a.txt": b"a\n"})
    assert "len takes 1 argument, got 2" in _error("inspect", "-f", "{{len .Id .Os}}", a)
    assert "join takes 2 arguments, got 1" in _error("inspect", "-f", "{{join .RepoTags}}", a)


@pytest.mark.parametrize(
    ("unnamed", "said"), [(1, "1 of its images has"), (2, "2 of its images have")]
)
def test_a_layout_with_unnamed_images(
    tmp_path: Path, ci_home: Path, unnamed: int, said: str
) -> None:
    layout = tmp_path / "layout"
    for number in range(3):
        make_oci_layout(layout, ref=f"r{number}", layers=({"f": str(number).encode()},))
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"][:unnamed]:
        del entry["annotations"]
    (layout / "index.json").write_text(json.dumps(index))
    assert f"{said} no ref name" in _error("load", "-i", str(layout))


def test_missing_blobs_verb() -> None:
    # A bundle whose blobs differ from what its delta index says is hard to write by hand:
    # the phrase itself (load and bundle verify use it), with 1 and with 2.
    assert _missing(1) == "1 blob is missing"
    assert _missing(2) == "2 blobs are missing"
