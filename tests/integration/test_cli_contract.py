"""What every image and build command promises, whatever it does: ``--help`` with examples, bad
usage as one ``error:`` line (exit 2, no traceback, nothing on stdout), the ``clusterimage``
console script and ``python -m clusterimage`` alike, and ``--json`` on stdout with status on
stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest

from clusterimage import __version__
from tests.conftest import run_cli
from tests.fixtures.oci_layout import OciImage, make_oci_layout

pytestmark = pytest.mark.integration

# Every command: those of issues 2 (image store), 3 (builds) and 4 (registries).
COMMANDS = (
    "version",
    "images",
    "inspect",
    "tag",
    "rmi",
    "prune",
    "fsck",
    "pull",
    "build",
    "create",
    "login",
    "logout",
    "push",
    "copy",
    "tags",
    "save",
    "load",
    "merge",
    "registry",
    "unpack",
    "diff",
    "bundle",
    "manifest",
    "completion",
)


def test_the_contract_covers_every_registered_command() -> None:
    from clusterimage.cli.main import _COMMAND_MODULES

    assert set(COMMANDS) == set(_COMMAND_MODULES)


# Run in a subprocess: registering every command mutates the app this process may share.
_LEAVES = """
import json, typer.core, typer.main
from clusterimage.cli.main import _register_commands, app

def leaves(group, prefix=""):
    for name, command in group.commands.items():
        if isinstance(command, typer.core.TyperGroup):
            yield from leaves(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command

_register_commands()
"""

_TLS_VERIFY_CHECK = (
    _LEAVES
    + """
from clusterimage.cli._registry_options import BOOL_FLAGS, RegistryCommand
found = {
    name: isinstance(command, RegistryCommand)
    for name, command in leaves(typer.main.get_group(app))
    if any(set(getattr(p, "opts", ())) & BOOL_FLAGS for p in command.params)
}
print(json.dumps(found))
"""
)


def test_every_command_with_tls_verify_takes_it_as_podman_spells_it() -> None:
    # `--tls-verify false` and a bare `--tls-verify` parse only through RegistryCommand.
    out = subprocess.run(
        [sys.executable, "-c", _TLS_VERIFY_CHECK], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out)
    assert len(found) >= 12 and "create" in found and "manifest push" in found
    assert [name for name, ok in found.items() if not ok] == []


def test_top_level_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.stderr == ""
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_a_runnable_looking_example(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    assert "Example" in text, text
    examples = text[text.index("Example") :]
    assert f"clusterimage {command}" in examples, text


_LEAF_HELP_CHECK = (
    _LEAVES
    + """
from typer.testing import CliRunner
found = {}
for name, _ in leaves(typer.main.get_group(app)):
    result = CliRunner().invoke(app, [*name.split(), "--help"])
    text = result.output
    found[name] = {
        "exit": result.exit_code,
        "error": repr(result.exception) if result.exception else None,
        "example": "Example" in text and f"clusterimage {name}" in text[text.index("Example"):],
    }
print(json.dumps(found))
"""
)


def test_every_subcommand_has_help_with_an_example() -> None:
    # `registry copy --help` once died on rich markup ("[/PREFIX]" read as a closing tag): the
    # top-level parametrization above never opened a subcommand's help. One subprocess for all.
    out = subprocess.run(
        [sys.executable, "-c", _LEAF_HELP_CHECK], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(out)
    assert len(found) >= 30 and "registry copy" in found and "manifest annotate" in found
    bad = {name: got for name, got in found.items() if got["exit"] != 0 or not got["example"]}
    assert bad == {}


@pytest.mark.parametrize(
    "args",
    [
        ("no-such-command",),
        ("--store",),
        ("images", "--no-such-flag"),
        ("inspect", "-t", "bogus", "nginx"),
        ("inspect",),
        ("tag", "only-one"),
        ("rmi", "--force-everything"),
        ("prune", "extra"),
        ("fsck", "--json", "extra"),
        ("version", "extra"),
        ("pull",),
        ("build", "--engine"),
        ("build", "--timestamp", "yesterday", "."),
        ("create",),
        ("login",),
        ("logout", "registry.example.com", "--all"),
        ("push", "a", "b", "c"),
        ("copy", "only-one"),
        ("tags", "--retry", "-1", "localhost:5000/app"),
        ("pull", "--tls-verify=maybe", "app:v1"),
        ("copy", "--src-tls-verify=maybe", "oci:a", "oci:b"),
        ("push", "--jobs", "0", "app:v1"),
        ("completion", "tcsh"),
    ],
    ids=" ".join,
)
def test_usage_errors_are_one_line_exit_2(args: tuple[str, ...], ci_home: Path) -> None:
    result = run_cli(*args, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert list(ci_home.iterdir()) == []  # bad usage writes nothing


def test_debug_shows_the_traceback_of_a_usage_error(ci_home: Path) -> None:
    result = run_cli("--debug", "tag", "only-one", check=False)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Missing argument")


def test_debug_after_the_command_word_is_taken_as_the_global_option(ci_home: Path) -> None:
    # Issue 12: podman users put --debug anywhere.
    result = run_cli("inspect", "nope:v1", "--debug", check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "image not known" in result.stderr
    quiet = run_cli("inspect", "nope:v1", check=False)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr


def test_version_is_a_global_option_too() -> None:
    result = run_cli("--version")
    assert result.stdout.startswith("clusterimage version ") and result.returncode == 0


def test_an_error_line_does_not_import_rich(ci_home: Path) -> None:
    # rich costs ~12 ms to import; a command that only reports a failure off a terminal
    # writes its line directly (rich draws progress bars and colours on terminals only).
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "clusterimage", "inspect", "nothing-here"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("error: nothing-here: image not known")
    assert not [line for line in lines if line.startswith("import time:") and "rich" in line]


def test_console_script_and_module_agree() -> None:
    script = Path(sys.executable).with_name("clusterimage")
    assert script.is_file(), "pip install -e . installs the clusterimage console script"
    via_script = subprocess.run(
        [str(script), "version", "--json"], capture_output=True, text=True, check=True
    )
    via_module = run_cli("version", "--json")
    assert json.loads(via_script.stdout) == json.loads(via_module.stdout)
    data = json.loads(via_module.stdout)
    assert set(data) == {"version", "python", "platform"}
    assert data["version"] == __version__ == installed_version("clusterimage")
    assert data["python"] == ".".join(map(str, sys.version_info[:3]))
    plain = run_cli("version").stdout
    assert plain.startswith(f"clusterimage {__version__} (python {data['python']}")


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(
        tmp_path / "src",
        ref="docker.io/library/app:v1",
        layers=({"etc/a.conf": b"a=1\n"}, {"etc/b.conf": b"b=2\n"}),
    )


def test_fsck_of_a_corrupt_store_in_json_and_text(ci_home: Path, image: OciImage) -> None:
    pulled = run_cli("pull", image.transport_ref)
    assert pulled.stdout.strip() == image.manifest.digest  # result on stdout
    assert "Stored docker.io/library/app:v1" in pulled.stderr  # status on stderr
    blobs = ci_home / "store" / "blobs" / "sha256"
    first, second = (layer.digest for layer in image.layers)
    for digest in (first, second):
        path = blobs / digest.split(":")[1]
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))

    as_json = run_cli("fsck", "--json", check=False)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["blobs"] == 4 and report["images"] == 1
    corrupt = {p["digest"] for p in report["problems"] if p["kind"] == "corrupt-blob"}
    assert corrupt == {first, second}
    assert all(
        p["message"].startswith(f"blob {p['digest']} is corrupt") for p in report["problems"]
    )

    as_text = run_cli("fsck", check=False)
    assert as_text.returncode == 1 and as_text.stdout == ""
    lines = as_text.stderr.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines)
    assert any(first in line for line in lines) and any(second in line for line in lines)
    assert "Traceback" not in as_text.stderr


def test_inspect_type_image_is_the_default(ci_home: Path, image: OciImage) -> None:
    run_cli("pull", "-q", image.transport_ref)
    default = run_cli("inspect", "app:v1")
    explicit = run_cli("inspect", "-t", "image", "app:v1")
    assert json.loads(explicit.stdout) == json.loads(default.stdout)
    assert explicit.stderr == ""


# What a pipe or a CI log sees: no terminal, so rich falls back to 80 columns (run_cli sets
# COLUMNS=200 for tables; these tests take that away).
_NO_TERMINAL: dict[str, str | None] = {"COLUMNS": None, "NO_COLOR": None}


def test_an_os_error_is_one_line_however_long_its_path(image: OciImage, tmp_path: Path) -> None:
    blocker = tmp_path / ("a-long-folder-name-" * 6) / "file"
    blocker.parent.mkdir()
    blocker.write_text("not a folder\n")
    store = blocker / "store"
    result = run_cli("--store", store, "pull", image.transport_ref, check=False, env=_NO_TERMINAL)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: {store}: Not a directory\n"


def test_status_lines_are_one_line_however_long(ci_home: Path, image: OciImage) -> None:
    name = f"registry.example.com/{'team-' * 12}apps/app:v1"
    pulled = run_cli("pull", image.transport_ref, "--name", name, env=_NO_TERMINAL)
    assert pulled.stderr == f"Stored {name} (3 blobs copied, 0 already present)\n"


def test_warnings_print_paths_verbatim(tmp_path: Path, image: OciImage) -> None:
    # rich markup in a message (a path with `[/b]` in it) is text, not a style to apply.
    store = tmp_path / "odd[/b]" / "store"
    run_cli("--store", store, "pull", "-q", image.transport_ref)
    run_cli("--store", store, "pull", "-q", image.transport_ref, "--name", "other:v1")
    manifest = store / "blobs" / "sha256" / image.manifest.digest.split(":")[1]
    manifest.write_bytes(b"{damaged")  # so gc after rmi refuses, and rmi warns
    result = run_cli("--store", store, "rmi", "other:v1", env=_NO_TERMINAL)
    assert result.stdout == "Untagged: docker.io/library/other:v1\n"
    assert result.stderr.startswith(f"warning: {store}: gc removes nothing while a manifest")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_pull_json_has_the_same_keys_whether_it_pulled_or_not(
    ci_home: Path, image: OciImage
) -> None:
    pulled = json.loads(run_cli("pull", "--json", image.transport_ref).stdout)
    kept = json.loads(run_cli("pull", "--json", "--policy", "missing", image.transport_ref).stdout)
    assert set(pulled) == set(kept)
    assert (pulled["pulled"], kept["pulled"]) == (True, False)
    assert pulled["digest"] == kept["digest"] == image.manifest.digest
    assert (kept["mediaType"], kept["size"]) == (pulled["mediaType"], pulled["size"])
    assert (kept["blobsCopied"], kept["bytesCopied"]) == (0, 0)


def test_a_transport_that_does_not_load_is_named_unsupported_and_the_others_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clusterimage import transports
    from clusterimage.errors import TransportError

    monkeypatch.setitem(transports._MODULES, "planned", "clusterimage.transports.planned")
    with pytest.raises(TransportError) as caught:
        transports.parse("planned:/x")
    line = str(caught.value)
    assert line.startswith("transport 'planned' is not supported"), line
    supported = set(line.split("(supported: ", 1)[1].rstrip(")").split(", "))
    assert "planned" not in supported
    assert {"docker", "oci", "store", "oci-archive", "docker-archive"} <= supported


def test_an_error_quoting_foreign_text_stays_one_printable_line(tmp_path: Path) -> None:
    # A layout's ref names (or a registry's error message) are someone else's text: a line
    # break or a terminal escape in them must not split our error line or reach the terminal.
    layout = make_oci_layout(tmp_path / "odd", ref="v1\nerror: forged\x1b[31m").layout
    result = run_cli("inspect", f"oci:{layout}:nope", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"error: oci:{layout}:nope: no image named 'nope' (ref names: v1 error: forged\\x1b[31m)\n"
    )


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_logout_of_a_registry_never_logged_in_fails_in_json_too(
    json_flag: tuple[str, ...], tmp_path: Path
) -> None:
    authfile = tmp_path / "auth.json"
    result = run_cli("logout", *json_flag, "--authfile", authfile, "127.0.0.1:5000", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: not logged in to 127.0.0.1:5000\n"
