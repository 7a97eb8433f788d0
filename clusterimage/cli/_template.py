"""A small subset of Go's text/template, for ``--format`` as podman, docker and buildah take it.

Written by hand: no maintained Python library renders Go templates, and the users of
``--format`` paste what they use with podman. What it takes:

- literal text, with ``\\t`` and ``\\n`` written as two characters turned into a tab and a
  newline (podman does this to the whole format, so shells need no ``$'...'``);
- ``{{.Field}}``, ``{{.A.B}}`` (nested objects), ``{{.}}`` and ``{{$}}`` (the whole value);
- functions: ``json X`` (compact JSON, as podman's ``json``), ``index X KEY...`` (a map key,
  or a list position), ``len X``, ``join LIST SEP``, ``lower S``, ``upper S``;
- pipelines (``{{.Labels | json}}``) and parentheses (``{{json (index .Labels "k")}}``);
- string literals ``"..."`` (Go escapes) and raw ``\\`...\\```, integers, ``true``/``false``;
- ``{{- `` and `` -}}`` trim the whitespace before and after, and ``{{/* comments */}}``;
- ``table `` at the start (podman): a header row, and columns split at tabs (and spaces) and
  aligned as Go's tabwriter aligns them.

Values print as Go's ``fmt`` prints them: maps as ``map[k1:v1 k2:v2]`` with keys sorted, lists
as ``[a b]``, a missing value as ``<nil>``. Control structures (``if``, ``range``, ``with``...),
variables and other functions are refused with a one-line error, as is an unknown field: every
problem is a :class:`TemplateError` (a usage error: exit 2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clusterimage._humanize import count
from clusterimage.errors import UsageError

__all__ = [
    "NO_VALUE",
    "Header",
    "Map",
    "Record",
    "Template",
    "TemplateError",
    "go_format",
    "is_json",
    "parse",
    "render_all",
    "tabwriter",
]


class TemplateError(UsageError):
    """A --format template that cannot be parsed, or names something the data does not have."""


@dataclass(frozen=True)
class Record:
    """A value with named fields for templates, whose ``{{json .}}`` is another value.

    ``images`` rows are Records: ``{{.Size}}`` is the human size ("12.3 MB") while ``{{json .}}``
    gives the same object ``--format json`` prints (bytes), as podman's rows do."""

    fields: Mapping[str, Any]
    json_value: Any = None

    def as_json(self) -> Any:
        return self.json_value if self.json_value is not None else dict(self.fields)


class Map(dict[str, Any]):
    """A Go map (labels, annotations), not a struct: a key it lacks, read as a field
    (``{{.Labels.version}}``), is Go's invalid value, which prints ``<no value>`` and is
    ``null`` to ``json``, where a struct's unknown field is an error."""


class _NoValue:
    """What a map's missing key (and any field of it) evaluates to: Go's invalid value."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


class Header(str):
    """A cell of a ``table`` header row: a field of it, an index into it, and a function of it
    are the header itself, so that the row template renders the header row too (podman renders
    its headers through the same template)."""

    __slots__ = ()


_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)
_FUNCTIONS = ("index", "join", "json", "len", "lower", "upper")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "a": "\a"}
_ESCAPES.update({"b": "\b", "f": "\f", "v": "\v"})


# -- the syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """``.A.B`` (from the dot), ``$.A`` (from the root), or ``(pipeline).A``."""

    path: tuple[str, ...]
    root: bool = False  # $: the top value, not the dot
    base: _Pipeline | None = None


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


@dataclass(frozen=True)
class _Pipeline:
    commands: tuple[_Node, ...]  # each takes the previous result as its last argument


_Node = _Field | _Literal | _Call | _Pipeline


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Action:
    pipeline: _Pipeline
    source: str  # the action as written, for error messages


# -- lexing and parsing --------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<field>(?:\$|\.)?(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\$|\.)
  | (?P<number>-?\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[|()])
    """,
    re.VERBOSE,
)


def _unquote(literal: str, where: str) -> str:
    out: list[str] = []
    body = literal[1:-1]
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = body[i + 1] if i + 1 < len(body) else ""
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[code]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise TemplateError(f"{where}: bad escape \\{code}{digits} in {literal}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise TemplateError(f"{where}: bad escape \\{code} in {literal}")
    return "".join(out)


def _tokens(source: str, where: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise TemplateError(f"{where}: unexpected {source[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            out.append((kind, match.group()))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], where: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.where = where

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self, closing: str | None) -> _Pipeline:
        commands = [self.command()]
        while (token := self.peek()) is not None and token == ("punct", "|"):
            self.pos += 1
            commands.append(self.command())
        token = self.peek()
        if closing is None and token is not None:
            raise TemplateError(f"{self.where}: unexpected {token[1]!r}")
        if closing is not None:
            if token != ("punct", closing):
                raise TemplateError(f"{self.where}: unclosed '('")
            self.pos += 1
        return _Pipeline(tuple(commands))

    def command(self) -> _Node:
        token = self.peek()
        if token is None or (token[0] == "punct" and token[1] in "|)"):
            raise TemplateError(f"{self.where}: missing value")
        kind, text = token
        if kind == "ident" and text not in ("true", "false", "nil"):
            self.pos += 1
            if text in _KEYWORDS:
                raise TemplateError(
                    f"{self.where}: {text!r} is not supported here (fields, json, index, len, "
                    "join, lower and upper are)"
                )
            if text not in _FUNCTIONS:
                raise TemplateError(
                    f"{self.where}: function {text!r} not defined (known: {', '.join(_FUNCTIONS)})"
                )
            args: list[_Node] = []
            while (nxt := self.peek()) is not None and not (nxt[0] == "punct" and nxt[1] in "|)"):
                args.append(self.operand())
            return _Call(text, tuple(args))
        node = self.operand()
        nxt = self.peek()
        if nxt is not None and not (nxt[0] == "punct" and nxt[1] in "|)"):
            raise TemplateError(f"{self.where}: {nxt[1]!r} cannot follow a value (no function)")
        return node

    def operand(self) -> _Node:
        token = self.peek()
        if token is None:
            raise TemplateError(f"{self.where}: missing value")
        kind, text = token
        self.pos += 1
        if kind == "field":
            root = text.startswith("$")
            names = tuple(name for name in text.lstrip("$").split(".") if name)
            return _Field(names, root=root)
        if kind == "string":
            return _Literal(_unquote(text, self.where))
        if kind == "raw":
            return _Literal(text[1:-1])
        if kind == "number":
            return _Literal(int(text))
        if kind == "ident" and text in ("true", "false", "nil"):
            return _Literal({"true": True, "false": False, "nil": None}[text])
        if kind == "ident":
            return _Call(text, ()) if text in _FUNCTIONS else self._unknown(text)
        if text == "(":
            inner = self.pipeline(")")
            nxt = self.peek()
            if nxt is not None and nxt[0] == "field" and nxt[1].startswith("."):
                self.pos += 1
                return _Field(tuple(n for n in nxt[1].split(".") if n), base=inner)
            return inner
        raise TemplateError(f"{self.where}: unexpected {text!r}")

    def _unknown(self, name: str) -> _Node:
        raise TemplateError(
            f"{self.where}: function {name!r} not defined (known: {', '.join(_FUNCTIONS)})"
        )


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def _split(text: str) -> list[_Text | _Action]:
    parts: list[_Text | _Action] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(text):
        literal = text[pos : match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match.group(1):
            literal = literal.rstrip()
        if literal:
            parts.append(_Text(literal))
        source = match.group(0)
        body = match.group(2).strip()
        trim_next = bool(match.group(3))
        pos = match.end()
        if body.startswith("/*") and body.endswith("*/"):
            continue
        if not body:
            raise TemplateError(f"--format {source}: missing value")
        parser = _Parser(_tokens(body, f"--format {source}"), f"--format {source}")
        parts.append(_Action(parser.pipeline(None), source))
    rest = text[pos:]
    if trim_next:
        rest = rest.lstrip()
    if "{{" in rest:
        raise TemplateError(f"--format: unclosed action {rest[rest.index('{{') :][:40]!r}")
    if rest:
        parts.append(_Text(rest))
    return parts


# -- evaluation ----------------------------------------------------------------------------------


def _field(value: Any, name: str, shown: str) -> Any:
    if isinstance(value, Header | _NoValue):
        return value  # Go: a field of an invalid value is invalid too
    if isinstance(value, Record):
        value = value.fields
    if isinstance(value, Map):
        return value.get(name, NO_VALUE)
    if isinstance(value, Mapping):
        if name in value:
            return value[name]
        known = ", ".join(sorted(value)) or "none"
        raise TemplateError(f"{shown}: no field {name!r} (fields: {known})")
    raise TemplateError(f"{shown}: cannot read field {name!r} of {_type_name(value)}")


def _type_name(value: Any) -> str:
    if value is None:
        return "a missing value (<nil>)"
    if isinstance(value, _NoValue):
        return "a missing map key (<no value>)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _index(value: Any, keys: Sequence[Any], shown: str) -> Any:
    for key in keys:
        if isinstance(value, Header):
            return value
        if isinstance(value, Record):
            value = value.fields
        if isinstance(value, Mapping):
            # A missing key gives the zero value, as Go's index on a map[string]string does:
            # `{{index .Labels "absent"}}` prints nothing rather than failing.
            value = value.get(key, "") if isinstance(key, str) else _bad_key(key, "a map", shown)
        elif isinstance(value, list | tuple):
            if not isinstance(key, int) or isinstance(key, bool):
                _bad_key(key, "a list", shown)
            if not 0 <= key < len(value):
                raise TemplateError(f"{shown}: index {key} out of range (length {len(value)})")
            value = value[key]
        else:
            raise TemplateError(f"{shown}: cannot index {_type_name(value)}")
    return value


def _bad_key(key: Any, what: str, shown: str) -> Any:
    raise TemplateError(f"{shown}: cannot index {what} with {go_format(key)!r}")


def _call(name: str, args: list[Any], shown: str) -> Any:
    def need(number: int) -> None:
        if len(args) != number:
            raise TemplateError(
                f"{shown}: {name} takes {count(number, 'argument')}, got {len(args)}"
            )

    if args and isinstance(args[0], Header):
        return args[0]
    if name == "json":
        need(1)
        return json.dumps(_jsonable(args[0]), ensure_ascii=False, separators=(",", ":"))
    if name == "index":
        if not args:
            raise TemplateError(f"{shown}: index takes a value and keys")
        return _index(args[0], args[1:], shown)
    if name == "len":
        need(1)
        value = args[0].fields if isinstance(args[0], Record) else args[0]
        if not isinstance(value, str | list | tuple | Mapping):
            raise TemplateError(f"{shown}: len of {_type_name(value)}")
        return len(value)
    if name == "join":
        need(2)
        items, sep = args
        if not isinstance(items, list | tuple) or not isinstance(sep, str):
            raise TemplateError(f"{shown}: join takes a list and a string")
        return sep.join(go_format(item) for item in items)
    need(1)  # lower, upper
    if not isinstance(args[0], str):
        raise TemplateError(f"{shown}: {name} takes a string, not {_type_name(args[0])}")
    return args[0].lower() if name == "lower" else args[0].upper()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Record):
        return _jsonable(value.as_json())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return None if isinstance(value, _NoValue) else value


def _eval(node: _Node, dot: Any, root: Any, shown: str, piped: list[Any] | None = None) -> Any:
    extra = piped or []
    if isinstance(node, _Pipeline):
        value: list[Any] = []
        for command in node.commands:
            value = [_eval(command, dot, root, shown, value)]
        return value[0]
    if isinstance(node, _Call):
        args = [_eval(arg, dot, root, shown) for arg in node.args] + extra
        return _call(node.name, args, shown)
    if extra:
        raise TemplateError(f"{shown}: a value cannot take piped input (use a function)")
    if isinstance(node, _Literal):
        return node.value
    value_: Any
    if node.base is not None:
        value_ = _eval(node.base, dot, root, shown)
    else:
        value_ = root if node.root else dot
    for name in node.path:
        value_ = _field(value_, name, shown)
    return value_


def go_format(value: Any) -> str:
    """``value`` as Go's ``fmt.Print`` shows it: maps ``map[a:1 b:2]`` (keys sorted), lists
    ``[a b]``, ``true``/``false``, ``<nil>``."""
    if isinstance(value, Record):
        return go_format(value.fields)
    if value is None:
        return "<nil>"
    if isinstance(value, _NoValue):
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value) if not value.is_integer() or abs(value) >= 1e21 else str(int(value))
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{go_format(k)}:{go_format(v)}" for k, v in items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    return str(value)


# -- the public part -----------------------------------------------------------------------------

_TABLE_PREFIX = "table "


@dataclass(frozen=True)
class Template:
    """A parsed --format; :meth:`render` applies it to one value."""

    text: str
    table: bool
    parts: tuple[_Text | _Action, ...]

    def render(self, value: Any) -> str:
        """The text for ``value``; always ends with a newline (podman adds one)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, _Text):
                out.append(part.text)
            else:
                shown = f"--format {part.source}"
                out.append(go_format(_eval(part.pipeline, value, value, shown)))
        text = "".join(out)
        return text if text.endswith("\n") else text + "\n"

    def fields(self) -> set[str]:
        """The first field names read from the dot or root (``{{.A.B}}`` -> ``A``), to check
        them against what a command offers before any data is read."""
        found: set[str] = set()

        def walk(node: _Node) -> None:
            if isinstance(node, _Field):
                if node.base is not None:
                    walk(node.base)
                elif node.path:
                    found.add(node.path[0])
            elif isinstance(node, _Call):
                for arg in node.args:
                    walk(arg)
            elif isinstance(node, _Pipeline):
                for command in node.commands:
                    walk(command)

        for part in self.parts:
            if isinstance(part, _Action):
                walk(part.pipeline)
        return found

    def check_fields(self, known: Iterable[str], what: str) -> None:
        """A one-line error naming the first field ``what`` does not have."""
        names = sorted(known)
        for name in sorted(self.fields()):
            if name not in names:
                raise TemplateError(
                    f"--format: {what} have no field {name!r} (fields: {', '.join(names)})"
                )


def is_json(text: str) -> bool:
    """``--format json`` (and ``{{json .}}``): the command's JSON output, as podman takes it."""
    return text.strip() in ("json", "{{json .}}", "{{ json . }}")


def parse(text: str) -> Template:
    """Parse a --format value (``table `` prefix, ``\\t``/``\\n`` escapes as podman reads them)."""
    table = text.startswith(_TABLE_PREFIX)
    body = text[len(_TABLE_PREFIX) :] if table else text
    body = body.replace("\\t", "\t").replace("\\n", "\n")
    if table:
        # podman's table replacer makes every space outside actions a column break as well.
        body = _spaces_to_tabs(body)
    return Template(text, table, tuple(_split(body)))


def _spaces_to_tabs(body: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _ACTION.finditer(body):
        out.append(body[pos : match.start()].replace(" ", "\t"))
        out.append(match.group(0))
        pos = match.end()
    out.append(body[pos:].replace(" ", "\t"))
    return "".join(out)


def tabwriter(text: str, *, minwidth: int = 12, padding: int = 2) -> str:
    """Align tab-separated cells as podman's tabwriter (minwidth 12, padding 2, spaces): every
    cell that a tab ends is padded to its column's width; the last cell of a line is not."""
    lines = text.split("\n")
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, minwidth)
    out = []
    for cells in rows:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        out.append("".join(padded) + cells[-1])
    return "\n".join(out)


def render_all(template: Template, values: Iterable[Any], header: Any | None = None) -> str:
    """Every value through ``template``; a ``table`` template gets ``header`` rendered first
    and its columns aligned."""
    chunks = []
    if template.table and header is not None:
        chunks.append(template.render(header))
    chunks.extend(template.render(value) for value in values)
    text = "".join(chunks)
    return tabwriter(text) if template.table else text
