"""``build --manifest NAME`` edits the list as the ``manifest`` verbs do: in one
read-modify-write of index.json under its lock, keeping what the list held besides the built
platforms' entries (its own annotations, other entries), so that neither an earlier
``manifest annotate --index`` nor an edit made while the build stores the list is lost. And
an index build that fails after some platforms were built leaves no untagged images behind."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from clusterimage import manifests
from clusterimage.build import runner
from clusterimage.build.runner import BuildSettings
from clusterimage.oci.manifest import ImageIndex
from clusterimage.store import Store
from tests.unit.build.test_multiplatform import _context

LIST = "localhost/apps/list:v1"


def _build(store: Store, context: Path, platform: str) -> runner.IndexOutcome:
    settings = BuildSettings(context, platform=platform, manifest="apps/list:v1", save_image=False)
    return runner.build_index(settings, store)


def _list(store: Store) -> ImageIndex:
    index = store.get_manifest(store.resolve(LIST).digest)
    assert isinstance(index, ImageIndex)
    return index


def test_the_lists_own_annotations_survive_a_build_into_it(tmp_path: Path, ci_home: Path) -> None:
    store = Store(tmp_path / "store")
    context = _context(tmp_path)
    _build(store, context, "linux/amd64")
    manifests.annotate(store, LIST, None, annotations={"team": "blue"}, on_index=True)
    outcome = _build(store, context, "linux/arm64")
    index = _list(store)
    assert index.digest == outcome.descriptor.digest
    assert index.data.get("annotations") == {"team": "blue"}
    assert [str(d.platform) for d in index.manifests] == ["linux/amd64", "linux/arm64"]
    assert [e.name for e in store.images()] == [LIST]
    assert store.fsck() == []
    # Recorded as stored by this build, so `images` lists it first, not by its 1970 config.
    assert LIST in store.stored_times()[str(index.digest)]


def test_an_edit_landing_while_the_build_stores_the_list_is_kept(
    tmp_path: Path, ci_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "store")
    context = _context(tmp_path)
    _build(store, context, "linux/amd64")
    # Another process's `manifest annotate --index` starts when the build writes the new
    # list's blob; it gets a second to land (it waits for the index lock if that is held).
    editor: list[threading.Thread] = []
    original = Store.put_bytes

    def put_bytes(self: Store, data: bytes, *args: Any, **kwargs: Any) -> Any:
        result = original(self, data, *args, **kwargs)
        if not editor and b'"manifests"' in data and b'"config"' not in data:
            other = Store(tmp_path / "store", create=False)
            thread = threading.Thread(
                target=manifests.annotate,
                args=(other, LIST, None),
                kwargs={"annotations": {"edited": "meanwhile"}, "on_index": True},
            )
            editor.append(thread)
            thread.start()
            thread.join(1.0)
        return result

    monkeypatch.setattr(Store, "put_bytes", put_bytes)
    _build(store, context, "linux/arm64")
    assert editor, "the build wrote no index"
    editor[0].join(30)
    assert not editor[0].is_alive()
    index = _list(store)
    assert index.data.get("annotations") == {"edited": "meanwhile"}  # the other edit
    assert [str(d.platform) for d in index.manifests] == ["linux/amd64", "linux/arm64"]  # ours


def test_a_failed_index_build_leaves_no_untagged_platform_images(
    tmp_path: Path, ci_home: Path
) -> None:
    store = Store(tmp_path / "store")
    context = _context(tmp_path)
    settings = BuildSettings(
        context, tags=("apps/x:v1",), platform="linux/amd64,linux/arm64", save_image=False
    )

    def on_event(event: Any) -> None:
        if event.kind == "platform" and event.message.startswith("PLATFORM 2/2"):
            raise KeyboardInterrupt  # stopped (or failed) after the first platform was built

    with pytest.raises(KeyboardInterrupt):
        runner.build_index(settings, store, on_event=on_event)
    # The first platform's image was stored untagged for the index; no index came, so it
    # must not stay behind as a <none> image.
    assert [e.name for e in store.images()] == []
    # An untagged image that was there before is left alone.
    single = runner.build(BuildSettings(context, save_image=False), store)
    with pytest.raises(KeyboardInterrupt):
        runner.build_index(settings, store, on_event=on_event)
    assert [(e.name, e.digest) for e in store.images()] == [(None, single.descriptor.digest)]
