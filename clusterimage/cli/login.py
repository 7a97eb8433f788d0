"""``clusterimage login``: check credentials against a registry and store them (auth.json, 0600)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from clusterimage.cli._common import JsonOutput, print_json
from clusterimage.cli._registry_options import (
    AuthFile,
    CertDir,
    RegistryCommand,
    TlsVerify,
    parse_bool,
)
from clusterimage.errors import UsageError


def _read_password_stdin() -> str:
    data = sys.stdin.read()
    # `echo $PASSWORD | ...` adds a newline that is not part of the password.
    return data.rstrip("\r\n")


def _ask(prompt: str, *, secret: bool) -> str:
    if not sys.stdin.isatty():
        what = "password" if secret else "user name"
        flag = "-p/--password-stdin" if secret else "-u"
        raise UsageError(f"login: no {what} given ({flag}) and no terminal to ask for one")
    return getpass.getpass(prompt) if secret else input(prompt)


def register(app: typer.Typer) -> None:
    @app.command("login", cls=RegistryCommand)
    def login(
        registry: Annotated[
            str,
            typer.Argument(
                metavar="REGISTRY", help="host[:port] (or host/namespace for a scoped entry)."
            ),
        ],
        username: Annotated[
            str | None, typer.Option("--username", "-u", metavar="USER", help="User name.")
        ] = None,
        password: Annotated[
            str | None,
            typer.Option(
                "--password",
                "-p",
                metavar="PASSWORD",
                help="Password (visible to other users in the process list: prefer "
                "--password-stdin).",
            ),
        ] = None,
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the password from stdin.")
        ] = False,
        authfile: AuthFile = None,
        tls_verify: TlsVerify = None,
        cert_dir: CertDir = None,
        json_output: JsonOutput = False,
    ) -> None:
        """Log in to a registry: the credentials are checked, then saved (mode 0600).

        They go to --authfile, else $REGISTRY_AUTH_FILE, else
        $XDG_RUNTIME_DIR/containers/auth.json (~/.config/containers/auth.json without it), where
        podman, buildah and skopeo find them too.

        Examples:

          clusterimage login -u me registry.example.com

          echo "$TOKEN" | clusterimage login -u ci --password-stdin ghcr.io

          clusterimage login --cert-dir ./certs -u admin 10.0.0.5:5000
        """
        from clusterimage.remote import credentials
        from clusterimage.remote.client import ClientOptions, Registry
        from clusterimage.remote.tls import TlsSettings

        if password is not None and password_stdin:
            raise UsageError("login: use either --password or --password-stdin")
        key = credentials.registry_of(registry)
        host = key.split("/", 1)[0]
        if username is None:
            username = _ask("Username: ", secret=False).strip()
        if not username:
            raise UsageError("login: the user name is empty")
        if password_stdin:
            password = _read_password_stdin()
        elif password is None:
            password = _ask("Password: ", secret=True)
        if not password:
            raise UsageError("login: the password is empty")
        creds = credentials.Credentials(username, password)
        options = ClientOptions(
            tls=TlsSettings(verify=parse_bool(tls_verify), cert_dir=cert_dir),
            auth_file=authfile,
        )
        with Registry(host, options) as client:
            client.use_credentials(creds)
            client.check_login()
        path, where = credentials.save(key, creds, auth_file=authfile)
        if json_output:
            print_json({"registry": key, "username": username, "authfile": str(path)})
            return
        typer.echo("Login Succeeded!")
        if where != str(path):
            typer.echo(f"(stored by {where})", err=True)
