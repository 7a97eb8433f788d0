"""What the runtime runs for a cluster image: its type, its env, and its command line.

Modelled on how sealos mounts an image and runs it (``OCIToImageMount``,
``formalizeImageCommands``, ``FormalizeWorkingCommand``):

- the image type comes from the ``sealos.io.type`` / ``apps.sealos.io/type`` label (default
  ``application``);
- every ENTRYPOINT and CMD element equal to ``/bin/sh`` or ``-c`` is dropped; each remaining element
  is one shell command; ENTRYPOINT first, then CMD;
- ``$(V)``, ``${V}`` and ``$V`` in a command resolve from the image ENV overlaid by the cluster
  env (PATH is left out: the host's PATH must win). ``$(V)`` is not shell syntax (it would run a
  command named V), so it is replaced in the text; ``${V}`` and ``$V`` are left to the shell,
  which reads them from the exports below: the same values, without breaking the command's
  quoting when a value holds quotes or spaces;
- each command becomes ``cd <workdir> && <cmd>``, where the workdir is the cluster's rootfs for
  rootfs and patch images and the application's own folder for applications;
- all are joined with ``; `` and prefixed by ``export K="V";`` per env entry, in image ENV order.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from clusterimage.errors import ClusterImageError

ROOTFS: Final = "rootfs"
PATCH: Final = "patch"
APPLICATION: Final = "application"
IMAGE_TYPES: Final = (ROOTFS, PATCH, APPLICATION)

TYPE_LABELS: Final = ("sealos.io.type", "apps.sealos.io/type")
VERSION_LABELS: Final = ("sealos.io.version", "apps.sealos.io/version")
# Script hooks a rootfs image names in its labels; each runs as `bash <value>` in scripts/.
HOOK_LABELS: Final = (
    "init",
    "clean",
    "check",
    "init-registry",
    "clean-registry",
    "init-cri",
    "clean-cri",
)

# Where sealos mounts images on a node (constants.DefaultClusterRootFsDir + "/data").
DEFAULT_DATA_ROOT: Final = "/var/lib/sealos/data"
DEFAULT_CLUSTER: Final = "default"

_SHELL_WRAPPERS: Final = frozenset({"/bin/sh", "-c"})
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ImageTypeError(ClusterImageError):
    """An image declares a type the runtime does not know."""


def image_type(labels: Mapping[str, str], where: str = "image") -> str:
    """The image type named by the first type label that is set; ``application`` without one."""
    for key in TYPE_LABELS:
        value = labels.get(key)
        if value:
            if value not in IMAGE_TYPES:
                known = ", ".join(IMAGE_TYPES)
                raise ImageTypeError(
                    f"{where}: unknown image type {value!r} in label {key} "
                    f"(expected one of {known})"
                )
            return value
    return APPLICATION


def image_version(labels: Mapping[str, str]) -> str | None:
    for key in VERSION_LABELS:
        value = labels.get(key)
        if value:
            return value
    return None


def hooks(labels: Mapping[str, str]) -> dict[str, str]:
    """The script-hook labels the image sets, in the order the runtime knows them."""
    return {key: labels[key] for key in HOOK_LABELS if labels.get(key)}


def shell_commands(elements: Iterable[str]) -> list[str]:
    """Drop the ``/bin/sh`` and ``-c`` elements that shell form adds; keep the rest, one command
    each. Empty elements are dropped too (sealos would emit an empty command for them)."""
    return [e for e in elements if e not in _SHELL_WRAPPERS and e.strip()]


def merge_env(
    image_env: Iterable[str], cluster_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Image ENV (``K=V`` strings, in order, PATH left out) overlaid by the cluster env: a key the
    cluster sets keeps its place and takes the cluster's value; new keys follow in their order."""
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        if key and key != "PATH":
            merged[key] = value
    for key, value in (cluster_env or {}).items():
        merged[key] = value
    return merged


def expand(text: str, env: Mapping[str, str], *, shell_forms: bool = True) -> str:
    """Expand ``$(V)``, and with ``shell_forms`` also ``${V}`` and ``$V``, from ``env``, once,
    left to right.

    As Kubernetes' expansion (which sealos forks) does: ``$$`` is an escaped ``$``; a reference to
    a name ``env`` does not hold stays as written, so the shell can still resolve it (``$HOME``,
    ``$(date)``); substituted values are not expanded again. ``${V:-x}`` and other shell operators
    are left to the shell.
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "(" or (nxt == "{" and shell_forms):
            close = ")" if nxt == "(" else "}"
            end = text.find(close, i + 2)
            name = text[i + 2 : end] if end != -1 else None
            if name is not None and name in env and (nxt == "(" or _NAME_RE.fullmatch(name)):
                out.append(env[name])
                i = end + 1
            else:
                out.append(c)
                i += 1
            continue
        match = _NAME_RE.match(text, i + 1) if shell_forms else None
        if match and match.group() in env:
            out.append(env[match.group()])
            i = match.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def workdir_for(
    kind: str,
    *,
    cluster: str = DEFAULT_CLUSTER,
    app_name: str = "",
    data_root: str = DEFAULT_DATA_ROOT,
) -> str:
    """Where the runtime runs the image's commands: the cluster's rootfs for rootfs and patch
    images, ``applications/<name>/workdir`` for applications (sealos's GetRootWorkDir and
    GetAppWorkDir)."""
    base = f"{data_root.rstrip('/')}/{cluster}"
    if kind in (ROOTFS, PATCH):
        return f"{base}/rootfs"
    return f"{base}/applications/{app_name}/workdir"


def _quote_value(value: str) -> str:
    # Inside double quotes the shell still interprets \ " $ and `: escape them so the exported
    # value is exactly the image's.
    escaped = re.sub(r'([\\"$`])', r"\\\1", value)
    return f'"{escaped}"'


@dataclass(frozen=True)
class RuntimeCommand:
    """Everything ``create`` reports about how the runtime would run one image."""

    type: str
    version: str | None
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def commands(self) -> list[str]:
        """Each command as it runs: ``cd <workdir> && <cmd>``, ENTRYPOINT first."""
        cd = f"cd {shlex.quote(self.workdir)} && "
        return [cd + c for c in (*self.entrypoint, *self.cmd)]

    @property
    def command_line(self) -> str:
        """The whole line: ``export K="V";`` per env entry, then the commands joined with ``; ``
        (only the exports when the image has no command, as rootfs images often do)."""
        parts = [f"export {k}={_quote_value(v)};" for k, v in self.env.items()]
        if self.commands:
            parts.append("; ".join(self.commands))
        return " ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "version": self.version,
            "env": dict(self.env),
            "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd),
            "workdir": self.workdir,
            "labels": dict(self.labels),
            "hooks": hooks(self.labels),
            "commands": self.commands,
            "commandLine": self.command_line,
        }


def runtime_command(
    *,
    env: Iterable[str],
    entrypoint: Iterable[str],
    cmd: Iterable[str],
    labels: Mapping[str, str],
    cluster_env: Mapping[str, str] | None = None,
    cluster: str = DEFAULT_CLUSTER,
    app_name: str = "",
    workdir: str | None = None,
    data_root: str = DEFAULT_DATA_ROOT,
    where: str = "image",
) -> RuntimeCommand:
    """Build the :class:`RuntimeCommand` for an image config's Env, Entrypoint, Cmd and Labels."""
    kind = image_type(labels, where)
    merged = merge_env(env, cluster_env)
    return RuntimeCommand(
        type=kind,
        version=image_version(labels),
        env=merged,
        entrypoint=[expand(c, merged, shell_forms=False) for c in shell_commands(entrypoint)],
        cmd=[expand(c, merged, shell_forms=False) for c in shell_commands(cmd)],
        workdir=workdir
        if workdir is not None
        else workdir_for(kind, cluster=cluster, app_name=app_name, data_root=data_root),
        labels=dict(labels),
    )
