"""Build-time word expansion, as BuildKit's ``frontend/dockerfile/shell/lex.go`` does it.

Docker expands ``$V``, ``${V}``, ``${V:-word}``, ``${V-word}``, ``${V:+word}``, ``${V+word}``,
``${V:?msg}``, ``${V?msg}``, ``${V#pat}``, ``${V##pat}``, ``${V%pat}``, ``${V%%pat}``,
``${V/pat/repl}`` and ``${V//pat/repl}`` in ENV, LABEL, ARG, COPY, ADD, WORKDIR, USER, EXPOSE,
VOLUME, STOPSIGNAL and FROM. Single quotes keep their content literally, double quotes allow
expansion, and the escape token (``\\`` or the one a ``# escape=`` directive names) escapes the next
character. ``$(V)`` is not a variable reference: ``$`` followed by ``(`` stays literal, which is
what lets Kubefiles hand ``$(NAME)`` to the cluster runtime.

This is hand-written rather than taken from a library because no Python library implements
BuildKit's dialect (it is neither POSIX sh nor ``os.path.expandvars``); it follows lex.go
function by function so the two can be compared.

>>> ShellLex().process_word('init.sh \\\\$registryDomain ${A:-"x y"}', {})
'init.sh $registryDomain x y'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

_EOF = ""


class ExpansionError(ValueError):
    """A word could not be expanded (bad substitution, unterminated quote, ``${V:?}``...)."""


@dataclass(frozen=True)
class LexResult:
    """What :meth:`ShellLex.process` found.

    ``result`` is the expanded word with inner whitespace kept; ``words`` the same split on
    unquoted whitespace (what EXPOSE uses); ``matched`` / ``unmatched`` the variable names that
    were looked up and found / not found.
    """

    result: str
    words: tuple[str, ...]
    matched: frozenset[str]
    unmatched: frozenset[str]


class ShellLex:
    """BuildKit's ``shell.Lex``: one instance per escape token and option set.

    ``raw_quotes`` keeps quote characters in the output, ``raw_escapes`` keeps escape tokens,
    ``skip_process_quotes`` treats quotes as ordinary characters (heredoc bodies) and
    ``skip_unset_env`` leaves references to unset variables as written.
    """

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        if len(escape) != 1:
            raise ValueError(f"escape token must be one character, got {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env

    def process(self, word: str, env: Mapping[str, str]) -> LexResult:
        return _ShellWord(self, word, env).run()

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand ``word`` and return it as one string (ENV, LABEL, COPY, WORKDIR...)."""
        return self.process(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` and split the result on unquoted whitespace (EXPOSE)."""
        return list(self.process(word, env).words)


class _Words:
    """lex.go's ``wordsStruct``: splits on whitespace that did not come from quotes/escapes."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace() and self.in_word:
            if self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        elif not ch.isspace():
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _ShellWord:
    """One expansion in progress (lex.go's ``shellWord``), reading ``source`` char by char."""

    def __init__(self, lex: ShellLex, source: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.source = source
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matches: set[str] = set()
        self.nonmatches: set[str] = set()

    # -- scanner ---------------------------------------------------------------------------
    def peek(self) -> str:
        return self.source[self.pos] if self.pos < len(self.source) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.source):
            return _EOF
        ch = self.source[self.pos]
        self.pos += 1
        return ch

    # -- lex.go ----------------------------------------------------------------------------
    def run(self) -> LexResult:
        try:
            result, words = self.process_stop_on(_EOF, self.raw_escapes)
        except ExpansionError as exc:
            raise ExpansionError(f"failed to process {self.source!r}: {exc}") from None
        return LexResult(result, tuple(words), frozenset(self.matches), frozenset(self.nonmatches))

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            while self.peek() != _EOF:
                ch = self.peek()
                if stop != _EOF and ch == stop:
                    self.next()
                    return "".join(result), words.get_words()
                if ch == "$":
                    text = self.process_dollar()
                    result.append(text)
                    words.add_string(text)
                    continue
                if not self.lex.skip_process_quotes and ch in "'\"":
                    text = self.process_single_quote() if ch == "'" else self.process_double_quote()
                    result.append(text)
                    words.add_raw_string(text)
                    continue
                ch = self.next()
                if ch == self.lex.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        finally:
            self.raw_escapes = saved
        if stop != _EOF:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside (sh semantics).
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        # Literal except $ (expanded) and the escape token, which escapes only " $ and itself.
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            nxt = self.peek()
            if nxt == _EOF:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if nxt == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == self.lex.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue  # a trailing escape is dropped; the loop then reports EOF
                if following in ('"', "$", self.lex.escape):
                    ch = self.next()
            out.append(ch)

    def process_dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"  # "$" alone, "$(", "$." ... stay literal
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()  # the {
        first = self.peek()
        if first == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if first in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        modifier = ch
        if ch == _EOF:
            # lex.go reports "unsupported modifier (\ufffd)" here; say what is wrong instead.
            raise ExpansionError("syntax error: missing '}'")
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            modifier += ch
            if ch not in "+-?#%" or ch == _EOF:
                # lex.go falls through into the word scan, then rejects the modifier.
                self._scan_word_to_brace(raw=False)
                raise ExpansionError(f"unsupported modifier ({modifier}) in substitution")
        if ch != _EOF and ch in "+-?#%":
            word = self._scan_word_to_brace(raw=ch in "#%")
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + modifier + word + "}"
            empty = not found or (null_is_unset and value == "")
            if ch == "-":
                return word if empty else value
            if ch == "+":
                return "" if empty else word
            if ch == "?":
                if not found:
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            greedy = bool(word) and word[0] == ch
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except ExpansionError:
                if self.peek() == _EOF:
                    raise ExpansionError("syntax error: missing '/' in ${}") from None
                raise
            replacement = self._scan_word_to_brace(raw=True)
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            regex = _shell_pattern_to_regex(pattern, greedy=True, anchored=False)
            if replace_all:
                return regex.sub(lambda _m: replacement, value)
            found_at = regex.search(value)
            if found_at:
                return value[: found_at.start()] + replacement + value[found_at.end() :]
            return value
        raise ExpansionError(f"unsupported modifier ({modifier}) in substitution")

    def _scan_word_to_brace(self, *, raw: bool) -> str:
        try:
            word, _ = self.process_stop_on("}", raw)
        except ExpansionError:
            if self.peek() == _EOF:
                raise ExpansionError("syntax error: missing '}'") from None
            raise
        return word

    def process_name(self) -> str:
        # A name is letters, digits and _; $1 style positional digits; or one special parameter.
        name: list[str] = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not name and _is_digit(ch):
                while self.peek() != _EOF and _is_digit(self.peek()):
                    name.append(self.next())
                return "".join(name)
            if not name and ch in "@*#?-$!0":
                return self.next()
            if not (ch.isalpha() or _is_digit(ch) or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matches.add(name)
            return self.env[name], True
        self.nonmatches.add(name)
        return "", False


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _shell_pattern_to_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """lex.go's convertShellPatternToRegex: ``*``, ``?`` and ``\\`` escapes, no brackets."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            nxt = pattern[i] if i < len(pattern) else _EOF
            if nxt in ("}", "/"):
                continue  # escaped } and / belong to ${} syntax, not to the pattern
            tok = nxt
            i += 1
            if tok not in ("*", "?", "\\"):
                raise ExpansionError(f"invalid pattern ({pattern}) in substitution")
            out.append("\\" + tok)
            continue
        out.append(re.escape(tok) if tok in "[]{}.+()|^$" else tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _shell_pattern_to_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[found.end() :] if found else value


def _reverse_pattern(pattern: str) -> str:
    # Reverse, keeping each escape in front of the character it escapes (a\*c -> c\*a).
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            out.append(pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Regexes find leftmost matches; reversing both turns "shortest rightmost" into that.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]
