"""The --format template subset: what Go's text/template (as podman uses it) prints for it."""

from __future__ import annotations

from typing import Any

import pytest

from clusterimage.cli._template import (
    Header,
    Record,
    TemplateError,
    go_format,
    is_json,
    parse,
    render_all,
    tabwriter,
)
from clusterimage.errors import UsageError

DATA: dict[str, Any] = {
    "Digest": "sha256:abc",
    "Size": 1234,
    "Dangling": False,
    "Config": {
        "Labels": {"b": "2", "a": "1", "sealos.io.type": "rootfs"},
        "Env": ["A=1", "B=2"],
        "Cmd": None,
    },
    "Layers": ["l1", "l2", "l3"],
    "Name": "Héllo <x>",
}


def render(text: str, data: Any = DATA) -> str:
    return parse(text).render(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.Digest}}", "sha256:abc\n"),
        ("id={{.Digest}} size={{.Size}}", "id=sha256:abc size=1234\n"),
        ("{{.Config.Env}}", "[A=1 B=2]\n"),
        # Maps print as Go's fmt prints them: keys sorted.
        ("{{.Config.Labels}}", "map[a:1 b:2 sealos.io.type:rootfs]\n"),
        ("{{.Dangling}}", "false\n"),
        ("{{.Config.Cmd}}", "<nil>\n"),
        ('{{index .Config.Labels "sealos.io.type"}}', "rootfs\n"),
        ('{{index .Config.Labels "absent"}}', "\n"),  # a map's zero value, as Go's index
        ("{{index .Layers 1}}", "l2\n"),
        ('{{index . "Config" "Labels" "a"}}', "1\n"),
        ("{{json .Config.Env}}", '["A=1","B=2"]\n'),
        ("{{json .Name}}", '"Héllo <x>"\n'),  # no \u escapes, no HTML escaping (podman's)
        ("{{.Config.Env | json}}", '["A=1","B=2"]\n'),
        ('{{json (index .Config.Labels "a")}}', '"1"\n'),
        ("{{len .Layers}}", "3\n"),
        ('{{join .Layers ","}}', "l1,l2,l3\n"),
        ("{{upper .Digest}} {{lower `ABC`}}", "SHA256:ABC abc\n"),
        ("{{(index .Layers 0)}}", "l1\n"),
        ("a\\tb\\nc", "a\tb\nc\n"),  # \t and \n as two characters, as podman takes them
        ("x {{- .Size -}} y", "x1234y\n"),
        ("{{/* a comment */}}ok", "ok\n"),
        ('{{"quoted \\"q\\" \\u00e9"}}', 'quoted "q" é\n'),
        ("{{$.Size}}", "1234\n"),
        ("ends\n", "ends\n"),  # no second newline
    ],
)
def test_render(text: str, expected: str) -> None:
    assert render(text) == expected


def test_json_of_the_whole_value_and_of_a_record() -> None:
    assert render("{{json .}}", {"b": 1, "a": [True, None]}) == '{"b":1,"a":[true,null]}\n'
    record = Record({"Size": "1.2 kB"}, json_value={"Size": 1234})
    assert render("{{.Size}} {{json .}}", record) == '1.2 kB {"Size":1234}\n'


def test_go_format_nesting() -> None:
    assert go_format({"z": [1, {"k": True}], "a": None}) == "map[a:<nil> z:[1 map[k:true]]]"
    assert go_format([]) == "[]" and go_format({}) == "map[]"
    assert go_format(2.0) == "2" and go_format(0.5) == "0.5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Nope}}", "no field 'Nope' (fields: Config, Dangling, Digest, Layers, Name, Size)"),
        ("{{.Config.Nope}}", "no field 'Nope' (fields: Cmd, Env, Labels)"),
        ("{{.Digest.Deeper}}", "cannot read field 'Deeper' of a string"),
        ("{{index .Layers 7}}", "index 7 out of range (length 3)"),
        ('{{index .Layers "x"}}', "cannot index a list with 'x'"),
        ("{{index .Size 1}}", "cannot index a number"),
        ("{{len .Size}}", "len of a number"),
        ("{{json}}", "json takes 1 argument, got 0"),
        ("{{json .A .B}}", "no field 'A'"),
    ],
)
def test_errors_at_render_name_the_field(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("--format {{")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.ID", "unclosed action"),
        ("{{}}", "missing value"),
        ("{{if .A}}x{{end}}", "'if' is not supported"),
        ("{{range .Layers}}{{.}}{{end}}", "'range' is not supported"),
        ("{{printf .A}}", "function 'printf' not defined"),
        ("{{.A .B}}", "'.B' cannot follow a value"),
        ("{{json (.A}}", "unclosed '('"),
        ('{{"bad \\q"}}', "bad escape \\q"),
        ("{{.A | .B}}", "cannot take piped input"),
        ("{{ # }}", "unexpected '#'"),
    ],
)
def test_syntax_errors_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse(text).render({"A": 1, "B": 2})
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
    assert message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_table_prints_a_header_and_aligns_columns() -> None:
    template = parse("table {{.ID}}\\t{{.Size}} {{.Tag}}")
    assert template.table
    rows = [
        Record({"ID": "abcdef123456", "Size": "1.2 kB", "Tag": "v1"}),
        Record({"ID": "0123", "Size": "900 B", "Tag": "latest"}),
    ]
    header = Record({"ID": Header("IMAGE ID"), "Size": Header("SIZE"), "Tag": Header("TAG")})
    out = render_all(template, rows, header)
    # podman's tabwriter: cells padded to max(width + 2, 12); a space in a table format is a
    # column break too; the last cell is not padded.
    assert out.splitlines() == [
        "IMAGE ID      SIZE        TAG",
        "abcdef123456  1.2 kB      v1",
        "0123          900 B       latest",
    ]
    # Without a header object (--noheading) only the rows.
    assert len(render_all(template, rows).splitlines()) == 2


def test_header_cells_pass_through_functions() -> None:
    template = parse('table {{json .Labels}} {{index .Labels "k"}} {{.Labels.k}}')
    header = Record({"Labels": Header("LABELS")})
    assert render_all(template, [], header).split() == ["LABELS", "LABELS", "LABELS"]


def test_plain_format_is_not_a_table() -> None:
    template = parse("{{.ID}}\\t{{.Size}}")
    assert not template.table
    assert render_all(template, [Record({"ID": "a", "Size": "b"})]) == "a\tb\n"


def test_fields_and_check_fields() -> None:
    template = parse('{{.ID}} {{json .Labels}} {{index .Config.Labels "k"}} {{(.X).Y}} {{$.Z}}')
    assert template.fields() == {"ID", "Labels", "Config", "X", "Z"}
    parse("{{.ID}} {{.Size}}").check_fields({"ID", "Size"}, "images")
    with pytest.raises(TemplateError, match=r"images have no field 'Sise' \(fields: ID, Size\)"):
        parse("{{.Sise}}").check_fields({"ID", "Size"}, "images")


def test_is_json() -> None:
    assert is_json("json") and is_json(" {{json .}} ") and not is_json("{{json .Labels}}")


def test_tabwriter_keeps_lines_without_tabs() -> None:
    assert tabwriter("a\tb\nlonger-than-twelve\tc\nplain") == (
        "a                   b\nlonger-than-twelve  c\nplain"
    )
