"""An OSError from the user's environment is one ``error:`` line; a store or home folder that
refuses writes also says how to choose another (issue 12)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from clusterimage.cli import main as cli_main
from clusterimage.cli.main import _os_error_line


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_a_store_that_refuses_writes_names_the_choices(code: int, tmp_path: Path) -> None:
    store, home = tmp_path / "home" / "store", tmp_path / "home"
    exc = OSError(code, "refused", str(store / "blobs" / "sha256"))
    line = _os_error_line(exc, store, home)
    assert line == (
        f"{store}/blobs/sha256: refused; the store {store} is not writable: "
        "choose another with --store DIR or CLUSTERIMAGE_HOME"
    )


def test_a_home_that_refuses_writes_names_clusterimage_home(tmp_path: Path) -> None:
    store, home = tmp_path / "elsewhere", tmp_path / "home"
    exc = PermissionError(errno.EACCES, "Permission denied", str(home / "cache" / "layers"))
    assert _os_error_line(exc, store, home).endswith(
        f"the clusterimage home {home} is not writable: choose another with CLUSTERIMAGE_HOME"
    )


@pytest.mark.parametrize(
    "exc",
    [
        PermissionError(errno.EACCES, "Permission denied", "/etc/shadow"),  # not ours
        OSError(errno.ENOSPC, "No space left on device", "/s/blobs/x"),  # not about writability
        OSError(errno.EROFS, "Read-only file system"),  # no path to place
    ],
)
def test_other_os_errors_get_no_hint(exc: OSError) -> None:
    line = _os_error_line(exc, Path("/s"), Path("/h"))
    assert "not writable" not in line and "Errno" not in line


def test_main_prints_the_hint_as_one_lowercase_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CLUSTERIMAGE_HOME", str(home))
    monkeypatch.delenv("CLUSTERIMAGE_STORE", raising=False)

    def read_only(root: Path) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(root / "index.json"))

    from clusterimage.cli import tag

    monkeypatch.setattr(tag.Store, "existing", staticmethod(read_only))
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["tag", "a:v1", "b:v1"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    store = home / "store"
    assert err == (
        f"error: {store}/index.json: Read-only file system; the store {store} is not writable: "
        "choose another with --store DIR or CLUSTERIMAGE_HOME\n"
    )
