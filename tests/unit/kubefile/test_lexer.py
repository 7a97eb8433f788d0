"""The build-time lexer against BuildKit's own lexer tests.

ENV_VAR_CASES is BuildKit's ``frontend/dockerfile/shell/envVarTest`` table (the Unix and "all"
rows), MATCH_CASES its ``TestProcessWithMatches`` cases; both run with the same environment as
there. The rest covers what Kubefiles in the corpus rely on.
"""

from __future__ import annotations

import pytest

from clusterimage.kubefile.lexer import MAX_NESTING, MAX_WORD_BYTES, ExpansionError, ShellLex

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

# (input, expected or None for an error)
ENV_VAR_CASES: list[tuple[str, str | None]] = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", None),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", None),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', None),
    ('"hello\\"', None),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", None),
    ("'hello\\'", "hello\\"),
    ("'hello\\there'", "hello\\there"),
    ("'hello\\\\there'", "hello\\\\there"),
    ("\"''\"", "''"),
    ("$.", "$."),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("\\${}", "${}"),
    ("\\${}aaa", "${}aaa"),
    ("he\\${}", "he${}"),
    ("he\\${}xx", "he${}xx"),
    ("${}", None),
    ("${}aaa", None),
    ("he${}", None),
    ("he${}xx", None),
    ("he${hi}", "he"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${.}", None),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", None),
    ("he${XXX?}", None),
    ("he${XXX:?}", None),
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${NULL?}", "he"),
    ("he${NULL:?}", None),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ("\"he'$PWD'\"", "he'/home'"),
    ('"$PWD"', "/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ("'\"hello\"'", '"hello"'),
    ("he\\$PWD", "he$PWD"),
    ('"he\\$PWD"', "he$PWD"),
    ("'he\\$PWD'", "he\\$PWD"),
    ("he${PWD", None),
    ("he${PWD=000}xx", None),
    ("he${PWD:=000}xx", None),
    ("he${PWD+${PWD}:}xx", "he/home:xx"),
    ("he${XXX+${PWD}:}xx", "hexx"),
    ("he${PWD-${PWD}:}xx", "he/homexx"),
    ("he${XXX-${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("안녕하세요", "안녕하세요"),
    ("안'녕'하세요", "안녕하세요"),
    ("안'녕하세요", None),
    ("안녕\\'하세요", "안녕'하세요"),
    ("안\\\\'녕하세요", None),
    ("안녕\\t하세요", "안녕t하세요"),
    ('"안녕\\t하세요"', "안녕\\t하세요"),
    ("'안녕\\t하세요", None),
    ("안녕하세요\\", "안녕하세요"),
    ("안녕하세요\\\\", "안녕하세요\\"),
    ('"안녕하세요', None),
    ('"안녕하세요\\"', None),
    ('"안녕\'하세요"', "안녕'하세요"),
    ("'안녕하세요'", "안녕하세요"),
    ("'안녕하세요\\'", "안녕하세요\\"),
    ("$KOREAN", "한국어"),
    ("안녕$KOREAN", "안녕한국어"),
    ("${a:-\\$b}", "$b"),
    ("${a:-\\${b}}", "${b}"),
    ("${a:-\\$b\\${b}}", "$b${b}"),
]


@pytest.mark.parametrize(("source", "expected"), ENV_VAR_CASES, ids=[c[0] for c in ENV_VAR_CASES])
def test_envvar_table(source: str, expected: str | None) -> None:
    lex = ShellLex()
    if expected is None:
        with pytest.raises(ExpansionError):
            lex.process_word(source, ENV)
    else:
        assert lex.process_word(source, ENV) == expected


# (input, env, expected or None for an error, matched, unmatched)
MATCH_CASES: list[tuple[str, dict[str, str], str | None, set[str], set[str]]] = [
    ("x", {"DUMMY": "dummy"}, "x", set(), set()),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set(), {"UNUSED"}),
    ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}, set()),
    (
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
        {"FOO": "xxx", "BAR": ""},
        "xxx  ccc",
        {"FOO", "BAR"},
        {"BAZ"},
    ),
    (
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        {"FOO": "xxx", "BAR": ""},
        "xxx bbb ccc",
        {"FOO", "BAR"},
        {"BAZ"},
    ),
    ("${FOO:-}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${FOO:-}", {}, "", set(), {"FOO"}),
    (
        "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
        {"FOO": "xxx", "BAR": ""},
        "aaa bbb ",
        {"FOO", "BAR"},
        {"BAZ"},
    ),
    (
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
        {"FOO": "xxx", "BAR": ""},
        "aaa  ",
        {"FOO", "BAR"},
        {"BAZ"},
    ),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, "", {"BAR"}, set()),
    ("${BAZ?ccc}", {"FOO": "xxx", "BAR": ""}, None, set(), {"BAZ"}),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${BAR:?bbb}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${BAZ:?ccc}", {"FOO": "xxx", "BAR": ""}, None, set(), {"BAZ"}),
    ("${BAZ:?}", {"FOO": "xxx", "BAR": ""}, None, set(), {"BAZ"}),
    ("${FOO=aaa}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO=:aaa}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO=}", {}, None, set(), set()),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x", {"FOO"}, set()),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx", {"FOO"}, set()),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}, set()),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}, set()),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y", {"FOO"}, set()),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}, {"ABC"}),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}, set()),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
        "/foo.*/*.txt - /foo..*.txt",
        {"FOO", "NEEDLE"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
        "/tmp/bar.txt - /bar.txt",
        {"FOO", "NEEDLE"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
        "/foo/b/c.txt - /foo/c.txt",
        {"FOO", "NEEDLE", "REPLACEMENT"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT}",
        {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
        "https://google.de",
        {"FOO", "NEEDLE", "REPLACEMENT"},
        set(),
    ),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}, set()),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy", {"FOO", "BAR"}, set()),
    ("${FOO//ww}", {"FOO": "xxyy"}, None, set(), set()),
    ("${FOO//}", {"FOO": "xxyy"}, None, set(), set()),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO///}", {}, "", set(), {"FOO"}),
]


@pytest.mark.parametrize(
    ("source", "env", "expected", "matched", "unmatched"),
    MATCH_CASES,
    ids=[f"{i}:{c[0]}" for i, c in enumerate(MATCH_CASES)],
)
def test_process_with_matches(
    source: str,
    env: dict[str, str],
    expected: str | None,
    matched: set[str],
    unmatched: set[str],
) -> None:
    lex = ShellLex()
    if expected is None:
        with pytest.raises(ExpansionError):
            lex.process(source, env)
        return
    result = lex.process(source, env)
    assert result.result == expected
    assert set(result.matched) == matched
    assert set(result.unmatched) == unmatched


def test_mandatory_message_names_the_variable() -> None:
    lex = ShellLex()
    with pytest.raises(ExpansionError, match="message herex"):
        lex.process_word("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    with pytest.raises(ExpansionError, match="message herex"):
        lex.process_word("${VAR?message here$ARG}", {"ARG": "x"})
    assert lex.process_word("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}) == ""


def test_platform_release_name() -> None:
    word = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tgz"
    env = {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"}
    assert ShellLex().process_word(word, env) == "something-v1.2.3.linux-arm-v7.tgz"
    env["TARGETVARIANT"] = ""
    assert ShellLex().process_word(word, env) == "something-v1.2.3.linux-arm.tgz"


# BuildKit's wordsTest (ProcessWords: split on unquoted whitespace after expansion).
WORDS_CASES: list[tuple[str, list[str]]] = [
    ("hello", ["hello"]),
    ("hello world", ["hello", "world"]),
    ("hello   world", ["hello", "world"]),
    ("'hello world'", ["hello world"]),
    ('"hello world"', ["hello world"]),
    ("hello\\ world", ["hello world"]),
    ("he$PWD", ["he/home"]),
    ("$SPACED", ["a", "b"]),
    ('"$SPACED"', ["a  b"]),
    ("80 90/udp", ["80", "90/udp"]),
    ("", []),
]


@pytest.mark.parametrize(("source", "expected"), WORDS_CASES, ids=[c[0] for c in WORDS_CASES])
def test_process_words(source: str, expected: list[str]) -> None:
    env = {"PWD": "/home", "SPACED": "a  b"}
    assert ShellLex().process_words(source, env) == expected


KUBEFILE_CASES: list[tuple[str, dict[str, str], str]] = [
    # the runtime's $(V) is never a build-time reference
    ("helm upgrade -i $(NAME) $(CHARTS)", {"NAME": "x"}, "helm upgrade -i $(NAME) $(CHARTS)"),
    # escaped $ inside double quotes stays for the runtime (corpus runtime/*/Kubefile)
    (
        '"init-cri.sh \\$registryDomain \\$registryPort"',
        {},
        "init-cri.sh $registryDomain $registryPort",
    ),
    ('"\\$defaultVIP"', {"defaultVIP": "1.2.3.4"}, "$defaultVIP"),
    # defaults quoted inside ${...} lose their quotes and keep inner spaces
    ('${NAME:-"minio"}', {}, "minio"),
    ('${HELM_OPTS:-" --set a=b --set c=d "}', {}, " --set a=b --set c=d "),
    ('${HELM_OPTS:-" --set a=b "}', {"HELM_OPTS": "--set x=y"}, "--set x=y"),
    ('${HELM_OPTS:-""}', {}, ""),
    ('"10.96.0.0/22"', {}, "10.96.0.0/22"),
    ("some value  here", {}, "some value  here"),
    ("$", {}, "$"),
    ("a$", {}, "a$"),
    ("${A}${B}", {"A": "1", "B": "2"}, "12"),
    ("$A_B", {"A": "1", "A_B": "2"}, "2"),
    ("${A}_B", {"A": "1", "A_B": "2"}, "1_B"),
    ("pre-$A-post", {"A": "1"}, "pre-1-post"),
]


@pytest.mark.parametrize(
    ("source", "env", "expected"), KUBEFILE_CASES, ids=[c[0] for c in KUBEFILE_CASES]
)
def test_kubefile_words(source: str, env: dict[str, str], expected: str) -> None:
    assert ShellLex().process_word(source, env) == expected


def test_backtick_escape_token() -> None:
    lex = ShellLex("`")
    assert lex.process_word("C:\\path`$A", {"A": "x"}) == "C:\\path$A"
    assert lex.process_word('"a`"b"', {}) == 'a"b'
    assert lex.process_word("$A", {"A": "x"}) == "x"


def test_options_raw_and_skip_unset() -> None:
    lex = ShellLex(raw_quotes=True, skip_unset_env=True)
    assert lex.process_word("'$A' \"$B\" $C ${D} ${E:-x}", {"B": "b"}) == (
        "'$A' \"b\" $C ${D} ${E:-x}"
    )
    heredoc = ShellLex(skip_process_quotes=True)
    assert heredoc.process_word("say 'hi $A'", {"A": "there"}) == "say 'hi there'"


def test_error_message_names_the_word() -> None:
    with pytest.raises(ExpansionError, match=r"failed to process '\$\{A': .*missing '\}'"):
        ShellLex().process_word("${A", {})
    with pytest.raises(ExpansionError, match="bad substitution"):
        ShellLex().process_word("${:-x}", {})
    with pytest.raises(ExpansionError, match=r"unsupported modifier \(:=\)"):
        ShellLex().process_word("${A:=x}", {})


def test_escape_must_be_one_character() -> None:
    with pytest.raises(ValueError):
        ShellLex("ab")


# -- limits (issue 12) -------------------------------------------------------------------------


def nested(depth: int, open_: str = "${a:-", close: str = "}") -> str:
    return open_ * depth + "x" + close * depth


def test_nesting_up_to_the_cap() -> None:
    assert ShellLex().process_word(nested(MAX_NESTING), {}) == "x"
    with pytest.raises(ExpansionError, match=r"nested more than 64 deep \(the limit\)"):
        ShellLex().process_word(nested(MAX_NESTING + 1), {})


def test_nesting_through_quotes_is_capped() -> None:
    # Each level is ${, a double quote and the scan of both: no RecursionError on the way.
    word = nested(1000, open_='"${a:-', close='}"')
    with pytest.raises(ExpansionError, match="nested more than 64 deep"):
        ShellLex().process_word(word, {})


def test_error_message_shortens_a_long_word() -> None:
    with pytest.raises(ExpansionError) as caught:
        ShellLex().process_word("x" * 10_000 + "${", {})
    assert (
        str(caught.value) == f"failed to process {'x' * 60 + '...'!r}: syntax error: missing '}}'"
    )


def test_word_cap_counts_utf8_bytes() -> None:
    half = {"A": "x" * (MAX_WORD_BYTES // 2), "E": "é" * (MAX_WORD_BYTES // 2)}
    assert len(ShellLex().process_word("$A$A", half)) == MAX_WORD_BYTES
    assert len(ShellLex().process_word("$E", half)) == MAX_WORD_BYTES // 2  # 1 MiB of UTF-8
    for word in ("$A$A$A", "$A${A}x", '"$A$A$A"', "$E$A$A", "${E}x", "${A:-}$A$A"):
        with pytest.raises(ExpansionError, match=r"expands to more than 1 MiB \(the limit"):
            ShellLex().process_word(word, half)


def test_replacement_is_capped_as_it_grows() -> None:
    env = {"A": "y" * 4096}
    assert ShellLex().process_word("${A//y/ab}", env) == "ab" * 4096
    assert ShellLex().process_word("${A/y/ab}", env) == "ab" + "y" * 4095
    with pytest.raises(ExpansionError, match="more than 1 MiB"):
        ShellLex().process_word("${A//?/$A}", env)  # 16 MiB if made


def test_long_words_split_as_str_split() -> None:
    text = "a  bb\tccc\n" * 50_000
    assert ShellLex().process_words(text, {}) == text.split()
    assert ShellLex().process_words("$T", {"T": text}) == text.split()
    assert ShellLex().process_words("'x y'\"\" z\\ w", {}) == ["x y", "z w"]
