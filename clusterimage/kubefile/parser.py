"""Parsing: the ``dockerfile`` package (BuildKit's own parser) plus BuildKit's instruction checks.

The ``dockerfile`` package gives what BuildKit's ``parser`` package gives: logical lines
(continuations joined, comments dropped, ``# escape=`` honoured), flags, JSON (exec) form and
heredocs. It does not run BuildKit's ``instructions`` package, so this module does what that one
does (argument counts, flags, stage names) and turns each command into a typed instruction of
:mod:`clusterimage.kubefile.instructions`. Every error is a :class:`KubefileError` naming
``file:line``.

Places where we are stricter than Docker, on purpose (``--dry-run`` is a linter):

- An exec form that is not valid JSON (``CMD ["a", "b"``, ``CMD ['a']``, ``CMD ["a",]``) is an
  error. Docker silently runs such a line as a shell command. Shell commands that merely start
  with ``[`` (``RUN [ -f x ] && ...``) are not affected: only a bracket followed by a list of
  quoted strings counts as an attempted exec form. Text after a valid JSON array is an error too
  (Docker drops it).
- CMD, ENTRYPOINT and RUN with nothing after them are errors (Docker accepts them).
- A NUL character is an error (the ``dockerfile`` package would stop reading there), and so is
  ``${...}`` nested more than 64 deep in any instruction, RUN included (the package's own scan
  of such a line slows down faster than quadratically).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dockerfile

from clusterimage.errors import KubefileError
from clusterimage.kubefile.instructions import (
    Arg,
    ArgDecl,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    InlineFile,
    Instruction,
    Kubefile,
    Label,
    Location,
    Maintainer,
    Run,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from clusterimage.kubefile.lexer import MAX_NESTING

#: Names looked up in the context when no ``-f`` is given, in this order.
KUBEFILE_NAMES = ("Kubefile", "Sealfile", "Dockerfile", "Containerfile")

_UNSUPPORTED = {
    "HEALTHCHECK": "HEALTHCHECK is only part of Docker's image format; cluster images are OCI "
    "images, which have no health check",
    "ONBUILD": "ONBUILD triggers are only part of Docker's image format; cluster images are OCI "
    "images, which have none",
    "SHELL": "SHELL is only part of Docker's image format; shell-form RUN, CMD and ENTRYPOINT "
    "always use /bin/sh -c",
}
_KNOWN = (
    "FROM",
    "COPY",
    "ADD",
    "ENV",
    "LABEL",
    "ARG",
    "CMD",
    "ENTRYPOINT",
    "RUN",
    "WORKDIR",
    "USER",
    "MAINTAINER",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    *_UNSUPPORTED,
)
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
# An attempted exec form: "[" then quoted strings separated by commas, maybe unterminated,
# single-quoted or with a trailing comma. A shell test such as `[ "$A" = b ]` does not match.
_QUOTED = r"""(?:"(?:[^"\\]|\\.)*"?|'[^']*'?)"""
_BROKEN_EXEC = re.compile(rf"^\[\s*(?:{_QUOTED}\s*(?:,\s*{_QUOTED}\s*)*,?\s*)?\]?\s*$", re.S)
_HEREDOC_SOURCE = re.compile(r"""^<<(-?)\s*(["']?)([^"'\s]+)\2$""")
_FLAG_PREFIX = re.compile(r"^\s*\S+\s+((?:--\S+\s+)*)", re.S)


def find_kubefile(context_dir: str | os.PathLike[str]) -> Path:
    """The first of Kubefile, Sealfile, Dockerfile, Containerfile in ``context_dir``."""
    context = Path(context_dir)
    for name in KUBEFILE_NAMES:
        candidate = context / name
        if candidate.is_file():
            return candidate
    raise KubefileError(
        f"no {', '.join(KUBEFILE_NAMES[:-1])} or {KUBEFILE_NAMES[-1]} in {context} "
        "(name one with -f)"
    )


def parse_file(path: str | os.PathLike[str], *, display: str | None = None) -> Kubefile:
    """Parse the Kubefile at ``path``; errors name it as ``display`` (default: ``path``)."""
    shown = display if display is not None else os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise KubefileError(f"cannot read the Kubefile: {exc.strerror or exc}", shown) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise KubefileError("not valid UTF-8", shown, line) from None
    return parse_string(text, path=shown)


def parse_string(text: str, path: str = "Kubefile") -> Kubefile:
    """Parse Kubefile source; ``path`` is only used in error messages and locations."""
    nul = text.find("\0")
    if nul >= 0:
        # The dockerfile package reads a C string: it would silently drop the rest.
        raise KubefileError(
            "contains a NUL character (a Kubefile is text)", path, text.count("\n", 0, nul) + 1
        )
    escape = _escape_token(text)
    _check_nesting(text, path, escape)
    commands, unreadable = _parse_commands(text, path, escape)
    if not commands and unreadable is None:
        raise KubefileError("the Kubefile is empty: it has no instructions", path)
    meta_args: list[Arg] = []
    stages: list[tuple[From, list[Instruction]]] = []
    for command in commands:
        if not command.cmd:
            raise KubefileError(
                f"the Kubefile ends with a line continuation '{escape}' and no instruction to "
                "continue",
                path,
                command.start_line,
            )
        instruction = _convert(command, path)
        if isinstance(instruction, From):
            stages.append((instruction, []))
        elif not stages:
            if not isinstance(instruction, Arg):
                raise instruction.error(
                    f"{command.cmd.upper()} before the first FROM: only ARG may come before FROM"
                )
            meta_args.append(instruction)
        else:
            stages[-1][1].append(instruction)
    if unreadable is not None:
        raise unreadable  # after the errors of the instructions before it
    if not stages:
        raise KubefileError("no FROM instruction: the Kubefile has no build stage", path)
    _check_stage_names([frm for frm, _ in stages])
    return Kubefile(
        path=path,
        escape=escape,
        meta_args=tuple(meta_args),
        stages=tuple(Stage(index, frm, tuple(body)) for index, (frm, body) in enumerate(stages)),
    )


def _check_nesting(text: str, path: str, escape: str) -> None:
    """Refuse ``${...}`` nested deeper than the lexer allows before the parser sees it.

    The dockerfile package scans RUN, COPY and ADD words for heredocs with BuildKit's lexer,
    whose time grows faster than the square of the nesting (1,000 levels: 2 s). Counted per
    logical line with quotes and escapes ignored: that can only count more than the lexer does,
    and only in text no real Kubefile holds.
    """
    depth = 0
    line = 1
    tokens = re.compile(rf"{re.escape(escape)}[ \t\r]*\n|\n|\$\{{|\}}")
    for token in tokens.finditer(text):
        found = token.group()
        if found.endswith("\n"):
            line += 1
            if found == "\n":
                depth = 0  # the end of a logical line
        elif found == "}":
            depth = max(depth - 1, 0)
        else:
            depth += 1
            if depth > MAX_NESTING:
                raise KubefileError(
                    f"${{...}} nested more than {MAX_NESTING} deep (the limit)", path, line
                )


def _parse_commands(
    text: str, path: str, escape: str
) -> tuple[tuple[Any, ...], KubefileError | None]:
    """The ``dockerfile`` package's commands, and the error of an instruction it cannot return.

    The package returns no text it cannot decode: Go's HEALTHCHECK parser splits its first word
    at bytes (``unicode.IsSpace(rune(b))``), and a UTF-8 continuation byte 0x85 or 0xa0 reads as
    a space, so ``HEALTHCHECK Å`` comes back cut inside the character. Then the commands before
    that instruction are returned with its error.
    """
    try:
        return tuple(dockerfile.parse_string(text)), None
    except dockerfile.GoParseError as exc:
        if str(exc) == "file with no instructions":
            return (), None
        raise KubefileError(str(exc), path, _error_line(text, str(exc), escape)) from None
    except UnicodeDecodeError:
        pass
    lines = text.splitlines(keepends=True)
    failing = _shortest_failing(lines, _UNDECODABLE) or len(lines)
    start = _instruction_start(lines, failing, escape)
    words = lines[start - 1].split() if start <= len(lines) else []
    keyword = words[0].upper() if words else ""
    if keyword in _UNSUPPORTED:
        error = KubefileError(
            f"unsupported instruction {keyword}: {_UNSUPPORTED[keyword]}", path, start
        )
    else:
        error = KubefileError(
            f"{keyword}: the dockerfile parser cannot read a non-ASCII character here", path, start
        )
    try:
        return tuple(dockerfile.parse_string("".join(lines[: start - 1]))), error
    except (dockerfile.GoParseError, UnicodeDecodeError):
        return (), error  # nothing but comments before it


_UNDECODABLE = "\0undecodable"  # no parser message has a NUL


def _parse_error(text: str) -> str | None:
    """The parser's error message for ``text`` (None when it parses)."""
    try:
        dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        return str(exc)
    except UnicodeDecodeError:
        return _UNDECODABLE
    return None


def _escape_token(text: str) -> str:
    # Parser directives are the leading `# name=value` lines; the parser already honoured
    # `escape`, but it does not report it and expansion needs the same token.
    for line in text.lstrip("\ufeff").splitlines():
        match = _DIRECTIVE.match(line)
        if not match:
            break
        if match.group(1).lower() == "escape":
            return match.group(2)
    return "\\"


def _error_line(text: str, message: str, escape: str) -> int | None:
    """The line a parser error belongs to: where the shortest failing prefix's instruction starts.

    The ``dockerfile`` package reports parse errors without a line; re-parsing prefixes finds
    the instruction that causes it (only on the error path).
    """
    lines = text.splitlines(keepends=True)
    count = _shortest_failing(lines, message)
    return _instruction_start(lines, count, escape) if count is not None else None


def _shortest_failing(lines: list[str], message: str) -> int | None:
    """The fewest of ``lines`` whose parse fails with ``message``.

    Found by doubling, then halving: the parser stops at its first error, so a failing prefix
    keeps failing as lines are added. (Parsing every prefix in turn took a minute for an error
    at the end of 5,000 lines.)
    """

    def fails(count: int) -> bool:
        return _parse_error("".join(lines[:count])) == message

    low, high = 0, 1  # fails(low) is false (or low is 0); fails(high) is not known yet
    while True:
        high = min(high, len(lines))
        if high == 0:
            return None
        if fails(high):
            break
        if high == len(lines):
            return None
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if fails(middle):
            high = middle
        else:
            low = middle
    return high


def _instruction_start(lines: list[str], failing: int, escape: str) -> int:
    """First line of the instruction that ends on line ``failing``."""
    try:
        before = dockerfile.parse_string("".join(lines[: failing - 1])) if failing > 1 else ()
    except (dockerfile.GoParseError, UnicodeDecodeError):
        return failing
    after = 0
    if before:
        last = before[-1]
        previous = lines[failing - 2].rstrip("\r\n").rstrip()
        if last.end_line == failing - 1 and previous.endswith(escape):
            return int(last.start_line)  # the failing line continues that instruction
        after = last.end_line
    for number in range(after + 1, failing + 1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return failing


def _check_stage_names(froms: list[From]) -> None:
    seen: dict[str, From] = {}
    for frm in froms:
        if frm.name is None:
            continue
        if frm.name in seen:
            raise frm.error(
                f"duplicate stage name {frm.name!r} (first defined at line "
                f"{seen[frm.name].location.line})"
            )
        seen[frm.name] = frm


# -- commands -----------------------------------------------------------------------------------

_Converter = Callable[[Any, Location, dict[str, Any]], Instruction]


def _convert(command: Any, path: str) -> Instruction:
    keyword = command.cmd.upper()
    location = Location(path, command.start_line, command.end_line)
    if keyword in _UNSUPPORTED:
        raise location.error(f"unsupported instruction {keyword}: {_UNSUPPORTED[keyword]}")
    spec = _SPECS.get(keyword)
    if spec is None:
        hint = difflib.get_close_matches(keyword, _KNOWN, n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise location.error(f"unknown instruction: {command.cmd}{suggestion}")
    converter, flag_kinds = spec
    flags = _parse_flags(command, keyword, flag_kinds, location)
    _check_exec_form(command, keyword, location)
    return converter(command, location, flags)


def _parse_flags(
    command: Any, keyword: str, kinds: dict[str, str], location: Location
) -> dict[str, Any]:
    """BuildKit's BFlags: ``--name=value`` strings, ``--name`` booleans, repeatable lists."""
    values: dict[str, Any] = {}
    for raw in command.flags:
        if not raw.startswith("--"):
            raise location.error(f"arguments to {keyword} must start with --: {raw}")
        name, has_value, value = raw[2:].partition("=")
        if not name:
            break  # a bare "--" ends the flags
        kind = kinds.get(name)
        if kind is None:
            raise location.error(f"unknown flag for {keyword}: --{name}")
        if kind == "list":
            if not has_value:
                raise location.error(f"missing a value on flag --{name}")
            values.setdefault(name, []).append(value)
            continue
        if name in values:
            raise location.error(f"duplicate flag specified: --{name}")
        if kind == "bool":
            if has_value and value.lower() not in ("true", "false"):
                raise location.error(f"expecting boolean value for flag --{name}, not: {value}")
            values[name] = not has_value or value.lower() == "true"
        else:
            if not has_value:
                raise location.error(f"missing a value on flag --{name}")
            values[name] = value
    return values


def _check_exec_form(command: Any, keyword: str, location: Location) -> None:
    if keyword not in ("CMD", "ENTRYPOINT", "RUN", "COPY", "ADD", "VOLUME"):
        return
    if command.json:
        rest = _text_after_flags(command.original)
        if rest.startswith("["):
            try:
                _, end = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                return
            trailing = rest[end:].strip()
            if trailing:
                raise location.error(
                    f"unexpected text after the exec-form JSON array of {keyword}: {trailing!r}"
                )
        return
    text = " ".join(command.value).strip()
    if not text.startswith("[") or not _BROKEN_EXEC.match(text):
        return
    if "'" in text and '"' not in text:
        problem = "exec form must use double quotes"
    elif not text.rstrip().endswith("]"):
        problem = "unterminated exec-form JSON array"
    else:
        problem = "exec form is not valid JSON"
    raise location.error(f"{keyword}: {problem}: {text}")


def _text_after_flags(original: str) -> str:
    match = _FLAG_PREFIX.match(original)
    return original[match.end() :].strip() if match else ""


def _exactly_one(command: Any, keyword: str, location: Location) -> str:
    if len(command.value) != 1 or command.value[0] == "":
        raise location.error(f"{keyword} requires exactly one argument")
    return str(command.value[0])


def _pairs(command: Any, keyword: str, location: Location) -> tuple[tuple[str, str], ...]:
    values = list(command.value)
    if not values:
        raise location.error(f"{keyword} requires at least one argument")
    if len(values) % 2:
        raise location.error(f"bad input to {keyword}, too many arguments")
    pairs = tuple(zip(values[::2], values[1::2], strict=True))
    for key, _ in pairs:
        if not key:
            raise location.error(f"{keyword} names can not be blank")
    return pairs


def _from(command: Any, location: Location, flags: dict[str, Any]) -> From:
    args = list(command.value)
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise location.error(
                f"invalid name for build stage: {args[2]!r}, name can't start with a number "
                "or contain symbols"
            )
    elif len(args) != 1:
        raise location.error("FROM requires either one or three arguments (FROM image AS name)")
    return From(location, command.original, args[0], name, flags.get("platform"))


def _copy(command: Any, location: Location, flags: dict[str, Any], *, is_add: bool) -> Copy:
    keyword = "ADD" if is_add else "COPY"
    args = list(command.value)
    if len(args) < 2:
        raise location.error(
            f"{keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    *sources, dest = args
    if _HEREDOC_SOURCE.match(dest):
        raise location.error(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {heredoc.name: heredoc.content for heredoc in command.heredocs}
    paths: list[str] = []
    inline: list[InlineFile] = []
    for source in sources:
        match = _HEREDOC_SOURCE.match(source) if command.heredocs else None
        if match and match.group(3) in bodies:
            inline.append(
                InlineFile(
                    name=match.group(3),
                    content=bodies[match.group(3)],
                    expand=not match.group(2),
                    chomp=bool(match.group(1)),
                )
            )
        else:
            paths.append(source)
    return Copy(
        location,
        command.original,
        sources=tuple(paths),
        dest=dest,
        is_add=is_add,
        from_=flags.get("from"),
        chown=flags.get("chown"),
        chmod=flags.get("chmod"),
        link=bool(flags.get("link", False)),
        checksum=flags.get("checksum"),
        keep_git_dir=bool(flags.get("keep-git-dir", False)),
        json=bool(command.json),
        inline_files=tuple(inline),
    )


def _env(command: Any, location: Location, flags: dict[str, Any]) -> Env:
    return Env(location, command.original, _pairs(command, "ENV", location))


def _label(command: Any, location: Location, flags: dict[str, Any]) -> Label:
    return Label(location, command.original, _pairs(command, "LABEL", location))


def _arg(command: Any, location: Location, flags: dict[str, Any]) -> Arg:
    if not command.value or command.value == ("",):
        raise location.error("ARG requires at least one argument")
    decls: list[ArgDecl] = []
    for word in command.value:
        name, has_value, value = word.partition("=")
        if not name:
            raise location.error("ARG names can not be blank")
        decls.append(ArgDecl(name, value if has_value else None))
    return Arg(location, command.original, tuple(decls))


def _command_line(command: Any, keyword: str, location: Location) -> tuple[tuple[str, ...], bool]:
    if command.json:
        return tuple(command.value), False
    if not command.value or not "".join(command.value).strip():
        raise location.error(f"{keyword} requires at least one argument")
    return (" ".join(command.value),), True


def _cmd(command: Any, location: Location, flags: dict[str, Any]) -> Cmd:
    args, shell = _command_line(command, "CMD", location)
    return Cmd(location, command.original, args, shell)


def _entrypoint(command: Any, location: Location, flags: dict[str, Any]) -> Entrypoint:
    args, shell = _command_line(command, "ENTRYPOINT", location)
    return Entrypoint(location, command.original, args, shell)


def _run(command: Any, location: Location, flags: dict[str, Any]) -> Run:
    args, shell = _command_line(command, "RUN", location)
    inline = tuple(
        InlineFile(name=heredoc.name, content=heredoc.content, expand=False)
        for heredoc in command.heredocs
    )
    return Run(
        location,
        command.original,
        args,
        shell,
        mounts=tuple(flags.get("mount", ())),
        network=flags.get("network"),
        security=flags.get("security"),
        inline_files=inline,
    )


def _workdir(command: Any, location: Location, flags: dict[str, Any]) -> Workdir:
    return Workdir(location, command.original, _exactly_one(command, "WORKDIR", location))


def _user(command: Any, location: Location, flags: dict[str, Any]) -> User:
    return User(location, command.original, _exactly_one(command, "USER", location))


def _maintainer(command: Any, location: Location, flags: dict[str, Any]) -> Maintainer:
    return Maintainer(location, command.original, _exactly_one(command, "MAINTAINER", location))


def _expose(command: Any, location: Location, flags: dict[str, Any]) -> Expose:
    ports = tuple(word for word in command.value if word)
    if not ports:
        raise location.error("EXPOSE requires at least one argument")
    return Expose(location, command.original, ports)


def _volume(command: Any, location: Location, flags: dict[str, Any]) -> Volume:
    if not command.value:
        raise location.error("VOLUME requires at least one argument")
    paths = tuple(word.strip() for word in command.value)
    if any(not path for path in paths):
        raise location.error("VOLUME specified can not be an empty string")
    return Volume(location, command.original, paths)


def _stopsignal(command: Any, location: Location, flags: dict[str, Any]) -> StopSignal:
    return StopSignal(location, command.original, _exactly_one(command, "STOPSIGNAL", location))


def _copy_converter(is_add: bool) -> _Converter:
    def convert(command: Any, location: Location, flags: dict[str, Any]) -> Instruction:
        return _copy(command, location, flags, is_add=is_add)

    return convert


_SPECS: dict[str, tuple[_Converter, dict[str, str]]] = {
    "FROM": (_from, {"platform": "str"}),
    "COPY": (
        _copy_converter(False),
        {"from": "str", "chown": "str", "chmod": "str", "link": "bool"},
    ),
    "ADD": (
        _copy_converter(True),
        {"chown": "str", "chmod": "str", "link": "bool", "checksum": "str", "keep-git-dir": "bool"},
    ),
    "ENV": (_env, {}),
    "LABEL": (_label, {}),
    "ARG": (_arg, {}),
    "CMD": (_cmd, {}),
    "ENTRYPOINT": (_entrypoint, {}),
    "RUN": (_run, {"mount": "list", "network": "str", "security": "str"}),
    "WORKDIR": (_workdir, {}),
    "USER": (_user, {}),
    "MAINTAINER": (_maintainer, {}),
    "EXPOSE": (_expose, {}),
    "VOLUME": (_volume, {}),
    "STOPSIGNAL": (_stopsignal, {}),
}
