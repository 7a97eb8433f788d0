"""A layout that came from elsewhere (``oci:DIR``) cannot make a write land outside it.

Its private ``.clusterimage/`` folder is as much the layout's content as ``blobs/``: a symbolic
link planted there (an ingest file, a lock file) must not let a copy into the layout truncate,
overwrite or create a file it points at.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from clusterimage.errors import StoreError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.store.blobs import ingest_name
from clusterimage.store.layout import Layout

DATA = b"blob bytes an attacker knows the digest of\n" * 100


def _plant(layout: Layout, name: str, target: Path) -> Path:
    link = layout.state_dir / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("partial", [b"", b"precious data that is longer than the blob " * 200])
def test_planted_ingest_symlink_is_not_written_through(tmp_path: Path, partial: bytes) -> None:
    layout = Layout(tmp_path / "layout")
    digest = Digest.of(DATA)
    victim = tmp_path / "victim"
    victim.write_bytes(partial or b"precious")
    before = victim.read_bytes()
    _plant(layout, f"ingest/{ingest_name(digest)}", victim)

    offset = layout.partial_size(digest)
    with pytest.raises(StoreError, match="symbolic link"):
        layout.put_stream(io.BytesIO(DATA[offset:]), digest, len(DATA), offset=offset)
    assert victim.read_bytes() == before
    assert not layout.has_blob(digest)


def test_planted_dangling_ingest_symlink_creates_nothing(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    digest = Digest.of(DATA)
    victim = tmp_path / "elsewhere"
    _plant(layout, f"ingest/{ingest_name(digest)}", victim)
    with pytest.raises(StoreError, match="symbolic link"):
        layout.put_stream(io.BytesIO(DATA), digest, len(DATA))
    assert not os.path.lexists(victim)


def test_planted_lock_symlink_creates_nothing(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    victim = tmp_path / "elsewhere"
    _plant(layout, "gc.lock", victim)
    with pytest.raises(StoreError, match="symbolic link"):
        layout.put_bytes(DATA)
    assert not os.path.lexists(victim)


def test_planted_index_lock_symlink_creates_nothing(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    digest = layout.put_bytes(DATA)
    victim = tmp_path / "elsewhere"
    (layout.state_dir / "index.lock").unlink()
    _plant(layout, "index.lock", victim)
    desc = Descriptor(media_type=mt.OCI_MANIFEST, digest=digest, size=len(DATA))
    with pytest.raises(StoreError, match="symbolic link"):
        layout.set_ref("x", desc)
    assert not os.path.lexists(victim)


def test_a_blob_linked_to_a_file_outside_is_not_served_unverified(tmp_path: Path) -> None:
    # A crafted oci: layout names a layer blob and links it to a private file of whoever copies
    # it: a copy streams the blob to its destination (a registry the crafter reads) and finds
    # the digest wrong only at the end. A linked blob is therefore checked before any byte of
    # it is served.
    layout = Layout(tmp_path / "layout")
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n...")
    digest = Digest.of(b"the layer the manifest names")
    layout.blob_path(digest).symlink_to(secret)
    for offset in (0, 5):
        with pytest.raises(StoreError, match="does not hash to its name"):
            layout.open_blob(digest, offset).close()


def test_a_blob_linked_to_its_own_content_is_served(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    shared = tmp_path / "shared-blob"
    shared.write_bytes(DATA)
    digest = Digest.of(DATA)
    layout.blob_path(digest).symlink_to(shared)
    with layout.open_blob(digest, 7) as stream:
        assert stream.read() == DATA[7:]
