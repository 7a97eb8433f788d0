"""The native engine: builds Kubefiles without RUN, with no daemon and no root.

For each used stage, in order: the stage starts from scratch, another stage, or an image in the
store (copied into it when missing). Its filesystem is an in-memory :class:`FsTree`; each COPY or
ADD (and each WORKDIR that creates its folder) computes its layer's entries on trees
(:mod:`clusterimage.build.copier`) and writes them with the deterministic layer writer straight
into a store blob writer: one streaming pass, no temporary copy. The build cache is asked first:
when the parent layers, the instruction and the content of every entry are unchanged, the layer
from the last build is reused without hashing a file again. A COPY that brings ``registry/``
(``COPY registry registry``, ``COPY . .``) is written as one layer per embedded image, at most
32 (:mod:`clusterimage.images.layering`), each cached on its own, so a changed image changes its
layer only and the others keep their digests (deltas, pushes); to split it, the tag links and
manifests under ``registry/`` (small files) are read on every build, cached or not.

The target stage's layers, the plan's final config (Env, Cmd, Entrypoint, Labels, WorkingDir,
User, ExposedPorts, Volumes, StopSignal), history entries and platform become an OCI config and
manifest, tagged with every ``-t`` reference. ``created`` and every mtime are the build timestamp,
so the same inputs give the same manifest digest anywhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterimage._humanize import count, human_size
from clusterimage.build import baseimage
from clusterimage.build.archive import UNPACK_RULES, read_archive
from clusterimage.build.cache import (
    BuildCache,
    CachedLayer,
    chain_id,
    entries_digest,
    layer_key,
    link_groups,
)
from clusterimage.build.context import BuildContext, Overlay
from clusterimage.build.copier import (
    CopyRequest,
    ModeSpec,
    Ownership,
    Source,
    apply,
    plan_copy,
    plan_mkdir,
    resolve_chown,
    resolve_sources,
)
from clusterimage.build.engine import BuildRequest
from clusterimage.build.fstree import Content, FsTree, Node
from clusterimage.build.layer import open_content, write_layer
from clusterimage.build.plan import (
    REGISTRY_DIR,
    BuildPlan,
    ConfigStep,
    CopyStep,
    RunStep,
    StagePlan,
)
from clusterimage.errors import BuildError, ClusterImageError
from clusterimage.images import layering
from clusterimage.kubefile.instructions import Location
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.mutate import ImageParts, assemble
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference

_NOP = "/bin/sh -c #(nop) "


def _contents(entries: dict[str, Node]) -> dict[int, Content]:
    """The distinct file contents of a layer's entries (hard links share one)."""
    return {
        id(node.content): node.content
        for node in entries.values()
        if node.kind == "file" and node.content is not None
    }


def _registry_groups(entries: dict[str, Node]) -> list[layering.Group] | None:
    """The layers a COPY of registry/ splits into (None: it stays one layer)."""

    def read(path: str) -> bytes | None:
        node = entries.get(path)
        content = node.content if node is not None else None
        if content is None or content.path is None or content.size > layering.MANIFEST_LIMIT:
            return None
        try:  # opened as the layer writer opens it: confined, checked to be the walked file
            with os.fdopen(open_content(content, f"/{path}"), "rb") as f:
                return f.read(layering.MANIFEST_LIMIT + 1)
        except (OSError, BuildError):
            return None

    kinds = {path: node.kind for path, node in entries.items()}
    return layering.group_paths(kinds, read, max_layers=layering.MAX_IMAGE_LAYERS)


def rfc3339(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _oci_layer(desc: Descriptor) -> Descriptor:
    """A base image's Docker layer type becomes its OCI twin (same bytes), as containers/image
    does when it writes an OCI manifest; foreign layers keep theirs."""
    if desc.media_type in (mt.DOCKER_LAYER_GZIP, mt.DOCKER_LAYER):
        media_type = mt.layer_media_type(mt.layer_compression(desc.media_type))
        return Descriptor(media_type, desc.digest, desc.size, desc.annotations, urls=desc.urls)
    return desc


@dataclass
class _State:
    """A stage being built: its layers so far and its filesystem (loaded when first needed)."""

    layers: list[Descriptor] = field(default_factory=list)
    diff_ids: list[Digest] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    _tree: FsTree | None = None
    _loader: Callable[[], FsTree] | None = None

    @property
    def tree(self) -> FsTree:
        if self._tree is None:
            self._tree = self._loader() if self._loader is not None else FsTree()
        return self._tree

    def derive(self) -> _State:
        """The start of a stage FROM this one."""
        tree = self._tree.copy() if self._tree is not None else None
        return _State(
            list(self.layers), list(self.diff_ids), list(self.history), tree, self._loader
        )


class NativeEngine:
    name = "native"

    def build(self, plan: BuildPlan, request: BuildRequest) -> Descriptor:
        if plan.missing_sources:
            raise plan.missing_sources[0].error()
        run = _Build(plan, request)
        try:
            return run.execute()
        finally:
            run.close()


class _Build:
    def __init__(self, plan: BuildPlan, request: BuildRequest) -> None:
        self.plan = plan
        self.request = request
        self.store = request.store
        self.cache = BuildCache(request.home / "cache", enabled=request.use_cache)
        self.listings = request.home / "cache" / "listings"
        self.staging = request.home / "tmp" / f"build-{os.getpid()}-{secrets.token_hex(4)}"
        overlay = Overlay(REGISTRY_DIR, request.registry_dir)
        self.context = BuildContext.open(
            Path(plan.context), Path(plan.kubefile), (overlay,), ignore=request.ignore
        )
        self.stat_cache = self.cache.stat_cache(self.context.root)
        self.states: dict[int, _State] = {}
        self.created = rfc3339(request.timestamp)
        self.tags = [Reference.parse(tag) for tag in request.tags]
        self._counter = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stat_cache.save()
        shutil.rmtree(self.staging, ignore_errors=True)

    def _scratch_dir(self, what: str) -> Path:
        self._counter += 1
        path = self.staging / f"{what}-{self._counter}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- the build --------------------------------------------------------------------------

    def execute(self) -> Descriptor:
        plan, request = self.plan, self.request
        if request.discovered_images and not plan.copies_registry:
            request.emit(
                "warning",
                f"{plan.kubefile}: {count(len(request.discovered_images), 'image')} found for "
                "registry/, but the Kubefile copies neither registry/ nor the whole context "
                "(COPY registry registry): they will not be in the image",
            )
        stages = plan.stages_to_build()
        total = sum(1 + len(stage.steps) for stage in stages)
        number = 0
        with self.store.writing():
            for stage in stages:
                number += 1
                request.emit(
                    "stage",
                    f"STEP {number}/{total}: FROM {stage.base.name}"
                    + (f" AS {stage.name}" if stage.name else ""),
                    stage=stage.index,
                )
                state = self._start(stage)
                for step in stage.steps:
                    number += 1
                    request.emit("step", f"STEP {number}/{total}: {step.created_by}")
                    self._step(stage, state, step)
                self.states[stage.index] = state
            return self._commit(self.states[plan.target], plan.target_stage)

    def _start(self, stage: StagePlan) -> _State:
        base = stage.base
        if base.kind == "scratch":
            return _State(_tree=FsTree())
        if base.kind == "stage":
            assert base.stage_index is not None
            return self.states[base.stage_index].derive()
        image = self._image(base.reference or base.name, stage.platform, stage.location)
        history = list(image.config.history)
        diff_ids = image.config.diff_ids
        layers = [_oci_layer(layer) for layer in image.manifest.layers]
        if len(diff_ids) != len(layers):
            raise BuildError(
                f"base image {image.name}: its config lists {count(len(diff_ids), 'layer')}, "
                f"its manifest {len(layers)}"
            )
        return _State(layers, list(diff_ids), history, None, lambda: self._image_tree(image))

    def _image(self, name: str, platform: Platform, location: Location) -> baseimage.Image:
        try:
            return self.request.images.get(name, platform)
        except ClusterImageError as exc:
            raise location.error(str(exc)) from None

    def _image_tree(self, image: baseimage.Image) -> FsTree:
        return baseimage.image_tree(self.store, image, self.listings)

    def _step(self, stage: StagePlan, state: _State, step: CopyStep | RunStep | ConfigStep) -> None:
        if isinstance(step, RunStep):  # select_engine refuses these; kept for direct callers
            raise step.location.error("RUN needs the buildah engine (--engine buildah, or auto)")
        if isinstance(step, CopyStep):
            self._copy(stage, state, step)
            return
        if step.mkdir is not None:
            ownership = self._ownership(state, step.user, step.location) if step.user else None
            entries = plan_mkdir(state.tree, step.mkdir, ownership or Ownership())
            layer, _ = self._layer(state, entries, step.created_by)
            self._add_layer(state, layer, _NOP + step.created_by)
            return
        state.history.append(
            {"created": self.created, "created_by": _NOP + step.created_by, "empty_layer": True}
        )

    # -- COPY / ADD -------------------------------------------------------------------------

    def _copy(self, stage: StagePlan, state: _State, step: CopyStep) -> None:
        if step.remote:
            raise step.location.error(
                f"ADD {step.remote[0]}: downloading URLs is not supported (builds are offline); "
                "download the file into the context and ADD or COPY it from there"
            )
        in_context = step.from_context
        if step.from_stage is not None:
            source_tree = self.states[step.from_stage].tree
            where = f"stage {self.plan.stages[step.from_stage].display_name}"
        elif step.from_image is not None:
            image = self._image(step.from_image, stage.platform, step.location)
            source_tree = self._image_tree(image)
            where = f"image {step.from_image}"
        else:
            source_tree = self.context.tree
            where = "the build context"
        sources = resolve_sources(
            source_tree,
            step.sources,
            keyword=step.instruction,
            where=where,
            error=step.location.error,
            in_context=in_context,
        )
        sources += self._inline_sources(step)
        ownership = self._ownership(state, step.chown, step.location) if step.chown else None
        chmod = ModeSpec.parse(step.chmod, step.location.error) if step.chmod else None
        request = CopyRequest(
            step.instruction,
            sources,
            step.dest_path,
            "/",
            ownership or Ownership(),
            chmod,
            keep_owner=not in_context,
            several=len(sources) > 1,
        )
        # ADD from the context: archives as the files they are key the layer (and name it in the
        # history, as Docker's "ADD file:<digest>"); they are unpacked only when it is built.
        entries = plan_copy(request, source_tree, state.tree)
        unpacked = None
        if step.is_add and in_context:
            unpack = self._unpacker(step)
            unpacked = functools.partial(plan_copy, request, source_tree, state.tree, unpack=unpack)
        # registry/ holds compressed blobs already (DESIGN.md, Layers): not compressed again.
        registry_only = in_context and all(
            s.path == REGISTRY_DIR or s.path.startswith(f"{REGISTRY_DIR}/") for s in sources
        )
        compression = self.request.registry_compression if registry_only else None
        kind = "multi" if len(sources) > 1 else ("dir" if sources[0].node.is_dir else "file")
        # Split wherever the copy brings a registry/ folder: `COPY . .` does in half the
        # corpus, and as one layer its images would be compressed again and never shared.
        groups = _registry_groups(entries) if in_context and unpacked is None else None
        if groups is not None:
            self._copy_groups(state, step, entries, groups, kind, compression)
            return
        layer, digest = self._layer(state, entries, step.created_by, compression, unpacked)
        created_by = (
            f"{_NOP}{step.instruction} {kind}:{digest.partition(':')[2]} in {step.dest_path}"
        )
        self._add_layer(state, layer, created_by)

    def _copy_groups(
        self,
        state: _State,
        step: CopyStep,
        entries: dict[str, Node],
        groups: list[layering.Group],
        kind: str,
        compression: str | None,
    ) -> None:
        """A COPY that brings registry/ as one layer per embedded image (see layering): an
        image that is the same in two builds keeps its layer's digest, so deltas and registries
        share it. Every group is keyed on the step's parent, not on the groups before it: a
        changed image rebuilds its own layer only.

        An image's layer holds compressed blobs: it gets the registry's compression (none by
        default). The other files (all of a `COPY . .` but registry/) get ``compression``."""
        parent = chain_id(state.diff_ids)
        for group in groups:
            part = {path: entries[path] for path in group.paths}
            instruction = f"{step.created_by} ({group.label})"
            chosen = self.request.registry_compression if group.images else compression
            layer, digest = self._layer(state, part, instruction, chosen, parent=parent)
            created_by = (
                f"{_NOP}{step.instruction} {kind}:{digest.partition(':')[2]} in "
                f"{step.dest_path} ({group.label})"
            )
            self._add_layer(state, layer, created_by)

    def _inline_sources(self, step: CopyStep) -> list[Source]:
        out: list[Source] = []
        for inline in step.inline_files:
            folder = self._scratch_dir("inline")
            path = folder / "data"
            data = inline.data().encode()
            path.write_bytes(data)
            content = Content(path, len(data), digest=str(Digest.of(data)))
            out.append(Source(inline.name, Node("file", 0o644, content=content), inline.name))
        return out

    def _unpacker(self, step: CopyStep) -> Callable[[str, Node], FsTree | None]:
        def unpack(path: str, node: Node) -> FsTree | None:
            if node.content is None or node.content.path is None:
                return None
            return read_archive(
                node.content, self._scratch_dir("add"), label=path, error=step.location.error
            )

        return unpack

    def _ownership(self, state: _State, spec: str, location: Location) -> Ownership:
        def read(path: str) -> str | None:
            return baseimage.read_text(self.store, state.tree, path, self._scratch_dir("ids"))

        return resolve_chown(spec, read, location.error)

    # -- layers -----------------------------------------------------------------------------

    def _has_blob(self, desc: Descriptor) -> bool:
        try:
            return (
                self.store.has_blob(desc.digest) and self.store.blob_size(desc.digest) == desc.size
            )
        except ClusterImageError:
            return False

    def _key(
        self,
        state: _State,
        entries: dict[str, Node],
        instruction: str,
        compression: str,
        unpacks: bool,
        parent: str | None = None,
    ) -> tuple[str, str]:
        digest = entries_digest(entries)
        key = layer_key(
            parent_chain=chain_id(state.diff_ids) if parent is None else parent,
            instruction=instruction,
            entries=digest,
            links=link_groups(entries),
            compression=compression,
            timestamp=self.request.timestamp,
            unpack=UNPACK_RULES if unpacks else None,
        )
        return key, digest

    def _layer(
        self,
        state: _State,
        entries: dict[str, Node],
        instruction: str,
        compression: str | None = None,
        unpacked: Callable[[], dict[str, Node]] | None = None,
        *,
        parent: str | None = None,
    ) -> tuple[CachedLayer, str]:
        """The layer of ``entries`` on top of ``state``, from the cache or written, recorded in
        the stage's tree; returns it and the digest of ``entries``. ``parent`` keys it on
        another parent chain than the stage's (the groups of one COPY share their step's).

        ``unpacked`` (ADD from the context) gives the entries with archives unpacked: the layer
        holds those, while ``entries`` (archives as files) key it, so a hit reads no archive.
        """
        compression = compression or self.request.compression
        contents = _contents(entries)
        known = [self.stat_cache.fill(content) for content in contents.values()]
        unpacks = unpacked is not None
        if all(known):
            key, digest = self._key(state, entries, instruction, compression, unpacks, parent)
            cached = self.cache.lookup(key, self._has_blob)
            if cached is not None:
                self.request.emit(
                    "cached",
                    f"--> Using cache {cached.descriptor.digest}",
                    digest=str(cached.descriptor.digest),
                    size=cached.descriptor.size,
                    diffId=str(cached.diff_id),
                    instruction=instruction,
                )
                if unpacked is None:
                    apply(state.tree, entries)
                else:  # what the archives hold, from the layer's listing, not from them
                    records = baseimage.layer_listing(self.store, cached.descriptor, self.listings)
                    baseimage.apply_listing(state.tree, cached.descriptor, records)
                return cached, digest
        written = unpacked() if unpacked is not None else entries
        written_contents = _contents(written)
        baseimage.extract(self.store, written_contents.values(), self._scratch_dir("base"))
        with self.store.blob_writer() as writer:
            result = write_layer(
                written.items(),
                writer,
                compression=compression,
                timestamp=self.request.timestamp,
                hash_output=False,
            )
            blob_digest, size = writer.commit()
        # The archives' digests come from unpacking them, the other files' from the writer.
        for content in [*contents.values(), *written_contents.values()]:
            self.stat_cache.remember(content)
        if unpacks:
            listing = baseimage.entries_listing(written)
            baseimage.save_listing(self.listings, blob_digest, listing)
        layer = CachedLayer(Descriptor(result.media_type, blob_digest, size), result.diff_id)
        key, digest = self._key(state, entries, instruction, compression, unpacks, parent)
        self.cache.record(key, layer, instruction)
        self.request.emit(
            "layer",
            f"--> {blob_digest} ({human_size(size)}, {count(result.entries, 'entry', 'entries')})",
            digest=str(blob_digest),
            size=size,
            diffId=str(result.diff_id),
            instruction=instruction,
        )
        apply(state.tree, written)
        return layer, digest

    def _add_layer(self, state: _State, layer: CachedLayer, created_by: str) -> None:
        state.layers.append(layer.descriptor)
        state.diff_ids.append(layer.diff_id)
        state.history.append({"created": self.created, "created_by": created_by})

    # -- the image --------------------------------------------------------------------------

    def _commit(self, state: _State, target: StagePlan) -> Descriptor:
        plan = self.plan
        config, manifest = assemble(
            ImageParts(
                platform=target.platform,
                layers=state.layers,
                diff_ids=state.diff_ids,
                container=plan.config.to_oci(),
                history=state.history,
                created=self.created,
                author=plan.config.author or None,
                annotations=self.request.annotations or None,
            )
        )
        self.store.put_bytes(config.raw, expected=config.digest)
        self.store.put_bytes(manifest.raw, expected=manifest.digest)
        desc = self.store.describe(manifest)
        if not self.tags:
            self.store.set_ref(None, desc)
        for tag in self.tags:
            self.store.tag(desc, tag)
            self.request.emit("tag", f"Successfully tagged {tag}", reference=str(tag))
        return desc
