"""``clusterimage version``."""

from __future__ import annotations

import platform
import sys

import typer

from clusterimage import __version__
from clusterimage.cli._common import JsonOutput, print_json


def register(app: typer.Typer) -> None:
    @app.command()
    def version(
        json_output: JsonOutput = False,
    ) -> None:
        """Print the version of clusterimage.

        Example: clusterimage version --json
        """
        data = {
            "version": __version__,
            "python": platform.python_version(),
            "platform": f"{sys.platform}/{platform.machine()}",
        }
        if json_output:
            print_json(data)
        else:
            typer.echo(f"clusterimage {__version__} (python {data['python']}, {data['platform']})")
