"""Parsing Kubefiles into typed instructions, and every parse error naming file:line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clusterimage.errors import KubefileError
from clusterimage.kubefile import (
    Arg,
    ArgDecl,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Label,
    Maintainer,
    Run,
    StopSignal,
    User,
    Volume,
    Workdir,
    find_kubefile,
    parse_file,
    parse_string,
)


def only(text: str) -> object:
    """The single instruction after ``FROM scratch``."""
    kubefile = parse_string("FROM scratch\n" + text)
    assert len(kubefile.stages) == 1
    (instruction,) = kubefile.stages[0].instructions
    return instruction


# -- FROM ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "image", "name", "platform"),
    [
        ("FROM scratch", "scratch", None, None),
        ("FROM nginx:1.25", "nginx:1.25", None, None),
        ("FROM docker.io/library/busybox@sha256:" + "a" * 64, None, None, None),
        ("FROM busybox AS Builder", "busybox", "builder", None),
        ("from busybox as b.1-x_y", "busybox", "b.1-x_y", None),
        ("FROM --platform=linux/arm64 busybox AS b", "busybox", "b", "linux/arm64"),
        ("FROM --platform=$BUILDPLATFORM ${BASE}", "${BASE}", None, "$BUILDPLATFORM"),
    ],
)
def test_from_forms(line: str, image: str | None, name: str | None, platform: str | None) -> None:
    frm = parse_string(line).stages[0].from_
    assert isinstance(frm, From)
    assert frm.image == (image if image is not None else line.split()[-1])
    assert frm.name == name
    assert frm.platform == platform
    assert frm.location.line == 1


def test_stages_and_global_args() -> None:
    kubefile = parse_string(
        "# a comment\nARG BASE=scratch\nARG V\nFROM ${BASE} AS one\nENV A=1\n\nFROM one\nCOPY a b\n"
    )
    assert [arg.args for arg in kubefile.meta_args] == [
        (ArgDecl("BASE", "scratch"),),
        (ArgDecl("V", None),),
    ]
    assert [stage.name for stage in kubefile.stages] == ["one", None]
    assert [stage.from_.location.line for stage in kubefile.stages] == [4, 7]
    assert isinstance(kubefile.stages[0].instructions[0], Env)
    assert isinstance(kubefile.stages[1].instructions[0], Copy)
    assert kubefile.stage_by_name("ONE") is kubefile.stages[0]


# -- COPY / ADD --------------------------------------------------------------------------------


def test_copy_shell_form_and_flags() -> None:
    copy = only("COPY --from=builder --chown=1000:1000 --chmod=0755 --link a b* /dest/")
    assert isinstance(copy, Copy)
    assert copy.sources == ("a", "b*")
    assert copy.dest == "/dest/"
    assert copy.from_ == "builder"
    assert copy.chown == "1000:1000"
    assert copy.chmod == "0755"
    assert copy.link is True
    assert not copy.is_add and copy.name == "COPY"
    assert copy.json is False


def test_copy_json_form_keeps_spaces() -> None:
    copy = only('COPY ["my file", "other file", "/dst dir/"]')
    assert isinstance(copy, Copy)
    assert copy.sources == ("my file", "other file")
    assert copy.dest == "/dst dir/"
    assert copy.json is True


def test_add_flags() -> None:
    add = only("ADD --chown=app --link=false --checksum=sha256:abc https://x/y.tgz /opt/")
    assert isinstance(add, Copy)
    assert add.is_add and add.name == "ADD"
    assert add.chown == "app"
    assert add.link is False
    assert add.checksum == "sha256:abc"
    assert add.sources == ("https://x/y.tgz",)


def test_copy_heredoc_sources() -> None:
    copy = only('COPY <<EOF <<-"RAW" /etc/\nhello $A\nEOF\n\tliteral $B\nRAW\n')
    assert isinstance(copy, Copy)
    assert copy.sources == ()
    assert [(f.name, f.expand, f.chomp) for f in copy.inline_files] == [
        ("EOF", True, False),
        ("RAW", False, True),
    ]
    assert copy.inline_files[0].content == "hello $A\n"
    assert copy.inline_files[1].data() == "literal $B\n"
    assert copy.location.end_line == 6


# -- ENV / LABEL / ARG -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "pairs"),
    [
        ("ENV A=1", (("A", "1"),)),
        ('ENV A="b c" D=e\\ f', (("A", '"b c"'), ("D", "e\\ f"))),
        ("ENV LEGACY some value  here", (("LEGACY", "some value  here"),)),
        ('ENV SVC_CIDR "10.96.0.0/22"', (("SVC_CIDR", '"10.96.0.0/22"'),)),
        ("env lower=case", (("lower", "case"),)),
        ('ENV NAME=${NAME:-"minio"}', (("NAME", '${NAME:-"minio"}'),)),
    ],
)
def test_env_forms(line: str, pairs: tuple[tuple[str, str], ...]) -> None:
    env = only(line)
    assert isinstance(env, Env)
    assert env.pairs == pairs


def test_env_continuation_lines() -> None:
    env = only('ENV HELM_OPTS=${HELM_OPTS:-" \\\n--set a=b \\\n"}\n')
    assert isinstance(env, Env)
    assert env.pairs == (("HELM_OPTS", '${HELM_OPTS:-" --set a=b "}'),)
    assert (env.location.line, env.location.end_line) == (2, 4)


@pytest.mark.parametrize(
    ("line", "pairs"),
    [
        ('LABEL "apps.sealos.io/type"=rootfs', (('"apps.sealos.io/type"', "rootfs"),)),
        ('LABEL a=b "c d"="e f"', (("a", "b"), ('"c d"', '"e f"'))),
        ("LABEL description some text", (("description", "some text"),)),
        (
            'LABEL init="init.sh \\$registryDomain"',
            (("init", '"init.sh \\$registryDomain"'),),
        ),
    ],
)
def test_label_forms(line: str, pairs: tuple[tuple[str, str], ...]) -> None:
    label = only(line)
    assert isinstance(label, Label)
    assert label.pairs == pairs


def test_arg_forms() -> None:
    arg = only('ARG A B=1 C= D="x y"')
    assert isinstance(arg, Arg)
    assert arg.args == (
        ArgDecl("A"),
        ArgDecl("B", "1"),
        ArgDecl("C", ""),
        ArgDecl("D", '"x y"'),
    )


# -- CMD / ENTRYPOINT / RUN --------------------------------------------------------------------


def test_cmd_exec_form() -> None:
    cmd = only('CMD ["bash entrypoint.sh", "x"]')
    assert isinstance(cmd, Cmd)
    assert cmd.args == ("bash entrypoint.sh", "x")
    assert cmd.shell_form is False
    assert cmd.argv() == ("bash entrypoint.sh", "x")


def test_cmd_shell_form_keeps_text() -> None:
    cmd = only('CMD echo  "hi"  $X')
    assert isinstance(cmd, Cmd)
    assert cmd.shell_form is True
    assert cmd.argv() == ("/bin/sh", "-c", 'echo  "hi"  $X')


def test_entrypoint_forms() -> None:
    entrypoint = only("ENTRYPOINT run.sh --x")
    assert isinstance(entrypoint, Entrypoint)
    assert entrypoint.argv() == ("/bin/sh", "-c", "run.sh --x")
    empty = only("ENTRYPOINT []")
    assert isinstance(empty, Entrypoint)
    assert empty.argv() == ()


def test_run_forms_and_flags() -> None:
    run = only("RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none ls")
    assert isinstance(run, Run)
    assert run.mounts == ("type=cache,target=/c", "type=tmpfs,target=/t")
    assert run.network == "none"
    assert run.argv() == ("/bin/sh", "-c", "ls")
    exec_run = only('RUN ["/bin/busybox", "true"]')
    assert isinstance(exec_run, Run)
    assert exec_run.argv() == ("/bin/busybox", "true")
    heredoc = only("RUN <<EOF\necho hi\nEOF\n")
    assert isinstance(heredoc, Run)
    assert heredoc.inline_files[0].content == "echo hi\n"


def test_shell_test_command_is_not_taken_for_json() -> None:
    run = only('RUN [ "$A" = "b" ] && echo yes')
    assert isinstance(run, Run)
    assert run.shell_form is True
    run = only("RUN [ -f /etc/passwd ]")
    assert isinstance(run, Run)
    assert run.shell_form is True


# -- the rest ----------------------------------------------------------------------------------


def test_simple_instructions() -> None:
    kubefile = parse_string(
        "FROM scratch\n"
        "WORKDIR /app\n"
        "USER 1000:1000\n"
        "MAINTAINER Jane Doe <jane@example.com>\n"
        "EXPOSE 80 443/tcp 53/udp\n"
        "VOLUME /data /logs\n"
        'VOLUME ["/json vol"]\n'
        "STOPSIGNAL SIGTERM\n"
    )
    workdir, user, maintainer, expose, volume, volume_json, stop = kubefile.stages[0].instructions
    assert isinstance(workdir, Workdir) and workdir.path == "/app"
    assert isinstance(user, User) and user.user == "1000:1000"
    assert isinstance(maintainer, Maintainer)
    assert maintainer.maintainer == "Jane Doe <jane@example.com>"
    assert isinstance(expose, Expose) and expose.ports == ("80", "443/tcp", "53/udp")
    assert isinstance(volume, Volume) and volume.paths == ("/data", "/logs")
    assert isinstance(volume_json, Volume) and volume_json.paths == ("/json vol",)
    assert isinstance(stop, StopSignal) and stop.signal == "SIGTERM"


def test_escape_directive_is_reported() -> None:
    kubefile = parse_string("# escape=`\nFROM scratch\nCOPY a `\n  b\n")
    assert kubefile.escape == "`"
    copy = kubefile.stages[0].instructions[0]
    assert isinstance(copy, Copy)
    assert copy.sources == ("a",) and copy.dest == "b"
    assert parse_string("# syntax=docker/dockerfile:1\nFROM scratch\n").escape == "\\"
    # a directive after a comment is no directive
    assert parse_string("# hello\n# escape=`\nFROM scratch\n").escape == "\\"


def test_crlf_and_bom() -> None:
    kubefile = parse_string("\ufeffFROM scratch\r\nENV A=1\r\n")
    env = kubefile.stages[0].instructions[0]
    assert isinstance(env, Env)
    assert env.pairs == (("A", "1"),)


# -- errors: every one names file:line ---------------------------------------------------------

ERRORS: list[tuple[str, str, int | None, str]] = [
    ("empty", "", None, "empty"),
    ("only comments", "# nothing\n\n# here\n", None, "empty"),
    ("unknown instruction", "FROM scratch\nCOPPY a b\n", 2, "unknown instruction: COPPY"),
    ("unknown with hint", "FROM scratch\n\nLABLE a=b\n", 3, "did you mean LABEL?"),
    ("unterminated exec json", 'FROM scratch\nCMD ["a", "b"\n', 2, "unterminated exec-form"),
    ("unterminated entrypoint", 'FROM scratch\nENTRYPOINT ["run.sh"\n', 2, "unterminated"),
    ("unterminated run json", 'FROM scratch\nRUN ["a",\n', 2, "unterminated exec-form"),
    ("unterminated copy json", 'FROM scratch\nCOPY ["a", "b"\n', 2, "unterminated exec-form"),
    ("single quotes", "FROM scratch\nCMD ['a', 'b']\n", 2, "must use double quotes"),
    ("trailing comma", 'FROM scratch\nCMD ["a",]\n', 2, "not valid JSON"),
    ("text after json", 'FROM scratch\nCMD ["a"] b\n', 2, "unexpected text after"),
    ("non-string json", 'FROM scratch\n\nCOPY ["a", 1] b\n', 3, "strings only"),
    ("healthcheck", "FROM scratch\nHEALTHCHECK CMD true\n", 2, "unsupported instruction"),
    ("onbuild", "FROM scratch\nONBUILD RUN x\n", 2, "unsupported instruction ONBUILD"),
    ("shell", 'FROM scratch\nSHELL ["/bin/bash", "-c"]\n', 2, "unsupported instruction SHELL"),
    ("no from", "ARG A=1\n", None, "no FROM"),
    ("before from", "ENV A=1\nFROM scratch\n", 1, "before the first FROM"),
    ("from arity", "FROM a b\n", 1, "one or three arguments"),
    ("from empty", "FROM scratch\nFROM\n", 2, "one or three arguments"),
    ("stage name", "FROM scratch AS 1abc\n", 1, "invalid name for build stage"),
    ("duplicate stage", "FROM scratch AS a\nFROM scratch AS A\n", 2, "duplicate stage name"),
    ("copy one arg", "FROM scratch\nCOPY a\n", 2, "at least two arguments"),
    ("copy unknown flag", "FROM scratch\nCOPY --foo=x a b\n", 2, "unknown flag for COPY: --foo"),
    ("add has no from", "FROM scratch\nADD --from=x a b\n", 2, "unknown flag for ADD: --from"),
    ("flag without value", "FROM scratch\nCOPY --chown a b\n", 2, "missing a value"),
    ("bool flag value", "FROM scratch\nCOPY --link=maybe a b\n", 2, "expecting boolean"),
    ("duplicate flag", "FROM scratch\nCOPY --from=a --from=b a b\n", 2, "duplicate flag"),
    ("env one word", "FROM scratch\nENV A\n", 2, "ENV must have two arguments"),
    ("env nothing", "FROM scratch\nENV\n", 2, "ENV requires at least one argument"),
    ("env blank name", "FROM scratch\nENV =b\n", 2, "names can not be blank"),
    ("label nothing", "FROM scratch\nLABEL\n", 2, "LABEL requires at least one"),
    ("arg nothing", "FROM scratch\nARG\n", 2, "ARG requires at least one"),
    ("arg blank", "FROM scratch\nARG =x\n", 2, "ARG names can not be blank"),
    ("cmd nothing", "FROM scratch\nCMD\n", 2, "CMD requires at least one argument"),
    ("workdir nothing", "FROM scratch\nWORKDIR\n", 2, "exactly one argument"),
    ("user nothing", "FROM scratch\nUSER\n", 2, "exactly one argument"),
    ("expose nothing", "FROM scratch\nEXPOSE\n", 2, "EXPOSE requires at least one"),
    ("volume nothing", "FROM scratch\nVOLUME\n", 2, "VOLUME requires at least one"),
    ("stopsignal nothing", "FROM scratch\nSTOPSIGNAL\n", 2, "exactly one argument"),
    ("heredoc dest", "FROM scratch\nCOPY a <<EOF\nx\nEOF\n", 2, "heredoc as a destination"),
    ("unterminated heredoc", "FROM scratch\nRUN <<EOF\necho\n", 2, "unterminated heredoc"),
    ("bad escape", "# escape=x\nFROM scratch\n", 1, "invalid escape token"),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_name_file_and_line(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(KubefileError) as caught:
        parse_string(text, path="ctx/Kubefile")
    message = str(caught.value)
    where = f"ctx/Kubefile:{line}: " if line is not None else "ctx/Kubefile: "
    assert message.startswith(where), message
    assert fragment in message
    assert caught.value.path == "ctx/Kubefile"
    assert caught.value.line == line
    assert "\n" not in message


def test_multiline_error_points_at_first_line() -> None:
    text = "FROM scratch\nENV A=1 \\\n    B=2\nLABEL a=b \\\n  c\n"
    with pytest.raises(KubefileError) as caught:
        parse_string(text, path="K")
    assert str(caught.value).startswith("K:4: ")


# -- files -------------------------------------------------------------------------------------


def test_find_kubefile_order(tmp_path: Path) -> None:
    for name in ("Containerfile", "Dockerfile", "Sealfile", "Kubefile"):
        (tmp_path / name).write_text("FROM scratch\n")
        assert find_kubefile(tmp_path).name == name


def test_find_kubefile_none(tmp_path: Path) -> None:
    (tmp_path / "kubefile").mkdir()  # a directory, and the wrong case
    with pytest.raises(KubefileError, match="no Kubefile, Sealfile, Dockerfile or Containerfile"):
        find_kubefile(tmp_path)


def test_parse_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KubefileError, match="cannot read the Kubefile"):
        parse_file(tmp_path / "missing")
    bad = tmp_path / "Kubefile"
    bad.write_bytes(b"FROM scratch\nLABEL a=\xff\n")
    with pytest.raises(KubefileError, match=r"Kubefile:2: not valid UTF-8"):
        parse_file(bad)
    empty = tmp_path / "Empty"
    empty.write_text("\n\n")
    with pytest.raises(KubefileError) as caught:
        parse_file(empty, display="shown/Empty")
    assert str(caught.value).startswith("shown/Empty: ")


# -- limits and what the dockerfile package cannot read (issue 12) ------------------------------


def test_nesting_is_capped_before_parsing() -> None:
    # Across continuation lines too: the parser joins them into one.
    text = "FROM scratch\nRUN x \\\n" + "${a:-\\\n" * 65 + "y\n"
    with pytest.raises(KubefileError, match=r"^Kubefile:67: \$\{\.\.\.\} nested more than 64"):
        parse_string(text)


def test_unclosed_references_on_separate_lines_do_not_add_up() -> None:
    kubefile = parse_string("FROM scratch\n" + "RUN echo ${\n" * 100)
    assert len(kubefile.stages[0].instructions) == 100


def test_an_unreadable_instruction_comes_after_earlier_errors() -> None:
    with pytest.raises(KubefileError, match=r"^Kubefile:2: CMD requires at least one argument"):
        parse_string("FROM scratch\nCMD\nHEALTHCHECK Å\n")
    with pytest.raises(KubefileError, match=r"^Kubefile:3: unsupported instruction HEALTHCHECK"):
        parse_string("# c\nFROM scratch\nHEALTHCHECK  ǅ\n")
    with pytest.raises(KubefileError, match=r"^Kubefile:1: unsupported instruction ONBUILD"):
        parse_string("ONBUILD HEALTHCHECK Å\nFROM scratch\n")


def test_error_line_of_a_long_kubefile_is_found_quickly() -> None:
    text = "FROM scratch\n" + "ENV a=b\n" * 5000 + "LABEL a\n" + "ENV c=d\n" * 100
    start = time.perf_counter()
    with pytest.raises(KubefileError, match=r"^Kubefile:5002: LABEL must have two arguments"):
        parse_string(text)
    assert time.perf_counter() - start < 2  # every prefix in turn: a minute
