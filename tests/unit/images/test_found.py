"""Merging what was found, and the paths two images must never share in registry/."""

from __future__ import annotations

import pytest

from clusterimage.errors import DiscoveryError
from clusterimage.images import ChartOrigin, FileOrigin, discover
from clusterimage.images.found import merge
from clusterimage.images.sightings import Sighting
from clusterimage.oci.reference import Reference
from tests.unit.images.conftest import MakeContext

DIGEST = "sha256:" + "c" * 64
OTHER_DIGEST = "sha256:" + "d" * 64


def test_two_hosts_for_one_path_is_an_error_naming_both(make_context: MakeContext) -> None:
    context = make_context(
        {
            "manifests/a.yaml": "image: docker.io/library/nginx:1\n",
            "images/shim/list": "x\nquay.io/library/nginx:1\n",
        }
    )
    with pytest.raises(DiscoveryError) as caught:
        discover(context)
    assert str(caught.value) == (
        "two images would be stored as library/nginx:1: docker.io/library/nginx:1 "
        "(manifests/a.yaml:1) and quay.io/library/nginx:1 (images/shim/list:2); "
        "keep one, or leave one out in .sealignore"
    )


def test_leaving_one_host_out_resolves_the_collision(make_context: MakeContext) -> None:
    context = make_context(
        {
            "manifests/a.yaml": "image: nginx:1\n",
            "images/shim/list": "quay.io/library/nginx:1\n",
            ".sealignore": "quay.io/library/nginx:1\n",
        }
    )
    assert [str(i.reference) for i in discover(context).images] == ["docker.io/library/nginx:1"]


def test_other_tags_of_one_repository_from_two_hosts_are_fine(make_context: MakeContext) -> None:
    context = make_context({"images/shim/list": "nginx:1\nquay.io/library/nginx:2\n"})
    assert [i.stored_path for i in discover(context).images] == [
        "library/nginx:1",
        "library/nginx:2",
    ]


def test_an_archive_and_a_pulled_image_on_one_path(make_context: MakeContext) -> None:
    context = make_context(
        {
            "images/shim/list": "library/app:v1\n",
            "images/skopeo/tar.txt": "docker-archive:app.tar@library/app:v1\n",
            "images/skopeo/app.tar": "",
        }
    )
    with pytest.raises(DiscoveryError, match=r"stored as library/app:v1: docker\.io/library/app"):
        discover(context)


def test_a_tag_and_digest_keeps_its_digest(make_context: MakeContext) -> None:
    context = make_context(
        {
            "manifests/a.yaml": f"image: nginx:1.25@{DIGEST}\n",
            "images/shim/list": "nginx:1.25\n",
        }
    )
    (image,) = discover(context).images
    assert image.reference.digest is not None
    assert str(image.reference) == f"docker.io/library/nginx:1.25@{DIGEST}"
    assert image.stored_path == f"library/nginx:1.25@{DIGEST}"
    # The tag-only sighting joined the pinned one: the tag holds that digest.
    assert image.origins == (FileOrigin("manifests/a.yaml", 1), FileOrigin("images/shim/list", 1))


def test_one_tag_pinned_to_two_digests_is_an_error(make_context: MakeContext) -> None:
    context = make_context(
        {"images/shim/list": f"nginx:1.25@{DIGEST}\nnginx:1.25@{OTHER_DIGEST}\n"}
    )
    with pytest.raises(DiscoveryError, match=r"stored as library/nginx:1\.25: "):
        discover(context)


def test_merge_keeps_origins_in_order_once() -> None:
    nginx = Reference.parse("nginx")
    chart = ChartOrigin("charts/web", "web/templates/deploy.yaml", 12)
    sightings = [
        Sighting(nginx, chart),
        Sighting(nginx, FileOrigin("manifests/a.yaml", 3)),
        Sighting(nginx, chart),
    ]
    (image,) = merge(sightings)
    assert image.origins == (chart, FileOrigin("manifests/a.yaml", 3))
    assert image.to_json() == {
        "reference": "docker.io/library/nginx:latest",
        "storedPath": "library/nginx:latest",
        "origins": [
            {"chart": "charts/web", "template": "web/templates/deploy.yaml", "line": 12},
            {"file": "manifests/a.yaml", "line": 3},
        ],
    }
    assert str(chart) == "charts/web (web/templates/deploy.yaml:12, rendered)"


def test_images_are_sorted_by_stored_path(make_context: MakeContext) -> None:
    context = make_context({"images/shim/list": "redis:7\nquay.io/a/z:1\nnginx:1\n"})
    discovery = discover(context)
    assert [i.stored_path for i in discovery.images] == [
        "a/z:1",
        "library/nginx:1",
        "library/redis:7",
    ]
    assert discovery.to_json()["images"][0]["reference"] == "quay.io/a/z:1"
