"""The execution config a stage builds up: OCI image config's ``config`` object plus ``author``.

:class:`ExecConfig` is the frozen result; :class:`ConfigState` is the mutable one the stage walk in
:mod:`clusterimage.kubefile.stages` updates, with Docker's rules (ENV replaces a key in place or
appends, ``--env`` removes and appends, labels overwrite).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: What Docker, BuildKit and buildah put in PATH when the base config has none (also scratch).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ExecConfig:
    """A stage's image config. ``env`` is ordered ``K=V`` strings, as Docker orders them."""

    env: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None
    author: str | None = None

    @classmethod
    def from_image_config(cls, data: Mapping[str, Any]) -> ExecConfig:
        """Read a whole OCI/Docker image config JSON (``{"config": {...}, "author": ...}``)."""
        config = data.get("config") or {}
        return cls(
            env=tuple(str(item) for item in config.get("Env") or ()),
            labels=dict(config.get("Labels") or {}),
            cmd=tuple(config["Cmd"]) if config.get("Cmd") else None,
            entrypoint=tuple(config["Entrypoint"]) if config.get("Entrypoint") else None,
            working_dir=str(config.get("WorkingDir") or ""),
            user=str(config.get("User") or ""),
            exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
            volumes=tuple(sorted(config.get("Volumes") or {})),
            stop_signal=config.get("StopSignal") or None,
            author=data.get("author") or None,
        )

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def to_oci(self) -> dict[str, Any]:
        """The OCI image config ``config`` object; empty fields are left out as Docker does."""
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {volume: {} for volume in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-serialisable and stable (for plans and ``--json``)."""
        return {
            "env": list(self.env),
            "labels": dict(sorted(self.labels.items())),
            "cmd": list(self.cmd) if self.cmd is not None else None,
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "workingDir": self.working_dir,
            "user": self.user,
            "exposedPorts": list(self.exposed_ports),
            "volumes": list(self.volumes),
            "stopSignal": self.stop_signal,
            "author": self.author,
        }


class ConfigState:
    """The mutable config of a stage being walked."""

    def __init__(self, base: ExecConfig) -> None:
        self.env: list[tuple[str, str]] = []
        for item in base.env:
            key, _, value = item.partition("=")
            self.env.append((key, value))
        self._reindex()
        self.labels = dict(base.labels)
        self.cmd = base.cmd
        self.entrypoint = base.entrypoint
        self.working_dir = base.working_dir
        self.user = base.user
        self.exposed_ports = dict.fromkeys(base.exposed_ports)
        self.volumes = dict.fromkeys(base.volumes)
        self.stop_signal = base.stop_signal
        self.author = base.author

    def _reindex(self) -> None:
        # Where each key first is: a list search per ENV made 20,000 ENV lines take seconds. A
        # list, not a dict, because a base image's Env may name a key twice.
        self._index: dict[str, int] = {}
        for index, (key, _) in enumerate(self.env):
            self._index.setdefault(key, index)

    def has_env(self, key: str) -> bool:
        return key in self._index

    def set_env(self, key: str, value: str) -> None:
        """ENV: replace the value in place when the key exists, else append (BuildKit addEnv)."""
        index = self._index.get(key)
        if index is not None:
            self.env[index] = (key, value)
            return
        self._index[key] = len(self.env)
        self.env.append((key, value))

    def override_env(self, key: str, value: str) -> None:
        """``--env``: remove the key wherever it is and append it (what buildah does)."""
        self.env = [(k, v) for k, v in self.env if k != key]
        self.env.append((key, value))
        self._reindex()

    def freeze(self) -> ExecConfig:
        return ExecConfig(
            env=tuple(f"{k}={v}" for k, v in self.env),
            labels=dict(self.labels),
            cmd=self.cmd,
            entrypoint=self.entrypoint,
            working_dir=self.working_dir,
            user=self.user,
            exposed_ports=tuple(sorted(self.exposed_ports)),
            volumes=tuple(sorted(self.volumes)),
            stop_signal=self.stop_signal,
            author=self.author,
        )
