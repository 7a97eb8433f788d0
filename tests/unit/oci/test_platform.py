"""Platforms: parsing, normalisation, matching (containerd's rules)."""

from __future__ import annotations

import pytest

from clusterimage.errors import UsageError
from clusterimage.oci.platform import Platform


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("amd64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/armhf", "linux/arm"),
        ("Linux/ARM64", "linux/arm64"),
        ("windows/amd64", "windows/amd64"),
        ("aarch64", "linux/arm64"),
        ("linux", f"linux/{Platform.host().architecture}"),
    ],
)
def test_parse(value: str, expected: str) -> None:
    assert str(Platform.parse(value)) == expected


@pytest.mark.parametrize(
    "value",
    ["", "/", "linux/", "linux//v7", "a/b/c/d", " ", "bad", "amd46", "linux/amd 64", "linux/a:b"],
)
def test_parse_rejects(value: str) -> None:
    with pytest.raises(UsageError, match="invalid platform"):
        Platform.parse(value)


@pytest.mark.parametrize(
    ("want", "have", "ok"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/amd64", "linux/arm64", False),
        ("linux/amd64", "windows/amd64", False),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm", "linux/arm/v7", True),
        ("linux/arm", "linux/arm/v6", False),
        ("linux/arm/v6", "linux/arm/v6", True),
        ("linux/arm", "linux/arm", True),
    ],
)
def test_matches(want: str, have: str, ok: bool) -> None:
    fields = have.split("/")
    candidate = Platform(fields[0], fields[1], fields[2] if len(fields) > 2 else None)
    assert Platform.parse(want).matches(candidate) is ok


def test_dict_round_trip_and_host() -> None:
    data = {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1", "x": 1}
    platform = Platform.from_dict(data)
    assert platform.os_version == "10.0.17763.1"
    assert platform.to_dict() == {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.17763.1",
    }
    host = Platform.host()
    assert host.os == "linux"
    assert host.architecture in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}
