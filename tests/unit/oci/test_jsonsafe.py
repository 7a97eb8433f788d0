"""Nesting is bounded wherever documents from elsewhere are parsed: a one-line error, never a
RecursionError, nor a document that parses and then fails wherever it is printed."""

from __future__ import annotations

import json

import pytest

from clusterimage.errors import ManifestError
from clusterimage.oci import jsonsafe
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.jsonsafe import MAX_DEPTH, TooDeep
from clusterimage.oci.manifest import parse_manifest


def _lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("raw", [_lists(MAX_DEPTH), _objects(MAX_DEPTH)])
def test_documents_up_to_the_limit_parse_as_json_loads_does(raw: bytes | str) -> None:
    assert jsonsafe.loads(raw) == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        _lists(MAX_DEPTH + 1),
        _objects(MAX_DEPTH + 1),
        _lists(900),  # parses with json.loads, fails later when printed from a deep stack
        b"[" * 100_000,  # RecursionError in json.loads, before the missing brackets matter
        _objects(100_000),
        # Deep at the end of many shallow siblings: the bracket count alone says nothing.
        b"[" + b"[1]," * 200 + _lists(MAX_DEPTH) + b"]",
    ],
)
def test_deeper_documents_are_a_value_error(raw: bytes | str) -> None:
    with pytest.raises(TooDeep, match=f"nested deeper than {MAX_DEPTH} levels"):
        jsonsafe.loads(raw)


def test_many_shallow_containers_are_not_deep() -> None:
    raw = json.dumps({"history": [{"created_by": "x", "k": [1, [2]]} for _ in range(1000)]})
    assert jsonsafe.loads(raw.encode()) == json.loads(raw)
    assert jsonsafe.loads("3") == 3


def test_manifests_and_configs_nested_too_deeply_are_one_line_manifest_errors() -> None:
    with pytest.raises(ManifestError, match=r"^manifest x: not valid JSON \(nested deeper") as e:
        parse_manifest(b"[" * 100_000, where="manifest x")
    assert "\n" not in str(e.value)
    with pytest.raises(ManifestError, match=r"^config y: not valid JSON \(nested deeper"):
        ImageConfig.parse(_objects(100_000).encode(), where="config y")
