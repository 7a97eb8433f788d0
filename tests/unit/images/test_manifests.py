"""The line scan of manifests/ (and of rendered charts): what sealos finds, and a bit more."""

from __future__ import annotations

import pytest

from clusterimage.images import FileOrigin, discover
from clusterimage.images.manifests import image_value
from tests.unit.images.conftest import MakeContext


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("image: nginx:1.25", "nginx:1.25"),
        ("    image: nginx", "nginx"),
        ("- image: busybox:1", "busybox:1"),
        ('  image: "quay.io/a/b:v1"', "quay.io/a/b:v1"),
        ("  image: 'quay.io/a/b:v1'", "quay.io/a/b:v1"),
        ("  image: nginx:1.25  # pinned", "nginx:1.25"),
        ('  image: "nginx:1.25" # pinned', "nginx:1.25"),
        ("  sidecarimage: envoy:1", "envoy:1"),  # sealos looks for "image:" anywhere
        ("# image: nginx", None),
        ("   #image: nginx", None),
        ("  image:", None),
        ('  image: ""', None),
        ("  image:   ", None),
        ("  name: nginx", None),
        ("  Image: nginx", None),
        ('  image: "{{ .Values.x }}"', "{{ .Values.x }}"),
        ('  image: "a"b"', 'a"b'),  # unbalanced inside: left to the parser to refuse
    ],
)
def test_image_value(line: str, value: str | None) -> None:
    assert image_value(line) == value


def test_manifests_are_scanned_recursively_with_lines(make_context: MakeContext) -> None:
    context = make_context(
        {
            "manifests/deploy.yaml": (
                "kind: Deployment\n"
                "# image: commented:1\n"
                "spec:\n"
                "  containers:\n"
                "    - image: nginx:1.25\n"
                '      name: "a"\n'
                '    - image: "quay.io/org/app:v2"\n'
            ),
            "manifests/nested/deeper/x.yml": "image: redis:7\n",
            "manifests/raw.yaml.tmpl": "image: {{ .registry }}/app:1\nimage: busybox:1.36\n",
            "manifests/notes.txt": "image: not-scanned:1\n",
            "manifests/values.json": '{"image": "not-scanned:2"}\n',
        }
    )
    found = {str(image.reference): image.origins for image in discover(context).images}
    assert found == {
        "docker.io/library/nginx:1.25": (FileOrigin("manifests/deploy.yaml", 5),),
        "quay.io/org/app:v2": (FileOrigin("manifests/deploy.yaml", 7),),
        "docker.io/library/redis:7": (FileOrigin("manifests/nested/deeper/x.yml", 1),),
        "docker.io/library/busybox:1.36": (FileOrigin("manifests/raw.yaml.tmpl", 2),),
    }


def test_a_leftover_template_is_skipped_with_a_warning(make_context: MakeContext) -> None:
    context = make_context(
        {"manifests/a.yaml": 'x: 1\n  image: "{{ .Values.image }}"\n  image: nginx:BAD:x\n'}
    )
    discovery = discover(context)
    assert discovery.images == ()
    first, second = discovery.warnings
    assert first == (
        "manifests/a.yaml:2: skipped image '{{ .Values.image }}': a template left unrendered"
    )
    assert second.startswith("manifests/a.yaml:3: skipped image 'nginx:BAD:x': ")


def test_the_same_image_in_several_places_is_one_image(make_context: MakeContext) -> None:
    context = make_context(
        {
            "manifests/a.yaml": "image: nginx:1.25\n",
            "manifests/b.yaml": "x: 0\nimage: docker.io/library/nginx:1.25\n",
            "images/shim/list": "index.docker.io/library/nginx:1.25\n",
        }
    )
    (image,) = discover(context).images
    assert image.stored_path == "library/nginx:1.25"
    assert image.origins == (
        FileOrigin("manifests/a.yaml", 1),
        FileOrigin("manifests/b.yaml", 2),
        FileOrigin("images/shim/list", 1),
    )


def test_line_numbers_count_newlines_only(make_context: MakeContext) -> None:
    # A form feed is a line break to str.splitlines, not to sealos.
    context = make_context({"manifests/a.yaml": "a: 1\x0c\r\nimage: nginx:1\r\n"})
    (image,) = discover(context).images
    assert image.origins == (FileOrigin("manifests/a.yaml", 2),)
