""".sealignore leaves images out, as written and in any spelling of the same reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterimage.errors import DiscoveryError
from clusterimage.images import discover
from tests.unit.images.conftest import MakeContext

DIGEST = "sha256:" + "b" * 64
SHIM = "nginx:1.25\nredis:7\nquay.io/org/app:v1\nbusybox:1.36@" + DIGEST + "\n"


@pytest.mark.parametrize(
    "ignored",
    [
        "docker.io/library/nginx:1.25",  # what sealos compares with
        "nginx:1.25",  # the same image, as users write it
        "index.docker.io/library/nginx:1.25",
        '"nginx:1.25"',
    ],
)
def test_exact_and_normalised_lines(make_context: MakeContext, ignored: str) -> None:
    context = make_context({"images/shim/list": SHIM, ".sealignore": f"# keep out\n{ignored}\n"})
    discovery = discover(context)
    assert "library/nginx:1.25" not in {image.stored_path for image in discovery.images}
    assert [str(image.reference) for image in discovery.ignored] == ["docker.io/library/nginx:1.25"]


def test_a_tag_line_leaves_out_the_pinned_reference(make_context: MakeContext) -> None:
    context = make_context({"images/shim/list": SHIM, ".sealignore": "busybox:1.36\n"})
    assert "library/busybox:1.36@" + DIGEST not in {
        image.stored_path for image in discover(context).images
    }


def test_another_tag_or_host_is_kept(make_context: MakeContext) -> None:
    context = make_context({"images/shim/list": SHIM, ".sealignore": "nginx:1.26\norg/app:v1\n"})
    assert len(discover(context).images) == 4


def test_a_line_that_is_no_reference_is_a_warning(make_context: MakeContext) -> None:
    context = make_context({"images/shim/list": SHIM, ".sealignore": "\nNot A Ref\n"})
    discovery = discover(context)
    assert len(discovery.images) == 4
    assert discovery.warnings == (
        ".sealignore:2: 'Not A Ref' is not an image reference; it leaves out nothing",
    )


def test_an_ignore_file_given_elsewhere(make_context: MakeContext, tmp_path: Path) -> None:
    context = make_context({"images/shim/list": SHIM, ".sealignore": "redis:7\n"})
    other = tmp_path / "ignore"
    other.write_text("nginx:1.25\n")
    kept = {image.stored_path for image in discover(context, ignore_file=other).images}
    assert "library/redis:7" in kept
    assert "library/nginx:1.25" not in kept
    with pytest.raises(DiscoveryError, match="no such ignore file"):
        discover(context, ignore_file=tmp_path / "absent")
