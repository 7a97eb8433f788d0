"""images/shim/: every file below it, one reference a line."""

from __future__ import annotations

from clusterimage.images import FileOrigin, discover
from tests.unit.images.conftest import MakeContext


def test_every_file_below_shim_is_a_list(make_context: MakeContext) -> None:
    context = make_context(
        {
            "images/shim/images.txt": (
                "# the app\n\n  nginx:1.25  \n'redis:7'\n\"quay.io/a/b@sha256:" + "a" * 64 + '"\n'
            ),
            "images/shim/more/list": "#busybox:1\nbusybox:1.36\n",
        }
    )
    found = {image.stored_path: image.origins for image in discover(context).images}
    assert found == {
        "library/nginx:1.25": (FileOrigin("images/shim/images.txt", 3),),
        "library/redis:7": (FileOrigin("images/shim/images.txt", 4),),
        "a/b@sha256:" + "a" * 64: (FileOrigin("images/shim/images.txt", 5),),
        "library/busybox:1.36": (FileOrigin("images/shim/more/list", 2),),
    }


def test_an_unparsable_line_is_a_warning_naming_file_and_line(make_context: MakeContext) -> None:
    context = make_context({"images/shim/list": "nginx:1\nrancher/harvester-csi-driver:\n"})
    discovery = discover(context)
    assert [image.stored_path for image in discovery.images] == ["library/nginx:1"]
    assert discovery.warnings == (
        "images/shim/list:2: skipped image 'rancher/harvester-csi-driver:': empty tag",
    )


def test_nothing_to_scan_is_an_empty_discovery(make_context: MakeContext) -> None:
    discovery = discover(make_context({"Kubefile": "FROM scratch\n"}))
    assert discovery.images == discovery.archives == discovery.warnings == ()
    assert discovery.charts_rendered == 0
