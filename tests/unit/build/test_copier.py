"""COPY/ADD semantics on trees: the context as COPY sees it, sources, destinations, owners."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clusterimage.build.context import BuildContext, Overlay
from clusterimage.build.copier import (
    CopyRequest,
    ModeSpec,
    Ownership,
    apply,
    plan_copy,
    resolve_chown,
    resolve_sources,
)
from clusterimage.build.fstree import Content, FsTree, Node
from clusterimage.errors import KubefileError


def _error(message: str) -> KubefileError:
    return KubefileError(message, "Kubefile", 7)


@pytest.fixture
def context(tmp_path: Path) -> BuildContext:
    root = tmp_path / "ctx"
    for rel, data in {
        "Kubefile": "FROM scratch\n",
        ".dockerignore": "*.log\nsecret/\n!secret/public.txt\n",
        "manifests/app.yaml": "kind: Deployment\n",
        "manifests/svc.yaml": "kind: Service\n",
        "manifests/sub/x.yaml": "kind: ConfigMap\n",
        "charts/c/Chart.yaml": "name: c\n",
        "file.txt": "hello\n",
        "debug.log": "noise\n",
        "secret/key": "do not ship\n",
        "secret/public.txt": "ship me\n",
        "bin/tool": "#!/bin/sh\n",
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
    (root / "bin/tool").chmod(0o755)
    (root / "link-in").symlink_to("file.txt")
    (root / "link-out").symlink_to("../../etc/passwd")
    (root / "abs-link").symlink_to("/etc/passwd")
    (root / "dirlink").symlink_to("manifests")
    os.link(root / "file.txt", root / "hard.txt")
    return BuildContext.open(root, root / "Kubefile", overlays=(Overlay("registry"),))


def _copy(
    context: BuildContext,
    sources: list[str],
    dest: str,
    *,
    workdir: str = "/",
    target: FsTree | None = None,
    keyword: str = "COPY",
    **kwargs: object,
) -> dict[str, Node]:
    resolved = resolve_sources(
        context.tree,
        sources,
        keyword=keyword,
        where="the build context",
        error=_error,
        in_context=True,
    )
    several = len(resolved) > 1
    request = CopyRequest(keyword, resolved, dest, workdir, several=several, **kwargs)  # type: ignore[arg-type]
    return plan_copy(request, context.tree, target or FsTree())


COPY_TABLE = [
    (["file.txt"], "/x", {"x"}),
    (["file.txt"], "/x/", {"x", "x/file.txt"}),
    (["file.txt"], "x/y", {"x", "x/y"}),
    (["/file.txt"], "/x", {"x"}),
    (
        ["manifests"],
        "/m",
        {"m", "m/app.yaml", "m/svc.yaml", "m/sub", "m/sub/x.yaml"},
    ),
    (["manifests/*.yaml"], "/y", {"y", "y/app.yaml", "y/svc.yaml"}),
    (["manifests/*.yaml"], "/y/", {"y", "y/app.yaml", "y/svc.yaml"}),
    (["manifests/a?p.yaml"], "/one", {"one"}),
    (["man*/[s]*.yaml"], "/s/", {"s", "s/svc.yaml"}),
    # Go's filepath.Match, as the plan's check: "^" negates a class, "!" is an ordinary character
    (["manifests/[^a]*.yaml"], "/n/", {"n", "n/svc.yaml"}),
    (["manifests/[!a]*.yaml"], "/n/", {"n", "n/app.yaml"}),
    (["file.txt", "manifests/app.yaml"], "/z", {"z", "z/file.txt", "z/app.yaml"}),
    (["charts"], "charts", {"charts", "charts/c", "charts/c/Chart.yaml"}),
    (["dirlink/app.yaml"], "/a", {"a"}),
    (["registry"], "registry", {"registry"}),
    (["secret"], "/s", {"s", "s/public.txt"}),
]


@pytest.mark.parametrize(("sources", "dest", "expected"), COPY_TABLE)
def test_copy_table(
    context: BuildContext, sources: list[str], dest: str, expected: set[str]
) -> None:
    assert set(_copy(context, sources, dest)) == expected


def test_copy_dot_copies_the_context_minus_ignored_plus_registry(context: BuildContext) -> None:
    entries = _copy(context, ["."], ".")
    assert "Kubefile" in entries and ".dockerignore" in entries
    assert "debug.log" not in entries
    assert "secret/key" not in entries and "secret/public.txt" in entries
    assert entries["registry"].is_dir
    assert "" not in entries
    assert entries["bin/tool"].mode == 0o755
    assert all(node.uid == 0 and node.gid == 0 for node in entries.values())
    # Hard links in the context stay hard links (one Content).
    assert entries["hard.txt"].content is entries["file.txt"].content


def test_relative_dest_uses_workdir(context: BuildContext) -> None:
    entries = _copy(context, ["manifests/"], "m", workdir="/opt/app")
    assert {"opt", "opt/app", "opt/app/m", "opt/app/m/app.yaml"} <= set(entries)
    assert entries["opt"] == Node("dir", 0o755)


def test_symlink_sources(context: BuildContext) -> None:
    followed = _copy(context, ["link-in"], "/l")["l"]
    assert followed.kind == "file" and followed.content is not None
    assert followed.content.path == context.root / "file.txt"
    for name, target in (("link-out", "../../etc/passwd"), ("abs-link", "/etc/passwd")):
        node = _copy(context, [name], "/l")["l"]
        assert node.kind == "symlink" and node.linkname == target
    # A wildcard looks through a link to a folder on the way.
    globbed = _copy(context, ["dirlink/*.yaml"], "/g/")
    assert set(globbed) == {"g", "g/app.yaml", "g/svc.yaml"}
    # A link to a folder copies the folder's contents, as the folder named itself would.
    through = _copy(context, ["dirlink"], "/m")
    assert {"m", "m/app.yaml", "m/svc.yaml", "m/sub", "m/sub/x.yaml"} == set(through)
    named = _copy(context, ["link-in"], "/d/")
    assert set(named) == {"d", "d/link-in"} and named["d/link-in"].kind == "file"
    inside = _copy(context, ["."], "/")
    assert inside["link-out"].kind == "symlink"
    assert inside["dirlink"].kind == "symlink" and inside["dirlink"].linkname == "manifests"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("../x", "outside the build context"),
        ("manifests/../../x", "outside the build context"),
        ("missing.yaml", "no such file or directory in the build context"),
        ("*.nothing", "matches no file"),
        ("debug.log", "no such file"),
        ("secret/key", "no such file"),
    ],
)
def test_bad_sources(context: BuildContext, source: str, message: str) -> None:
    with pytest.raises(KubefileError, match=rf"^Kubefile:7: COPY source .*{message}"):
        _copy(context, [source], "/x")


def test_dest_inside_existing_directory_and_through_symlinks(context: BuildContext) -> None:
    target = FsTree()
    target.set("etc", Node("dir", 0o750, uid=0, gid=5))
    target.set("usr/lib", Node("dir", 0o755))
    target.set("lib", Node("symlink", 0o777, linkname="usr/lib"))
    entries = _copy(context, ["file.txt"], "/etc", target=target)
    assert set(entries) == {"etc", "etc/file.txt"}
    assert entries["etc"] == Node("dir", 0o750, uid=0, gid=5)  # the stage's own directory
    entries = _copy(context, ["file.txt"], "/lib/x/", target=target)
    assert set(entries) == {"usr", "usr/lib", "usr/lib/x", "usr/lib/x/file.txt"}


def test_chmod_and_chown(context: BuildContext) -> None:
    entries = _copy(
        context,
        ["bin"],
        "/b",
        chmod=ModeSpec.parse("0700", _error),
        ownership=Ownership(1000, 2000),
    )
    assert entries["b/tool"].mode == 0o700 and entries["b"].mode == 0o700
    assert all((n.uid, n.gid) == (1000, 2000) for n in entries.values())
    symbolic = ModeSpec.parse("go=rX", _error)
    assert symbolic.apply(0o600, False) == 0o644
    assert symbolic.apply(0o600, True) == 0o655
    # Clauses apply in order, as chmod(1): X sees the x that u=rwx just set.
    assert ModeSpec.parse("u=rwx,go=rX", _error).apply(0o600, False) == 0o755
    assert ModeSpec.parse("a-w,u+s", _error).apply(0o777, False) == 0o4555
    with pytest.raises(KubefileError, match="invalid --chmod"):
        ModeSpec.parse("rwx", _error)


def test_chown_names_from_the_stage(tmp_path: Path) -> None:
    files = {
        "etc/passwd": "root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n",
        "etc/group": "root:x:0:\nstaff:x:50:\n",
    }
    read = files.get
    assert resolve_chown("1000", read, _error) == Ownership(1000, 1000)
    assert resolve_chown("1000:7", read, _error) == Ownership(1000, 7)
    assert resolve_chown("app", read, _error) == Ownership(1001, 1002)
    assert resolve_chown("app:staff", read, _error) == Ownership(1001, 50)
    with pytest.raises(KubefileError, match="no user 'nobody'"):
        resolve_chown("nobody", read, _error)
    with pytest.raises(KubefileError, match="no group 'wheel'"):
        resolve_chown("app:wheel", read, _error)
    # "²" passes str.isdigit() but is no number: a name not found, never a traceback.
    with pytest.raises(KubefileError, match="no user '²'"):
        resolve_chown("²", read, _error)
    with pytest.raises(KubefileError, match="no group '²'"):
        resolve_chown("app:²", read, _error)


def test_copy_from_a_stage_keeps_owners(tmp_path: Path) -> None:
    stage = FsTree()
    data = tmp_path / "data"
    data.write_text("x")
    stage.set("srv", Node("dir", 0o755, uid=33, gid=33))
    stage.set("srv/data", Node("file", 0o600, uid=33, gid=33, content=Content(data, 1)))
    sources = resolve_sources(
        stage, ["/srv"], keyword="COPY", where="stage a", error=_error, in_context=False
    )
    entries = plan_copy(CopyRequest("COPY", sources, "/out", keep_owner=True), stage, FsTree())
    assert (entries["out/data"].uid, entries["out/data"].gid) == (33, 33)
    # In a stage, ".." cannot climb out: it stays at the root as in a chroot.
    sources = resolve_sources(
        stage, ["../../srv/data"], keyword="COPY", where="stage a", error=_error, in_context=False
    )
    assert sources[0].path == "srv/data"


def test_apply_records_entries_in_the_stage(context: BuildContext) -> None:
    target = FsTree()
    apply(target, _copy(context, ["manifests"], "/m"))
    assert target.get("m/sub/x.yaml") is not None
    assert target.children("m") == ["app.yaml", "sub", "svc.yaml"]
    apply(target, {"m": Node("file", content=Content(context.root / "file.txt", 6))})
    assert target.get("m/sub/x.yaml") is None


def test_overlay_merges_over_the_users_folder(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    (root / "registry").mkdir(parents=True)
    (root / "registry" / "user.txt").write_text("user\n")
    generated = tmp_path / "generated"
    (generated / "docker").mkdir(parents=True)
    (generated / "docker" / "blob").write_text("gen\n")
    (root / ".dockerignore").write_text("registry\n")
    ctx = BuildContext.open(root, None, overlays=(Overlay("registry", generated),))
    tree = ctx.tree
    # The user's registry/ is ignored, the generated one is never subject to ignore rules.
    assert tree.get("registry/user.txt") is None
    assert tree.get("registry/docker/blob") is not None
    assert not (root / "registry" / "docker").exists()


def test_ignore_file_next_to_the_kubefile_wins(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "a.txt").write_text("a")
    (root / "b.txt").write_text("b")
    (root / ".dockerignore").write_text("a.txt\n")
    (root / "Kubefile.dockerignore").write_text("b.txt\n")
    tree = BuildContext.open(root, root / "Kubefile").tree
    assert tree.get("a.txt") is not None and tree.get("b.txt") is None
