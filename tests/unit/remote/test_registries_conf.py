"""registries.conf v2: which files, which [[registry]], and where a pull goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterimage.errors import ClusterImageError, RegistryBlocked, RegistryError
from clusterimage.oci.reference import Reference
from clusterimage.remote.registries_conf import (
    Mirror,
    PullSource,
    RegistriesConf,
    load,
)

DIGEST = "sha256:" + "a" * 64

CONF = """
unqualified-search-registries = ["docker.io", "quay.io"]
short-name-mode = "enforcing"

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "127.0.0.1:5000"
insecure = true

[[registry.mirror]]
location = "mirror.example.com/hub"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "fresh.example.com"
pull-from-mirror = "tag-only"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"
insecure = true

[[registry.mirror]]
location = "cache.example.com/foo-cache/"

[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
location = "pinned.example.com"
mirror-by-digest-only = true

[[registry.mirror]]
location = "pins.example.com"

[[registry]]
prefix = "*.corp.example"

[[registry]]
prefix = "*.cache.corp.example"
location = ""

[[registry.mirror]]
location = "cache.corp.example"
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _load(tmp_path: Path, text: str = CONF) -> RegistriesConf:
    """``text`` as the file $CONTAINERS_REGISTRIES_CONF names, nothing of the machine's read."""
    path = _write(tmp_path / "registries.conf", text)
    return load(
        env={"CONTAINERS_REGISTRIES_CONF": str(path)},
        home=tmp_path / "home",
        system=tmp_path / "absent.conf",
        system_d=tmp_path / "absent.d",
    )


def _sources(conf: RegistriesConf, ref: str) -> list[tuple[str, bool, bool]]:
    return [
        (str(s.reference), s.insecure, s.mirror) for s in conf.pull_sources(Reference.parse(ref))
    ]


def _prefix(conf: RegistriesConf, ref: str | Reference) -> str | None:
    found = conf.find(ref)
    return None if found is None else found.prefix


# --- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "prefix"),
    [
        ("example.com/foo/app:v1", "example.com/foo"),
        ("example.com/foo/deep/app:v1", "example.com/foo"),
        ("example.com/foo:v1", "example.com/foo"),  # the prefix is the whole repository
        (f"example.com/foo@{DIGEST}", "example.com/foo"),
        ("example.com/foobar/app:v1", None),  # not a path boundary
        ("example.com/fo/app:v1", None),
        ("other.example.com/foo/app:v1", None),
        ("blocked.example.com/x:1", "blocked.example.com"),
        ("blocked.example.com:5000/x:1", None),  # another port is another registry
        ("nginx", "docker.io"),  # references are normalised before matching
        ("library/nginx:1", "docker.io"),
        ("index.docker.io/me/app:1", "docker.io"),
        ("quay.io/a/b:1", None),
    ],
)
def test_a_prefix_matches_on_a_path_boundary(tmp_path: Path, ref: str, prefix: str | None) -> None:
    assert _prefix(_load(tmp_path), Reference.parse(ref)) == prefix


@pytest.mark.parametrize(
    ("ref", "prefix"),
    [
        ("reg.corp.example/team/app:v1", "*.corp.example"),
        ("a.b.corp.example/app:v1", "*.corp.example"),
        ("reg.corp.example:5000/app:v1", "*.corp.example"),  # a wildcard has no port of its own
        ("x.cache.corp.example/app:v1", "*.cache.corp.example"),  # the longer wildcard
        ("corp.example/app:v1", None),  # the domain itself is not a subdomain
        ("badcorp.example/app:v1", None),
        ("reg.corp.example.org/app:v1", None),
        ("docker.io/reg.corp.example/app:v1", "docker.io"),  # only the host may match
    ],
)
def test_a_wildcard_prefix_matches_subdomains(tmp_path: Path, ref: str, prefix: str | None) -> None:
    assert _prefix(_load(tmp_path), Reference.parse(ref)) == prefix


def test_the_longest_prefix_wins_whatever_the_order(tmp_path: Path) -> None:
    conf = _load(
        tmp_path,
        '[[registry]]\nlocation = "example.com/a/b"\n'
        '[[registry]]\nlocation = "example.com"\n'
        '[[registry]]\nlocation = "example.com/a"\n'
        '[[registry]]\nprefix = "*.example.com"\n',
    )
    assert _prefix(conf, Reference.parse("example.com/a/b/c:1")) == "example.com/a/b"
    assert _prefix(conf, Reference.parse("example.com/a/c:1")) == "example.com/a"
    assert _prefix(conf, Reference.parse("example.com/c:1")) == "example.com"
    assert _prefix(conf, Reference.parse("x.example.com/a/b/c:1")) == "*.example.com"


def test_find_takes_a_host_or_a_string_as_written(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _prefix(conf, "blocked.example.com") == "blocked.example.com"
    assert _prefix(conf, "example.com/foo") == "example.com/foo"
    assert _prefix(conf, "example.com/foo:v1") == "example.com/foo"
    assert _prefix(conf, "example.com") is None
    assert _prefix(conf, "nginx") is None  # a string is not normalised


def test_the_prefix_defaults_to_the_location_without_trailing_slashes(tmp_path: Path) -> None:
    conf = _load(tmp_path, '[[registry]]\nlocation = "example.com/ns/"\ninsecure = true\n')
    (registry,) = conf.registries
    assert (registry.prefix, registry.location, registry.insecure) == (
        "example.com/ns",
        "example.com/ns",
        True,
    )


# --- pull sources ---------------------------------------------------------------------------


def test_mirrors_come_first_in_order_then_the_location(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, "nginx:1.25") == [
        ("127.0.0.1:5000/library/nginx:1.25", True, True),
        ("fresh.example.com/library/nginx:1.25", False, True),
        ("docker.io/library/nginx:1.25", False, False),
    ]


def test_pull_from_mirror_splits_digest_and_tag_references(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, f"nginx@{DIGEST}") == [
        (f"127.0.0.1:5000/library/nginx@{DIGEST}", True, True),
        (f"mirror.example.com/hub/library/nginx@{DIGEST}", False, True),
        (f"docker.io/library/nginx@{DIGEST}", False, False),
    ]
    # A tag and a digest: the digest decides what is pulled, so it is a digest reference.
    assert [s[0] for s in _sources(conf, f"nginx:1.25@{DIGEST}")] == [
        f"127.0.0.1:5000/library/nginx:1.25@{DIGEST}",
        f"mirror.example.com/hub/library/nginx:1.25@{DIGEST}",
        f"docker.io/library/nginx:1.25@{DIGEST}",
    ]


def test_mirror_by_digest_only_skips_every_mirror_for_a_tag(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, "pinned.example.com/app:v1") == [
        ("pinned.example.com/app:v1", False, False)
    ]
    assert _sources(conf, f"pinned.example.com/app@{DIGEST}") == [
        (f"pins.example.com/app@{DIGEST}", False, True),
        (f"pinned.example.com/app@{DIGEST}", False, False),
    ]


def test_the_matched_prefix_is_rewritten_onto_each_location(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, "example.com/foo/team/app:v1") == [
        ("cache.example.com/foo-cache/team/app:v1", False, True),
        ("internal.example.com/bar/team/app:v1", True, False),
    ]
    assert _sources(conf, "example.com/foo:v1") == [
        ("cache.example.com/foo-cache:v1", False, True),
        ("internal.example.com/bar:v1", True, False),
    ]
    assert _sources(conf, "example.com/foobar/app:v1") == [
        ("example.com/foobar/app:v1", False, False)
    ]


def test_a_wildcard_keeps_the_host_the_name_says_and_mirrors_replace_it(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert _sources(conf, "reg.corp.example/team/app:v1") == [
        ("reg.corp.example/team/app:v1", False, False)
    ]
    assert _sources(conf, "x.cache.corp.example/team/app:v1") == [
        ("cache.corp.example/team/app:v1", False, True),
        ("x.cache.corp.example/team/app:v1", False, False),
    ]


def test_an_unconfigured_registry_is_pulled_from_directly(tmp_path: Path) -> None:
    ref = Reference.parse("quay.io/a/b:c")
    assert _load(tmp_path).pull_sources(ref) == [PullSource(ref, insecure=False)]
    assert RegistriesConf().pull_sources(ref) == [PullSource(ref, insecure=False)]


def test_a_blocked_registry_is_a_one_line_error_naming_reference_and_file(
    tmp_path: Path,
) -> None:
    conf = _load(tmp_path)
    with pytest.raises(RegistryBlocked) as caught:
        conf.pull_sources(Reference.parse("blocked.example.com/app:v1"))
    message = str(caught.value)
    assert message == (
        f"blocked.example.com/app:v1: registry blocked.example.com is blocked in "
        f"{tmp_path / 'registries.conf'}"
    )
    assert isinstance(caught.value, RegistryError)
    found = conf.find("blocked.example.com")
    assert found is not None and found.blocked  # the client can refuse pushes the same way


def test_a_location_without_a_registry_host_is_refused_not_sent_to_docker_hub(
    tmp_path: Path,
) -> None:
    conf = _load(
        tmp_path, '[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\nlocation = "hub"\n'
    )
    with pytest.raises(ClusterImageError, match=r"'hub' turns quay\.io/a/b:c into 'hub/a/b:c'"):
        conf.pull_sources(Reference.parse("quay.io/a/b:c"))


# --- files ----------------------------------------------------------------------------------


def _machine(tmp_path: Path) -> dict[str, Path]:
    """A fake machine: /etc files and a home, in ``tmp_path``."""
    return {
        "home": tmp_path / "home",
        "system": tmp_path / "etc" / "registries.conf",
        "system_d": tmp_path / "etc" / "registries.conf.d",
    }


def _mirror_of(host: str, mirror: str) -> str:
    return f'[[registry]]\nlocation = "{host}"\n[[registry.mirror]]\nlocation = "{mirror}"\n'


def _first_source(conf: RegistriesConf, ref: str) -> str:
    return str(conf.pull_sources(Reference.parse(ref))[0].reference)


def test_without_a_user_file_the_system_file_and_both_drop_in_folders_are_read(
    tmp_path: Path,
) -> None:
    m = _machine(tmp_path)
    _write(m["system"], _mirror_of("docker.io", "sys:5000") + _mirror_of("quay.io", "q-sys:1"))
    _write(m["system_d"] / "20-b.conf", _mirror_of("docker.io", "sys-20:5000"))
    _write(m["system_d"] / "10-a.conf", _mirror_of("docker.io", "sys-10:5000"))
    user_d = m["home"] / ".config" / "containers" / "registries.conf.d"
    _write(user_d / "00-user.conf", _mirror_of("docker.io", "user-00:5000"))
    conf = load(env={}, **m)
    # Each folder in name order, the user's folder after the system's: the last word wins.
    assert _first_source(conf, "nginx:1") == "user-00:5000/library/nginx:1"
    assert _first_source(conf, "quay.io/a/b:1") == "q-sys:1/a/b:1"  # other prefixes stay
    assert conf.files == (
        m["system"],
        m["system_d"] / "10-a.conf",
        m["system_d"] / "20-b.conf",
        user_d / "00-user.conf",
    )


def test_a_user_file_replaces_the_system_file_and_folder(tmp_path: Path) -> None:
    m = _machine(tmp_path)
    _write(m["system"], '[[registry]]\nlocation = "docker.io"\nblocked = true\n')
    _write(m["system_d"] / "10.conf", '[[registry]]\nlocation = "quay.io"\nblocked = true\n')
    user = _write(m["home"] / ".config/containers/registries.conf", _mirror_of("docker.io", "u:1"))
    _write(user.with_name("registries.conf.d") / "10.conf", _mirror_of("quay.io", "uq:1"))
    conf = load(env={}, **m)
    assert _first_source(conf, "nginx:1") == "u:1/library/nginx:1"
    assert _first_source(conf, "quay.io/a/b:1") == "uq:1/a/b:1"


def test_home_defaults_to_the_home_variable_of_env(tmp_path: Path) -> None:
    m = _machine(tmp_path)
    _write(m["home"] / ".config/containers/registries.conf", _mirror_of("docker.io", "u:1"))
    conf = load(env={"HOME": str(m["home"])}, system=m["system"], system_d=m["system_d"])
    assert _first_source(conf, "nginx:1") == "u:1/library/nginx:1"


def test_the_variable_replaces_the_main_file_but_drop_ins_still_apply(tmp_path: Path) -> None:
    # As containers/image (and so skopeo, podman) do: only the main file is replaced.
    m = _machine(tmp_path)
    _write(m["home"] / ".config/containers/registries.conf", _mirror_of("docker.io", "u:1"))
    _write(m["system_d"] / "10.conf", _mirror_of("quay.io", "sys-q:1"))
    named = _write(tmp_path / "ci.conf", _mirror_of("docker.io", "ci:1"))
    conf = load(env={"CONTAINERS_REGISTRIES_CONF": str(named)}, **m)
    assert _first_source(conf, "nginx:1") == "ci:1/library/nginx:1"
    assert _first_source(conf, "quay.io/a/b:1") == "sys-q:1/a/b:1"
    assert conf.files == (named, m["system_d"] / "10.conf")


def test_the_older_variable_is_read_when_the_newer_is_absent_and_empty_means_unset(
    tmp_path: Path,
) -> None:
    m = _machine(tmp_path)
    _write(m["system"], _mirror_of("docker.io", "sys:1"))
    old = _write(tmp_path / "old.conf", _mirror_of("docker.io", "old:1"))
    conf = load(env={"REGISTRIES_CONFIG_PATH": str(old)}, **m)
    assert _first_source(conf, "nginx:1") == "old:1/library/nginx:1"
    both = {"CONTAINERS_REGISTRIES_CONF": "", "REGISTRIES_CONFIG_PATH": str(old)}
    assert _first_source(load(env=both, **m), "nginx:1") == "sys:1/library/nginx:1"


def test_missing_files_and_folders_are_an_empty_configuration(tmp_path: Path) -> None:
    conf = load(env={}, **_machine(tmp_path))
    assert conf == RegistriesConf()
    assert _sources(conf, "quay.io/a/b:c") == [("quay.io/a/b:c", False, False)]


def test_a_file_the_variable_names_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    with pytest.raises(ClusterImageError, match=r"nope\.conf: no such file .*CONTAINERS_REGI"):
        load(env={"CONTAINERS_REGISTRIES_CONF": str(missing)}, **_machine(tmp_path))


def test_drop_ins_replace_whole_prefixes_and_the_settings_they_set(tmp_path: Path) -> None:
    m = _machine(tmp_path)
    _write(m["system"], CONF)
    _write(
        m["system_d"] / "50.conf",
        'unqualified-search-registries = []\n[[registry]]\nlocation = "docker.io"\n',
    )
    _write(m["system_d"] / "60.conf", 'short-name-mode = "permissive"\n')
    _write(m["system_d"] / "70.conf.bak", "not toml [[[")
    _write(m["system_d"] / "sub.conf" / "80.conf", "not toml [[[")
    conf = load(env={}, **m)
    # The drop-in's docker.io has no mirrors: the system file's are gone, not merged.
    assert _sources(conf, "nginx:1") == [("docker.io/library/nginx:1", False, False)]
    assert _prefix(conf, "example.com/foo") == "example.com/foo"
    assert conf.unqualified_search_registries == ()
    assert conf.short_name_mode == "permissive"


def test_search_registries_and_short_name_mode_are_read(tmp_path: Path) -> None:
    conf = _load(tmp_path)
    assert conf.unqualified_search_registries == ("docker.io", "quay.io")
    assert conf.short_name_mode == "enforcing"


def test_within_one_file_the_first_table_of_a_prefix_wins(tmp_path: Path) -> None:
    conf = _load(tmp_path, _mirror_of("docker.io", "first:1") + _mirror_of("docker.io", "second:1"))
    assert conf.registries[0].mirrors == (Mirror("first:1"),)


def test_unknown_keys_and_tables_are_ignored(tmp_path: Path) -> None:
    conf = _load(
        tmp_path,
        'credential-helpers = ["containers-auth.json"]\nfuture = 1\n'
        '[aliases]\n"fedora" = "registry.fedoraproject.org/fedora"\n'
        '[[registry]]\nlocation = "quay.io"\nsomething-new = true\n'
        '[[registry.mirror]]\nlocation = "m:1"\nweight = 3\n',
    )
    assert _sources(conf, "quay.io/a/b:1")[0] == ("m:1/a/b:1", False, True)


# --- bad files: one line, naming the file ---------------------------------------------------


def test_bad_toml_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ClusterImageError) as caught:
        _load(tmp_path, '[[registry]]\nlocation = "quay.io"\ninsecure = yes\n')
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'registries.conf'}:3: invalid TOML: ")
    assert "column" in message and "\n" not in message


def test_a_version_1_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ClusterImageError, match=r"registries\.conf: a version 1 .*only version 2"):
        _load(tmp_path, "[registries.search]\nregistries = ['docker.io']\n")


def test_a_version_1_drop_in_is_refused_naming_it(tmp_path: Path) -> None:
    m = _machine(tmp_path)
    _write(m["system_d"] / "old.conf", "[registries.insecure]\nregistries = ['x:5000']\n")
    with pytest.raises(ClusterImageError, match=r"old\.conf: a version 1"):
        load(env={}, **m)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[registry]]\ninsecure = true\n", "neither prefix nor location"),
        ('[[registry]]\nprefix = "example.com"\n', "only a wildcard prefix"),
        ('[[registry]]\nlocation = "https://quay.io"\n', "URL schemes are not supported"),
        (
            '[[registry]]\nlocation = "quay.io"\npull-from-mirror = "all"\n',
            "belongs in a \\[\\[registry.mirror\\]\\]",
        ),
        ('[[registry]]\nlocation = "quay.io"\n[[registry.mirror]]\ninsecure = true\n', "unset"),
        (
            '[[registry]]\nlocation = "quay.io"\nmirror-by-digest-only = true\n'
            '[[registry.mirror]]\nlocation = "m:1"\npull-from-mirror = "all"\n',
            "cannot be set when the registry sets mirror-by-digest-only",
        ),
        (
            '[[registry]]\nlocation = "quay.io"\n'
            '[[registry.mirror]]\nlocation = "m:1"\npull-from-mirror = "digest"\n',
            "'digest' is not one of all, digest-only, tag-only",
        ),
        ('[[registry]]\nlocation = "quay.io"\ninsecure = "yes"\n', "must be true or false"),
        ("[[registry]]\nlocation = 5\n", "location must be a string"),
        ('[registry]\nlocation = "quay.io"\n', "must be \\[\\[registry\\]\\] tables"),
        (
            '[[registry]]\nlocation = "quay.io"\n[registry.mirror]\nlocation = "m:1"\n',
            "must be \\[\\[registry.mirror\\]\\] tables",
        ),
        (
            '[[registry]]\nprefix = "quay.io/a"\nlocation = "quay.io"\ninsecure = true\n'
            '[[registry]]\nprefix = "quay.io/b"\nlocation = "quay.io"\n',
            "'quay.io' is defined more than once with different 'insecure' settings",
        ),
        ('short-name-mode = "strict"\n', "'strict' is not one of"),
        ('unqualified-search-registries = ["quay.io/ns"]\n', "'quay.io/ns' is not a host"),
        ('unqualified-search-registries = "quay.io"\n', "must be strings"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ClusterImageError, match=message) as caught:
        _load(tmp_path, text)
    assert str(caught.value).startswith(str(tmp_path / "registries.conf"))
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registries.conf"
    path.write_bytes(b'[[registry]]\nlocation = "\xff"\n')
    with pytest.raises(ClusterImageError, match="not UTF-8"):
        load(env={"CONTAINERS_REGISTRIES_CONF": str(path)}, **_machine(tmp_path))
