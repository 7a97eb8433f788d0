"""Splitting a COPY of registry/ into one layer per embedded image (clusterimage.images.layering),
on registry folders written here in distribution's layout, and through the native builder."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from clusterimage.images import layering
from clusterimage.images.layering import Group, Reader, group_paths, registry_root
from tests.unit.build.test_native import _build, _context

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
V2 = "docker/registry/v2"


class Registry:
    """A registry folder written file by file, as distribution's storage driver lays it out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / V2

    def blob(self, data: bytes) -> str:
        hex_digest = hashlib.sha256(data).hexdigest()
        path = self.v2 / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return hex_digest

    def link(self, repo: str, rel: str, hex_digest: str) -> None:
        path = self.v2 / "repositories" / repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"sha256:{hex_digest}")

    def manifest(self, repo: str, layers: list[bytes], tag: str | None = None) -> str:
        """An image of ``layers`` in ``repo`` (tagged ``tag``); returns its manifest's hex."""
        descs = []
        for data in layers:
            hex_digest = self.blob(data)
            self.link(repo, f"_layers/sha256/{hex_digest}/link", hex_digest)
            descs.append({"digest": f"sha256:{hex_digest}", "size": len(data)})
        config = json.dumps({"layers": len(layers), "repo": repo}).encode()
        config_hex = self.blob(config)
        self.link(repo, f"_layers/sha256/{config_hex}/link", config_hex)
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"digest": f"sha256:{config_hex}", "size": len(config)},
                "layers": descs,
            }
        ).encode()
        return self._top(repo, raw, tag)

    def index(self, repo: str, children: list[str], tag: str) -> str:
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"digest": f"sha256:{c}", "size": 1} for c in children],
            }
        ).encode()
        return self._top(repo, raw, tag)

    def _top(self, repo: str, raw: bytes, tag: str | None) -> str:
        hex_digest = self.blob(raw)
        self.link(repo, f"_manifests/revisions/sha256/{hex_digest}/link", hex_digest)
        if tag is not None:
            self.link(repo, f"_manifests/tags/{tag}/current/link", hex_digest)
            self.link(repo, f"_manifests/tags/{tag}/index/sha256/{hex_digest}/link", hex_digest)
        return hex_digest

    def kinds(self, prefix: str = "registry/") -> dict[str, str]:
        """What a COPY of this folder to ``prefix`` writes: every path, with its kind."""
        out = {prefix.rstrip("/"): "dir"} if prefix else {}
        for path in self.root.rglob("*"):
            out[prefix + str(path.relative_to(self.root))] = "dir" if path.is_dir() else "file"
        return out

    def reader(self, prefix: str = "registry/") -> Reader:
        def read(path: str) -> bytes | None:
            return (self.root / path.removeprefix(prefix)).read_bytes()

        return read


def _group(groups: list[Group], image: str) -> Group:
    return next(g for g in groups if g.image == image)


def _blob_path(hex_digest: str) -> str:
    return f"registry/{V2}/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"


def test_each_image_gets_its_blobs_and_links_and_a_shared_blob_goes_with_the_first(
    tmp_path: Path,
) -> None:
    reg = Registry(tmp_path / "registry")
    base = b"shared base layer"
    alpha = reg.manifest("team/alpha", [base, b"alpha's own"], tag="v1")
    zulu = reg.manifest("team/zulu", [base, b"zulu's own"], tag="v1")
    groups = group_paths(reg.kinds(), reg.reader())
    assert groups is not None
    assert [g.label for g in groups] == ["image team/alpha:v1", "image team/zulu:v1"]
    first, second = groups
    base_hex = hashlib.sha256(base).hexdigest()
    own_hex = hashlib.sha256(b"zulu's own").hexdigest()
    assert _blob_path(base_hex) in first.paths and _blob_path(base_hex) not in second.paths
    assert _blob_path(alpha) in first.paths and _blob_path(zulu) in second.paths
    assert _blob_path(own_hex) in second.paths
    # zulu's link to the shared blob is zulu's (its repository), not alpha's.
    link = f"registry/{V2}/repositories/team/zulu/_layers/sha256/{base_hex}/link"
    assert link in second.paths
    # Each layer carries the folders above its files, parents first.
    assert "registry" in first.paths and "registry" in second.paths
    for group in groups:
        assert list(group.paths) == sorted(group.paths, key=lambda p: p.split("/"))
        for path in group.paths:
            parent = path.rpartition("/")[0]
            assert not parent or parent in group.paths, (group.label, path)
    # Every path the COPY writes is in some layer.
    assert set(reg.kinds()) == {p for g in groups for p in g.paths}


def test_what_no_image_uses_is_a_last_layer_and_digest_only_images_are_their_own(
    tmp_path: Path,
) -> None:
    reg = Registry(tmp_path / "registry")
    reg.manifest("lib/a", [b"a layer"], tag="1.0")
    pinned = reg.manifest("lib/a", [b"a pinned layer"])  # by digest only: no tag
    reg.manifest("lib/b", [b"b layer"], tag="2.0")
    (reg.v2 / "repositories" / "lib" / "b" / "_uploads").mkdir(parents=True)
    (reg.root / "README").write_text("not a blob\n")
    stray = reg.v2 / "blobs" / "sha256" / "zz"
    stray.mkdir(parents=True)
    groups = group_paths(reg.kinds(), reg.reader())
    assert groups is not None
    assert [g.label for g in groups] == [
        "image lib/a:1.0",
        f"image lib/a@sha256:{pinned}",
        "image lib/b:2.0",
        "other files",
    ]
    rest = groups[-1]
    assert "registry/README" in rest.paths and f"registry/{V2}/blobs/sha256/zz" in rest.paths
    assert f"registry/{V2}/repositories/lib/b/_uploads" in rest.paths
    assert _blob_path(pinned) in _group(groups, f"lib/a@sha256:{pinned}").paths


def test_a_tagged_index_brings_its_child_manifests_and_their_layers(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    amd = reg.manifest("multi/app", [b"amd64 layer"])
    arm = reg.manifest("multi/app", [b"arm64 layer"])
    top = reg.index("multi/app", [amd, arm], tag="v3")
    reg.manifest("other/app", [b"other"], tag="v1")
    groups = group_paths(reg.kinds(), reg.reader())
    assert groups is not None
    assert [g.label for g in groups] == ["image multi/app:v3", "image other/app:v1"]
    paths = groups[0].paths
    for hex_digest in (top, amd, arm, hashlib.sha256(b"arm64 layer").hexdigest()):
        assert _blob_path(hex_digest) in paths
    # The children's revision links too: no digest-only unit is left for them.
    assert f"registry/{V2}/repositories/multi/app/_manifests/revisions/sha256/{arm}/link" in paths


def test_the_split_is_the_same_whatever_order_the_paths_come_in(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    rng = random.Random(3)
    for n in range(6):
        reg.manifest(f"r/img{n}", [b"common", rng.randbytes(64)], tag="v1")
    kinds = reg.kinds()
    once = group_paths(kinds, reg.reader())
    shuffled = list(kinds.items())
    rng.shuffle(shuffled)
    again = group_paths(dict(shuffled), reg.reader())
    assert once is not None and once == again
    assert [g.image for g in once] == [f"r/img{n}:v1" for n in range(6)]


def test_past_the_cap_images_share_layers_by_repository(tmp_path: Path) -> None:
    """More images than layers allowed (rancher embeds 441; runtimes mount ~125 layers at
    most): each image goes to the layer its repository hashes to, so a new tag of one image
    changes that layer only."""
    v1, v2 = Registry(tmp_path / "v1"), Registry(tmp_path / "v2")
    for n in range(12):
        for reg in (v1, v2):
            tag = "v2" if reg is v2 and n == 7 else "v1"
            reg.manifest(f"r/img{n}", [b"common", f"img{n} {tag}".encode()], tag=tag)
    once = group_paths(v1.kinds(), v1.reader(), max_layers=4)
    assert once is not None and 2 <= len(once) <= 4
    assert group_paths(v1.kinds(), v1.reader(), max_layers=4) == once  # deterministic
    # Every image is in exactly one layer, every path the COPY writes in some layer, and no
    # file in two.
    names = [name for group in once for name in group.images]
    assert sorted(names) == sorted(f"r/img{n}:v1" for n in range(12))
    assert set(v1.kinds()) == {p for g in once for p in g.paths}
    files = [p for g in once for p in g.paths if p.endswith(("/data", "/link"))]
    assert len(files) == len(set(files))
    shared = next(g for g in once if len(g.images) > 1)
    assert shared.image is None and shared.label.startswith("images r/img")
    # v2: img7 at a new tag. Only the layer holding img7 differs.
    again = group_paths(v2.kinds(), v2.reader(), max_layers=4)
    assert again is not None
    changed = [(a.images, b.images) for a, b in zip(once, again, strict=True) if a != b]
    assert len(changed) == 1 and "r/img7:v1" in changed[0][0] and "r/img7:v2" in changed[0][1]
    # Under the cap, one layer each, as before.
    each = group_paths(v1.kinds(), v1.reader())
    repositories = sorted(f"r/img{n}" for n in range(12))  # the order units come in
    assert each is not None and [g.image for g in each] == [f"{r}:v1" for r in repositories]


def test_nothing_to_split_stays_one_layer(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    assert group_paths({"registry": "dir", "registry/x": "file"}, reg.reader()) is None
    reg.manifest("only/one", [b"layer"], tag="v1")
    assert group_paths(reg.kinds(), reg.reader()) is None


def test_the_registry_root_is_found_under_any_destination() -> None:
    assert registry_root(["registry/docker/registry/v2/blobs"]) == "registry/"
    assert registry_root(["docker/registry/v2/repositories/a/_layers"]) == ""
    assert registry_root(["opt/cache/reg/docker/registry/v2"]) == "opt/cache/reg/"
    assert registry_root(["a/docker/registry/v2/x", "b/docker/registry/v2/y"]) is None
    assert registry_root(["manifests/app.yaml"]) is None


def test_the_native_builder_writes_one_layer_per_image_and_caches_each(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "generated-registry")
    for n in range(3):
        reg.manifest(f"team/img{n}", [b"base", f"image {n}".encode()], tag="v1")
    context = _context(
        tmp_path / "ctx",
        "FROM scratch\nCOPY manifests manifests\nCOPY registry registry\n",
        {"manifests/app.yaml": "kind: Pod\n"},
    )
    built = _build(context, tmp_path / "home", registry_dir=reg.root, timestamp=1)
    assert len(built.manifest.layers) == 1 + 3
    history = [h["created_by"] for h in built.config.history]
    assert [h.rpartition(" (")[2] for h in history[1:]] == [
        f"image team/img{n}:v1)" for n in range(3)
    ]
    assert all(" in /registry " in h for h in history[1:])
    # uncompressed (registry blobs are compressed already)
    assert {d.media_type for d in built.manifest.layers[1:]} == {
        "application/vnd.oci.image.layer.v1.tar"
    }
    first = built.layer_members(1)
    assert f"registry/{V2}/repositories/team/img0/_manifests/tags/v1/current/link" in first
    again = _build(context, tmp_path / "home", registry_dir=reg.root, timestamp=1)
    assert again.descriptor.digest == built.descriptor.digest
    assert again.kinds == ["cached"] * 4
    # Another image in the registry: the layers of the three others are reused as they are.
    reg.manifest("team/img9", [b"new"], tag="v1")
    grown = _build(context, tmp_path / "home", registry_dir=reg.root, timestamp=1)
    assert grown.manifest.layers[:4] == built.manifest.layers
    assert grown.kinds == ["cached"] * 4 + ["layer"]
    fresh = _build(context, tmp_path / "other-home", registry_dir=reg.root, timestamp=1)
    assert fresh.descriptor.digest == grown.descriptor.digest


def test_the_native_builder_keeps_to_the_cap_with_many_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layering, "MAX_IMAGE_LAYERS", 3)
    reg = Registry(tmp_path / "generated-registry")
    for n in range(8):
        reg.manifest(f"team/img{n}", [b"base", f"image {n}".encode()], tag="v1")
    context = _context(tmp_path / "ctx", "FROM scratch\nCOPY . .\n", {"app.yaml": "kind: Pod\n"})
    built = _build(context, tmp_path / "home", registry_dir=reg.root, timestamp=1)
    # At most 3 layers of images, then the rest of the context.
    assert 2 <= len(built.manifest.layers) <= 3 + 1
    history = [h["created_by"] for h in built.config.history]
    assert history[-1].endswith("(other files)")
    assert all("(image" in h for h in history[:-1])
    members = [m for i in range(len(built.manifest.layers) - 1) for m in built.layer_members(i)]
    for n in range(8):
        assert f"registry/{V2}/repositories/team/img{n}/_manifests/tags/v1/current/link" in members
