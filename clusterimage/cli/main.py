"""The ``clusterimage`` command: global options, error handling, and the command groups."""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from clusterimage.cli import _common
from clusterimage.errors import ClusterImageError
from clusterimage.paths import home_dir

app = typer.Typer(
    name="clusterimage",
    help="Build, store, ship and unpack OCI cluster images from Kubefiles, daemonless.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion; `completion SHELL` prints the same scripts.
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from clusterimage import __version__

        typer.echo(f"clusterimage version {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks and debug output (anywhere on the line)."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help=(
                "The local store (an OCI image layout). Default: $CLUSTERIMAGE_HOME/store. "
                "Only commands that add images create it."
            ),
            envvar="CLUSTERIMAGE_STORE",
        ),
    ] = None,
) -> None:
    _common.STATE.debug = debug
    _common.STATE.store = store


# One module per command group under clusterimage/cli/, each exposing register(app).
# Keep one name per line: several people add to this list.
_COMMAND_MODULES = (
    "version",
    "build",
    "create",
    "images",
    "inspect",
    "tag",
    "rmi",
    "prune",
    "fsck",
    "pull",
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


# Options of the callback above that take a value (which is not the command word).
_GLOBAL_VALUE_OPTIONS = frozenset({"--store"})


def _command_index(argv: list[str]) -> int | None:
    """Where the command word is in ``argv`` (after the global options), if anywhere."""
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in _GLOBAL_VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return index
    return None


def _command_word(argv: list[str]) -> str | None:
    index = _command_index(argv)
    return argv[index] if index is not None else None


def _register_commands(argv: list[str] | None = None) -> None:
    # Each module registers the command of its own name. Importing all of them costs ~80 ms
    # of start-up, so a command line naming one imports just that one (help lists them all).
    word = _command_word(argv) if argv is not None else None
    names = (word,) if word in _COMMAND_MODULES else _COMMAND_MODULES
    for name in names:
        importlib.import_module(f"clusterimage.cli.{name}").register(app)


def _debug_first(args: list[str]) -> list[str]:
    """``--debug`` after the command word means the global option too (as podman takes it):
    moved before the word, where the app reads it. Not past a ``--``, where it is an argument."""
    index = _command_index(args)
    if index is None:
        return args
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[index + 1 : end]:
        return args
    rest = [a for a in args[index:end] if a != "--debug"]
    return ["--debug", *args[:index], *rest, *args[end:]]


_NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _os_error_line(exc: OSError, store: Path, home: Path) -> str:
    """``PATH: reason``; when the store or home folder refuses a write, also how to pick
    another (a read-only home is common in containers and CI runners)."""
    where = f"{exc.filename}: " if exc.filename else ""
    line = f"{where}{exc.strerror or exc}"
    if exc.errno not in _NOT_WRITABLE or not exc.filename:
        return line
    path = Path(os.fsdecode(exc.filename)).absolute()
    choices = (
        (store, "the store", "--store DIR or CLUSTERIMAGE_HOME"),
        (home, "the clusterimage home", "CLUSTERIMAGE_HOME"),
    )
    for folder, what, how in choices:
        folder = folder.absolute()
        if path == folder or folder in path.parents:
            return f"{line}; {what} {folder} is not writable: choose another with {how}"
    return line


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line on stderr."""
    args = _debug_first(list(argv if argv is not None else sys.argv[1:]))
    _register_commands(args)
    debug = "--debug" in args[: _command_index(args)]
    try:
        # Not standalone: typer's own usage errors (unknown option, missing argument, bad
        # choice) come here too, so they print as one `error:` line like ours, not a box.
        # prog_name: the completion protocol (_CLUSTERIMAGE_COMPLETE) and usage lines name
        # the program, also when it runs as `python -m clusterimage`.
        status = app(args=args, prog_name="clusterimage", standalone_mode=False)
    except typer.TyperException as exc:  # the base of click's exceptions that typer vendors
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # typer has printed the help already (it matches by name too)
        if debug:
            traceback.print_exc()
        message = " ".join(exc.format_message().split())
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        _common.error(message)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        _common.error("aborted")
        sys.exit(1)
    except ClusterImageError as exc:
        if debug:
            traceback.print_exc()
        _common.error(str(exc))
        sys.exit(exc.exit_code)
    except OSError as exc:
        if debug:
            raise
        # Disk full, permission denied, ...: the user's environment, not our bug.
        _common.error(_os_error_line(exc, _common.store_dir(), home_dir()))
        sys.exit(1)
    if isinstance(status, int) and status:
        sys.exit(status)  # typer.Exit(code) inside a command, or --help's 0
