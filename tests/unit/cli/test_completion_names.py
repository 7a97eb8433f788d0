"""Which forms of the stored names shell completion offers."""

from __future__ import annotations

from clusterimage.cli._common import image_name_completions

NAMES = [
    "localhost/myapp:v1",
    "docker.io/library/nginx:1.25",
    "docker.io/team/tool:v2",
    "quay.io/org/app:v3",
    "docker.io/library/shadowed:v1",
    "localhost/shadowed:v1",
    "localhost/my.registry/x:v1",
]


def test_nothing_typed_gives_one_form_per_name_the_shortest_that_finds_it() -> None:
    assert image_name_completions(NAMES, "") == [
        "myapp:v1",
        "nginx:1.25",
        "team/tool:v2",
        "quay.io/org/app:v3",
        # localhost/shadowed:v1 is what `shadowed:v1` finds, so Docker Hub's keeps its full name
        "docker.io/library/shadowed:v1",
        "shadowed:v1",
        # `my.registry/x:v1` would name the registry my.registry
        "localhost/my.registry/x:v1",
    ]


def test_typed_prefixes_match_short_and_full_forms() -> None:
    assert image_name_completions(NAMES, "ng") == ["nginx:1.25"]
    assert image_name_completions(NAMES, "docker.io/") == [
        "docker.io/library/nginx:1.25",
        "docker.io/team/tool:v2",
        "docker.io/library/shadowed:v1",
    ]
    assert image_name_completions(NAMES, "localhost/m") == [
        "localhost/myapp:v1",
        "localhost/my.registry/x:v1",
    ]
    assert image_name_completions(NAMES, "sh") == ["shadowed:v1"]
    assert image_name_completions(NAMES, "zzz") == []
    assert image_name_completions([], "") == []
