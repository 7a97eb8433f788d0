"""The native engine on a real store in a temporary folder: images, cache, determinism, errors."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from clusterimage.build import archive as archive_module
from clusterimage.build.baseimage import BaseImages
from clusterimage.build.engine import BuildEvent, BuildRequest, select_engine
from clusterimage.build.plan import plan_build
from clusterimage.errors import BuildError, KubefileError
from clusterimage.layers import writer as writer_module
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.descriptor import Descriptor
from clusterimage.oci.manifest import ImageManifest
from clusterimage.store import Store
from clusterimage.transports.base import Context


def _context(root: Path, kubefile: str, files: dict[str, str | bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Kubefile").write_text(kubefile)
    for rel, data in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return root


class _Built:
    def __init__(self, store: Store, desc: Descriptor, events: list[BuildEvent]) -> None:
        self.store = store
        self.descriptor = desc
        self.events = events
        manifest = store.get_manifest(desc.digest, desc.media_type)
        assert isinstance(manifest, ImageManifest)
        self.manifest = manifest
        self.config = store.get_config(manifest)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events if e.kind in ("layer", "cached")]

    def layer_members(self, index: int) -> dict[str, tarfile.TarInfo]:
        desc = self.manifest.layers[index]
        raw = self.store.blob_path(desc.digest).read_bytes()
        if desc.media_type == mt.OCI_LAYER_GZIP:
            raw = gzip.decompress(raw)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            return {m.name: m for m in tar.getmembers()}

    def layer_file(self, index: int, name: str) -> bytes:
        desc = self.manifest.layers[index]
        raw = gzip.decompress(self.store.blob_path(desc.digest).read_bytes())
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            f = tar.extractfile(name)
            assert f is not None
            return f.read()


def _build(
    context: Path, home: Path, *, tags: tuple[str, ...] = ("example.com/app:v1",), **kw: Any
) -> _Built:
    store = Store(home / "store")
    plan_args = {k: kw.pop(k) for k in ("build_args", "labels", "envs", "platform") if k in kw}
    images = BaseImages(store, Context(store_dir=store.root), pull=False)
    plan = plan_build(context, base_config=images.config, **plan_args)
    engine = kw.pop("engine", "native")
    events: list[BuildEvent] = []
    request = BuildRequest(
        store=store, home=home, tags=tags, base_images=images, on_event=events.append, **kw
    )
    desc = select_engine(engine, plan).build(plan, request)
    return _Built(store, desc, events)


APP = """\
FROM scratch
LABEL sealos.io.type="application" version="1"
ENV NAMESPACE=demo PATH=/bin
COPY manifests manifests
COPY bin/ /opt/bin/
COPY registry registry
WORKDIR /opt
USER 1000:1000
EXPOSE 8080/tcp
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["kubectl apply -f manifests/"]
"""

FILES: dict[str, str | bytes] = {
    "manifests/app.yaml": "kind: Deployment\n",
    "manifests/svc.yaml": "kind: Service\n",
    "bin/tool": b"\x7fELF" + bytes(range(256)) * 64,
}


def test_image_config_and_layers(tmp_path: Path) -> None:
    built = _build(_context(tmp_path / "ctx", APP, FILES), tmp_path / "home", timestamp=86400)
    config = built.config.data
    assert config["created"] == "1970-01-02T00:00:00Z"
    inner = config["config"]
    assert inner["Env"] == ["PATH=/bin", "NAMESPACE=demo"]
    assert inner["Labels"] == {"sealos.io.type": "application", "version": "1"}
    assert inner["Cmd"] == ["kubectl apply -f manifests/"]
    assert inner["Entrypoint"] == ["/bin/sh", "-c"]
    assert inner["WorkingDir"] == "/opt"
    assert inner["User"] == "1000:1000"
    assert inner["ExposedPorts"] == {"8080/tcp": {}}
    assert inner["Volumes"] == {"/data": {}}
    assert inner["StopSignal"] == "SIGTERM"
    # One layer per COPY, plus WORKDIR's folder (BuildKit makes it a layer of its own).
    assert len(built.manifest.layers) == 4
    assert len(config["rootfs"]["diff_ids"]) == 4
    # registry/ holds compressed blobs: its layer is not compressed again by default.
    types = [d.media_type for d in built.manifest.layers]
    assert types == [mt.OCI_LAYER_GZIP, mt.OCI_LAYER_GZIP, mt.OCI_LAYER, mt.OCI_LAYER_GZIP]
    history = config["history"]
    assert [h.get("empty_layer", False) for h in history].count(False) == 4
    copies = [h["created_by"] for h in history if "COPY" in h["created_by"]]
    assert copies[0].startswith("/bin/sh -c #(nop) COPY dir:") and copies[0].endswith(
        " in /manifests"
    )
    assert all(h["created"] == "1970-01-02T00:00:00Z" for h in history)
    members = built.layer_members(1)
    assert set(members) == {"opt", "opt/bin", "opt/bin/tool"}
    assert all(m.mtime == 86400 and m.uid == 0 and m.uname == "" for m in members.values())
    assert built.layer_file(1, "opt/bin/tool") == FILES["bin/tool"]
    assert set(built.layer_members(2)) == {"registry"}
    assert built.store.resolve("example.com/app:v1").digest == built.descriptor.digest


def test_unchanged_rebuild_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = _context(tmp_path / "ctx", APP, FILES)
    first = _build(context, tmp_path / "home")
    assert first.kinds == ["layer"] * 4

    def no_reading(*args: object) -> None:
        raise AssertionError("a cached rebuild must not read file contents")

    monkeypatch.setattr(writer_module, "_copy_content", no_reading)
    again = _build(context, tmp_path / "home")
    assert again.kinds == ["cached"] * 4
    assert again.descriptor.digest == first.descriptor.digest


def test_a_changed_file_rebuilds_its_layer_and_those_above(tmp_path: Path) -> None:
    context = _context(tmp_path / "ctx", APP, FILES)
    first = _build(context, tmp_path / "home")
    (context / "bin" / "tool").write_bytes(b"new build of the tool")
    second = _build(context, tmp_path / "home")
    assert second.kinds == ["cached", "layer", "layer", "layer"]
    assert second.descriptor.digest != first.descriptor.digest
    assert second.manifest.layers[0] == first.manifest.layers[0]
    # Same bytes again, new mtime and inode: content hashing finds the first build's layers.
    (context / "bin" / "tool").unlink()
    (context / "bin" / "tool").write_bytes(FILES["bin/tool"])  # type: ignore[arg-type]
    third = _build(context, tmp_path / "home")
    assert third.descriptor.digest == first.descriptor.digest


def test_no_cache_and_missing_blobs_rebuild_the_same_bytes(tmp_path: Path) -> None:
    context = _context(tmp_path / "ctx", APP, FILES)
    first = _build(context, tmp_path / "home")
    again = _build(context, tmp_path / "home", use_cache=False)
    assert again.kinds == ["layer"] * 4
    assert again.descriptor.digest == first.descriptor.digest
    gone = first.manifest.layers[0].digest
    first.store.blob_path(gone).unlink()
    third = _build(context, tmp_path / "home")
    assert third.kinds == ["layer", "cached", "cached", "cached"]
    assert first.store.has_blob(gone)


def test_same_digest_from_copies_in_other_folders_and_homes(tmp_path: Path) -> None:
    one = _context(tmp_path / "a" / "ctx", APP, FILES)
    two = tmp_path / "elsewhere" / "copy"
    shutil.copytree(one, two)
    for path in two.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)
    (two / "bin" / "tool").chmod(0o644)
    (one / "bin" / "tool").chmod(0o644)
    first = _build(one, tmp_path / "home1")
    second = _build(two, tmp_path / "home2")
    assert first.descriptor.digest == second.descriptor.digest
    assert first.config.digest == second.config.digest


def test_timestamp_and_compression_change_the_image(tmp_path: Path) -> None:
    context = _context(tmp_path / "ctx", APP, FILES)
    base = _build(context, tmp_path / "home")
    later = _build(context, tmp_path / "home", timestamp=1700000000)
    assert later.descriptor.digest != base.descriptor.digest
    assert later.config.data["created"] == "2023-11-14T22:13:20Z"
    for compression, media_type in (("zstd", mt.OCI_LAYER_ZSTD), ("none", mt.OCI_LAYER)):
        built = _build(
            context,
            tmp_path / "home",
            compression=compression,
            registry_compression=compression,
        )
        assert {d.media_type for d in built.manifest.layers} == {media_type}
        assert built.config.diff_ids == base.config.diff_ids  # same tars, other framing
    none = _build(context, tmp_path / "home", compression="none")
    assert [d.digest for d in none.manifest.layers] == none.config.diff_ids


def test_symlink_out_of_context_is_copied_as_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside-secret"
    outside.write_text("must never be read\n")
    context = _context(tmp_path / "ctx", "FROM scratch\nCOPY . .\n", {"a.txt": "a\n"})
    (context / "secret").symlink_to(outside)
    (context / "up").symlink_to("../outside-secret")
    built = _build(context, tmp_path / "home")
    members = built.layer_members(0)
    assert members["secret"].issym() and members["secret"].linkname == str(outside)
    assert members["up"].issym() and members["up"].linkname == "../outside-secret"
    single = _context(tmp_path / "ctx2", "FROM scratch\nCOPY up /etc/x\n")
    (single / "up").symlink_to("../outside-secret")
    linked = _build(single, tmp_path / "home")
    assert linked.layer_members(0)["etc/x"].issym()


def test_multi_stage_copy_from(tmp_path: Path) -> None:
    kubefile = """\
FROM scratch AS one
COPY manifests/ /m/
FROM one AS two
COPY bin/tool /m/bin/tool
FROM scratch AS unused
COPY nothing-here /x
FROM scratch
COPY --from=two /m /all
COPY --from=one /m/app.yaml /single.yaml
"""
    built = _build(_context(tmp_path / "ctx", kubefile, FILES), tmp_path / "home")
    assert len(built.manifest.layers) == 2
    assert set(built.layer_members(0)) == {
        "all",
        "all/app.yaml",
        "all/svc.yaml",
        "all/bin",
        "all/bin/tool",
    }
    assert set(built.layer_members(1)) == {"single.yaml"}


def test_copy_from_a_stage_follows_a_named_link_inside_that_stage(tmp_path: Path) -> None:
    # In a stage, "/" is the stage's root: BuildKit (FollowSymlinks) resolves a source link
    # there, absolute targets included; only the build context treats them as pointing out.
    kubefile = """\
FROM scratch AS one
COPY manifests /opt/app/v1
COPY current /opt/app/current
COPY current-file /opt/app/current-file
FROM scratch
COPY --from=one /opt/app/current /app
COPY --from=one /opt/app/current-file /app.yaml
"""
    context = _context(tmp_path / "ctx", kubefile, FILES)
    (context / "current").symlink_to("/opt/app/v1")
    (context / "current-file").symlink_to("/opt/app/v1/app.yaml")
    built = _build(context, tmp_path / "home")
    assert set(built.layer_members(0)) == {"app", "app/app.yaml", "app/svc.yaml"}
    single = built.layer_members(1)["app.yaml"]
    assert single.isfile() and built.layer_file(1, "app.yaml") == b"kind: Deployment\n"


def _tar_gz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_add_unpacks_local_archives_and_copies_other_files(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "chart.tgz": _tar_gz({"chart/Chart.yaml": b"name: c\n"}),
        "notes.txt.gz": gzip.compress(b"not a tar"),
    }
    kubefile = "FROM scratch\nADD chart.tgz /charts/\nADD notes.txt.gz /doc/\n"
    built = _build(_context(tmp_path / "ctx", kubefile, files), tmp_path / "home")
    assert "charts/chart/Chart.yaml" in built.layer_members(0)
    assert "doc/notes.txt.gz" in built.layer_members(1)


def test_add_keeps_the_owners_an_archive_gives_unless_chown(tmp_path: Path) -> None:
    # As BuildKit, buildah and moby's untar: members keep their uid/gid; --chown overrides them.
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        folder = tarfile.TarInfo("app")
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o755, 1000, 1001
        tar.addfile(folder)
        info = tarfile.TarInfo("app/run.sh")
        info.size, info.mode, info.uid, info.gid = 3, 0o755, 1000, 1001
        tar.addfile(info, io.BytesIO(b"ls\n"))
        link = tarfile.TarInfo("app/current")
        link.type, link.linkname, link.uid, link.gid = tarfile.SYMTYPE, "run.sh", 7, 8
        tar.addfile(link)
    kubefile = "FROM scratch\nADD app.tgz /opt/\nADD --chown=5:6 app.tgz /srv/\n"
    context = _context(tmp_path / "ctx", kubefile, {"app.tgz": out.getvalue()})
    for home in ("home", "home"):  # cold, then from the cache
        built = _build(context, tmp_path / home)
        kept = built.layer_members(0)
        assert [(kept[n].uid, kept[n].gid) for n in ("opt", "opt/app", "opt/app/run.sh")] == [
            (0, 0),
            (1000, 1001),
            (1000, 1001),
        ]
        assert (kept["opt/app/current"].uid, kept["opt/app/current"].gid) == (7, 8)
        chowned = built.layer_members(1)
        assert {(m.uid, m.gid) for m in chowned.values()} == {(5, 6)}


ADD_KUBEFILE = """\
FROM scratch AS unpacked
ADD chart.tgz /charts/
COPY values.yaml /charts/chart/values.yaml
FROM scratch
COPY --from=unpacked /charts/chart /chart
"""


def test_unchanged_rebuild_with_add_neither_reads_nor_decompresses_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files: dict[str, str | bytes] = {
        "chart.tgz": _tar_gz({"chart/Chart.yaml": b"name: c\n", "chart/big": os.urandom(1 << 16)}),
        "values.yaml": "replicas: 2\n",
    }
    context = _context(tmp_path / "ctx", ADD_KUBEFILE, files)
    decompressions: list[str] = []
    real = archive_module.decompressed

    def counting(raw: Any, compression: str) -> Any:
        decompressions.append(compression)
        return real(raw, compression)

    monkeypatch.setattr(archive_module, "decompressed", counting)
    first = _build(context, tmp_path / "home")
    assert first.kinds == ["layer"] * 3
    assert decompressions == ["gzip"]  # once: no separate "is it an archive?" pass
    assert set(first.layer_members(0)) == {
        "chart",
        "chart/Chart.yaml",
        "chart/big",
        "chart/values.yaml",
    }

    def forbidden(*args: object) -> None:
        raise AssertionError("an unchanged ADD must not open, read or decompress the archive")

    monkeypatch.setattr(archive_module, "decompressed", forbidden)
    monkeypatch.setattr(archive_module, "open_content", forbidden)
    monkeypatch.setattr(writer_module, "_copy_content", forbidden)
    again = _build(context, tmp_path / "home")
    # The stage still knows what the archive holds (from the layer's listing): the COPY above it
    # and the COPY --from of the unpacked files are cached too, with the same image digest.
    assert again.kinds == ["cached"] * 3
    assert again.descriptor.digest == first.descriptor.digest
    assert again.config.data["history"] == first.config.data["history"]


def test_a_changed_archive_rebuilds_its_layer(tmp_path: Path) -> None:
    def archive(text: bytes) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("app/version")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
        return out.getvalue()

    kubefile = "FROM scratch\nADD app.tar /opt/\nCOPY plain.txt /opt/plain.txt\n"
    files: dict[str, str | bytes] = {"app.tar": archive(b"v1"), "plain.txt": b"p1"}
    context = _context(tmp_path / "ctx", kubefile, files)
    first = _build(context, tmp_path / "home")
    assert first.layer_file(0, "opt/app/version") == b"v1"

    # Same size, same inode, same mtime: only ctime tells the bytes changed, and it is part of
    # the stat key, so the new bytes are read (for ADD as for COPY), never a stale layer.
    time.sleep(0.01)  # a ctime tick after the first build's
    for name, data in (("app.tar", archive(b"v2")), ("plain.txt", b"p2")):
        path = context / name
        st = path.stat()
        with open(path, "r+b") as f:
            f.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_size == st.st_size
    changed = _build(context, tmp_path / "home")
    assert changed.kinds == ["layer", "layer"]
    assert changed.layer_file(0, "opt/app/version") == b"v2"
    assert changed.manifest.layers[0].digest != first.manifest.layers[0].digest

    # A stat change with the same bytes: a file whose digest is unknown is read once, and that
    # read writes its layer again (the same bytes, so the same digest) rather than hashing first.
    os.utime(context / "app.tar", ns=(1, 1))
    touched = _build(context, tmp_path / "home")
    assert touched.kinds == ["layer", "cached"]
    assert touched.descriptor.digest == changed.descriptor.digest
    # Back to the first bytes: content, not stat, keys the layer, so the first build's is reused.
    (context / "app.tar").write_bytes(archive(b"v1"))
    (context / "plain.txt").write_bytes(b"p1")
    back = _build(context, tmp_path / "home")
    assert back.kinds == ["layer", "layer"]  # the files' digests were not known: read once
    assert back.descriptor.digest == first.descriptor.digest
    assert _build(context, tmp_path / "home").kinds == ["cached", "cached"]


def test_add_archive_escaping_is_an_error_with_line(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"evil.tgz": _tar_gz({"../../etc/evil": b"x"})}
    context = _context(tmp_path / "ctx", "FROM scratch\n\nADD evil.tgz /x/\n", files)
    with pytest.raises(KubefileError, match=r"Kubefile:3: ADD evil.tgz: .*outside the destination"):
        _build(context, tmp_path / "home")


def test_add_url_is_refused_offline(tmp_path: Path) -> None:
    context = _context(tmp_path / "ctx", "FROM scratch\nADD https://example.com/a.tgz /a/\n")
    with pytest.raises(
        KubefileError, match=r"Kubefile:2: ADD https://example.com/a.tgz: .*offline"
    ):
        _build(context, tmp_path / "home")


def test_run_needs_buildah(tmp_path: Path) -> None:
    # Exec form: FROM scratch has no shell, but a binary copied in could run.
    context = _context(tmp_path / "ctx", 'FROM scratch\nRUN ["/bin/true"]\n')
    with pytest.raises(KubefileError, match=r"Kubefile:2: RUN needs the buildah engine"):
        _build(context, tmp_path / "home", engine="native")


def test_missing_source_is_an_error_in_a_build(tmp_path: Path) -> None:
    context = _context(tmp_path / "ctx", "FROM scratch\nCOPY missing.yaml /m/\n")
    with pytest.raises(KubefileError, match=r"Kubefile:2: COPY source 'missing.yaml' not found"):
        _build(context, tmp_path / "home")


def test_from_an_image_in_the_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = _build(
        _context(
            tmp_path / "base",
            "FROM scratch\nENV A=1\nCOPY etc /etc\n",
            {
                "etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1001:1001::/app:/bin/sh\n",
                "etc/group": "root:x:0:\napp:x:1001:\n",
            },
        ),
        home,
        tags=("localhost/base:v1",),
    )
    kubefile = 'FROM localhost/base:v1\nCOPY --chown=app:app data /srv/\nCMD ["run"]\n'
    built = _build(_context(tmp_path / "app", kubefile, {"data": "d\n"}), home)
    assert built.manifest.layers[0] == base.manifest.layers[0]
    assert built.config.env_dict["A"] == "1"
    members = built.layer_members(1)
    assert (members["srv/data"].uid, members["srv/data"].gid) == (1001, 1001)
    assert members["srv"].uid == 1001  # created by this COPY: owned by the --chown user
    history = built.config.history
    assert len(history) == len(base.config.history) + 2


def test_unchanged_rebuild_copying_files_of_an_image_is_cached(tmp_path: Path) -> None:
    # Files of a base image are keyed by their origin (layer!member) before the layer is
    # written, and get a digest while it is: the recorded key must be the one looked up.
    home = tmp_path / "home"
    _build(
        _context(tmp_path / "base", "FROM scratch\nCOPY data /data\n", {"data/f": "hi\n"}),
        home,
        tags=("localhost/base:v1",),
    )
    kubefile = """\
FROM localhost/base:v1 AS base
COPY extra /data/extra
FROM scratch
COPY --from=localhost/base:v1 /data /x
COPY --from=base /data /y
"""
    context = _context(tmp_path / "app", kubefile, {"extra": "e\n"})
    first = _build(context, home)
    assert first.kinds == ["layer", "layer", "layer"]
    again = _build(context, home)
    assert again.kinds == ["cached", "cached", "cached"]
    assert again.descriptor == first.descriptor


def test_whiteouts_in_a_base_image(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store(home / "store")
    layers = []
    diff_ids = []
    for members in (
        {"keep/a": b"a", "gone/b": b"b", "opaque/c": b"c"},
        {".wh.gone": b"", "opaque/.wh..wh..opq": b"", "opaque/new": b"n"},
    ):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        blob = raw.getvalue()
        digest = store.put_bytes(blob)
        layers.append(Descriptor(mt.OCI_LAYER, digest, len(blob)))
        diff_ids.append(str(digest))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    config_digest = store.put_bytes(config)
    manifest = ImageManifest.build(Descriptor(mt.OCI_CONFIG, config_digest, len(config)), layers)
    store.put_bytes(manifest.raw)
    store.tag(store.describe(manifest), "localhost/layered:v1")
    kubefile = "FROM scratch\nCOPY --from=localhost/layered:v1 / /copy/\n"
    built = _build(_context(tmp_path / "ctx", kubefile), home, platform="linux/amd64")
    names = set(built.layer_members(0))
    assert {"copy/keep/a", "copy/opaque/new"} <= names
    assert not {"copy/gone", "copy/gone/b", "copy/opaque/c"} & names
    assert built.layer_file(0, "copy/keep/a") == b"a"


def test_auto_picks_buildah_for_run(tmp_path: Path) -> None:
    context = _context(tmp_path / "ctx", "FROM scratch\nCOPY sh /bin/sh\nRUN true\n")
    (context / "sh").write_text("#!/bin/sh\n")
    plan = plan_build(context)
    assert select_engine("auto", plan).name == "buildah"
    assert select_engine("auto", plan_build(_context(tmp_path / "c2", APP, FILES))).name == (
        "native"
    )


def test_interrupted_layer_write_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = _context(tmp_path / "ctx", APP, FILES)
    real = writer_module._copy_content

    def failing(path: str, *args: Any) -> None:
        if path.endswith("tool"):
            raise BuildError("disk on fire")
        real(path, *args)

    monkeypatch.setattr(writer_module, "_copy_content", failing)
    with pytest.raises(BuildError, match="disk on fire"):
        _build(context, tmp_path / "home")
    store = Store(tmp_path / "home" / "store")
    assert store.images() == []
    assert not list((tmp_path / "home" / "tmp").glob("*"))
