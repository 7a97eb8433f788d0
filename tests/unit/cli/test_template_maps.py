"""--format over a Go map (labels, annotations): a key the map lacks is Go's invalid value,
printed ``<no value>`` (null to json), as podman prints it; a struct's unknown field stays an
error."""

from __future__ import annotations

from typing import Any

import pytest

from clusterimage.cli._template import Map, TemplateError, parse

DATA: dict[str, Any] = {
    "Config": {"Labels": Map({"team": "blue"}), "Env": ["A=1"]},
    "Labels": Map(),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.Config.Labels.team}}", "blue\n"),
        ("{{.Config.Labels.version}}", "<no value>\n"),  # text/template's missing map key
        ("{{.Labels.version}}", "<no value>\n"),  # an image without labels
        ("{{.Labels.a.b}}", "<no value>\n"),  # a field of an invalid value is invalid
        ("{{json .Config.Labels.version}}", "null\n"),
        ("{{.Config.Labels.version | json}}", "null\n"),
        ('{{index .Config.Labels "version"}}', "\n"),  # index: the zero value, as before
        ("{{.Config.Labels}}", "map[team:blue]\n"),
        ("{{json .Config.Labels}}", '{"team":"blue"}\n'),
    ],
)
def test_a_missing_map_key_is_no_value(text: str, expected: str) -> None:
    assert parse(text).render(DATA) == expected


def test_a_structs_unknown_field_is_still_an_error() -> None:
    with pytest.raises(TemplateError, match="no field 'Nope' \\(fields: Env, Labels\\)"):
        parse("{{.Config.Nope}}").render(DATA)
    with pytest.raises(TemplateError, match="upper takes a string, not a missing map key"):
        parse("{{upper .Labels.version}}").render(DATA)
