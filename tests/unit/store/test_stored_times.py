"""When each name was stored: a side file of the store that `images` sorts by."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from clusterimage.copy import CopyOptions, copy_image
from clusterimage.oci.digest import Digest
from clusterimage.store import Store
from clusterimage.transports import Context, parse
from tests.fixtures.oci_layout import make_oci_layout


def _import(store: Store, source: str, name: str) -> Digest:
    ctx = Context(store_dir=store.root)
    return copy_image(parse(source), parse(f"store:{name}"), ctx, CopyOptions()).digest


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_every_way_a_name_is_written_records_its_time(store: Store, tmp_path: Path) -> None:
    one = make_oci_layout(tmp_path / "one", ref="v1", layers=({"a": b"1"},))
    two = make_oci_layout(tmp_path / "two", ref="v1", layers=({"b": b"2"},))
    first = str(_import(store, one.transport_ref, "example.com/a:v1"))
    times = store.stored_times()
    assert list(times) == [first] and list(times[first]) == ["example.com/a:v1"]
    stamp = times[first]["example.com/a:v1"]
    assert stamp.endswith("Z") and stamp.startswith(time.strftime("%Y-", time.gmtime()))

    store.tag("example.com/a:v1", "example.com/a:v2")
    store.tag("example.com/a:v1", "example.com/a:v1")  # the same image again: the time stays
    times = store.stored_times()
    assert times[first]["example.com/a:v1"] == stamp
    assert times[first]["example.com/a:v2"] > stamp

    # The name moves to another image: the image it left keeps that time, untagged.
    second = str(_import(store, two.transport_ref, "example.com/a:v1"))
    times = store.stored_times()
    assert times[first] == {"": stamp, "example.com/a:v2": times[first]["example.com/a:v2"]}
    assert set(times[second]) == {"example.com/a:v1"}

    # Images that left the store leave the file at its next write.
    store.remove("example.com/a:v2")
    store.remove_dangling()
    store.tag("example.com/a:v1", "example.com/a:v3")
    assert list(store.stored_times()) == [second]
    # index.json itself carries names only.
    index = json.loads((store.root / "index.json").read_text())
    assert all(
        set(e["annotations"]) == {"org.opencontainers.image.ref.name"} for e in index["manifests"]
    )


def test_an_untagged_store_writes_a_time_too(store: Store, tmp_path: Path) -> None:
    one = make_oci_layout(tmp_path / "one", ref="v1")
    ctx = Context(store_dir=store.root)
    result = copy_image(parse(one.transport_ref), parse("store:"), ctx, CopyOptions())
    assert set(store.stored_times()[str(result.digest)]) == {""}


@pytest.mark.parametrize("kind", ["missing", "garbage", "list", "fifo", "symlink", "directory"])
def test_an_unreadable_record_is_no_record(store: Store, tmp_path: Path, kind: str) -> None:
    path = store.state_dir / Store.STORED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = tmp_path / "secret.json"
    secret.write_text('{"sha256:x": {"a": "2024-01-01T00:00:00Z"}}')
    if kind == "garbage":
        path.write_text("{not json")
    elif kind == "list":
        path.write_text("[1, 2]")
    elif kind == "fifo":
        os.mkfifo(path)  # a plain open would wait for a writer forever
    elif kind == "symlink":
        path.symlink_to(secret)  # not followed: a layout from elsewhere may plant one
    elif kind == "directory":
        path.mkdir()
    assert store.stored_times() == {}


def test_a_name_given_again_after_its_removal_is_stored_now(store: Store, tmp_path: Path) -> None:
    """rmi NAME then pull (or tag) it again: `images` lists the most recently stored name
    first, so the name's time is the new one, not the time it had before it was removed
    (the image kept other names, so its record stayed)."""
    one = make_oci_layout(tmp_path / "one", ref="v1", layers=({"a": b"1"},))
    digest = str(_import(store, one.transport_ref, "example.com/a:v1"))
    store.tag("example.com/a:v1", "example.com/b:v1")
    first = store.stored_times()[digest]
    assert first["example.com/b:v1"] > first["example.com/a:v1"]

    store.remove("example.com/a:v1")
    _import(store, one.transport_ref, "example.com/a:v1")
    again = store.stored_times()[digest]
    assert again["example.com/b:v1"] == first["example.com/b:v1"]
    assert again["example.com/a:v1"] > first["example.com/b:v1"]
