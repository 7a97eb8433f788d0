"""Image references: Docker's normalisation, table-driven, and properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clusterimage.errors import InvalidReference
from clusterimage.oci.digest import Digest
from clusterimage.oci.reference import Reference, is_short_name

HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA = f"sha256:{HEX}"

# input -> (registry, repository, tag, digest, str(), familiar())
VALID = [
    ("nginx", ("docker.io", "library/nginx", "latest", None)),
    ("nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("library/nginx", ("docker.io", "library/nginx", "latest", None)),
    ("docker.io/nginx", ("docker.io", "library/nginx", "latest", None)),
    ("docker.io/library/nginx:alpine", ("docker.io", "library/nginx", "alpine", None)),
    ("index.docker.io/nginx", ("docker.io", "library/nginx", "latest", None)),
    ("registry-1.docker.io/me/app:v1", ("docker.io", "me/app", "v1", None)),
    ("me/app", ("docker.io", "me/app", "latest", None)),
    ("me/app/sub:v2", ("docker.io", "me/app/sub", "v2", None)),
    ("quay.io/org/app:v1", ("quay.io", "org/app", "v1", None)),
    ("localhost/app", ("localhost", "app", "latest", None)),
    ("localhost:5000/app:dev", ("localhost:5000", "app", "dev", None)),
    ("127.0.0.1:5000/a/b/c:1", ("127.0.0.1:5000", "a/b/c", "1", None)),
    ("[::1]:5000/app:v1", ("[::1]:5000", "app", "v1", None)),
    ("Example.COM/app", ("Example.COM", "app", "latest", None)),
    ("host-name.example.com:443/x", ("host-name.example.com:443", "x", "latest", None)),
    ("nginx@" + SHA, ("docker.io", "library/nginx", None, SHA)),
    ("nginx:1.25@" + SHA, ("docker.io", "library/nginx", "1.25", SHA)),
    ("quay.io/org/app@" + SHA, ("quay.io", "org/app", None, SHA)),
    ("a-b.c-d/g", ("a-b.c-d", "g", "latest", None)),  # a dot makes it a registry
    ("a_b__c-d---e/g", ("docker.io", "a_b__c-d---e/g", "latest", None)),
    ("app:V1_x.y-z", ("docker.io", "library/app", "V1_x.y-z", None)),
    ("app:" + "t" * 128, ("docker.io", "library/app", "t" * 128, None)),
    ("localhost:5000", ("docker.io", "library/localhost", "5000", None)),  # as Docker reads it
    ("a.b/c.d/e_f", ("a.b", "c.d/e_f", "latest", None)),
    ("x" * 200, ("docker.io", "library/" + "x" * 200, "latest", None)),
]

INVALID = [
    "",
    " nginx",
    "nginx ",
    "ngi nx",
    "nginx\n",
    "Nginx",
    "me/App",
    "nginx:",
    ":tag",
    "@" + SHA,
    "nginx@",
    "nginx@sha256:abc",
    "nginx@sha256:" + "g" * 64,
    "nginx@md5:" + "a" * 32,
    "nginx@@" + SHA,
    "nginx:tag:more",
    "nginx:-tag",
    "nginx:" + "t" * 129,
    "nginx:tä",
    "/nginx",
    "nginx/",
    "a//b",
    "-nginx",
    "nginx-",
    "a..b/c:tag/x",
    "host:port/x",
    "-host.com/x",
    "[::1/x",
    "x" * 250 + "/" + "y" * 10,
    HEX,
    "ngïnx",
    "a_b.c/g",  # a dot makes it a registry, and _ is not allowed in one
]


@pytest.mark.parametrize(("value", "expected"), VALID, ids=[v for v, _ in VALID])
def test_normalisation(value: str, expected: tuple[str, str, str | None, str | None]) -> None:
    registry, repository, tag, digest = expected
    ref = Reference.parse(value)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize("value", INVALID, ids=repr)
def test_invalid(value: str) -> None:
    with pytest.raises(InvalidReference) as info:
        Reference.parse(value)
    assert "\n" not in str(info.value)


def test_table_is_large_enough() -> None:
    assert len(VALID) + len(INVALID) >= 30


@pytest.mark.parametrize(
    ("value", "full", "familiar"),
    [
        ("nginx", "docker.io/library/nginx:latest", "nginx:latest"),
        ("me/app:v1", "docker.io/me/app:v1", "me/app:v1"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("quay.io/x/y:z", "quay.io/x/y:z", "quay.io/x/y:z"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        (f"nginx@{SHA}", f"docker.io/library/nginx@{SHA}", f"nginx@{SHA}"),
    ],
)
def test_str_and_familiar(value: str, full: str, familiar: str) -> None:
    ref = Reference.parse(value)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_without_default_tag_and_helpers() -> None:
    ref = Reference.parse("nginx", default_tag=False)
    assert ref.tag is None
    assert ref.identifier == "latest"
    assert ref.name == "docker.io/library/nginx"
    tagged = ref.with_tag("1.25")
    assert str(tagged) == "docker.io/library/nginx:1.25"
    pinned = tagged.with_digest(Digest.parse(SHA))
    assert pinned.tag is None
    assert pinned.identifier == SHA


# -- properties -----------------------------------------------------------------------------

_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def _path_component(draw: st.DrawFn) -> str:
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(_separator), draw(_alnum)]
    return "".join(parts)


_domain_label = st.from_regex(r"\A[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?\Z")


@st.composite
def _registry(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["docker", "dotted", "localhost", "ipv6"]))
    if kind == "docker":
        return "docker.io"
    if kind == "localhost":
        host = "localhost"
    elif kind == "ipv6":
        host = draw(st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::a]"]))
    else:
        labels = draw(st.lists(_domain_label, min_size=2, max_size=3))
        host = ".".join(labels)
    if draw(st.booleans()):
        host += f":{draw(st.integers(1, 65535))}"
    return host


@st.composite
def references(draw: st.DrawFn) -> Reference:
    registry = draw(_registry())
    components = draw(st.lists(_path_component(), min_size=1, max_size=3))
    if registry == "docker.io" and len(components) == 1:
        components = ["library", *components]  # the normalised form of an official image
    repository = "/".join(components)
    tag = draw(st.none() | st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z"))
    digest = draw(
        st.none() | st.builds(lambda h: Digest("sha256", h), st.from_regex(r"\A[a-f0-9]{64}\Z"))
    )
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repository, tag, digest)


@settings(max_examples=300, deadline=None)
@given(references())
def test_parse_of_format_is_identity(ref: Reference) -> None:
    assert Reference.parse(str(ref)) == ref


@settings(max_examples=300, deadline=None)
@given(references())
def test_familiar_form_normalises_back(ref: Reference) -> None:
    first = ref.repository.split("/")[0]
    # As in Docker, docker.io/a.b/c shortens to a.b/c, which then reads as registry a.b.
    assume(ref.registry != "docker.io" or not any(c in first for c in ".:"))
    assert Reference.parse(ref.familiar()) == ref


# Text made of the pieces references are made of, so it often gets far into the parser.
_reference_like = st.lists(
    st.sampled_from([*"abcXYZ019:/@._-[] \n\tä+", "sha256:", "library/", "localhost", "a" * 64]),
    max_size=20,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.text() | _reference_like)
def test_any_text_raises_only_invalid_reference(value: str) -> None:
    try:
        ref = Reference.parse(value)
    except InvalidReference as exc:
        assert str(exc)
        return
    assert Reference.parse(str(ref)) == ref


# -- names stored locally (build -t, tag, merge -t, load) and looked up in the store ----------

# input -> what parse_local gives: localhost/ for a short name, Docker's rule otherwise
LOCAL = [
    ("myapp", "localhost/myapp:latest"),
    ("myapp:v1", "localhost/myapp:v1"),
    ("me/app:v1", "localhost/me/app:v1"),  # podman too: no registry, so localhost/me/app
    ("library/nginx", "localhost/library/nginx:latest"),
    ("a_b__c-d/g", "localhost/a_b__c-d/g:latest"),
    ("app@" + SHA, f"localhost/app@{SHA}"),
    ("app:v1@" + SHA, f"localhost/app:v1@{SHA}"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000/app:dev"),
    ("docker.io/nginx", "docker.io/library/nginx:latest"),  # named Docker Hub: stays there
    ("index.docker.io/me/app", "docker.io/me/app:latest"),
    ("quay.io/org/app:v1", "quay.io/org/app:v1"),
    ("127.0.0.1:5000/a:1", "127.0.0.1:5000/a:1"),
    ("[::1]:5000/app", "[::1]:5000/app:latest"),
    ("Example.COM/app", "Example.COM/app:latest"),
]


@pytest.mark.parametrize(("value", "expected"), LOCAL)
def test_parse_local(value: str, expected: str) -> None:
    ref = Reference.parse_local(value)
    assert str(ref) == expected
    assert Reference.parse(str(ref)) == ref  # what is stored reads back as itself


def test_parse_local_without_default_tag() -> None:
    assert str(Reference.parse_local("myapp", default_tag=False)) == "localhost/myapp"
    assert str(Reference.parse_local("quay.io/a/b", default_tag=False)) == "quay.io/a/b"


@pytest.mark.parametrize("value", ["", "My/App", "app:", "64" * 32, "http://host/app", "a b"])
def test_parse_local_refuses_what_parse_refuses(value: str) -> None:
    with pytest.raises(InvalidReference):
        Reference.parse_local(value)
    with pytest.raises(InvalidReference):
        Reference.local_candidates(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("myapp:v1", ["localhost/myapp:v1", "docker.io/library/myapp:v1"]),
        ("nginx", ["localhost/nginx:latest", "docker.io/library/nginx:latest"]),
        ("me/app", ["localhost/me/app:latest", "docker.io/me/app:latest"]),
        ("app@" + SHA, [f"localhost/app@{SHA}", f"docker.io/library/app@{SHA}"]),
        ("localhost/myapp:v1", ["localhost/myapp:v1"]),
        ("docker.io/library/myapp:v1", ["docker.io/library/myapp:v1"]),
        ("quay.io/org/app", ["quay.io/org/app:latest"]),
        ("host:5000/app", ["host:5000/app:latest"]),
    ],
)
def test_local_candidates(value: str, expected: list[str]) -> None:
    assert [str(ref) for ref in Reference.local_candidates(value)] == expected


@pytest.mark.parametrize(
    ("value", "short"),
    [
        ("nginx", True),
        ("nginx:1.25", True),
        ("me/app:v1", True),
        ("a/b/c@" + SHA, True),
        ("a_b/c", True),
        ("localhost/x", False),
        ("localhost:5000/x", False),
        ("host:5000/x", False),
        ("quay.io/x", False),
        ("docker.io/x", False),
        ("[::1]/x", False),
        ("Upper/x", False),  # an uppercase first component can only be a host (normalize.go)
    ],
)
def test_is_short_name(value: str, short: bool) -> None:
    assert is_short_name(value) is short


@settings(max_examples=300, deadline=None)
@given(references())
def test_local_names_of_any_reference(ref: Reference) -> None:
    # Qualified (as str() always is): itself. Its familiar form is short exactly when it names
    # Docker Hub, and then localhost/ comes first and Docker's name second.
    assert Reference.parse_local(str(ref)) == ref
    assert Reference.local_candidates(str(ref)) == [ref]
    first = ref.repository.split("/")[0]
    assume(ref.registry != "docker.io" or not any(c in first for c in ".:"))
    familiar = ref.familiar()
    if ref.registry == "docker.io" and not familiar.startswith("docker.io/"):
        local = Reference.parse_local(familiar)
        assert local.registry == "localhost"
        assert (local.tag, local.digest) == (ref.tag, ref.digest)
        assert Reference.local_candidates(familiar) == [local, ref]
    else:
        assert not is_short_name(familiar)
        assert Reference.local_candidates(familiar) == [ref]
