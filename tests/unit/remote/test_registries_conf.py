"""registries.conf v2: which file, which [[registry]], and where a pull goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterimage.errors import ClusterImageError
from clusterimage.oci.reference import Reference
from clusterimage.remote.registries_conf import RegistryBlocked, load

CONF = """
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "127.0.0.1:5000"
insecure = true

[[registry.mirror]]
location = "mirror.example.com/hub"
pull-from-mirror = "digest-only"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/foo"
insecure = true

[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
prefix = "*.corp.example"
location = ""
[[registry.mirror]]
location = "cache.corp.example"
"""


def _load(tmp_path: Path, text: str = CONF) -> object:
    path = tmp_path / "registries.conf"
    path.write_text(text)
    return load(env={"CONTAINERS_REGISTRIES_CONF": str(path)})


def _sources(conf: object, ref: str) -> list[tuple[str, bool]]:
    sources = conf.pull_sources(Reference.parse(ref))  # type: ignore[attr-defined]
    return [(str(s.reference), s.insecure) for s in sources]


def test_mirrors_come_first_in_order_then_the_location(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, "nginx:1.25") == [
        ("127.0.0.1:5000/library/nginx:1.25", True),
        ("docker.io/library/nginx:1.25", False),
    ]
    digest = "sha256:" + "a" * 64
    assert _sources(conf, f"nginx@{digest}") == [
        (f"127.0.0.1:5000/library/nginx@{digest}", True),
        (f"mirror.example.com/hub/library/nginx@{digest}", False),
        (f"docker.io/library/nginx@{digest}", False),
    ]


def test_prefixes_match_on_path_boundaries_and_rewrite_the_matched_part(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, "example.com/foo/app:v1") == [("internal.example.com/foo/app:v1", True)]
    assert _sources(conf, "example.com/foobar/app:v1") == [("example.com/foobar/app:v1", False)]


def test_a_wildcard_prefix_matches_subdomains(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, "reg.corp.example/team/app:v1")[0] == (
        "cache.corp.example/team/app:v1",
        False,
    )


def test_a_blocked_registry_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(
        RegistryBlocked, match=r"blocked\.example\.com is blocked by .*registries\.conf"
    ):
        _sources(_load(tmp_path), "blocked.example.com/app:v1")


def test_drop_ins_replace_a_prefix_and_the_user_file_wins_over_the_system_one(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    user = home / ".config" / "containers" / "registries.conf"
    user.parent.mkdir(parents=True)
    user.write_text(CONF)
    drop_ins = user.with_name("registries.conf.d")
    drop_ins.mkdir()
    (drop_ins / "50-mirror.conf").write_text(
        '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
        '[[registry.mirror]]\nlocation = "other:5000"\n'
    )
    system = tmp_path / "etc-registries.conf"
    system.write_text('[[registry]]\nlocation = "docker.io"\nblocked = true\n')
    conf = load(env={}, home=home, system=system)
    assert _sources(conf, "nginx:1")[0] == ("other:5000/library/nginx:1", False)
    assert conf.unqualified_search_registries == ["docker.io"]


def test_no_file_means_pulls_go_where_the_name_says(tmp_path: Path) -> None:
    conf = load(env={}, home=tmp_path, system=tmp_path / "absent.conf")
    assert _sources(conf, "quay.io/a/b:c") == [("quay.io/a/b:c", False)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[registry]\nlocation = 'x'\n", "not valid TOML"),
        ("[registries.search]\nregistries = ['docker.io']\n", "version 1"),
        ("[[registry]]\ninsecure = true\n", "neither prefix nor location"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ClusterImageError, match=message) as caught:
        _load(tmp_path, text)
    assert "registries.conf" in str(caught.value) and "\n" not in str(caught.value)
