"""Image configuration (OCI image config, which Docker's container config shares)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clusterimage.oci import mediatypes as mt
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import _Document, canonical_json, json_object
from clusterimage.oci.platform import Platform


@dataclass(frozen=True)
class ImageConfig(_Document):
    """A config blob; keeps its bytes, so its digest is always that of what is stored."""

    @classmethod
    def parse(
        cls, raw: bytes, media_type: str = mt.OCI_CONFIG, where: str = "config"
    ) -> ImageConfig:
        return cls(raw=raw, media_type=media_type, data=json_object(raw, where))

    @classmethod
    def build(cls, data: dict[str, Any], media_type: str = mt.OCI_CONFIG) -> ImageConfig:
        return cls(raw=canonical_json(data), media_type=media_type, data=data)

    @property
    def container_config(self) -> dict[str, Any]:
        return dict(self.data.get("config") or {})

    @property
    def env(self) -> list[str]:
        return list(self.container_config.get("Env") or [])

    @property
    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    @property
    def cmd(self) -> list[str]:
        return list(self.container_config.get("Cmd") or [])

    @property
    def entrypoint(self) -> list[str]:
        return list(self.container_config.get("Entrypoint") or [])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.container_config.get("Labels") or {})

    @property
    def working_dir(self) -> str:
        return str(self.container_config.get("WorkingDir") or "")

    @property
    def user(self) -> str:
        return str(self.container_config.get("User") or "")

    @property
    def created(self) -> str | None:
        value = self.data.get("created")
        return str(value) if value else None

    @property
    def platform(self) -> Platform:
        # The config's os/architecture/... fields.
        return Platform.from_dict(self.data, "image config")

    @property
    def diff_ids(self) -> list[Digest]:
        rootfs = self.data.get("rootfs") or {}
        return [Digest.parse(d) for d in rootfs.get("diff_ids") or []]

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.data.get("history") or [])
