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
function by function so the two can be compared. Unlike lex.go it has limits, so that no
Kubefile can exhaust the stack or memory: ``${...}`` nests at most :data:`MAX_NESTING` deep and
one word expands to at most :data:`MAX_WORD_BYTES`.

>>> ShellLex().process_word('init.sh \\\\$registryDomain ${A:-"x y"}', {})
'init.sh $registryDomain x y'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

_EOF = ""

#: How deep ``${...}`` may nest. Each level is a few Python frames (Go's stack just grows), so an
#: unbounded depth ends in RecursionError; real Kubefiles nest two or three deep.
MAX_NESTING = 64
#: The most one word may expand to, in UTF-8 bytes. ARGs that reference each other
#: (``ARG b=$a$a``) grow exponentially without it.
MAX_WORD_BYTES = 1 << 20

_SHOWN = 60  # characters of a word an error message quotes


class ExpansionError(ValueError):
    """A word could not be expanded (bad substitution, unterminated quote, ``${V:?}``...)."""


def utf8_length(text: str) -> int:
    """``len(text.encode())`` without encoding ASCII text (``isascii`` is a flag lookup)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _too_big() -> ExpansionError:
    return ExpansionError(
        f"expands to more than {MAX_WORD_BYTES >> 20} MiB (the limit for one word)"
    )


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
        # Runs of characters with no meaning to the scanner, taken in one slice rather than one
        # character at a time (what makes long words and heredoc bodies fast).
        special = "$" + escape + ("" if skip_process_quotes else "'\"")
        in_double_quotes = '$"' + escape
        self.plain = {
            stop: re.compile(f"[^{re.escape(special + stop)}]+") for stop in (_EOF, "}", "/")
        }
        self.plain_in_double_quotes = re.compile(f"[^{re.escape(in_double_quotes)}]+")

    def process(self, word: str, env: Mapping[str, str]) -> LexResult:
        return _ShellWord(self, word, env).run()

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand ``word`` and return it as one string (ENV, LABEL, COPY, WORKDIR...)."""
        return self.process(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` and split the result on unquoted whitespace (EXPOSE)."""
        return list(self.process(word, env).words)


_SPACES_OR_TEXT = re.compile(r"\s+|\S+")  # \s is str.isspace(), as add_char tests it


class _Words:
    """lex.go's ``wordsStruct``: splits on whitespace that did not come from quotes/escapes.

    The current word is a list of pieces joined once it ends: growing a string attribute by
    ``+=`` copies it every time (quadratic in the word's length).
    """

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def _end_word(self) -> None:
        word = "".join(self.pieces)
        if word:
            self.words.append(word)
        self.pieces = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.pieces:
                self._end_word()
        else:
            self.add_raw_string(ch)

    def add_raw_char(self, ch: str) -> None:
        self.add_raw_string(ch)

    def add_string(self, text: str) -> None:
        # add_char for each character; a run of whitespace acts as one.
        for match in _SPACES_OR_TEXT.finditer(text):
            chunk = match.group()
            if chunk[0].isspace():
                self.add_char(chunk[0])
            else:
                self.add_raw_string(chunk)

    def add_raw_string(self, text: str) -> None:
        if text:
            self.pieces.append(text)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.pieces:
            self._end_word()
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
        self.depth = 0  # ${...} levels open at pos

    # -- scanner ---------------------------------------------------------------------------
    def peek(self) -> str:
        return self.source[self.pos] if self.pos < len(self.source) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.source):
            return _EOF
        ch = self.source[self.pos]
        self.pos += 1
        return ch

    def take(self, plain: re.Pattern[str]) -> str:
        """The run of characters ``plain`` matches at pos (maybe empty), consumed."""
        found = plain.match(self.source, self.pos)
        if found is None:
            return ""
        self.pos = found.end()
        return found.group()

    # -- lex.go ----------------------------------------------------------------------------
    def run(self) -> LexResult:
        try:
            result, words = self.process_stop_on(_EOF, self.raw_escapes)
            if utf8_length(result) > MAX_WORD_BYTES:
                raise _too_big()
        except ExpansionError as exc:
            shown = self.source if len(self.source) <= _SHOWN else self.source[:_SHOWN] + "..."
            raise ExpansionError(f"failed to process {shown!r}: {exc}") from None
        return LexResult(result, tuple(words), frozenset(self.matches), frozenset(self.nonmatches))

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        size = 0  # characters in result: checked as it grows, so no word gets huge first
        words = _Words()
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        plain = self.lex.plain[stop]
        try:
            while self.peek() != _EOF:
                if size > MAX_WORD_BYTES:  # characters <= UTF-8 bytes
                    raise _too_big()
                text = self.take(plain)
                if text:
                    result.append(text)
                    size += len(text)
                    words.add_string(text)
                    continue
                ch = self.peek()
                if stop != _EOF and ch == stop:
                    self.next()
                    return "".join(result), words.get_words()
                if ch == "$":
                    text = self.process_dollar()
                    result.append(text)
                    size += len(text)
                    words.add_string(text)
                    continue
                if not self.lex.skip_process_quotes and ch in "'\"":
                    text = self.process_single_quote() if ch == "'" else self.process_double_quote()
                    result.append(text)
                    size += len(text)
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
                size += 2  # at most the escape and its character
        finally:
            self.raw_escapes = saved
        if size > MAX_WORD_BYTES:
            raise _too_big()
        if stop != _EOF:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        # Everything up to the next ' is literal; a ' cannot be escaped inside (sh semantics).
        opening = self.next()
        end = self.source.find("'", self.pos)
        if end < 0:
            self.pos = len(self.source)
            raise ExpansionError(
                "unexpected end of statement while looking for matching single-quote"
            )
        text = self.source[self.pos : end]
        self.pos = end + 1
        return opening + text + "'" if self.lex.raw_quotes else text

    def process_double_quote(self) -> str:
        # Literal except $ (expanded) and the escape token, which escapes only " $ and itself.
        out: list[str] = []
        size = 0
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            if size > MAX_WORD_BYTES:
                raise _too_big()
            text = self.take(self.lex.plain_in_double_quotes)
            if text:
                out.append(text)
                size += len(text)
                continue
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
                text = self.process_dollar()
                out.append(text)
                size += len(text)
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
            size += 2  # at most the escape and its character

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
        if self.depth >= MAX_NESTING:
            raise ExpansionError(f"${{...}} nested more than {MAX_NESTING} deep (the limit)")
        self.depth += 1
        try:
            return self.process_braces()
        finally:
            self.depth -= 1

    def process_braces(self) -> str:
        """The rest of ``${...}``, after the brace."""
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
            return _replace(regex, value, replacement, replace_all)
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


def _replace(regex: re.Pattern[str], value: str, replacement: str, replace_all: bool) -> str:
    """``${V/pat/repl}`` and ``${V//pat/repl}``, stopping once the result is too big (every
    character of a 1 MiB value replaced by a 1 MiB word would be a TiB)."""
    pieces: list[str] = []
    size = 0
    end = 0
    for found in regex.finditer(value):
        pieces += (value[end : found.start()], replacement)
        size += found.start() - end + len(replacement)
        if size > MAX_WORD_BYTES:
            raise _too_big()
        end = found.end()
        if not replace_all:
            break
    pieces.append(value[end:])
    return "".join(pieces)


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
