"""No Kubefile, however mangled, makes ``build --dry-run`` print a traceback (issue 12).

The fuzz test mutates corpus Kubefiles (inserted escapes, quotes, NULs, nested ``${a:-${b}}``,
split UTF-8 characters, truncations) and runs ``clusterimage build --dry-run`` in-process on a
copy of the context: it must exit 0, or 1/2 with exactly one ``error:`` line. The regression
tests pin the inputs the issue reported, and the limits that keep expansion bounded.
"""

from __future__ import annotations

import contextlib
import functools
import io
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterimage.cli import main as cli_main
from tests.integration import test_corpus_dryrun as corpus_dryrun
from tests.integration.test_corpus_dryrun import KUBEFILES


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """The one ``error:`` line; fails unless the run failed with exactly that."""
        assert self.code in (1, 2), self
        lines = self.stderr.splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], self
        return errors[0]


def dry_run(kubefile: Path) -> Outcome:
    """``clusterimage build --dry-run -f KUBEFILE CONTEXT`` in this process.

    An exception main() does not turn into an ``error:`` line propagates, failing the test
    with its traceback.
    """
    out, err = io.StringIO(), io.StringIO()
    # main() registers its commands on the module-level app at each call: undo that, or every
    # call adds a duplicate and the next one gets slower.
    registered = list(cli_main.app.registered_commands)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli_main.main(["build", "--dry-run", "-f", str(kubefile), str(kubefile.parent)])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        cli_main.app.registered_commands[:] = registered
    return Outcome(code, out.getvalue(), err.getvalue())


def check(outcome: Outcome) -> None:
    """Success, or one ``error:`` line: never a traceback."""
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome
    if outcome.code == 0:
        assert "error: " not in outcome.stderr, outcome
    else:
        assert outcome.error


@pytest.fixture(scope="module", autouse=True)
def _in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A home for the runs, and typer's click command built once, not at every run (reading
    every command's annotations costs more than a dry run). Module-scoped: hypothesis repeats
    the test body, not function-scoped fixtures."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLUSTERIMAGE_HOME", str(tmp_path_factory.mktemp("home")))
        patch.setattr(typer.main, "get_command", functools.cache(typer.main.get_command))
        yield


def kubefile_in(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "Kubefile"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def chained(count: int, value: str) -> str:
    """A stage of ``ARG a0=x`` then ``count`` ARGs, each made from the one before by ``value``."""
    lines = ["FROM scratch", "ARG a0=x"]
    lines += [f"ARG a{n}=" + value.format(prev=f"${{a{n - 1}}}") for n in range(1, count + 1)]
    return "\n".join([*lines, f"LABEL last=${{a{count}}}", ""])


# -- the inputs of issue 12 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escape"),
    [("FROM scratch\nCOPY a b\n\\", "\\"), ("# escape=`\nFROM scratch\n`\n\n# end\n", "`")],
)
def test_lone_escape_on_the_last_line(tmp_path: Path, text: str, escape: str) -> None:
    error = dry_run(kubefile_in(tmp_path, text)).error
    assert error.endswith(
        f"Kubefile:3: the Kubefile ends with a line continuation '{escape}' and no instruction "
        "to continue"
    )


@pytest.mark.parametrize("keyword", ["LABEL x=", "COPY x", "RUN x"])
def test_deep_nesting_is_capped(tmp_path: Path, keyword: str) -> None:
    # RUN and COPY: the dockerfile package itself would take minutes over 5,000 levels.
    word = "${a:-" * 5000 + "x" + "}" * 5000
    start = time.perf_counter()
    error = dry_run(kubefile_in(tmp_path, f"FROM scratch\n{keyword}{word} /\n")).error
    assert error.endswith("Kubefile:2: ${...} nested more than 64 deep (the limit)")
    assert time.perf_counter() - start < 2


def test_nesting_within_the_cap_expands(tmp_path: Path) -> None:
    word = "${a:-" * 64 + "x" + "}" * 64
    outcome = dry_run(kubefile_in(tmp_path, f"FROM scratch\nLABEL x={word}\n"))
    assert outcome.code == 0, outcome


def test_cut_inside_a_utf8_character(tmp_path: Path) -> None:
    data = 'FROM scratch\nLABEL a="é"\n'.encode()
    cut = data[: data.index("é".encode()) + 1]
    assert dry_run(kubefile_in(tmp_path, cut)).error.endswith("Kubefile:2: not valid UTF-8")


def test_parser_error_after_a_character_the_parser_splits(tmp_path: Path) -> None:
    # The dockerfile package splits "Å" (c3 85: 85 is U+0085, a space to Go's byte-wise
    # HEALTHCHECK parser) and then cannot decode what it returns; finding the line of the
    # later error re-parses that prefix.
    error = dry_run(kubefile_in(tmp_path, "FROM scratch\nHEALTHCHECK Å\nENV a\n")).error
    assert error.endswith("Kubefile:3: ENV must have two arguments")


@pytest.mark.parametrize("char", ["ǅ", "Å", "à", "🎅"])
def test_healthcheck_with_a_character_the_parser_splits(tmp_path: Path, char: str) -> None:
    error = dry_run(kubefile_in(tmp_path, f"FROM scratch\nRUN true\nHEALTHCHECK {char}\n")).error
    assert "Kubefile:3: unsupported instruction HEALTHCHECK" in error


def test_nul_is_an_error(tmp_path: Path) -> None:
    # The dockerfile package stops reading at a NUL: the rest would be silently dropped.
    error = dry_run(kubefile_in(tmp_path, "FROM scratch\nRUN a\0b\nCMD x\n")).error
    assert error.endswith("Kubefile:2: contains a NUL character (a Kubefile is text)")


def test_20000_chained_args_are_fast(tmp_path: Path) -> None:
    kubefile = kubefile_in(tmp_path, chained(20000, "{prev}x"))
    start = time.perf_counter()
    outcome = dry_run(kubefile)
    elapsed = time.perf_counter() - start
    # Value n is n+1 bytes long, 200 MB over 20,000 lines: the total cap stops it.
    assert "expansions total more than 16 MiB (the limit)" in outcome.error
    assert elapsed < 2, elapsed


def test_chained_args_within_the_total_cap(tmp_path: Path) -> None:
    outcome = dry_run(kubefile_in(tmp_path, chained(4000, "{prev}x")))  # 8 MB in all
    assert outcome.code == 0, outcome


def test_20_doublings_finish_fast(tmp_path: Path) -> None:
    kubefile = kubefile_in(tmp_path, chained(20, "{prev}{prev}"))
    start = time.perf_counter()
    outcome = dry_run(kubefile)  # the last value is 2**20 bytes: exactly the word cap
    elapsed = time.perf_counter() - start
    assert outcome.code == 0, outcome
    assert elapsed < 2, elapsed


def test_21_doublings_hit_the_word_cap(tmp_path: Path) -> None:
    error = dry_run(kubefile_in(tmp_path, chained(21, "{prev}{prev}"))).error
    assert "Kubefile:23: ARG: " in error
    assert "expands to more than 1 MiB (the limit for one word)" in error


def test_replace_all_is_capped(tmp_path: Path) -> None:
    text = chained(16, "{prev}{prev}") + "LABEL x=${a16//?/${a16}}\n"  # 64 KiB * 64 KiB
    start = time.perf_counter()
    error = dry_run(kubefile_in(tmp_path, text)).error
    assert "expands to more than 1 MiB (the limit for one word)" in error
    assert time.perf_counter() - start < 2


# -- fuzzing -----------------------------------------------------------------------------------

INSERTS = (
    b"\\",
    b"\\\n",
    b"`",
    b"'",
    b'"',
    b"\0",
    b"\n",
    b"\r",
    b"$",
    b"${",
    b"}",
    b"${a:-${b}}",
    b"${a:-${b:-${c:-${d}}}}",
    b"${a/x/${b}}",
    b'"${a:-"${b}"}"',
    b"[",
    b'["a", ',
    b"<<EOF\n",
    b"\nEOF\n",
    b" --from=",
    # UTF-8 with continuation bytes 0x85 / 0xa0 (spaces to byte-wise Go code), a cut character
    "ǅ".encode(),
    "Å".encode(),
    "à".encode(),
    "é".encode()[:1],
    b"\xff",
)
KEYWORDS = (
    b"FROM",
    b"ARG",
    b"ENV",
    b"LABEL",
    b"COPY",
    b"ADD",
    b"RUN",
    b"CMD",
    b"ENTRYPOINT",
    b"EXPOSE",
    b"USER",
    b"WORKDIR",
    b"VOLUME",
    b"STOPSIGNAL",
    b"HEALTHCHECK",
    b"ONBUILD",
    b"SHELL",
)
KINDS = ("insert", "insert", "insert", "line", "nest", "truncate", "delete")


@st.composite
def mutated_kubefiles(draw: st.DrawFn) -> tuple[Path, bytes]:
    """A corpus Kubefile and its bytes after one to four mutations."""
    source = draw(st.sampled_from(KUBEFILES))
    data = bytearray(source.read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(KINDS))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif kind == "line":
            line = [draw(st.sampled_from(KEYWORDS)), b" ", draw(st.sampled_from(INSERTS))]
            data[at:at] = b"\n" + b"".join(line) + b"\n"
        elif kind == "nest":
            # Shallow, around the nesting cap (64), and past Python's recursion limit.
            depth = draw(st.one_of(st.integers(1, 4), st.integers(62, 66), st.integers(400, 2000)))
            data[at:at] = b"${a:-" * depth + b"${b}" + b"}" * draw(st.integers(0, depth))
        elif kind == "truncate":
            del data[at:]
        else:
            del data[at : at + draw(st.integers(1, 80))]
    return source, bytes(data)


corpus = corpus_dryrun.corpus  # that test's fixture: fails, saying where, without the corpus


class Copies:
    """Copies of corpus contexts, each made once: a dry run writes nothing into them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[Path, Path] = {}

    def kubefile(self, source: Path) -> Path:
        """Where the copy of corpus Kubefile ``source`` is."""
        if source not in self.made:
            target = self.root / str(len(self.made))
            shutil.copytree(source.parent, target, symlinks=True)
            self.made[source] = target / source.name
        return self.made[source]


@pytest.fixture(scope="module")
def copies(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Copies:
    return Copies(tmp_path_factory.mktemp("contexts"))


@settings(
    max_examples=700,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays stable
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated_kubefiles())
def test_mutated_corpus_kubefiles(copies: Copies, case: tuple[Path, bytes]) -> None:
    source, data = case
    kubefile = copies.kubefile(source)
    kubefile.write_bytes(data)
    check(dry_run(kubefile))
