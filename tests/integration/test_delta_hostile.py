"""A bundle whose index.json carries delta annotations of the wrong JSON type (null, a number,
a list) is damaged input: `load`, `bundle verify` and `bundle inventory` say so in one
`error:` line with exit status 1, never a traceback, and `load` writes nothing."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures.oci_layout import make_oci_layout

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ci_home")]

OMITTED = "io.clusterimage.delta.omitted"


def _delta_bundle(tmp_path: Path) -> Path:
    """A real delta bundle (oci-dir) of app:v2 against app:v1's bundle: one layer left out."""
    shared = {"base.txt": b"in both versions\n"}
    v1 = make_oci_layout(tmp_path / "v1", layers=(shared, {"v.txt": b"one\n"}))
    v2 = make_oci_layout(tmp_path / "v2", layers=(shared, {"v.txt": b"two\n"}))
    run_cli("pull", "-q", v1.transport_ref, "--name", "localhost/app:v1")
    run_cli("pull", "-q", v2.transport_ref, "--name", "localhost/app:v2")
    run_cli("save", "-q", "-o", tmp_path / "v1.tar", "localhost/app:v1")
    delta = tmp_path / "delta"
    run_cli(
        "save", "-q", "--format", "oci-dir", "-o", delta,
        "--delta-from", tmp_path / "v1.tar", "localhost/app:v2",
    )  # fmt: skip
    return delta


def _as_archive(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(folder / name, arcname=name)
    return out


@pytest.mark.parametrize("value", [None, 3, ["1"], {"n": 1}, 1.5])
def test_delta_annotations_of_the_wrong_type_are_one_error_line(
    tmp_path: Path, value: object
) -> None:
    delta = _delta_bundle(tmp_path)
    index = json.loads((delta / "index.json").read_text())
    assert index["annotations"][OMITTED] == "1"  # a delta indeed, before it is damaged
    index["annotations"][OMITTED] = value
    (delta / "index.json").write_text(json.dumps(index))
    archive = _as_archive(delta, tmp_path / "delta.tar")
    fresh = {"CLUSTERIMAGE_HOME": str(tmp_path / "site")}
    for bundle in (delta, archive):
        for args in (
            ("load", "-i", str(bundle)),
            ("bundle", "verify", str(bundle)),
            ("bundle", "inventory", str(bundle)),
        ):
            result = run_cli(*args, env=fresh, check=False)
            assert result.returncode == 1, (args, result.stderr)
            assert "Traceback" not in result.stderr, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
            assert OMITTED in lines[0], lines[0]
    assert not (tmp_path / "site" / "store").exists()  # load wrote nothing


def test_an_oci_dir_delta_that_fails_to_annotate_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder a delta is saved to appears whole, its index already naming what it leaves
    out: a failure while writing those annotations must not leave a folder that looks like a
    full bundle with layers missing."""
    import errno

    from clusterimage import bundle
    from clusterimage.cli._registry_options import registry_context

    delta = _delta_bundle(tmp_path)  # a working delta first: the setup is right
    assert "annotations" in json.loads((delta / "index.json").read_text())

    def full_disk(path: Path, annotations: dict[str, str]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path / "index.json"))

    monkeypatch.setattr(bundle, "_annotate_layout", full_disk)
    out = tmp_path / "second"
    with pytest.raises(OSError, match="No space left"):
        bundle.save(
            ["localhost/app:v2"],
            str(out),
            registry_context(),
            format=bundle.BundleFormat.oci_dir,
            delta_from=[str(tmp_path / "v1.tar")],
        )
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".second")] == []


def test_the_inventory_digest_is_that_of_the_json_printed_without_its_newline(
    tmp_path: Path,
) -> None:
    """What `bundle inventory --help` says a site can check with sha256sum."""
    import hashlib

    _delta_bundle(tmp_path)
    result = run_cli("bundle", "inventory", tmp_path / "v1.tar")
    assert result.stdout.endswith("}\n")
    digest = "sha256:" + hashlib.sha256(result.stdout[:-1].encode()).hexdigest()
    assert f"inventory {digest}:" in result.stderr, result.stderr
    help_text = " ".join(run_cli("bundle", "inventory", "--help").stdout.split())
    assert "without the newline that ends it" in help_text


def test_a_prune_while_a_delta_loads_cannot_take_the_blobs_the_check_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site removed v1 (its layers stay until the next prune) and loads v2's delta while a
    prune runs. The check finds v1's layer stored; a gc between that check and the copy would
    delete it and the load would fail half-way. The store is held from the check on: that gc
    waits (here: gives up), and the load completes."""
    from clusterimage import bundle
    from clusterimage.cli._registry_options import registry_context
    from clusterimage.store import Store
    from clusterimage.store.locks import StoreBusy

    delta = _delta_bundle(tmp_path)
    site = tmp_path / "site"
    monkeypatch.setenv("CLUSTERIMAGE_HOME", str(site))
    run_cli("load", "-q", "-i", tmp_path / "v1.tar")
    # `rmi` while the store was busy: the name goes, the layers wait for the next prune.
    Store(site / "store").remove("localhost/app:v1")
    real_check = bundle._check_delta
    gc_outcome: list[str] = []

    def check_then_a_prune(*args: object, **kwargs: object) -> object:
        checked = real_check(*args, **kwargs)  # type: ignore[arg-type]
        try:  # another process's `clusterimage prune`, in the window after the check
            Store(site / "store").gc(timeout=0.5)
            gc_outcome.append("ran")
        except StoreBusy:
            gc_outcome.append("busy")
        return checked

    monkeypatch.setattr(bundle, "_check_delta", check_then_a_prune)
    result = bundle.load(str(delta), registry_context())
    assert [str(image.name) for image in result.images] == ["localhost/app:v2"]
    assert gc_outcome == ["busy"]
    assert "app" in run_cli("images").stdout
    run_cli("fsck")
