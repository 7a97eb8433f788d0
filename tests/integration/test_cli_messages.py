"""Messages that say what to do (issue 12): each mistake is one ``error:`` line, exit 1, no
traceback, no ``[Errno N]``, and names the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import free_port, run_cli
from tests.fixtures.oci_layout import make_oci_layout

pytestmark = pytest.mark.integration


def _one_error_line(args: list[str]) -> str:
    result = run_cli(*args, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "[Errno" not in result.stderr
    return lines[0]


def test_a_url_as_an_image_name_says_to_drop_the_scheme(ci_home: Path) -> None:
    line = _one_error_line(["pull", "http://localhost:5000/x"])
    assert "drop 'http://'" in line and "'localhost:5000/x'" in line
    assert "--tls-verify=false" in line
    line = _one_error_line(["pull", "https://registry.example.com/app:v1"])
    assert "drop 'https://'" in line and "--tls-verify" not in line


def test_a_registry_that_refuses_connections_reads_as_words(ci_home: Path) -> None:
    port = free_port()
    line = _one_error_line(["pull", f"127.0.0.1:{port}/app:v1", "--retry", "0"])
    assert f"cannot reach registry 127.0.0.1:{port}: Connection refused" in line


def test_push_without_destination_names_the_registry_the_name_implies(
    ci_home: Path, tmp_path: Path
) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    run_cli("pull", image.transport_ref, "--name", "localhost/ux/nginx:v1", "-q")
    line = _one_error_line(["push", "localhost/ux/nginx:v1", "--retry", "0"])
    assert "names its registry as 'localhost'" in line
    assert "clusterimage push localhost/ux/nginx:v1 docker://REGISTRY/ux/nginx:v1" in line


def test_create_and_inspect_refuse_a_config_that_does_not_match_its_digest(
    ci_home: Path, tmp_path: Path
) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1", config={"Cmd": ["echo safe"]})
    blob = tmp_path / "layout" / "blobs" / "sha256" / image.config.digest[7:]
    blob.write_bytes(blob.read_bytes().replace(b"echo safe", b"rm -rf /"))
    for command in ("create", "inspect"):
        line = _one_error_line([command, image.transport_ref])
        assert f"config {image.config.digest} does not match its digest" in line


def test_a_layout_index_nested_too_deep_is_one_line(ci_home: Path, tmp_path: Path) -> None:
    layout = tmp_path / "deep"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text("[" * 100_000)
    line = _one_error_line(["inspect", f"oci:{layout}"])
    assert "index.json is not valid JSON (nested deeper than" in line


def test_rmi_of_an_unknown_name_collects_no_garbage(ci_home: Path, tmp_path: Path) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    run_cli("pull", image.transport_ref, "--name", "localhost/kept:v1", "-q")
    stray = ci_home / "store" / "blobs" / "sha256" / ("ab" * 32)
    stray.write_bytes(b"")  # an unreferenced blob: prune's to free, not a failed rmi's
    line = _one_error_line(["rmi", "localhost/nope:v1"])
    assert "image not known" in line
    assert stray.exists()


def test_run_after_from_scratch_is_named_at_its_line_before_anything_runs(
    ci_home: Path, tmp_path: Path
) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nLABEL a=b\nRUN echo hello\n")
    line = _one_error_line(["build", str(context), "-t", "localhost/x:v1", "--save-image=false"])
    assert "Kubefile:3: RUN needs a base image with a shell; FROM scratch has none" in line
    assert "fork/exec" not in line


def test_images_warns_about_missing_blobs_and_points_at_fsck(ci_home: Path, tmp_path: Path) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    run_cli("pull", image.transport_ref, "--name", "localhost/broken:v1", "-q")
    layer = image.layers[0].digest
    (ci_home / "store" / "blobs" / "sha256" / layer[7:]).unlink()
    result = run_cli("images")
    assert result.returncode == 0 and "localhost/broken" in result.stdout
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert "localhost/broken:v1" in line and "clusterimage fsck" in line
    assert "1 image misses blobs or is damaged" in line


def test_a_home_the_kernel_refuses_to_write_says_how_to_choose_another(tmp_path: Path) -> None:
    # sysfs refuses mkdir even to root (EPERM; EROFS where /sys is mounted read-only): a real
    # refusal, where file modes would not stop the root user the tests run as.
    home = Path("/sys/clusterimage-test-home")
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    result = run_cli(
        "pull", image.transport_ref, "--name", "localhost/x:v1",
        env={"CLUSTERIMAGE_HOME": str(home)}, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.stderr
    assert "[Errno" not in line and "is not writable: choose another with" in line
    assert "CLUSTERIMAGE_HOME" in line
    assert not home.exists()


@pytest.mark.parametrize("name", ["oci-layout", "index.json"])
def test_a_fifo_in_a_layout_is_one_line_not_a_hang(name: str, tmp_path: Path) -> None:
    image = make_oci_layout(tmp_path / "layout", ref="v1")
    (image.layout / name).unlink()
    os.mkfifo(image.layout / name)
    result = run_cli("inspect", image.transport_ref, check=False, timeout=60)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"{name} is a FIFO, not a file" in line, line
