"""The registry flags are declared once (``with_registry_flags``) and reach a command as one
``RegistryFlags``: the same six options, defaults and parsing in every registry command."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from clusterimage.cli._registry_options import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    NO_FLAGS,
    RegistryCommand,
    RegistryFlags,
    with_registry_flags,
)


def _app(seen: list[RegistryFlags]) -> typer.Typer:
    app = typer.Typer()

    @app.command("get", cls=RegistryCommand)
    @with_registry_flags
    def get(image: str, registry: RegistryFlags = NO_FLAGS, quiet: bool = False) -> None:
        seen.append(registry)
        typer.echo(f"{image} {quiet}")

    @app.command("other")
    def other() -> None:  # a second command, so typer keeps `get` as a subcommand
        pass

    return app


def test_the_flags_arrive_as_one_value_with_their_defaults() -> None:
    seen: list[RegistryFlags] = []
    result = CliRunner().invoke(_app(seen), ["get", "img", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output == "img True\n"
    assert seen == [RegistryFlags(DEFAULT_RETRIES, DEFAULT_TIMEOUT, None, None, None, None)]


def test_every_flag_is_parsed_as_podman_spells_it(tmp_path: Path) -> None:
    seen: list[RegistryFlags] = []
    args = ["get", "img", "--retry", "0", "--timeout", "2.5", "--creds", "me:pw"]
    args += ["--authfile", str(tmp_path / "auth.json"), "--tls-verify", "false"]
    args += ["--cert-dir", str(tmp_path)]
    result = CliRunner().invoke(_app(seen), args)
    assert result.exit_code == 0, result.output
    (flags,) = seen
    assert flags == RegistryFlags(0, 2.5, "me:pw", tmp_path / "auth.json", "false", tmp_path)
    assert "me:pw" not in repr(flags)  # credentials stay out of any debug output
    help_text = CliRunner().invoke(_app([]), ["get", "--help"]).output
    for flag in ("--retry", "--timeout", "--creds", "--authfile", "--tls-verify", "--cert-dir"):
        assert flag in help_text


def test_a_bad_value_is_typer_s_usage_error() -> None:
    result = CliRunner().invoke(_app([]), ["get", "img", "--timeout", "0"])
    assert result.exit_code == 2


def test_a_command_must_take_registry_and_not_declare_a_flag_itself() -> None:
    def without(image: str) -> None:
        pass

    def clashing(image: str, retry: int = 1, registry: RegistryFlags = NO_FLAGS) -> None:
        pass

    with pytest.raises(TypeError, match="declare `registry: RegistryFlags = NO_FLAGS`"):
        with_registry_flags(without)
    with pytest.raises(TypeError, match="declares retry itself"):
        with_registry_flags(clashing)
