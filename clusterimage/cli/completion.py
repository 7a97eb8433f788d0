"""``clusterimage completion SHELL``: the shell completion script, to source or install."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

PROG_NAME = "clusterimage"
# What the scripts set to ask the program for completions (click's protocol, typer's values:
# complete_bash, complete_zsh, complete_fish).
COMPLETE_VAR = "_CLUSTERIMAGE_COMPLETE"


class Shell(enum.StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


def register(app: typer.Typer) -> None:
    @app.command("completion")
    def completion(
        shell: Annotated[Shell, typer.Argument(help="bash, zsh, fish or powershell.")],
    ) -> None:
        """Print the completion script for SHELL: commands, options, and image names from the
        store for the commands that take them (inspect, rmi, tag, push, save, diff, unpack,
        create, merge, images).

        `clusterimage --install-completion` installs it for the current shell instead.

        Examples:

          source <(clusterimage completion bash)

          clusterimage completion zsh > "${fpath[1]}/_clusterimage"

          clusterimage completion fish > ~/.config/fish/completions/clusterimage.fish
        """
        # typer's own scripts (what --install-completion writes): they speak the protocol that
        # typer's completion classes answer, which click's scripts do not.
        from typer._completion_shared import get_completion_script

        typer.echo(
            get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell.value)
        )
