"""What push needs from the copy engine: retrying broken transfers, recompression; and the
podman-style --tls-verify parsing of the registry commands."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest
import typer
import zstandard
from typer.testing import CliRunner

from clusterimage import recompress
from clusterimage.cli._registry_options import (
    RegistryCommand,
    TlsVerify,
    normalize_bool_flags,
    parse_bool,
)
from clusterimage.copy import CopyOptions, copy_image
from clusterimage.errors import DigestMismatch, TransferInterrupted, UsageError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.config import ImageConfig
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.manifest import ImageIndex, ImageManifest, parse_manifest
from clusterimage.oci.platform import Platform
from clusterimage.transports.base import Context, ImageDestination, ImageReference, ImageSource
from tests.unit.test_copy import MemoryDestination, MemoryPlace, MemorySource


class Ref(ImageReference):
    """A reference handing out one given source or destination object."""

    transport = "memory"

    def __init__(self, end: ImageSource | ImageDestination) -> None:
        self.end = end

    def new_source(self, ctx: Context) -> ImageSource:
        assert isinstance(self.end, ImageSource)
        return self.end

    def new_destination(self, ctx: Context) -> ImageDestination:
        assert isinstance(self.end, ImageDestination)
        return self.end

    def __str__(self) -> str:
        return "memory:test"


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _image(
    place: MemoryPlace,
    layers: list[tuple[bytes, str]],
    *,
    media_type: str = mt.OCI_MANIFEST,
    arch: str = "amd64",
) -> ImageManifest:
    descs = [place.add_blob(data, layer_type) for data, layer_type in layers]
    docker = media_type == mt.DOCKER_MANIFEST
    config = ImageConfig.build({"architecture": arch, "os": "linux", "rootfs": {"diff_ids": []}})
    config_desc = place.add_blob(config.raw, mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG)
    manifest = ImageManifest.build(config_desc, descs, media_type=media_type)
    place.add_manifest(manifest)
    place.top = manifest.digest
    return manifest


def _content(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


# -- retries ------------------------------------------------------------------------------


class FlakyDestination(MemoryDestination):
    """Loses the connection in the middle of the first ``failures`` uploads, keeping what it
    got so far as a partial blob (like a registry whose upload session kept the bytes)."""

    def __init__(self, place: MemoryPlace, failures: int, target: Digest) -> None:
        super().__init__(place)
        self.failures = failures
        self.target = target
        self.offsets: list[int] = []

    def put_blob(self, desc, stream, offset=0, progress=None, *, kind="layer"):  # type: ignore[no-untyped-def]
        if desc.digest != self.target:
            return super().put_blob(desc, stream, offset, progress)
        self.offsets.append(offset)
        if self.failures > 0:
            self.failures -= 1
            kept = self.place.partial.get(desc.digest, b"") + stream.read(100)
            self.place.partial[desc.digest] = kept
            raise TransferInterrupted("connection reset", retry_after=0)
        return super().put_blob(desc, stream, offset, progress)


def test_broken_transfer_is_retried_from_the_kept_offset() -> None:
    src = MemoryPlace()
    image = _image(src, [(os.urandom(1000), mt.OCI_LAYER_GZIP)])
    dst_place = MemoryPlace()
    dest = FlakyDestination(dst_place, failures=2, target=image.layers[0].digest)
    result = copy_image(Ref(MemorySource(src)), Ref(dest), Context(retries=3))
    layer = image.layers[0]
    assert dst_place.blobs[layer.digest] == src.blobs[layer.digest]
    assert result.digest == image.digest
    assert (layer.digest, 200) in src.opened  # the third attempt started at byte 200
    assert dest.offsets == [0, 100, 200]


def test_retries_are_bounded() -> None:
    src = MemoryPlace()
    image = _image(src, [(os.urandom(1000), mt.OCI_LAYER_GZIP)])
    dest = FlakyDestination(MemoryPlace(), failures=10, target=image.layers[0].digest)
    with pytest.raises(TransferInterrupted):
        copy_image(Ref(MemorySource(src)), Ref(dest), Context(retries=2))
    assert dest.offsets == [0, 100, 200]  # the first attempt and exactly two retries


# -- recompression ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [("gzip", "zstd"), ("zstd", "gzip"), ("none", "gzip"), ("none", "zstd")],
)
def test_recompress_keeps_the_content(source: str, target: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tar = _tar({"a": os.urandom(50_000), "b": b"x" * 100_000})
    data = {
        "gzip": gzip.compress(tar),
        "zstd": zstandard.ZstdCompressor().compress(tar),
        "none": tar,
    }[source]
    desc = Descriptor(mt.layer_media_type(source), Digest.of(data), len(data))
    seen: list[int] = []
    result = recompress.recompress(io.BytesIO(data), desc, target, tmp_path, seen.append)
    new = result.path.read_bytes()
    assert Digest.of(new) == result.digest and len(new) == result.size
    assert _content(new, target) == tar
    assert sum(seen) == len(data)
    assert result.descriptor(docker=False).media_type == mt.layer_media_type(target)


def test_recompress_reads_multi_member_gzip_and_checks_the_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tar = _tar({"a": b"hello" * 1000})
    data = gzip.compress(tar[:5000]) + gzip.compress(tar[5000:])
    desc = Descriptor(mt.OCI_LAYER_GZIP, Digest.of(data), len(data))
    result = recompress.recompress(io.BytesIO(data), desc, "zstd", tmp_path)
    assert _content(result.path.read_bytes(), "zstd") == tar
    wrong = Descriptor(mt.OCI_LAYER_GZIP, Digest.of(b"other"), len(data))
    with pytest.raises(DigestMismatch):
        recompress.recompress(io.BytesIO(data), wrong, "zstd", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [result.path.name]  # no leftover temp


def test_copy_recompresses_only_what_differs_and_rewrites_docker_to_oci(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = MemoryPlace()
    tar1, tar2 = _tar({"one": os.urandom(3000)}), _tar({"two": os.urandom(3000)})
    zst = zstandard.ZstdCompressor().compress(tar2)
    image = _image(
        src,
        [(gzip.compress(tar1), mt.DOCKER_LAYER_GZIP), (zst, mt.OCI_LAYER_ZSTD)],
        media_type=mt.DOCKER_MANIFEST,
    )
    dst = MemoryPlace()
    options = CopyOptions(compression_format="zstd")
    ctx = Context(tmp_dir=tmp_path / "tmp")
    result = copy_image(Ref(MemorySource(src)), Ref(MemoryDestination(dst)), ctx, options)
    pushed = parse_manifest(dst.manifests[result.digest])
    assert isinstance(pushed, ImageManifest)
    assert pushed.media_type == mt.OCI_MANIFEST  # schema2 has no zstd layers
    assert pushed.config.media_type == mt.OCI_CONFIG
    assert pushed.config.digest == image.config.digest  # config bytes unchanged
    first, second = pushed.layers
    assert first.media_type == mt.OCI_LAYER_ZSTD and first.digest != image.layers[0].digest
    assert _content(dst.blobs[first.digest], "zstd") == tar1
    assert second == Descriptor(mt.OCI_LAYER_ZSTD, Digest.of(zst), len(zst))  # untouched
    assert not list((tmp_path / "tmp").iterdir())  # temp files removed


def test_copy_all_platforms_rewrites_the_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = MemoryPlace()
    a = _image(src, [(_tar({"a": b"a"}), mt.OCI_LAYER)], arch="amd64")
    b = _image(src, [(gzip.compress(_tar({"b": b"b"})), mt.OCI_LAYER_GZIP)], arch="arm64")
    index = ImageIndex.build(
        [
            a.descriptor(platform=Platform("linux", "amd64")),
            b.descriptor(platform=Platform("linux", "arm64")),
        ]
    )
    src.add_manifest(index)
    src.top = index.digest
    dst = MemoryPlace()
    options = CopyOptions(all_platforms=True, compression_format="gzip")
    ctx = Context(tmp_dir=tmp_path)
    result = copy_image(Ref(MemorySource(src)), Ref(MemoryDestination(dst)), ctx, options)
    pushed = parse_manifest(dst.manifests[result.digest])
    assert isinstance(pushed, ImageIndex)
    new_a, same_b = pushed.manifests
    assert new_a.digest != a.digest and new_a.platform == Platform("linux", "amd64")
    assert same_b.digest == b.digest  # already gzip: not touched
    child = parse_manifest(dst.manifests[new_a.digest])
    assert isinstance(child, ImageManifest) and child.layers[0].media_type == mt.OCI_LAYER_GZIP
    assert new_a.size == child.size


def test_compression_format_is_checked() -> None:
    assert recompress.check_format(None) is None
    with pytest.raises(UsageError, match="gzip or zstd"):
        recompress.check_format("brotli")


# -- --tls-verify spellings ---------------------------------------------------------------


def _probe_app() -> typer.Typer:
    app = typer.Typer()

    @app.command(cls=RegistryCommand)
    def probe(image: str, tls_verify: TlsVerify = None) -> None:
        typer.echo(json.dumps({"image": image, "tls_verify": parse_bool(tls_verify)}))

    return app


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tls-verify=false", "img"], False),
        (["--tls-verify", "false", "img"], False),
        (["--tls-verify", "img"], True),
        (["img", "--tls-verify"], True),
        (["--tls-verify=true", "img"], True),
        (["--tls-verify", "True", "img"], True),
        (["img"], None),
    ],
)
def test_tls_verify_spellings(args: list[str], expected: bool | None) -> None:
    result = CliRunner().invoke(_probe_app(), args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"image": "img", "tls_verify": expected}


def test_tls_verify_rejects_other_values() -> None:
    with pytest.raises(UsageError, match="expected true or false"):
        parse_bool("maybe")
    assert normalize_bool_flags(["--", "--tls-verify"]) == ["--", "--tls-verify"]
