"""A build context changed under a running build: nothing outside the context is ever opened.

The swaps are made deterministically at the moment between the walk of the context and the read
of its files (or during the walk), through a hook on the function that runs next.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterimage.build import buildah as buildah_module
from clusterimage.build import context as context_module
from clusterimage.build import native as native_module
from clusterimage.build.confined import Confined
from clusterimage.build.context import BuildContext
from clusterimage.build.layer import open_content
from clusterimage.cli.main import main
from clusterimage.errors import BuildError

SECRET = b"outside the context: must never be opened\n"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The real path of every file or folder the process opens while the test runs."""
    paths: list[str] = []
    real_open = os.open

    def spying(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        fd = real_open(path, flags, mode, dir_fd=dir_fd)
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        return fd

    monkeypatch.setattr(os, "open", spying)
    yield paths


def _layout(tmp_path: Path, kubefile: str) -> tuple[Path, Path]:
    """A context with conf/app.yaml (and conf/app.tar) and, outside it, a folder of the same
    shape holding a secret."""
    context = tmp_path / "ctx"
    (context / "conf").mkdir(parents=True)
    (context / "Kubefile").write_text(kubefile)
    (context / "conf" / "app.yaml").write_text("kind: ConfigMap\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.yaml").write_bytes(SECRET)
    for folder, data in ((context / "conf", b"inside\n"), (outside, SECRET)):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo("data")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        (folder / "app.tar").write_bytes(out.getvalue())
    return context, outside


def _swap_for_link(folder: Path, target: Path) -> None:
    folder.rename(folder.with_name(folder.name + ".moved"))
    folder.symlink_to(target, target_is_directory=True)


def _hook(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, before: Callable[[], None]
) -> None:
    """Run ``before`` each time ``module.name`` is called, then the real one."""
    real = getattr(module, name)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        before()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, hooked)


def _build_error(
    context: Path, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.setenv("CLUSTERIMAGE_HOME", str(home))
    monkeypatch.delenv("CLUSTERIMAGE_STORE", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "-q", "-t", "example.com/app:v1", str(context)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err  # one line, no traceback
    return err


@pytest.mark.parametrize(
    ("kubefile", "next_step"),
    [
        ("FROM scratch\nCOPY conf/app.yaml /app.yaml\n", "write_layer"),
        ("FROM scratch\nCOPY conf /conf\n", "write_layer"),
        ("FROM scratch\nADD conf/app.tar /x/\n", "read_archive"),
    ],
)
def test_folder_swapped_for_a_link_between_walk_and_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    opened: list[str],
    kubefile: str,
    next_step: str,
) -> None:
    context, outside = _layout(tmp_path, kubefile)
    # The walk is done when the layer is written (or the archive read): swap conf/ right then.
    _hook(monkeypatch, native_module, next_step, lambda: _swap_for_link(context / "conf", outside))
    err = _build_error(context, tmp_path / "home", monkeypatch, capsys)
    assert "conf" in err and "was replaced" in err
    assert (context / "conf").is_symlink()  # the swap did happen
    assert not [p for p in opened if p.startswith(str(outside))]


def test_folder_swapped_for_a_link_during_the_walk(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    opened: list[str],
) -> None:
    context, outside = _layout(tmp_path, "FROM scratch\nCOPY . /\n")

    # conf/ was listed and stat'ed as a folder; it becomes a link before the walk enters it.
    def swap_once() -> None:
        if not (context / "conf").is_symlink():
            _swap_for_link(context / "conf", outside)

    _hook(monkeypatch, context_module, "open_dir", swap_once)
    err = _build_error(context, tmp_path / "home", monkeypatch, capsys)
    assert "build context folder" in err and "was replaced" in err
    assert not [p for p in opened if p.startswith(str(outside))]


def test_folder_replaced_by_another_folder_during_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, _ = _layout(tmp_path, "FROM scratch\nCOPY . /\n")

    def replace_once() -> None:
        if not (context / "conf.moved").exists():
            (context / "conf").rename(context / "conf.moved")
            (context / "conf").mkdir()  # a folder again, but not the one the walk listed

    _hook(monkeypatch, context_module, "open_dir", replace_once)
    with pytest.raises(BuildError, match=r"ctx/conf: it or a folder above it was replaced"):
        _ = BuildContext.open(context).tree


def test_file_swapped_for_a_fifo_does_not_block(tmp_path: Path, opened: list[str]) -> None:
    context, _ = _layout(tmp_path, "FROM scratch\n")
    content = BuildContext.open(context).tree.get("conf/app.yaml").content  # type: ignore[union-attr]
    assert content is not None
    (context / "conf" / "app.yaml").unlink()
    os.mkfifo(context / "conf" / "app.yaml")  # opening it for reading would wait for a writer
    with pytest.raises(BuildError, match="changed during the build"):
        open_content(content, "/app.yaml")


def test_buildah_context_never_links_a_file_from_outside(tmp_path: Path, opened: list[str]) -> None:
    context, outside = _layout(tmp_path, "FROM scratch\n")
    tree = BuildContext.open(context).tree
    _swap_for_link(context / "conf", outside)
    target = tmp_path / "materialised"
    target.mkdir()
    with pytest.raises(BuildError, match="was replaced"):
        buildah_module._materialise(tree, target)
    secret_inode = (outside / "app.yaml").stat().st_ino
    assert not [p for p in target.rglob("*") if p.stat().st_ino == secret_inode]
    assert not [p for p in opened if p.startswith(str(outside))]


def test_confined_keeps_folders_open_between_files(tmp_path: Path, opened: list[str]) -> None:
    for rel in ("a/b/one", "a/b/two", "a/c/three", "d/four"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    with Confined() as confined:
        for rel in ("a/b/one", "a/b/two", "a/c/three", "d/four"):
            fd = confined.open(tmp_path, rel, rel)
            assert os.read(fd, 100) == rel.encode()
            os.close(fd)
    # root, a, a/b, one, two, a/c, three, d, four: each folder opened once, in walk order.
    assert [os.path.relpath(p, tmp_path) for p in opened] == [
        ".",
        "a",
        "a/b",
        "a/b/one",
        "a/b/two",
        "a/c",
        "a/c/three",
        "d",
        "d/four",
    ]
