"""images/skopeo/tar.txt: archives in the context, each stored under the NAME it gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clusterimage.errors import DiscoveryError
from clusterimage.images import FileOrigin, discover
from clusterimage.images.tarlist import read_tar_list
from tests.unit.images.conftest import MakeContext

TAR_TXT = "images/skopeo/tar.txt"


def test_both_transports(make_context: MakeContext) -> None:
    context = make_context(
        {
            TAR_TXT: (
                "# archives\n"
                "docker-archive:app.tar@library/app\n"
                "\n"
                "oci-archive:../../archives/tool.tar@quay.io/org/tool:v2\n"
            ),
            "images/skopeo/app.tar": "",
            "archives/tool.tar": "",
        }
    )
    first, second = discover(context).archives
    assert (first.transport, first.path, first.stored_path) == (
        "docker-archive",
        "images/skopeo/app.tar",
        "library/app:latest",
    )
    assert first.origin == FileOrigin(TAR_TXT, 2)
    assert first.source(context) == f"docker-archive:{context}/images/skopeo/app.tar"
    assert (second.transport, second.path, str(second.name)) == (
        "oci-archive",
        "archives/tool.tar",
        "quay.io/org/tool:v2",
    )
    assert second.to_json() == {
        "transport": "oci-archive",
        "path": "archives/tool.tar",
        "name": "quay.io/org/tool:v2",
        "storedPath": "org/tool:v2",
        "origin": {"file": TAR_TXT, "line": 4},
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("docker-archive:../../../etc/passwd@x/y", "PATH leaves the build context"),
        ("docker-archive:/etc/passwd@x/y", "PATH must be relative"),
        ("docker-archive:missing.tar@x/y", "no archive at images/skopeo/missing.tar"),
        ("docker-archive:app.tar", "expected docker-archive:PATH@NAME"),
        ("docker://nginx:1@x/y", "expected docker-archive:PATH@NAME"),
        ("oci-archive:@x/y", "no archive PATH"),
        ("oci-archive:app.tar@Bad/Name", "NAME: invalid reference"),
        ("oci-archive:app.tar@x/y@sha256:" + "a" * 64, "NAME"),
    ],
)
def test_a_bad_entry_is_one_line(make_context: MakeContext, line: str, message: str) -> None:
    context = make_context({TAR_TXT: f"\n{line}\n", "images/skopeo/app.tar": ""})
    with pytest.raises(DiscoveryError) as caught:
        read_tar_list(context)
    text = str(caught.value)
    assert text.startswith(f"{TAR_TXT}:2: ")
    assert message in text
    assert "\n" not in text


def test_a_link_out_of_the_context_is_refused(make_context: MakeContext, tmp_path: Path) -> None:
    outside = tmp_path / "secret.tar"
    outside.write_text("")
    context = make_context({TAR_TXT: "docker-archive:app.tar@x/y\n"})
    os.symlink(outside, context / "images/skopeo/app.tar")
    with pytest.raises(DiscoveryError, match="outside the build context"):
        read_tar_list(context)
