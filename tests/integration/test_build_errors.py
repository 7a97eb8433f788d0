"""Bad input through the CLI: one line ``error: FILE:LINE: ...``, exit 1, nothing written.

Some of these are the plan's errors (parser, stages), some the native engine's: each is checked
end to end, as a user meets it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def _evil_archive() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return out.getvalue()


CASES = [
    (
        "missing-source",
        "FROM scratch\nCOPY manifests manifests\nCOPY charts charts\n",
        {"manifests/a.yaml": b"a"},
        (),
        r"Kubefile:3: COPY source 'charts' not found in the build context",
    ),
    (
        "outside-context",
        "FROM scratch\nCOPY ../x /x\n",
        {},
        (),
        r"Kubefile:2: COPY source '../x' is outside the build context",
    ),
    (
        "run-native",
        "FROM scratch\nCOPY a /a\nRUN echo hi\n",
        {"a": b"a"},
        ("--engine", "native"),
        r"Kubefile:3: RUN needs the buildah engine",
    ),
    (
        "unknown-stage",
        "FROM scratch AS build\nCOPY a /a\nFROM scratch\nCOPY --from=biuld /a /a\n",
        {"a": b"a"},
        (),
        r"Kubefile:4: COPY --from=biuld: unknown stage .*did you mean 'build'",
    ),
    (
        "unknown-instruction",
        "FROM scratch\nCOPPY a /a\n",
        {"a": b"a"},
        (),
        r"Kubefile:2: unknown instruction: COPPY \(did you mean COPY\?\)",
    ),
    (
        "unterminated-json",
        'FROM scratch\nCMD ["kubectl apply -f manifests/"\n',
        {},
        (),
        r"Kubefile:2: CMD: unterminated exec-form JSON array",
    ),
    ("empty-kubefile", "", {}, (), r"Kubefile: the Kubefile is empty"),
    (
        "add-url",
        "FROM scratch\nADD https://example.com/app.tgz /app/\n",
        {},
        (),
        r"Kubefile:2: ADD https://example.com/app.tgz: downloading URLs is not supported",
    ),
    (
        "add-traversal",
        "FROM scratch\nADD evil.tgz /opt/\n",
        {"evil.tgz": _evil_archive()},
        (),
        r"Kubefile:2: ADD evil.tgz: member '../../escape.txt' would be written outside",
    ),
    (
        "bad-chmod",
        "FROM scratch\nCOPY --chmod=rwx a /a\n",
        {"a": b"a"},
        (),
        r"Kubefile:2: COPY --chmod: invalid mode 'rwx'",
    ),
    (
        "wildcard-matches-nothing",
        "FROM scratch\nCOPY *.nothing /x/\n",
        {"a": b"a"},
        (),
        r"Kubefile:2: COPY source '\*.nothing' not found in the build context",
    ),
    (
        "missing-in-stage",
        "FROM scratch AS s\nCOPY a /a\nFROM scratch\nCOPY --from=s /nope /x\n",
        {"a": b"a"},
        (),
        r"Kubefile:4: COPY source '/nope': no such file or directory in stage s",
    ),
]


@pytest.mark.parametrize(
    ("name", "kubefile", "files", "args", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_with_file_and_line(
    tmp_path: Path,
    ci_home: Path,
    name: str,
    kubefile: str,
    files: dict[str, bytes],
    args: tuple[str, ...],
    message: str,
) -> None:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Kubefile").write_text(kubefile)
    for rel, data in files.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(data)
    result = run_cli("build", "-t", f"errors/{name}:v1", *args, ".", cwd=ctx, check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1
    assert re.search(message, errors[0]), errors[0]
    store = ci_home / "store"
    if (store / "index.json").exists():
        assert '"manifests":[]' in (store / "index.json").read_text().replace(" ", "")
    assert not (ctx.parent / "escape.txt").exists()
    tmp = ci_home / "tmp"
    assert not tmp.exists() or not list(tmp.iterdir())


def test_debug_shows_the_traceback(tmp_path: Path, ci_home: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kubefile").write_text("FROM scratch\nCOPY ../x /x\n")
    result = run_cli("--debug", "build", ".", cwd=ctx, check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path, ci_home: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kubefile").write_text("FROM scratch\n")
    for args in (
        ("--compression", "lz4"),
        ("--engine", "docker"),
        ("--platform", "linux/"),
        ("--timestamp", "-5"),
        ("-q", "--json"),
        ("--build-arg", "=x"),
    ):
        result = run_cli("build", *args, ".", cwd=ctx, check=False)
        assert result.returncode == 2, (args, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: "), (args, line)
    bad_epoch = run_cli("build", ".", cwd=ctx, check=False, env={"SOURCE_DATE_EPOCH": "soon"})
    assert bad_epoch.returncode == 2, bad_epoch.stderr
    assert bad_epoch.stderr.strip() == "error: SOURCE_DATE_EPOCH='soon': not a number of seconds"
    missing = run_cli("build", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: build context {str(tmp_path / 'nowhere')!r} is not a directory"
    ]


def test_source_through_a_symlink_pointing_out_is_an_error(tmp_path: Path, ci_home: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("password: never-copied\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "link").symlink_to("../outside")
    (ctx / "abs-link").symlink_to(outside)
    for line in ("COPY link/secret.yaml /x", "COPY abs-link/*.yaml /x/", "ADD link/secret.yaml /"):
        (ctx / "Kubefile").write_text(f"FROM scratch\n{line}\n")
        result = run_cli("build", "-t", "errors/symlink:v1", ".", cwd=ctx, check=False)
        assert result.returncode == 1, (line, result.stderr)
        (error,) = result.stderr.strip().splitlines()
        assert error.startswith("error: ") and "Kubefile:2: " in error, error
        assert "not found in the build context" in error, error
        assert "Traceback" not in result.stderr
    # The link itself is copied as a link; what it points at is never read.
    (ctx / "Kubefile").write_text("FROM scratch\nCOPY . .\n")
    digest = run_cli("build", "-q", "-t", "errors/symlink:v1", ".", cwd=ctx).stdout.strip()
    store = ci_home / "store"
    blobs = store / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.split(":")[1]).read_text())
    layer = (blobs / manifest["layers"][0]["digest"].split(":")[1]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["link"].issym() and members["link"].linkname == "../outside"
    assert members["abs-link"].issym() and members["abs-link"].linkname == str(outside)
    assert not any(name.endswith("secret.yaml") for name in members)
    assert b"never-copied" not in gzip.decompress(layer)
