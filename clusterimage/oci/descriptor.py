"""Content descriptors: what points at a blob or manifest (media type, digest, size, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from clusterimage.errors import InvalidDigest, ManifestError
from clusterimage.oci.digest import Digest
from clusterimage.oci.platform import Platform

# What from_dict models; everything else (``data`` included) travels in ``extra``.
_KNOWN = frozenset(
    {"mediaType", "digest", "size", "annotations", "platform", "urls", "artifactType"}
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    urls: tuple[str, ...] | None = None
    artifact_type: str | None = None
    # Fields we do not model, kept so a descriptor round-trips unchanged.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected an object")
        try:
            digest = Digest.parse(data["digest"])
            size = data["size"]
            media_type = data.get("mediaType", "")
        except KeyError as exc:
            raise ManifestError(f"{where}: missing {exc.args[0]!r}") from None
        except InvalidDigest as exc:
            raise ManifestError(f"{where}: {exc}") from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: invalid size {size!r}")
        if not isinstance(media_type, str):
            raise ManifestError(f"{where}: invalid mediaType")
        # Shapes checked here so that JSON of the wrong shape (a hand-edited index.json) is a
        # ManifestError naming where, never a TypeError from deep inside.
        annotations = data.get("annotations")
        if annotations is not None and not _is_str_map(annotations):
            raise ManifestError(f"{where}: annotations must be an object of strings")
        urls = data.get("urls")
        if urls is not None and not _is_str_list(urls):
            raise ManifestError(f"{where}: urls must be a list of strings")
        artifact_type = data.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ManifestError(f"{where}: invalid artifactType")
        platform = data.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise ManifestError(f"{where}: platform must be an object")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=dict(annotations) if annotations else None,
            platform=(
                Platform.from_dict(platform, f"{where}: platform") if platform is not None else None
            ),
            urls=tuple(urls) if urls else None,
            artifact_type=artifact_type,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out.update(self.extra)
        return out

    def with_annotations(self, annotations: dict[str, str] | None) -> Descriptor:
        return replace(self, annotations=annotations or None, extra=dict(self.extra))

    @property
    def ref_name(self) -> str | None:
        """``org.opencontainers.image.ref.name`` of an OCI layout index entry."""
        return (self.annotations or {}).get(REF_NAME_ANNOTATION)


def _is_str_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
CREATED_ANNOTATION = "org.opencontainers.image.created"
