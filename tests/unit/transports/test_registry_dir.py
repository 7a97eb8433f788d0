"""``registry-dir:``, distribution's filesystem storage: the files we write (every link a stock
registry needs), what we read back, names refused, and broken or hostile folders, each a
one-line error with nothing read or written outside the folder."""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import pytest

from clusterimage.copy import CopyOptions, copy_image
from clusterimage.errors import (
    BlobNotFound,
    ClusterImageError,
    DigestMismatch,
    ImageNotFound,
    ManifestError,
    TransportError,
)
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.transports import parse
from clusterimage.transports.base import Context
from clusterimage.transports.registry_dir import (
    RegistryDirEntry,
    RegistryDirReference,
    walk,
)
from tests.fixtures.oci_layout import OciImage, make_oci_layout, sha256_digest
from tests.helpers.images import make_index_layout

V2 = Path("docker/registry/v2")
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _copy(src: str, dst: str, *, all_platforms: bool = False) -> Digest:
    return copy_image(parse(src), parse(dst), Context(), CopyOptions(all_platforms)).digest


def _hex(digest: str | Digest) -> str:
    return str(digest).split(":", 1)[1]


def _blob(root: Path, digest: str | Digest) -> Path:
    hx = _hex(digest)
    return root / V2 / "blobs/sha256" / hx[:2] / hx / "data"


def _repo(root: Path, name: str) -> Path:
    return root / V2 / "repositories" / name


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return make_oci_layout(tmp_path / "src", ref="v1", layers=[{"a": b"a\n"}, {"b": b"b\n"}])


@pytest.fixture
def written(image: OciImage, tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    _copy(image.transport_ref, f"registry-dir:{root}:library/app:v1")
    return root


# -- references ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "repository", "tag", "digest"),
    [
        ("d", None, None, None),
        ("d:app", "app", None, None),
        ("d:library/app:v1", "library/app", "v1", None),
        ("d:a.b/c-d/e__f:1.0_x-y", "a.b/c-d/e__f", "1.0_x-y", None),
        (f"d:app@sha256:{'a' * 64}", "app", None, f"sha256:{'a' * 64}"),
        # Nothing is stripped: a host-like first component is part of the repository path.
        ("d:docker.io/library/nginx:1", "docker.io/library/nginx", "1", None),
    ],
)
def test_references_parse_and_print_back(
    text: str, repository: str | None, tag: str | None, digest: str | None
) -> None:
    ref = parse(f"registry-dir:{text}")
    assert isinstance(ref, RegistryDirReference)
    assert (ref.root, ref.repository, ref.tag) == (Path("d"), repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest
    assert str(ref) == f"registry-dir:{text}"
    assert ref.docker_reference() is None


@pytest.mark.parametrize(
    "text",
    [
        ":app:v1",  # no DIR
        "d:../up:v1",
        "d:a/../../up:v1",
        "d:/etc/app:v1",
        "d:app/:v1",
        "d:App:v1",  # distribution's names are lowercase
        "d:localhost:5000/app:v1",  # a host with a port is no repository path
        "d:app\n:v1",
        "d:app:v1\n",
        "d:app:..",
        "d:app:.hidden",
        "d:app:t\u00e9",
        "d:app:" + "t" * 129,
        "d:" + "a" * 256,
        "d:app@sha256:abc",
        "d:app:v1@sha256:" + "a" * 64,
    ],
)
def test_names_outside_distributions_grammar_are_refused(text: str) -> None:
    with pytest.raises(TransportError, match="invalid reference registry-dir:"):
        parse(f"registry-dir:{text}")


def test_a_constructed_reference_checks_its_names_too(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="not a repository name"):
        RegistryDirReference(tmp_path, "../up")
    with pytest.raises(TransportError, match="invalid tag"):
        RegistryDirReference(tmp_path, "app", "../x")


# -- what we write ------------------------------------------------------------------------


def test_a_tagged_image_writes_every_link_a_registry_needs(image: OciImage, written: Path) -> None:
    repo = _repo(written, "library/app")
    manifest = image.manifest.digest
    for digest in [image.config.digest, *(layer.digest for layer in image.layers)]:
        assert (repo / "_layers/sha256" / _hex(digest) / "link").read_text() == digest
        assert sha256_digest(_blob(written, digest).read_bytes()) == digest
    assert (repo / "_manifests/revisions/sha256" / _hex(manifest) / "link").read_text() == manifest
    tag = repo / "_manifests/tags/v1"
    assert (tag / "current/link").read_text() == manifest
    assert (tag / "index/sha256" / _hex(manifest) / "link").read_text() == manifest
    assert _blob(written, manifest).read_bytes() == image.manifest_bytes
    # Only distribution's files: no staging folder, no temporary link left behind.
    assert not (written / V2 / "_uploads").exists()
    assert not [p for p in _files(written) if Path(p).name not in {"data", "link"}]
    assert walk(written) == [
        RegistryDirEntry("library/app", "v1", Digest.parse(manifest), image.manifest.media_type)
    ]


def test_we_read_back_what_we_wrote(image: OciImage, written: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    got = _copy(f"registry-dir:{written}:library/app:v1", f"oci:{out}:x")
    assert str(got) == image.manifest.digest
    by_digest = f"registry-dir:{written}:library/app@{image.manifest.digest}"
    assert str(_copy(by_digest, f"oci:{out}:y")) == image.manifest.digest


def test_without_a_tag_the_manifest_is_stored_by_digest_only(
    image: OciImage, tmp_path: Path
) -> None:
    root = tmp_path / "registry"
    digest = _copy(image.transport_ref, f"registry-dir:{root}:app")
    assert not (_repo(root, "app") / "_manifests/tags").exists()
    assert walk(root) == [RegistryDirEntry("app", None, digest, image.manifest.media_type)]
    listed = parse(f"registry-dir:{root}").list_images(Context())
    assert [str(ref) for ref in listed] == [f"registry-dir:{root}:app@{digest}"]
    assert _copy(str(listed[0]), f"oci:{tmp_path}/o:x") == digest


def test_a_digest_destination_must_match_the_image(image: OciImage, tmp_path: Path) -> None:
    root = tmp_path / "registry"
    _copy(image.transport_ref, f"registry-dir:{root}:app@{image.manifest.digest}")
    with pytest.raises(DigestMismatch, match="manifest digest is"):
        _copy(image.transport_ref, f"registry-dir:{root}:other@sha256:{'0' * 64}")
    assert [e.repository for e in walk(root)] == ["app"]


def test_an_index_gets_a_revision_for_itself_and_each_child(tmp_path: Path) -> None:
    multi = make_index_layout(tmp_path / "multi", ref="v3")
    root = tmp_path / "registry"
    digest = _copy(multi.transport_ref, f"registry-dir:{root}:multi:v3", all_platforms=True)
    assert str(digest) == multi.index.digest
    revisions = _repo(root, "multi") / "_manifests/revisions/sha256"
    children = {image.manifest.digest for image in multi.images.values()}
    assert {p.name for p in revisions.iterdir()} == {_hex(d) for d in {digest, *children}}
    # The children are part of the tagged index: not listed as images of their own.
    assert [(e.tag, str(e.digest)) for e in walk(root)] == [("v3", multi.index.digest)]
    child = next(iter(children))
    assert str(_copy(f"registry-dir:{root}:multi@{child}", f"oci:{tmp_path}/o:c")) == child


def test_walk_lists_repositories_tags_and_digest_only_manifests(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    one = make_oci_layout(tmp_path / "one", ref="x", layers=[{"1": b"1"}])
    two = make_oci_layout(tmp_path / "two", ref="x", layers=[{"2": b"2"}])
    _copy(one.transport_ref, f"registry-dir:{root}:team/one:v1")
    _copy(one.transport_ref, f"registry-dir:{root}:team/one:latest")
    _copy(two.transport_ref, f"registry-dir:{root}:team/one/nested:v2")
    _copy(two.transport_ref, f"registry-dir:{root}:team/one")  # digest only
    # Moving a tag leaves its old manifest as a revision no tag names.
    _copy(one.transport_ref, f"registry-dir:{root}:moved:t")
    _copy(two.transport_ref, f"registry-dir:{root}:moved:t")
    got = [(e.repository, e.tag, str(e.digest)) for e in walk(root)]
    a, b = one.manifest.digest, two.manifest.digest
    assert got == [
        ("moved", "t", b),
        ("moved", None, a),
        ("team/one", "latest", a),
        ("team/one", "v1", a),
        ("team/one", None, b),
        ("team/one/nested", "v2", b),
    ]
    listed = [str(r) for r in parse(f"registry-dir:{root}").list_images(Context())]
    assert f"registry-dir:{root}:team/one@{b}" in listed
    assert f"registry-dir:{root}:team/one/nested:v2" in listed and len(listed) == 6


def test_shared_blobs_are_stored_once_and_linked_in_each_repository(
    image: OciImage, written: Path
) -> None:
    result = copy_image(parse(image.transport_ref), parse(f"registry-dir:{written}:second:v1"))
    assert result.blobs_copied == 0 and result.blobs_skipped == 3
    for digest in image.blob_digests():
        assert (_repo(written, "second") / "_layers/sha256" / _hex(digest) / "link").is_file()


def test_has_blob_links_data_another_repository_wrote(image: OciImage, written: Path) -> None:
    layer = image.layers[0]
    desc = Descriptor(layer.media_type, Digest.parse(layer.digest), layer.size)
    dest = parse(f"registry-dir:{written}:other:v1").new_destination(Context())
    link = _repo(written, "other") / "_layers/sha256" / _hex(layer.digest) / "link"
    assert dest.has_blob(desc) and link.read_text() == layer.digest
    wrong_size = Descriptor(layer.media_type, desc.digest, layer.size + 1)
    assert not dest.has_blob(wrong_size)
    missing = Descriptor(LAYER, Digest.of(b"nowhere"), 7)
    assert not dest.has_blob(missing)
    assert not (_repo(written, "other") / "_layers/sha256" / missing.digest.hex).exists()


def test_a_blob_that_does_not_match_leaves_nothing_visible(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    dest = parse(f"registry-dir:{root}:app:v1").new_destination(Context())
    desc = Descriptor(LAYER, Digest.of(b"expected"), 8)
    with pytest.raises(DigestMismatch):
        dest.put_blob(desc, io.BytesIO(b"tampered"))
    dest.close()
    assert _files(root) == set()
    with dest:
        dest.put_blob(desc, io.BytesIO(b"expected"))
    assert _files(root / V2) == {
        f"blobs/sha256/{desc.digest.hex[:2]}/{desc.digest.hex}/data",
        f"repositories/app/_layers/sha256/{desc.digest.hex}/link",
    }


def test_writers_of_one_blob_at_once_all_end_with_the_right_file(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    data = os.urandom(3 << 20)
    desc = Descriptor(LAYER, Digest.of(data), len(data))
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with parse(f"registry-dir:{root}:r{n}:v1").new_destination(Context()) as dest:
                dest.put_blob(desc, io.BytesIO(data))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _blob(root, desc.digest).read_bytes() == data
    assert all(
        (_repo(root, f"r{n}") / "_layers/sha256" / desc.digest.hex).is_dir() for n in range(8)
    )
    assert not (root / V2 / "_uploads").exists()


def test_hard_linked_blobs_from_another_registry_folder_are_verified(
    image: OciImage, written: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    result = copy_image(
        parse(f"registry-dir:{written}:library/app:v1"), parse(f"registry-dir:{other}:app:v1")
    )
    assert result.blobs_mounted == 3
    layer = image.layers[0].digest
    assert os.stat(_blob(other, layer)).st_ino == os.stat(_blob(written, layer)).st_ino
    # A source blob changed in place (same size) is not linked in unverified.
    data = bytearray(_blob(written, layer).read_bytes())
    data[-1] ^= 0xFF
    _blob(other, layer).unlink()
    _blob(written, layer).write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        copy_image(
            parse(f"registry-dir:{written}:library/app:v1"), parse(f"registry-dir:{other}:b")
        )
    assert not _blob(other, layer).exists()


# -- what we refuse to read ---------------------------------------------------------------


def _read(root: Path, name: str = "library/app:v1", tmp: Path | None = None) -> Digest:
    out = (tmp or root.parent) / "read-out"
    return _copy(f"registry-dir:{root}:{name}", f"oci:{out}:x")


def test_not_a_registry_folder(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="not a registry folder"):
        _read(tmp_path)


def test_a_missing_tag_names_the_tags_there_are(written: Path) -> None:
    with pytest.raises(ImageNotFound, match=r"no such tag \(tags: v1\)"):
        _read(written, "library/app:v2")
    with pytest.raises(ImageNotFound, match="no such tag"):
        _read(written, "library/app")  # latest
    with pytest.raises(ImageNotFound, match="not found"):
        _read(written, f"library/app@sha256:{'0' * 64}")


def test_a_link_to_a_missing_blob(image: OciImage, written: Path) -> None:
    _blob(written, image.layers[1].digest).unlink()
    with pytest.raises(BlobNotFound, match="linked but missing"):
        _read(written)
    _blob(written, image.manifest.digest).unlink()
    with pytest.raises(BlobNotFound, match="names a blob that is missing"):
        _read(written)


def test_a_blob_not_linked_in_the_repository(image: OciImage, written: Path) -> None:
    link = _repo(written, "library/app") / "_layers/sha256" / _hex(image.layers[0].digest)
    (link / "link").unlink()
    with pytest.raises(BlobNotFound, match="not linked in the repository"):
        _read(written)


@pytest.mark.parametrize(
    "content", [b"", b"\x00garbage\xff", b"sha256:1234", b"sha256:" + b"a" * 64 + b"x" * 300]
)
def test_a_link_holding_garbage(content: bytes, written: Path) -> None:
    (_repo(written, "library/app") / "_manifests/tags/v1/current/link").write_bytes(content)
    with pytest.raises(ManifestError, match="not a digest link"):
        _read(written)
    with pytest.raises(ManifestError, match="not a digest link"):
        walk(written)


def test_a_link_naming_another_digest_than_its_folder(image: OciImage, written: Path) -> None:
    revision = _repo(written, "library/app") / "_manifests/revisions/sha256"
    (revision / _hex(image.manifest.digest) / "link").write_text(image.config.digest)
    with pytest.raises(ManifestError, match="not sha256:"):
        _read(written)


def test_a_manifest_that_does_not_match_its_digest(image: OciImage, written: Path) -> None:
    path = _blob(written, image.manifest.digest)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion"', b'"schemaversion"'))
    with pytest.raises(DigestMismatch, match="does not match its digest"):
        _read(written)


def test_a_layer_that_does_not_match_fails_at_the_reader(image: OciImage, written: Path) -> None:
    path = _blob(written, image.layers[0].digest)
    path.write_bytes(b"x" * image.layers[0].size)
    with pytest.raises(DigestMismatch):
        _read(written)


def test_a_folder_or_fifo_where_a_link_belongs_is_an_error_not_a_hang(written: Path) -> None:
    link = _repo(written, "library/app") / "_manifests/tags/v1/current/link"
    link.unlink()
    os.mkfifo(link)
    with pytest.raises(TransportError, match="not a regular file"):
        _read(written)
    link.unlink()
    link.mkdir()
    with pytest.raises(TransportError, match="folder"):
        _read(written)


# -- symbolic links and names that climb out ------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def test_no_write_through_a_symbolic_link(image: OciImage, tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "registry"
    (root / V2 / "repositories").mkdir(parents=True)
    (root / V2 / "repositories/evil").symlink_to(outside)
    with pytest.raises(TransportError, match="symbolic link"):
        _copy(image.transport_ref, f"registry-dir:{root}:evil:v1")
    shutil.rmtree(root / V2 / "blobs")  # what the refused copy wrote inside the folder
    (root / V2 / "blobs").symlink_to(outside)
    with pytest.raises(TransportError, match="symbolic link"):
        _copy(image.transport_ref, f"registry-dir:{root}:good:v1")
    assert list(outside.iterdir()) == []


def test_no_read_through_a_symbolic_link(image: OciImage, written: Path, outside: Path) -> None:
    # A blob's data pointing at a file outside that has the right bytes: still refused.
    layer = _blob(written, image.layers[0].digest)
    (outside / "data").write_bytes(layer.read_bytes())
    layer.unlink()
    layer.symlink_to(outside / "data")
    with pytest.raises(TransportError, match="symbolic link"):
        _read(written)
    # A tag link pointing outside.
    current = _repo(written, "library/app") / "_manifests/tags/v1/current/link"
    (outside / "link").write_text(image.manifest.digest)
    current.unlink()
    current.symlink_to(outside / "link")
    with pytest.raises(TransportError, match="symbolic link"):
        _read(written)
    with pytest.raises(TransportError, match="symbolic link"):
        walk(written)


def test_a_repository_that_is_a_symbolic_link_is_not_walked(
    image: OciImage, written: Path, outside: Path
) -> None:
    _copy(image.transport_ref, f"registry-dir:{outside}:hidden:v1")
    (_repo(written, "linked")).symlink_to(_repo(outside, "hidden"))
    assert [e.repository for e in walk(written)] == ["library/app"]
    with pytest.raises(TransportError, match="symbolic link"):
        _read(written, "linked:v1")


def test_every_failure_is_a_clusterimage_error(written: Path) -> None:
    # The CLI turns these into one line; nothing above may raise a bare Python error.
    (_repo(written, "library/app") / "_manifests/tags/v1/current/link").write_bytes(b"\xff")
    with pytest.raises(ClusterImageError):
        _read(written)
