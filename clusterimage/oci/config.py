"""Image configuration (OCI image config, which Docker's container config shares)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clusterimage.errors import ManifestError
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
        return dict(self._typed(self.data, "config", dict, "an object") or {})

    @property
    def env(self) -> list[str]:
        return self._strings("Env")

    @property
    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    @property
    def cmd(self) -> list[str]:
        return self._strings("Cmd")

    @property
    def entrypoint(self) -> list[str]:
        return self._strings("Entrypoint")

    @property
    def labels(self) -> dict[str, str]:
        labels = self._typed(self.container_config, "Labels", dict, "an object", "config.")
        if labels and not all(isinstance(v, str) for v in labels.values()):
            raise ManifestError("image config: config.Labels must be an object of strings")
        return dict(labels or {})

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
        rootfs = self._typed(self.data, "rootfs", dict, "an object") or {}
        diff_ids = self._typed(rootfs, "diff_ids", list, "a list", "rootfs.") or []
        return [Digest.parse(d) for d in diff_ids]

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self._typed(self.data, "history", list, "a list") or [])

    # Shapes are checked where they are read, as Go's json.Unmarshal into typed fields does:
    # a ManifestError, never a TypeError, nor a string read as a list of characters.

    @staticmethod
    def _typed(data: dict[str, Any], key: str, kind: type, what: str, prefix: str = "") -> Any:
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            raise ManifestError(f"image config: {prefix}{key} must be {what}")
        return value

    def _strings(self, key: str) -> list[str]:
        value = self._typed(self.container_config, key, list, "a list of strings", "config.")
        if value and not all(isinstance(v, str) for v in value):
            raise ManifestError(f"image config: config.{key} must be a list of strings")
        return list(value or [])
