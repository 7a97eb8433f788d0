"""Layer listings: what a cached layer tells a stage without reading the layer or its sources."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clusterimage.build.baseimage import (
    apply_listing,
    entries_listing,
    extract,
    layer_listing,
    save_listing,
)
from clusterimage.build.fstree import Content, FsTree, Node
from clusterimage.build.layer import write_layer
from clusterimage.errors import StoreError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.digest import Digest
from clusterimage.store import Store


def test_listing_of_written_entries_is_what_the_layer_holds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"payload")
    shared = Content(data, 7)
    entries = {
        "opt": Node("dir", 0o750, uid=5, gid=6),
        "opt/a": Node("file", 0o600, content=shared),
        "opt/b": Node("file", 0o644, content=shared),  # a hard link of opt/a
        "opt/l": Node("symlink", 0o777, linkname="a"),
        "opt/null": Node("char", 0o666, devmajor=1, devminor=3),
    }
    store = Store(tmp_path / "store")
    with store.blob_writer() as writer:
        result = write_layer(entries.items(), writer, hash_output=False)
        digest, size = writer.commit()
    layer = Descriptor(mt.OCI_LAYER_GZIP, digest, size)
    listing = entries_listing(entries)
    save_listing(tmp_path / "listings", digest, listing)
    assert layer_listing(store, layer, tmp_path / "listings") == listing  # read back, no blob read
    # Reading the blob gives the same records, file digests included: a file's cache identity
    # does not depend on which home wrote the layer.
    from_blob = layer_listing(store, layer, tmp_path / "other")
    assert from_blob == listing
    assert result.entries == len(listing)

    tree = FsTree()
    apply_listing(tree, layer, listing)
    a, b = tree.get("opt/a"), tree.get("opt/b")
    assert a is not None and b is not None and a.content is not None
    assert a.content is b.content  # still one file
    assert a.content.digest == str(Digest.of(b"payload"))  # identity as when it was written
    assert a.content.origin == f"{digest}!opt/a"  # bytes from the layer when needed
    assert tree.get("opt") == Node("dir", 0o750, uid=5, gid=6)
    assert tree.get("opt/l") == Node("symlink", 0o777, linkname="a")
    assert tree.get("opt/null") == Node("char", 0o666, devmajor=1, devminor=3)


def test_a_fifo_in_place_of_a_layer_fails_fast_instead_of_blocking(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"x")
    store = Store(tmp_path / "store")
    with store.blob_writer() as writer:
        write_layer([("f", Node("file", 0o644, content=Content(data, 1)))], writer)
        digest, size = writer.commit()
    store.blob_path(digest).unlink()
    os.mkfifo(store.blob_path(digest))
    layer = Descriptor(mt.OCI_LAYER_GZIP, digest, size)
    content = Content(None, 0, origin=f"{digest}!f")
    with ThreadPoolExecutor(2) as pool:
        listing = pool.submit(layer_listing, store, layer, tmp_path / "listings")
        staged = pool.submit(extract, store, [content], tmp_path / "staging")
        for future in (listing, staged):
            with pytest.raises(StoreError, match=rf"blob {digest} .*not a regular file"):
                future.result(timeout=20)
