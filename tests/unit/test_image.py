"""clusterimage.image: one platform choice, one bounded and verified config read, used by
inspect, create and the builder's base images."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from clusterimage.build.baseimage import ensure_image
from clusterimage.copy import CopyOptions, copy_image
from clusterimage.errors import DigestMismatch, ImageNotFound, ManifestError
from clusterimage.image import (
    MAX_CONFIG_SIZE,
    read_config,
    read_image,
    resolve,
    select_platform,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.jsonsafe import MAX_DEPTH
from clusterimage.oci.manifest import ImageIndex, ImageManifest, Manifest
from clusterimage.oci.platform import Platform
from clusterimage.store import Store
from clusterimage.transports.base import Context
from clusterimage.transports.store import StoreReference
from tests.conftest import run_cli
from tests.unit.test_copy import MemoryPlace, MemoryReference, MemorySource, _image

ARM64 = Platform.parse("linux/arm64")


def _nested(place: MemoryPlace) -> tuple[ImageIndex, ImageManifest]:
    """An index whose arm64 entry is itself an index (as some registries nest variants)."""
    amd = _image(place, b"amd", arch="amd64")
    arm = _image(place, b"arm", arch="arm64")
    inner = ImageIndex.build([arm.descriptor(platform=Platform("linux", "arm64", "v8"))])
    place.add_manifest(inner)
    outer = ImageIndex.build(
        [
            amd.descriptor(platform=Platform("linux", "amd64")),
            inner.descriptor(platform=Platform("linux", "arm64")),
        ]
    )
    place.add_manifest(outer)
    place.top = outer.digest
    return outer, arm


def _swap_config(place: MemoryPlace, manifest: ImageManifest) -> Digest:
    """Put other bytes of the same length under the config's digest (a source that lies)."""
    config = manifest.config
    original = place.blobs[config.digest]
    forged = original.replace(b'"os":"linux"', b'"os":"evil!"')
    forged = forged.replace(b'"os": "linux"', b'"os": "evil!"')
    assert forged != original and len(forged) == len(original)
    place.blobs[config.digest] = forged
    return config.digest


def test_a_nested_index_is_followed_to_the_platform_asked_for() -> None:
    place = MemoryPlace()
    outer, arm = _nested(place)
    source = MemorySource(place)
    chosen = select_platform(outer, ARM64, source.get_manifest, where="memory:x")
    assert chosen.digest == arm.digest
    found = resolve(source, ARM64, where="memory:x")
    assert found.top == outer and found.index == outer
    assert found.manifest.digest == arm.digest
    assert found.descriptor == arm.descriptor()
    assert found.config_descriptor == arm.config
    assert found.platform.architecture == "arm64"


def test_a_single_manifest_is_the_image_whatever_the_platform() -> None:
    place = MemoryPlace()
    manifest = _image(place, b"layer", arch="amd64")
    place.top = manifest.digest
    found = resolve(MemorySource(place), ARM64, where="memory:x")
    assert found.index is None and found.manifest == manifest


def test_no_image_for_the_platform_lists_what_there_is() -> None:
    place = MemoryPlace()
    outer, _ = _nested(place)
    fetch = MemorySource(place).get_manifest
    want = Platform.parse("linux/s390x")
    # The copy engine's words by default (it has --all) ...
    with pytest.raises(ImageNotFound) as caught:
        select_platform(outer, want, fetch, where="m")
    assert str(caught.value) == (
        "m: no image for platform linux/s390x (available: linux/amd64, linux/arm64); "
        "choose one with --platform or copy them all with --all"
    )
    # ... and without --all for the commands that read one image.
    with pytest.raises(ImageNotFound, match=r"linux/arm64\); choose one with --platform$"):
        resolve(MemorySource(place), want, where="m")


def test_a_config_is_never_trusted_before_its_digest_is_checked() -> None:
    place = MemoryPlace()
    manifest = _image(place, b"layer")
    place.top = manifest.digest
    digest = _swap_config(place, manifest)
    with pytest.raises(DigestMismatch, match=f"^memory:x: config {digest} does not match"):
        resolve(MemorySource(place), None, where="memory:x")


def test_a_config_longer_or_shorter_than_its_descriptor_is_refused() -> None:
    place = MemoryPlace()
    manifest = _image(place, b"layer")
    digest = manifest.config.digest
    original = place.blobs[digest]
    for wrong in (original + b" ", original[:-1]):
        place.blobs[digest] = wrong
        with pytest.raises(DigestMismatch, match=f"{digest} does not match its digest .not the"):
            read_config(MemorySource(place), manifest.config, where="memory:x")


class _Trickle(io.BytesIO):
    """A stream whose read(n) gives a few bytes at a time, as a registry's gives one chunk."""

    def read(self, n: int | None = -1) -> bytes:
        return super().read(min(3, n) if n is not None and n >= 0 else n)


class TrickleSource(MemorySource):
    @contextmanager
    def open_blob(self, desc: Descriptor, offset: int = 0) -> Iterator[IO[bytes]]:
        yield _Trickle(self.place.blobs[desc.digest][offset:])


def test_a_config_is_read_to_its_end_from_a_stream_of_short_reads() -> None:
    place = MemoryPlace()
    manifest = _image(place, b"layer", arch="arm64")
    place.top = manifest.digest
    assert resolve(TrickleSource(place), None, where="m").platform.architecture == "arm64"
    place.blobs[manifest.config.digest] += b" "
    with pytest.raises(DigestMismatch, match=r"not the \d+ bytes its manifest says"):
        resolve(TrickleSource(place), None, where="m")


def test_an_oversized_config_is_refused_before_it_is_read() -> None:
    place = MemoryPlace()
    huge = Descriptor(mt.OCI_CONFIG, Digest.of(b"x"), MAX_CONFIG_SIZE + 1)
    with pytest.raises(ManifestError, match="more than"):
        read_config(MemorySource(place), huge, where="memory:x")
    assert place.opened == []


def test_a_deeply_nested_config_is_a_manifest_error() -> None:
    place = MemoryPlace()
    config = place.add_blob(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, mt.OCI_CONFIG)
    with pytest.raises(ManifestError, match=f"not valid JSON .nested deeper than {MAX_DEPTH}"):
        read_config(MemorySource(place), config, where="memory:x")


def test_read_image_opens_the_reference_for_the_context_platform() -> None:
    place = MemoryPlace()
    _, arm = _nested(place)
    found = read_image(MemoryReference(place), Context(platform=ARM64))
    assert found.manifest.digest == arm.digest


# -- base images of a build: the store read through the same functions ----------------------


def _stored(tmp_path: Path, place: MemoryPlace, name: str) -> tuple[Store, Context]:
    ctx = Context(store_dir=tmp_path / "store")
    copy_image(MemoryReference(place), StoreReference(name), ctx, CopyOptions(all_platforms=True))
    return Store(tmp_path / "store"), ctx


def test_a_base_image_is_chosen_through_a_nested_index_in_the_store(tmp_path: Path) -> None:
    place = MemoryPlace()
    _, arm = _nested(place)
    store, ctx = _stored(tmp_path, place, "localhost/base:v1")
    image = ensure_image(store, "localhost/base:v1", ARM64, ctx, pull=False)
    assert image.manifest.digest == arm.digest and image.descriptor == arm.descriptor()
    assert image.config.platform.architecture == "arm64"
    with pytest.raises(ImageNotFound, match="no image for platform linux/s390x"):
        ensure_image(store, "localhost/base:v1", Platform.parse("linux/s390x"), ctx, pull=False)


def test_a_base_image_whose_config_was_altered_is_refused(tmp_path: Path) -> None:
    place = MemoryPlace()
    manifest = _image(place, b"layer")
    place.top = manifest.digest
    store, ctx = _stored(tmp_path, place, "localhost/base:v1")
    path = store.blob_path(manifest.config.digest)
    data = path.read_bytes()
    os.chmod(path, 0o644)
    path.write_bytes(data.replace(b"linux", b"evil!"))
    with pytest.raises(DigestMismatch, match=r"^localhost/base:v1: config sha256:"):
        ensure_image(store, "localhost/base:v1", ARM64, ctx, pull=False)


# -- through the command line: one `error:` line, never a traceback -------------------------


def _layout(root: Path, manifest: Manifest, blobs: dict[Digest, bytes]) -> str:
    """An oci: layout holding ``manifest`` tagged v1 and ``blobs`` under the names given."""
    for digest, data in {**blobs, manifest.digest: manifest.raw}.items():
        path = root / "blobs" / digest.algorithm / digest.hex
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = manifest.descriptor(annotations={"org.opencontainers.image.ref.name": "v1"})
    (root / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [entry.to_dict()]})
    )
    return f"oci:{root}:v1"


def _one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_create_and_inspect_refuse_a_config_that_is_not_its_digest(
    tmp_path: Path, ci_home: Path
) -> None:
    place = MemoryPlace()
    manifest = _image(place, b"layer")
    digest = _swap_config(place, manifest)
    ref = _layout(tmp_path / "layout", manifest, place.blobs)
    for command in ("create", "inspect"):
        result = run_cli(command, ref, check=False)
        _one_error_line(result, f"{ref}: config {digest} does not match its digest")
        assert result.stdout == ""


def test_inspect_of_deeply_nested_json_is_one_line(tmp_path: Path, ci_home: Path) -> None:
    deep_manifest = b"[" * 100_000 + b"]" * 100_000
    manifest = ImageManifest(deep_manifest, mt.OCI_MANIFEST, {})
    ref = _layout(tmp_path / "manifest", manifest, {})
    result = run_cli("inspect", ref, check=False)
    _one_error_line(result, f"manifest {manifest.digest}", "nested deeper than")

    place = MemoryPlace()
    config = place.add_blob(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, mt.OCI_CONFIG)
    image = ImageManifest.build(config, [])
    ref = _layout(tmp_path / "config", image, place.blobs)
    for args in (("inspect", ref), ("inspect", "-t", "config", ref), ("create", ref)):
        result = run_cli(*args, check=False)
        _one_error_line(result, f"{ref}: config {config.digest}: not valid JSON", "nested")
