"""The oci-archive transport in-process: reading by member offsets, the streamed writer of one or
several images, and archives that are broken or hostile (each one a one-line error, nothing
followed, nothing written outside the target)."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from clusterimage import errors
from clusterimage.copy import CopyOptions, copy_image, copy_to
from clusterimage.errors import (
    ClusterImageError,
    DigestMismatch,
    ImageNotFound,
    TransferInterrupted,
    TransportError,
)
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.oci.reference import Reference
from clusterimage.transports import parse
from clusterimage.transports.base import Context
from clusterimage.transports.oci_archive import OciArchiveReference, OciArchiveWriter
from tests.fixtures.oci_archive import (
    HOSTILE_CASES,
    OUTSIDE,
    TRUNCATIONS,
    blob_member,
    hostile,
    index_entries,
    member,
    members,
    rename_entries,
    rewrite,
)
from tests.fixtures.oci_layout import REF_NAME, OciImage, make_oci_layout
from tests.helpers.images import big_bytes, make_index_layout


def _image(root: Path, name: str = "v1", **kwargs: object) -> OciImage:
    return make_oci_layout(root / f"layout-{name}", ref=name, **kwargs)  # type: ignore[arg-type]


def _archive(tmp_path: Path, image: OciImage, ref: str = ":v1", **options: object) -> Path:
    path = tmp_path / "image.tar"
    dst = parse(f"oci-archive:{path}{ref}")
    copy_image(parse(image.transport_ref), dst, Context(**options))  # type: ignore[arg-type]
    return path


def _read_back(src: str, out: Path, **options: object) -> str:
    """Copy ``src`` into the layout ``out``; the digest it wrote."""
    opts = CopyOptions(all_platforms=True)
    ctx = Context(**options)  # type: ignore[arg-type]
    return str(copy_image(parse(src), parse(f"oci:{out}:x"), ctx, opts).digest)


def _names(entries: list[dict[str, object]]) -> list[str | None]:
    return [(e.get("annotations") or {}).get(REF_NAME) for e in entries]  # type: ignore[attr-defined]


# -- references --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "name"),
    [
        ("oci-archive:/x/a.tar", "/x/a.tar", None),
        ("oci-archive:a.tar:v1", "a.tar", "v1"),
        ("oci-archive:a.tar:docker.io/library/nginx:1.25", "a.tar", "docker.io/library/nginx:1.25"),
        ("oci-archive:a.tar:@3", "a.tar", "@3"),
    ],
)
def test_a_reference_parses_back_and_file_ends_at_the_first_colon(
    text: str, path: str, name: str | None
) -> None:
    ref = parse(text)
    assert isinstance(ref, OciArchiveReference)
    assert (str(ref.path), ref.name) == (path, name)
    assert str(ref) == text


@pytest.mark.parametrize("text", ["oci-archive:", "oci-archive::v1", "oci-archive:a.tar:a b"])
def test_a_bad_reference_is_refused(text: str) -> None:
    with pytest.raises(TransportError, match=r"expected oci-archive:FILE|valid ref name"):
        parse(text)


def test_docker_reference_is_the_ref_name_when_it_is_a_whole_reference() -> None:
    assert parse("oci-archive:a.tar:v1").docker_reference() is None
    whole = parse("oci-archive:a.tar:localhost/app:v1").docker_reference()
    assert whole == Reference.parse("localhost/app:v1")


# -- one image ---------------------------------------------------------------------------------


def test_an_image_goes_in_and_comes_back_with_its_digest(tmp_path: Path) -> None:
    image = _image(tmp_path, layers=[{"a": b"a\n"}, {"b": b"b\n"}])
    archive = _archive(tmp_path, image)
    infos = {info.name: info for info, _ in members(archive)}
    blobs = {blob_member(d) for d in [image.manifest.digest, *image.blob_digests()]}
    assert set(infos) == {"oci-layout", "index.json", "blobs", "blobs/sha256"} | blobs
    assert all(info.isfile() or info.isdir() for info in infos.values())
    assert _names(index_entries(archive)) == ["v1"]
    assert archive.stat().st_mode & 0o777 == 0o644
    assert _read_back(f"oci-archive:{archive}", tmp_path / "out") == image.manifest.digest
    assert _read_back(f"oci-archive:{archive}:v1", tmp_path / "out2") == image.manifest.digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tar", "layout-v1", "out", "out2"]


def test_without_ref_the_entry_has_no_name(tmp_path: Path) -> None:
    archive = _archive(tmp_path, _image(tmp_path), ref="")
    assert _names(index_entries(archive)) == [None]
    (listed,) = parse(f"oci-archive:{archive}").list_images(Context())
    assert str(listed) == f"oci-archive:{archive}:@0"


def test_an_index_and_its_children_keep_their_digests(tmp_path: Path) -> None:
    multi = make_index_layout(tmp_path / "multi", ref="v1")
    archive = tmp_path / "multi.tar"
    opts = CopyOptions(all_platforms=True)
    copy_image(parse(multi.transport_ref), parse(f"oci-archive:{archive}:v1"), Context(), opts)
    assert _read_back(f"oci-archive:{archive}:v1", tmp_path / "out") == multi.index.digest


def test_a_blob_streams_from_an_offset(tmp_path: Path) -> None:
    image = _image(tmp_path, layers=[{"big": bytes(range(256)) * 64}])
    archive = _archive(tmp_path, image)
    layer = image.layers[0]
    data = (image.layout / blob_member(layer.digest)).read_bytes()
    desc = Descriptor(layer.media_type, Digest.parse(layer.digest), layer.size)
    with parse(f"oci-archive:{archive}").new_source(Context()) as source:
        assert source.supports_ranges
        with source.open_blob(desc, 100) as stream:
            assert stream.read() == data[100:]


def test_many_layers_written_by_many_threads_make_one_whole_tar(tmp_path: Path) -> None:
    layers = [{f"f{n}": bytes([n]) * (5000 + n * 997)} for n in range(24)]
    image = _image(tmp_path, layers=layers)
    archive = _archive(tmp_path, image, jobs=8)
    names = [info.name for info, _ in members(archive)]
    assert len(names) == len(set(names)) == 4 + 2 + 24
    assert _read_back(f"oci-archive:{archive}", tmp_path / "out") == image.manifest.digest


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (None, "holds 2 images; choose one .* \\(ref names: v1, v2\\)"),
        ("v3", "no image named 'v3' \\(ref names: v1, v2\\)"),
        ("@2", "holds 2 images"),
    ],
)
def test_choosing_an_image_that_is_not_there(
    name: str | None, message: str, tmp_path: Path
) -> None:
    archive = _two_image_archive(tmp_path, [Reference.parse("v1"), Reference.parse("v2")])
    # The writer names images by whole references; rename them to bare tags, as skopeo would.
    rewrite(archive, archive, rename_entries(["v1", "v2"]))
    with pytest.raises(ImageNotFound, match=message):
        parse(f"oci-archive:{archive}" + (f":{name}" if name else "")).new_source(Context())


# -- the writer of several images --------------------------------------------------------------


def _two_image_archive(tmp_path: Path, names: Sequence[Reference | None]) -> Path:
    shared = {"shared.txt": b"in both\n"}
    target = tmp_path / "bundle.tar"
    with parse(f"oci-archive:{target}").new_writer(Context()) as writer:
        for number, name in enumerate(names):
            image = _image(
                tmp_path, f"i{number}", layers=[shared, {"own.txt": f"{number}\n".encode()}]
            )
            with writer.new_destination(name) as dest:
                copy_to(parse(image.transport_ref), dest, Context())
        writer.commit()
    return target


def test_several_images_share_one_archive_and_each_blob_is_written_once(tmp_path: Path) -> None:
    names = [Reference.parse("localhost/a:v1"), Reference.parse("nginx:1.25")]
    archive = _two_image_archive(tmp_path, names)
    written = [info.name for info, _ in members(archive)]
    assert len(written) == len(set(written))
    # 2 manifests, 2 configs, 1 shared layer, 2 own layers.
    assert sum(name.startswith("blobs/sha256/") for name in written) == 7
    assert written[0] == "oci-layout" and written[-1] == "index.json"
    assert _names(index_entries(archive)) == ["localhost/a:v1", "docker.io/library/nginx:1.25"]
    listed = parse(f"oci-archive:{archive}").list_images(Context())
    assert [image.docker_reference() for image in listed] == names
    for number, image in enumerate(listed):
        digest = _read_back(str(image), tmp_path / f"out{number}")
        assert digest == index_entries(archive)[number]["digest"]


def test_unnamed_and_doubly_named_images_are_listed_by_position(tmp_path: Path) -> None:
    archive = _two_image_archive(tmp_path, [None, Reference.parse("localhost/a:v1")])
    assert _names(index_entries(archive)) == [None, "localhost/a:v1"]
    listed = [str(r) for r in parse(f"oci-archive:{archive}").list_images(Context())]
    assert listed == [f"oci-archive:{archive}:@0", f"oci-archive:{archive}:localhost/a:v1"]
    rewrite(archive, archive, rename_entries(["same", "same"]))
    listed = [str(r) for r in parse(f"oci-archive:{archive}").list_images(Context())]
    assert listed == [f"oci-archive:{archive}:@0", f"oci-archive:{archive}:@1"]


def test_the_archive_is_a_hidden_file_until_commit_and_close_removes_it(tmp_path: Path) -> None:
    image = _image(tmp_path)
    folder = tmp_path / "out"
    folder.mkdir()
    writer = parse(f"oci-archive:{folder / 'b.tar'}").new_writer(Context())
    with writer.new_destination(None) as dest:
        copy_to(parse(image.transport_ref), dest, Context())
    (temp,) = folder.iterdir()
    assert temp.name.startswith(".b.tar.tmp-")
    writer.close()
    assert list(folder.iterdir()) == []


def test_the_writer_writes_into_an_open_stream(tmp_path: Path) -> None:
    image = _image(tmp_path)
    stream = io.BytesIO()
    with OciArchiveWriter(stream) as writer:
        with writer.new_destination(Reference.parse("localhost/s:v1")) as dest:
            copy_to(parse(image.transport_ref), dest, Context())
        writer.commit()
    assert not stream.closed
    archive = tmp_path / "from-stream.tar"
    archive.write_bytes(stream.getvalue())
    assert _read_back(f"oci-archive:{archive}", tmp_path / "out") == image.manifest.digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["from-stream.tar", "layout-v1", "out"]


def test_a_blob_that_does_not_match_spoils_the_archive(tmp_path: Path) -> None:
    image = _image(tmp_path)
    layer = image.layout / blob_member(image.layers[0].digest)
    layer.write_bytes(b"\0" * image.layers[0].size)
    target = tmp_path / "out" / "b.tar"
    target.parent.mkdir()
    with pytest.raises(DigestMismatch, match=image.layers[0].digest):
        copy_image(parse(image.transport_ref), parse(f"oci-archive:{target}"), Context())
    assert list(target.parent.iterdir()) == []


def test_after_a_mismatch_every_write_names_it(tmp_path: Path) -> None:
    # Blobs go in from parallel threads: whichever reports first must show the cause.
    wrong = Descriptor(mt.OCI_LAYER, Digest.of(b"want"), 4)
    right = Descriptor(mt.OCI_LAYER, Digest.of(b"good"), 4)
    with OciArchiveWriter(tmp_path / "b.tar") as writer:
        dest = writer.new_destination(None)
        with pytest.raises(DigestMismatch, match=str(wrong.digest)):
            dest.put_blob(wrong, io.BytesIO(b"got!"))
        with pytest.raises(DigestMismatch, match=f"cannot write more: blob {wrong.digest}"):
            dest.put_blob(right, io.BytesIO(b"good"))
        with pytest.raises(DigestMismatch):
            writer.commit()
    assert list(tmp_path.iterdir()) == []


class _BreaksOff(io.RawIOBase):
    """``data`` that breaks off with TransferInterrupted after ``cut`` bytes."""

    def __init__(self, data: bytes, cut: int) -> None:
        self._stream = io.BytesIO(data[:cut])

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if not data:
            raise TransferInterrupted("connection reset", retry_after=0)
        return data


@pytest.mark.parametrize("target", ["file", "stream"])
def test_a_blob_that_breaks_off_is_cut_back_from_a_file_only(target: str, tmp_path: Path) -> None:
    data = b"layer bytes " * 1000
    desc = Descriptor(mt.OCI_LAYER, Digest.of(data), len(data))
    stream = io.BytesIO()
    writer = OciArchiveWriter(tmp_path / "b.tar" if target == "file" else stream)
    dest = writer.new_destination(None)
    with pytest.raises(TransferInterrupted):
        dest.put_blob(desc, _BreaksOff(data, 5000))  # type: ignore[arg-type]
    if target == "stream":  # bytes already sent cannot be taken back
        with pytest.raises(TransportError, match=r"cannot write more: writing .* broke off"):
            dest.put_blob(desc, io.BytesIO(data))
        return
    dest.put_blob(desc, io.BytesIO(data))
    writer.close()  # no commit: nothing at the target
    assert list(tmp_path.iterdir()) == []


def test_a_blob_put_again_after_breaking_off_makes_a_whole_archive(tmp_path: Path) -> None:
    image = _image(tmp_path)
    raw = {d: (image.layout / blob_member(d)).read_bytes() for d in image.blob_digests()}
    target = tmp_path / "b.tar"
    with OciArchiveWriter(target) as writer:
        dest = writer.new_destination(None)
        for blob in (image.config, *image.layers):
            desc = Descriptor(blob.media_type, Digest.parse(blob.digest), blob.size)
            with pytest.raises(TransferInterrupted):
                dest.put_blob(desc, _BreaksOff(raw[blob.digest], blob.size // 2))  # type: ignore[arg-type]
            dest.put_blob(desc, io.BytesIO(raw[blob.digest]))
        source = parse(image.transport_ref).new_source(Context())
        dest.put_manifest(source.get_manifest(), top=True)
        dest.commit()
        writer.commit()
    assert _read_back(f"oci-archive:{target}", tmp_path / "out") == image.manifest.digest


def test_threads_putting_the_same_and_other_blobs_at_once(tmp_path: Path) -> None:
    blobs = [bytes([n % 7]) * (3000 + n) for n in range(40)]
    target = tmp_path / "b.tar"
    with OciArchiveWriter(target) as writer:
        dest = writer.new_destination(None)

        def put(data: bytes) -> None:
            dest.put_blob(Descriptor(mt.OCI_LAYER, Digest.of(data), len(data)), io.BytesIO(data))

        threads = [threading.Thread(target=put, args=(b,)) for b in blobs + blobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writer.commit()  # an archive of blobs only: tar-whole, not an image
    names = [info.name for info, _ in members(target)]
    assert len(names) == len(set(names)) == 3 + len(blobs) + 1
    by_name = {info.name: data for info, data in members(target)}
    for data in blobs:
        assert by_name[f"blobs/sha256/{Digest.of(data).hex}"] == data


@pytest.mark.parametrize(
    ("where", "message"),
    [("missing/b.tar", "no folder .*missing to write it in"), (".", "a folder; name")],
)
def test_a_target_that_cannot_be_written_is_one_line(
    where: str, message: str, tmp_path: Path
) -> None:
    image = _image(tmp_path)
    with pytest.raises(TransportError, match=message):
        copy_image(parse(image.transport_ref), parse(f"oci-archive:{tmp_path / where}"))


# -- broken and hostile archives ---------------------------------------------------------------


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_a_broken_or_hostile_archive_is_one_line_and_nothing_is_followed(
    case: str, tmp_path: Path
) -> None:
    image = _image(tmp_path)
    good = _archive(tmp_path, image)
    change, error, message = hostile(image)[case]
    bad = rewrite(good, tmp_path / "bad.tar", change)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(getattr(errors, error)) as caught:
        _read_back(f"oci-archive:{bad}", tmp_path / "out")
    text = str(caught.value)
    assert message in text and "\n" not in text and text.startswith(f"oci-archive:{bad}: ")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == before
    assert not Path(OUTSIDE).exists() and not (tmp_path.parent / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_nothing_asks_for_are_ignored(kind: bytes, tmp_path: Path) -> None:
    image = _image(tmp_path)
    good = _archive(tmp_path, image)
    bad = rewrite(good, tmp_path / "bad.tar", lambda m: m + member("x", kind=kind, link="/etc"))
    assert _read_back(f"oci-archive:{bad}", tmp_path / "out") == image.manifest.digest


@pytest.mark.parametrize("cut", sorted(TRUNCATIONS))
def test_a_truncated_archive_is_one_line(cut: str, tmp_path: Path) -> None:
    image = _image(tmp_path, layers=[{"big": big_bytes(100_000)}])
    good = _archive(tmp_path, image)
    bad = tmp_path / "cut.tar"
    bad.write_bytes(good.read_bytes()[: TRUNCATIONS[cut](good)])
    with pytest.raises(ClusterImageError) as caught:
        _read_back(f"oci-archive:{bad}", tmp_path / "out")
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"oci-archive:{bad}: ")
    assert "truncated" in text or "unexpected end of data" in text


def test_a_huge_pax_header_is_refused_unread(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 1 << 30
    # The header claims a gigabyte; the file holds a few blocks.
    bad.write_bytes(header.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * 4096)
    with pytest.raises(TransportError, match=r"not a readable tar archive .*PAX header"):
        parse(f"oci-archive:{bad}").new_source(Context())


@pytest.mark.parametrize("content", [b"", b"not a tar" * 200])
def test_what_is_no_tar_is_one_line(content: bytes, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    with pytest.raises(TransportError, match=f"oci-archive:{bad}: "):
        parse(f"oci-archive:{bad}").new_source(Context())
