"""docker-archive: both layouts docker save writes read by member offsets, links followed inside
the archive only, compressed layers checked against their diff_ids, and the archive we write
(several images, shared blobs once, Docker's RepoTags) read back with the digests a copy
reported. Archives to read are made by hand (tests/fixtures/docker_archive.py)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from clusterimage.copy import CopyOptions, CopyResult, copy_image, copy_to
from clusterimage.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageNotFound,
    ManifestError,
    TransportError,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference
from clusterimage.transports import parse
from clusterimage.transports.base import Context
from clusterimage.transports.docker_archive import DockerArchiveReference
from tests.fixtures.docker_archive import (
    Member,
    SavedImage,
    file_member,
    legacy_members,
    link_member,
    oci_members,
    saved_image,
    write_tar,
)
from tests.fixtures.oci_layout import layer_tar, make_oci_layout, sha256_digest
from tests.helpers.images import make_index_layout

A = {"a.txt": b"layer a\n"}
B = {"b.txt": b"layer b\n"}
LAYOUTS: dict[str, Callable[[list[SavedImage]], list[Member]]] = {
    "legacy": legacy_members,
    "oci": oci_members,
}


def _two_images() -> list[SavedImage]:
    # y repeats a layer of its own and one of x: docker save links both to the first copy.
    return [
        saved_image(["localhost/x:v1", "x:latest"], [A], label="x"),
        saved_image(["docker.io/library/y:v1"], [B, A, B], label="y"),
    ]


def _archive(tmp_path: Path, members: list[Member], name: str = "saved.tar") -> Path:
    return write_tar(tmp_path / name, members)


def _into_layout(src: str, tmp_path: Path, ref: str = "x") -> CopyResult:
    return copy_image(parse(src), parse(f"oci:{tmp_path / 'out'}:{ref}"), Context())


def _layout_image(layout: Path, ref: str) -> tuple[str, dict[str, Any], list[bytes]]:
    """The manifest tagged ``ref`` in an OCI layout (digest, document) and its layers' bytes."""
    index = json.loads((layout / "index.json").read_text())
    digest = next(
        m["digest"]
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == ref
    )
    manifest = json.loads(_blob(layout, digest))
    return digest, manifest, [_blob(layout, layer["digest"]) for layer in manifest["layers"]]


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _skopeo_manifest(image: SavedImage, layers: list[tuple[str, str, int]]) -> bytes:
    """The manifest containers/image makes for an archived image, with its layer media types."""
    config = {"mediaType": mt.DOCKER_CONFIG, "size": len(image.config)}
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": config | {"digest": image.config_digest},
            "layers": [{"mediaType": t, "size": s, "digest": d} for t, d, s in layers],
        },
        separators=(",", ":"),
    ).encode()


# -- references ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "name", "docker"),
    [
        ("/a/saved.tar", "/a/saved.tar", None, None),
        ("saved.tar:nginx:1.25", "saved.tar", "nginx:1.25", "docker.io/library/nginx:1.25"),
        ("/s.tar:localhost:5000/a:v1", "/s.tar", "localhost:5000/a:v1", "localhost:5000/a:v1"),
        ("/s.tar:@1", "/s.tar", "@1", None),
    ],
)
def test_references_parse_and_print_back(
    value: str, path: str, name: str | None, docker: str | None
) -> None:
    ref = parse(f"docker-archive:{value}")
    assert isinstance(ref, DockerArchiveReference)
    assert (str(ref.path), ref.name) == (path, name)
    assert str(ref) == f"docker-archive:{value}"
    assert str(parse(str(ref))) == str(ref)
    got = ref.docker_reference()
    assert (str(got) if got is not None else None) == docker


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected docker-archive:FILE"),
        (":nginx:1", "expected docker-archive:FILE"),
        ("/s.tar:nginx@sha256:" + "a" * 64, "never by digest"),
        ("/s.tar:Bad Name", "invalid reference"),
    ],
)
def test_bad_references_are_refused(value: str, message: str) -> None:
    with pytest.raises(TransportError, match=message):
        parse(f"docker-archive:{value}")


# -- reading ------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_both_layouts_read_with_plain_layers_gzipped_once_into_the_store(
    layout: str, tmp_path: Path
) -> None:
    images = _two_images()
    path = _archive(tmp_path, LAYOUTS[layout](images))
    for image in images:
        tag = image.tags[0]
        source = parse(f"docker-archive:{path}:{tag}").new_source(Context())
        layers = [
            (mt.DOCKER_LAYER, d, len(b)) for d, b in zip(image.diff_ids, image.layers, strict=True)
        ]
        assert source.get_manifest().raw == _skopeo_manifest(image, layers)
        result = _into_layout(f"docker-archive:{path}:{tag}", tmp_path, tag.replace("/", "_"))
        assert result.blobs_recompressed == len(set(image.diff_ids))
        _, manifest, blobs = _layout_image(tmp_path / "out", tag.replace("/", "_"))
        assert manifest["config"]["digest"] == image.config_digest
        assert [sha256_digest(gzip.decompress(b)) for b in blobs] == list(image.diff_ids)
        assert {x["mediaType"] for x in manifest["layers"]} == {mt.DOCKER_LAYER_GZIP}


def test_images_are_picked_by_tag_normalised_or_by_position(tmp_path: Path) -> None:
    path = _archive(tmp_path, legacy_members(_two_images()))
    ctx = Context()

    def config_of(ref: str) -> str:
        manifest = parse(f"docker-archive:{path}:{ref}").new_source(ctx).get_manifest()
        return str(manifest.data["config"]["digest"])

    x, y = (image.config_digest for image in _two_images())
    assert config_of("docker.io/library/x") == config_of("localhost/x:v1") == x
    assert config_of("y:v1") == config_of("@1") == y
    with pytest.raises(ImageNotFound, match=r"no image tagged z:v1 \(tags: localhost/x:v1, x:lat"):
        parse(f"docker-archive:{path}:z:v1").new_source(ctx)
    with pytest.raises(ImageNotFound, match="holds 2 images"):
        parse(f"docker-archive:{path}:@2").new_source(ctx)
    with pytest.raises(ImageNotFound, match="holds 2 images; choose one"):
        parse(f"docker-archive:{path}").new_source(ctx)


def test_every_tag_is_listed_and_an_untagged_image_by_position(tmp_path: Path) -> None:
    untagged = saved_image([], [B], label="untagged")
    path = _archive(tmp_path, oci_members([*_two_images(), untagged]))
    listed = parse(f"docker-archive:{path}").list_images(Context())
    assert [str(ref).rpartition(f"{path}:")[2] for ref in listed] == [
        "localhost/x:v1",
        "x:latest",
        "docker.io/library/y:v1",
        "@2",
    ]
    assert [str(ref.docker_reference()) for ref in listed[:2]] == [
        "localhost/x:v1",
        "docker.io/library/x:latest",
    ]


def test_a_gzip_layer_keeps_its_bytes_and_media_type(tmp_path: Path) -> None:
    packed = gzip.compress(layer_tar(A), mtime=0)
    image = saved_image(["x:v1"], [A], stored=[packed])
    path = _archive(tmp_path, oci_members([image]))
    source = parse(f"docker-archive:{path}").new_source(Context())
    layers = [(mt.DOCKER_LAYER_GZIP, sha256_digest(packed), len(packed))]
    assert source.get_manifest().raw == _skopeo_manifest(image, layers)
    result = _into_layout(f"docker-archive:{path}", tmp_path)
    assert result.blobs_recompressed == 0
    assert _layout_image(tmp_path / "out", "x")[2] == [packed]


@pytest.mark.parametrize(
    "compress",
    [lzma.compress, bz2.compress, zstandard.ZstdCompressor().compress],
    ids=["xz", "bzip2", "zstd"],
)
def test_other_compressed_layers_are_served_as_plain_tars(
    compress: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    image = saved_image(["x:v1"], [A], stored=[compress(layer_tar(A))])
    path = _archive(tmp_path, legacy_members([image]))
    manifest = parse(f"docker-archive:{path}").new_source(Context()).get_manifest()
    layer = [(mt.DOCKER_LAYER, image.diff_ids[0], len(layer_tar(A)))]
    assert manifest.raw == _skopeo_manifest(image, layer)
    _into_layout(f"docker-archive:{path}", tmp_path)
    _, _, blobs = _layout_image(tmp_path / "out", "x")
    assert [gzip.decompress(b) for b in blobs] == [layer_tar(A)]


def test_a_compressed_layer_not_matching_its_diff_id_fails_when_opened(tmp_path: Path) -> None:
    image = saved_image(["x:v1"], [A], stored=[gzip.compress(layer_tar(B))])
    path = _archive(tmp_path, legacy_members([image]))
    with pytest.raises(DigestMismatch, match=f"its gzip content .* diff_id is {image.diff_ids[0]}"):
        parse(f"docker-archive:{path}").new_source(Context())


# -- hostile or broken archives ------------------------------------------------------------------


def _with_layer(tmp_path: Path, layer: str, extra: list[Member]) -> Path:
    """One image whose only layer is the member ``layer``, among ``extra`` members."""
    image = saved_image(["x:v1"], [A])
    manifest = [{"Config": "c.json", "RepoTags": ["x:v1"], "Layers": [layer]}]
    members = [
        file_member("c.json", image.config),
        file_member("manifest.json", json.dumps(manifest).encode()),
        *extra,
    ]
    return _archive(tmp_path, members, "hostile.tar")


@pytest.mark.parametrize(
    ("layer", "extra"),
    [
        ("l.tar", [link_member("l.tar", "/etc/passwd")]),
        ("d/l.tar", [link_member("d/l.tar", "../../secret")]),
        ("l.tar", [link_member("l.tar", "d/m.tar"), link_member("d/m.tar", "../../secret")]),
        ("l.tar", [link_member("l.tar", "../secret", tarfile.LNKTYPE)]),
        ("l.tar", [link_member("l.tar", "/etc/passwd", tarfile.LNKTYPE)]),
    ],
    ids=["symlink-absolute", "symlink-up", "symlink-symlink-up", "hardlink-up", "hardlink-abs"],
)
def test_a_link_out_of_the_archive_is_refused(
    layer: str, extra: list[Member], tmp_path: Path
) -> None:
    (tmp_path / "secret").write_bytes(layer_tar(A))  # what the link would reach
    path = _with_layer(tmp_path, layer, extra)
    with pytest.raises(TransportError, match=f"layer {layer} points outside the archive") as caught:
        _into_layout(f"docker-archive:{path}", tmp_path)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def _folder(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


@pytest.mark.parametrize(
    "extra",
    [
        [file_member("real.tar", layer_tar(A)), link_member("l.tar", "real.tar")],
        [file_member("d/real.tar", layer_tar(A)), link_member("d/l.tar", "./real.tar")],
        [file_member("real.tar", layer_tar(A)), link_member("l.tar", "real.tar", tarfile.LNKTYPE)],
    ],
    ids=["symlink", "symlink-in-folder", "hardlink"],
)
def test_links_inside_the_archive_are_followed(extra: list[Member], tmp_path: Path) -> None:
    layer = extra[1][0].name
    result = _into_layout(f"docker-archive:{_with_layer(tmp_path, layer, extra)}", tmp_path)
    assert result.blobs_recompressed == 1


@pytest.mark.parametrize(
    ("extra", "error", "message"),
    [
        ([link_member("l.tar", "gone.tar")], BlobNotFound, "layer l.tar is not in the archive"),
        ([link_member("l.tar", "l.tar")], TransportError, "layer l.tar: more than 8 links"),
        ([_folder("l.tar")], TransportError, "layer l.tar is a dir, not a file"),
    ],
    ids=["dangling", "loop", "folder"],
)
def test_a_layer_that_is_no_file_is_one_line(
    extra: list[Member], error: type[Exception], message: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=message):
        _into_layout(f"docker-archive:{_with_layer(tmp_path, 'l.tar', extra)}", tmp_path)


@pytest.mark.parametrize(
    ("manifest", "error", "message"),
    [
        (b"{", ManifestError, "manifest.json is not valid JSON"),
        (b"[]", ManifestError, "manifest.json lists no image"),
        (b'[{"RepoTags": []}]', ManifestError, "item 0 lacks Config or Layers"),
        (b'[{"Config": "c.json", "Layers": [1]}]', ManifestError, "lists of strings"),
        (b'[{"Config": "../c.json", "Layers": []}]', TransportError, "config ../c.json points out"),
        (b'[{"Config": "gone.json", "Layers": []}]', BlobNotFound, "config gone.json is not in"),
        (b'[{"Config": "c.json", "Layers": []}]', ManifestError, "lists 0 layers, config c.json"),
    ],
)
def test_a_bad_manifest_json_is_one_line(
    manifest: bytes, error: type[Exception], message: str, tmp_path: Path
) -> None:
    image = saved_image(["x:v1"], [A])
    members = [file_member("c.json", image.config), file_member("manifest.json", manifest)]
    path = _archive(tmp_path, members)
    with pytest.raises(error, match=message) as caught:
        _into_layout(f"docker-archive:{path}", tmp_path)
    assert "\n" not in str(caught.value)


def test_one_layer_file_for_two_diff_ids_is_refused(tmp_path: Path) -> None:
    image = saved_image(["x:v1"], [A, B])
    manifest = [{"Config": "c.json", "RepoTags": [], "Layers": ["l.tar", "./l.tar"]}]
    members = [
        file_member("c.json", image.config),
        file_member("l.tar", layer_tar(A)),
        file_member("manifest.json", json.dumps(manifest).encode()),
    ]
    with pytest.raises(ManifestError, match=r"layer \./l\.tar is listed for two diff_ids"):
        parse(f"docker-archive:{_archive(tmp_path, members)}").new_source(Context())


# -- writing ------------------------------------------------------------------------------------


def _layouts(tmp_path: Path) -> tuple[str, str]:
    shared = {"shared.txt": b"in both\n"}
    x = make_oci_layout(tmp_path / "x", ref="v1", layers=[shared, A], labels={"n": "x"})
    y = make_oci_layout(tmp_path / "y", ref="v1", layers=[shared, B], labels={"n": "y"})
    return x.transport_ref, y.transport_ref


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {i.name: tar.extractfile(i).read() for i in tar if i.isfile()}  # type: ignore[union-attr]


def test_several_images_share_one_file_with_docker_names(tmp_path: Path) -> None:
    x, y = _layouts(tmp_path)
    target = tmp_path / "out.tar"
    ctx = Context()
    results: dict[str, CopyResult] = {}
    with parse(f"docker-archive:{target}").new_writer(ctx) as writer:
        for src, name in ((x, "localhost/x:v1"), (y, "docker.io/library/y:v1"), (x, "x:v2")):
            with writer.new_destination(Reference.parse(name)) as dest:
                results[name] = copy_to(parse(src), dest, ctx)
        assert not target.exists()  # only whole, at commit
        writer.commit()
    members = _members(target)
    manifest = json.loads(members["manifest.json"])
    assert [item["RepoTags"] for item in manifest] == [["localhost/x:v1", "x:v2"], ["y:v1"]]
    # config + 2 layers each, the shared layer once
    blobs = sorted(n for n in members if n.endswith((".json", ".tar")) and n != "manifest.json")
    assert len(blobs) == 5 and all(n.count("/") == 0 for n in blobs)
    for name in blobs:
        assert hashlib.sha256(members[name]).hexdigest() == name.split(".")[0]
    top = {item["RepoTags"][0]: item["Layers"][-1].removesuffix(".tar") for item in manifest}
    assert json.loads(members["repositories"]) == {
        "localhost/x": {"v1": top["localhost/x:v1"]},
        "x": {"v2": top["localhost/x:v1"]},
        "y": {"v1": top["y:v1"]},
    }
    for name, result in results.items():
        # What the copy reported is what a reader of the archive finds.
        source = parse(f"docker-archive:{target}:{name}").new_source(ctx)
        assert source.get_manifest().digest == result.digest
        assert result.media_type == mt.DOCKER_MANIFEST
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_tag_given_twice_names_the_later_image(tmp_path: Path) -> None:
    x, y = _layouts(tmp_path)
    target = tmp_path / "out.tar"
    with parse(f"docker-archive:{target}").new_writer(Context()) as writer:
        for src in (x, y):
            with writer.new_destination(Reference.parse("app:v1")) as dest:
                copy_to(parse(src), dest, Context())
        writer.commit()
    tags = [item["RepoTags"] for item in json.loads(_members(target)["manifest.json"])]
    assert tags == [[], ["app:v1"]]


def test_a_writer_closed_without_commit_leaves_nothing(tmp_path: Path) -> None:
    x, _ = _layouts(tmp_path)
    before = set(tmp_path.iterdir())
    writer = parse(f"docker-archive:{tmp_path / 'out.tar'}").new_writer(Context())
    with writer, writer.new_destination(None) as dest:
        copy_to(parse(x), dest, Context())
    assert set(tmp_path.iterdir()) == before


def test_a_layer_that_does_not_match_leaves_nothing_at_the_target(tmp_path: Path) -> None:
    x, _ = _layouts(tmp_path)
    layout = tmp_path / "x"
    _, manifest, _ = _layout_image(layout, "v1")
    layer = layout / "blobs/sha256" / manifest["layers"][1]["digest"][7:]
    layer.write_bytes(gzip.compress(layer_tar(B)))
    before = set(tmp_path.iterdir())
    with pytest.raises(DigestMismatch):
        copy_image(parse(x), parse(f"docker-archive:{tmp_path / 'out.tar'}"), Context())
    assert set(tmp_path.iterdir()) == before


def test_an_index_needs_a_platform(tmp_path: Path) -> None:
    index = make_index_layout(tmp_path / "multi", platforms=("amd64", "arm64"))
    target = parse(f"docker-archive:{tmp_path / 'out.tar'}:multi:v1")
    with pytest.raises(TransportError, match="holds no multi-platform image; choose one"):
        copy_image(parse(index.transport_ref), target, Context(), CopyOptions(all_platforms=True))
    assert not (tmp_path / "out.tar").exists()
    copied = copy_image(
        parse(index.transport_ref), target, Context(platform=Platform.parse("linux/arm64"))
    )
    config = index.images["linux/arm64"].config.digest
    assert copied.digest == parse(str(target)).new_source(Context()).get_manifest().digest
    manifest = json.loads(_members(tmp_path / "out.tar")["manifest.json"])
    assert manifest == [
        {
            "Config": f"{config[7:]}.json",
            "RepoTags": ["multi:v1"],
            "Layers": [f"{index.images['linux/arm64'].diff_ids[0][7:]}.tar"],
        }
    ]


def test_what_docker_cannot_load_is_refused(tmp_path: Path) -> None:
    x, _ = _layouts(tmp_path)
    with pytest.raises(TransportError, match="@N picks an image to read"):
        copy_image(parse(x), parse(f"docker-archive:{tmp_path / 'o.tar'}:@0"), Context())
    artifact = make_oci_layout(tmp_path / "artifact", ref="a")
    manifest_path = tmp_path / "artifact/blobs/sha256" / artifact.manifest.digest[7:]
    data = json.loads(manifest_path.read_bytes())
    data["config"]["mediaType"] = "application/vnd.example.config.v1+json"
    raw = json.dumps(data).encode()
    (manifest_path.parent / sha256_digest(raw)[7:]).write_bytes(raw)
    index = json.loads((tmp_path / "artifact/index.json").read_text())
    index["manifests"][0] |= {"digest": sha256_digest(raw), "size": len(raw)}
    (tmp_path / "artifact/index.json").write_text(json.dumps(index))
    with pytest.raises(TransportError, match="no container image config"):
        copy_image(parse(artifact.transport_ref), parse(f"docker-archive:{tmp_path / 'o.tar'}"))
    assert not (tmp_path / "o.tar").exists()


def test_a_round_trip_keeps_the_config_and_changes_the_manifest_digest_once(
    tmp_path: Path,
) -> None:
    """The module docstring's promise: layers gzipped by another compressor come back gzipped
    by isal, so the manifest digest changes once; after that the trip is stable."""
    x, _ = _layouts(tmp_path)
    digest, original, _ = _layout_image(tmp_path / "x", "v1")
    first, second, back = tmp_path / "1.tar", tmp_path / "2.tar", tmp_path / "back"
    copy_image(parse(x), parse(f"docker-archive:{first}:x:v1"))
    loaded = copy_image(parse(f"docker-archive:{first}"), parse(f"oci:{back}:v1"))
    copy_image(parse(f"oci:{back}:v1"), parse(f"docker-archive:{second}:x:v1"))
    again = copy_image(parse(f"docker-archive:{second}"), parse(f"oci:{back}:v2"))
    _, manifest, _ = _layout_image(back, "v1")
    assert manifest["config"]["digest"] == original["config"]["digest"]
    assert loaded.digest != digest
    assert again.digest == loaded.digest
    assert _members(first) == _members(second)  # in the order the parallel copy wrote them
