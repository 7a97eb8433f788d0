"""``merge``: several cluster images into one, at the layer level.

sealos merges by generating a Sealfile (``FROM scratch``, the merged LABEL/ENV/ENTRYPOINT/CMD,
then ``COPY --from=<image> . .`` per image) and building it, which reads and writes every file
again. The result's files are each image's files laid over the previous ones, in order, which
is what applying the images' layers in order gives. So the merged image here lists the inputs'
layers in order and gets a config merged by sealos's rules (``MergeDockerfileFromImages``):

- labels merged, a later image's value winning; if any image is of type ``rootfs``, every type
  label (``sealos.io.type``, ``apps.sealos.io/type``) says ``rootfs``;
- ENV merged, later winning, PATH dropped (the host's must win), keys sorted as Go's map print;
- ENTRYPOINT and CMD each concatenated in image order;
- history concatenated, so ``inspect`` still tells where each layer came from.

Nothing but the new config and manifest is written: the layers are in the store already. A
layer two inputs share is listed once, at its first place (a shared base). One difference from
the Sealfile's COPY: a whiteout in a later image's layers deletes an earlier image's file
here, where COPY would leave it; cluster images built FROM scratch carry none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clusterimage._humanize import count
from clusterimage.errors import ClusterImageError, UsageError
from clusterimage.image import resolve
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageManifest
from clusterimage.oci.mutate import ImageParts, assemble
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.runtime.command import ROOTFS, TYPE_LABELS
from clusterimage.store import Store
from clusterimage.transports._layout import LayoutSource


@dataclass(frozen=True)
class MergeInput:
    name: str
    manifest: ImageManifest
    config: ImageConfig


@dataclass(frozen=True)
class MergeResult:
    name: Reference
    manifest: Descriptor
    config: Digest
    layers: int
    inputs: list[str]

    def to_dict(self) -> dict[str, object]:
        return {
            "name": str(self.name),
            "digest": str(self.manifest.digest),
            "mediaType": self.manifest.media_type,
            "size": self.manifest.size,
            "config": str(self.config),
            "layers": self.layers,
            "images": self.inputs,
        }


def merge(
    store: Store, names: Sequence[str], target: Reference, platform: Platform | None = None
) -> MergeResult:
    """Merge the store's images ``names`` (in order) into a new image tagged ``target``."""
    if len(names) < 2:
        raise UsageError("merge: give at least two images")
    want = platform or Platform.host()
    inputs = [_read(store, name, want) for name in names]
    manifest, config = merged(inputs)
    with store.writing():
        store.put_bytes(config.raw, config.digest)
        store.put_bytes(manifest.raw, manifest.digest)
        desc = store.describe(manifest)
        store.tag(desc, target)
    return MergeResult(target, desc, config.digest, len(manifest.layers), list(names))


def merged(inputs: Sequence[MergeInput]) -> tuple[ImageManifest, ImageConfig]:
    """The merged manifest and config of ``inputs`` (pure: nothing read or written)."""
    first = inputs[0].config.platform
    for item in inputs[1:]:
        if item.config.platform != first:
            raise ClusterImageError(
                f"merge: {item.name} is for {item.config.platform}, {inputs[0].name} for "
                f"{first}; merge images of one platform"
            )
    layers: list[Descriptor] = []
    diff_ids: list[Digest] = []
    history: list[dict[str, Any]] = []
    seen: set[Digest] = set()
    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    cmd: list[str] = []
    rootfs = False
    for item in inputs:
        config = item.config
        ids = config.diff_ids
        if len(ids) != len(item.manifest.layers):
            raise ClusterImageError(
                f"merge: {item.name}: {count(len(item.manifest.layers), 'layer')} but "
                f"{count(len(ids), 'diff_id')} in its config"
            )
        for layer, diff_id in zip(item.manifest.layers, ids, strict=True):
            if layer.digest in seen:
                continue
            seen.add(layer.digest)
            layers.append(_oci_layer(layer))
            diff_ids.append(diff_id)
        history.extend(config.history)
        labels.update(config.labels)
        if any(config.labels.get(key) == ROOTFS for key in TYPE_LABELS):
            rootfs = True
        env.update(config.env_dict)
        entrypoint.extend(config.entrypoint)
        cmd.extend(config.cmd)
    env.pop("PATH", None)
    if rootfs:
        labels.update(dict.fromkeys(TYPE_LABELS, ROOTFS))
    container: dict[str, Any] = {}
    if env:
        container["Env"] = [f"{key}={env[key]}" for key in sorted(env)]
    if entrypoint:
        container["Entrypoint"] = entrypoint
    if cmd:
        container["Cmd"] = cmd
    if labels:
        container["Labels"] = dict(sorted(labels.items()))
    created = max((i.config.created or "" for i in inputs), default="") or None
    config, manifest = assemble(
        ImageParts(
            platform=first,
            layers=layers,
            diff_ids=diff_ids,
            container=container,
            history=history,
            created=created,
        )
    )
    return manifest, config


def _oci_layer(layer: Descriptor) -> Descriptor:
    """The layer's descriptor in an OCI manifest (a Docker media type named the OCI way)."""
    names = {
        mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
        mt.DOCKER_LAYER: mt.OCI_LAYER,
    }
    media_type = names.get(layer.media_type, layer.media_type)
    return Descriptor(media_type, layer.digest, layer.size, annotations=layer.annotations)


def _read(store: Store, name: str, want: Platform) -> MergeInput:
    source = LayoutSource(store, store.resolve(name))
    image = resolve(source, want, where=f"merge: {name}")
    return MergeInput(name, image.manifest, image.config)
