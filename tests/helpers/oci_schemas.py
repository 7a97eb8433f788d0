"""Validate OCI JSON documents against the image-spec schemas in ../shared/oci-schemas.

The schemas are draft-04 and their ``id``s do not match their relative ``$ref``s, so references
resolve through a ``referencing.Registry`` that loads a schema file by its base name.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMA_DIR = Path(
    os.environ.get("CLUSTERIMAGE_OCI_SCHEMAS")
    or Path(__file__).resolve().parents[3] / "shared" / "oci-schemas"
)

_BY_MEDIA_TYPE = {
    "application/vnd.oci.image.manifest.v1+json": "image-manifest-schema.json",
    "application/vnd.docker.distribution.manifest.v2+json": "image-manifest-schema.json",
    "application/vnd.oci.image.index.v1+json": "image-index-schema.json",
    "application/vnd.docker.distribution.manifest.list.v2+json": "image-index-schema.json",
    "application/vnd.oci.image.config.v1+json": "config-schema.json",
    "application/vnd.docker.container.image.v1+json": "config-schema.json",
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text())
    return data


def _retrieve(uri: str) -> Resource[Any]:
    return Resource.from_contents(_load(uri.rsplit("/", 1)[-1]), default_specification=DRAFT4)


@cache
def validator(schema_file: str) -> Draft4Validator:
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return Draft4Validator(_load(schema_file), registry=registry)


def schema_errors(document: Any, media_type: str) -> list[str]:
    """Schema violations of ``document`` (a parsed JSON value) for ``media_type``.

    The manifest schema's "at least one layer" is only a recommendation of the spec text, so it
    is not reported.
    """
    errors = []
    for error in validator(_BY_MEDIA_TYPE[media_type]).iter_errors(document):
        if list(error.absolute_path) == ["layers"] and error.validator == "minItems":
            continue
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        errors.append(f"{where}: {error.message}")
    return errors


def layout_errors(document: Any) -> list[str]:
    return [e.message for e in validator("image-layout-schema.json").iter_errors(document)]
