"""`images` as podman users script it: IMAGE ID is the config digest, rows in the order names were
stored, --filter and --format; `inspect --format`; and shell completion of stored names."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool, run_cli, run_tool
from tests.fixtures.oci_layout import OciImage, make_oci_layout

REF_NAME = "org.opencontainers.image.ref.name"
APP = "docker.io/library/app:v1"
ROOTFS = "docker.io/library/rootfs:v1"


def _with_created(image: OciImage, created: str) -> str:
    """Rewrite ``image``'s config with another created time (and its manifest and index entry);
    returns the new config digest."""
    blobs = image.layout / "blobs" / "sha256"
    config = json.loads((blobs / image.config.digest.split(":")[1]).read_bytes())
    config["created"] = created
    raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_hex = hashlib.sha256(raw).hexdigest()
    (blobs / config_hex).write_bytes(raw)
    manifest = json.loads(image.manifest_bytes)
    manifest["config"] = {**manifest["config"], "digest": f"sha256:{config_hex}", "size": len(raw)}
    manifest_raw = json.dumps(manifest).encode()
    manifest_hex = hashlib.sha256(manifest_raw).hexdigest()
    (blobs / manifest_hex).write_bytes(manifest_raw)
    index_path = image.layout / "index.json"
    index = json.loads(index_path.read_text())
    for entry in index["manifests"]:
        if entry["annotations"][REF_NAME] == image.ref:
            entry.update(digest=f"sha256:{manifest_hex}", size=len(manifest_raw))
    index_path.write_text(json.dumps(index))
    return f"sha256:{config_hex}"


def _rows(*args: str) -> list[list[str]]:
    lines = run_cli("images", *args).stdout.splitlines()
    return [re.split(r"\s{2,}", line) for line in lines[1:]]


def _names(*args: str) -> list[str]:
    out = run_cli("images", "--format", "{{.Repository}}:{{.Tag}}", *args).stdout
    return out.splitlines()


def _one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def app(tmp_path: Path) -> OciImage:
    return make_oci_layout(
        tmp_path / "app",
        ref="v1",
        layers=({"etc/app.conf": b"a=1\n"},),
        labels={"sealos.io.type": "application", "team": "blue"},
    )


@pytest.fixture
def rootfs(tmp_path: Path) -> OciImage:
    return make_oci_layout(
        tmp_path / "rootfs",
        ref="v1",
        layers=({"bin/kubelet": b"kubelet\n"},),
        labels={"sealos.io.type": "rootfs"},
    )


@pytest.fixture
def stored(ci_home: Path, app: OciImage, rootfs: OciImage, tmp_path: Path) -> OciImage:
    """app:v1 (also quay.io/org/app:v2), rootfs:v1, and an untagged image (a former other:v1),
    stored in that order. Returns the untagged one."""
    run_cli("pull", "-q", app.transport_ref, "--name", APP)
    run_cli("tag", APP, "quay.io/org/app:v2")
    run_cli("pull", "-q", rootfs.transport_ref, "--name", ROOTFS)
    old = make_oci_layout(tmp_path / "old", ref="x", layers=({"old": b"old\n"},))
    new = make_oci_layout(tmp_path / "new", ref="x", layers=({"new": b"new\n"},))
    run_cli("pull", "-q", old.transport_ref, "--name", "other:v1")
    run_cli("pull", "-q", new.transport_ref, "--name", "other:v1")  # old is left untagged
    return old


def test_image_id_is_the_config_digest_as_skopeo_computes_it(
    ci_home: Path, store_dir: Path, app: OciImage
) -> None:
    skopeo = require_tool("skopeo")
    run_cli("pull", "-q", app.transport_ref, "--name", APP)
    # What skopeo reads from our store: the manifest names the config, whose bytes hash to it.
    raw = json.loads(run_tool([skopeo, "inspect", "--raw", f"oci:{store_dir}:{APP}"]).stdout)
    config_bytes = subprocess.run(
        [skopeo, "inspect", "--config", "--raw", f"oci:{store_dir}:{APP}"],
        check=True,
        capture_output=True,
    ).stdout
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert raw["config"]["digest"] == config_digest == app.config.digest
    assert config_digest != app.manifest.digest
    short = config_digest.split(":")[1][:12]

    [row] = _rows()
    assert row[:3] == ["docker.io/library/app", "v1", short]
    assert run_cli("images", "-q").stdout == short + "\n"
    assert run_cli("images", "-q", "--no-trunc").stdout == config_digest + "\n"
    [full] = _rows("--no-trunc")
    assert full[2] == config_digest
    digests = run_cli("images", "--digests").stdout.splitlines()
    assert re.split(r"\s{2,}", digests[0]) == [
        "REPOSITORY",
        "TAG",
        "DIGEST",
        "IMAGE ID",
        "CREATED",
        "SIZE",
    ]
    assert re.split(r"\s{2,}", digests[1])[2:4] == [app.manifest.digest, short]
    [item] = json.loads(run_cli("images", "--json").stdout)
    assert item["Id"] == config_digest.split(":")[1]
    assert item["Digest"] == app.manifest.digest
    assert item["RepoDigests"] == [f"docker.io/library/app@{app.manifest.digest}"]
    # inspect's Id is the same image ID; the manifest digest stays in Digest.
    summary = json.loads(run_cli("inspect", APP).stdout)
    assert (summary["Id"], summary["Digest"]) == (item["Id"], app.manifest.digest)
    # The ID finds the image, as podman's does.
    assert run_cli("inspect", short, "--format", "{{.Digest}}").stdout == app.manifest.digest + "\n"


def test_rows_list_the_latest_stored_name_first(
    ci_home: Path, store_dir: Path, app: OciImage, rootfs: OciImage
) -> None:
    # app is older by its config, rootfs newer: the order is still when each name was stored.
    _with_created(app, "2020-01-02T03:04:05Z")
    _with_created(rootfs, "2024-06-01T00:00:00Z")
    run_cli("pull", "-q", f"oci:{app.layout}:v1", "--name", APP)
    run_cli("pull", "-q", f"oci:{rootfs.layout}:v1", "--name", ROOTFS)
    assert _names() == ["docker.io/library/rootfs:v1", "docker.io/library/app:v1"]
    # Tagging the older image later lists that name first.
    run_cli("tag", APP, "quay.io/org/app:v2")
    assert _names() == [
        "quay.io/org/app:v2",
        "docker.io/library/rootfs:v1",
        "docker.io/library/app:v1",
    ]
    # Tagging a name again to the image it already names keeps its place.
    run_cli("tag", ROOTFS, ROOTFS)
    assert _names()[0] == "quay.io/org/app:v2"
    created = {row[0] + ":" + row[1]: row[3] for row in _rows()}
    assert re.fullmatch(r"\d+ years ago", created["docker.io/library/app:v1"])

    # A store written before the record (or by another tool) sorts by created time instead.
    (store_dir / ".clusterimage" / "stored.json").unlink()
    assert _names()[0] == "docker.io/library/rootfs:v1"
    assert set(_names()[1:]) == {"quay.io/org/app:v2", "docker.io/library/app:v1"}


def test_a_reproducible_image_says_so_instead_of_56_years_ago(ci_home: Path, app: OciImage) -> None:
    run_cli("pull", "-q", app.transport_ref, "--name", APP)  # created 1970-01-01T00:00:00Z
    [row] = _rows()
    assert row[3] == "reproducible"
    fields = run_cli("images", "--format", "{{.Created}}|{{.CreatedAt}}").stdout
    assert fields == "reproducible|1970-01-01 00:00:00 +0000 UTC\n"
    [item] = json.loads(run_cli("images", "--json").stdout)
    assert (item["Created"], item["CreatedAt"]) == (0, "1970-01-01T00:00:00Z")


def test_the_store_time_never_leaves_the_store(
    ci_home: Path, store_dir: Path, app: OciImage, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    umoci = require_tool("umoci")
    run_cli("pull", "-q", app.transport_ref, "--name", APP)
    run_cli("tag", APP, "localhost/app:copy")
    times = json.loads((store_dir / ".clusterimage" / "stored.json").read_text())
    assert set(times[app.manifest.digest]) == {APP, "localhost/app:copy"}
    # index.json carries nothing but names: skopeo and umoci read the store as before.
    index = json.loads((store_dir / "index.json").read_text())
    assert [set(e["annotations"]) for e in index["manifests"]] == [{REF_NAME}, {REF_NAME}]
    run_tool([skopeo, "inspect", f"oci:{store_dir}:{APP}"])
    listed = run_tool([umoci, "ls", "--layout", str(store_dir)]).stdout.split()
    assert sorted(listed) == sorted([APP, "localhost/app:copy"])
    # Copied out, the image is what was pulled: same digest, no trace of when it was stored.
    out = tmp_path / "out"
    run_cli("copy", f"store:{APP}", f"oci:{out}:copied")
    copied = json.loads((out / "index.json").read_text())
    assert [(e["digest"], e["annotations"]) for e in copied["manifests"]] == [
        (app.manifest.digest, {REF_NAME: "copied"})
    ]
    for path in out.rglob("*"):
        if path.is_file():
            assert b"stored" not in path.read_bytes(), path
    assert not (out / ".clusterimage" / "stored.json").exists()
    run_tool([skopeo, "inspect", f"oci:{out}:copied"])


def test_filters_each_key(ci_home: Path, stored: OciImage, app: OciImage) -> None:
    every = {APP, "quay.io/org/app:v2", ROOTFS, "docker.io/library/other:v1", "<none>:<none>"}
    assert set(_names()) == every
    # reference: a glob (* stops at /) over the name, its path, its last part; with or
    # without the tag.
    assert set(_names("--filter", "reference=app")) == {APP, "quay.io/org/app:v2"}
    assert set(_names("--filter", "reference=*app*")) == {APP, "quay.io/org/app:v2"}
    assert _names("--filter", "reference=quay.io/org/*") == ["quay.io/org/app:v2"]
    assert _names("--filter", "reference=*:v2") == ["quay.io/org/app:v2"]
    assert _names("--filter", "reference=library/rootfs") == [ROOTFS]
    assert _names("--filter", "reference=docker.io/*") == []  # * does not cross /
    assert _names("app:v2") == ["quay.io/org/app:v2"]  # the positional IMAGE
    # NAME@DIGEST: that manifest under a name NAME matches, whatever the tag.
    assert set(_names(f"app@{app.manifest.digest}")) == {APP, "quay.io/org/app:v2"}
    assert _names("-f", f"reference=quay.io/org/app@{app.manifest.digest}") == [
        "quay.io/org/app:v2"
    ]
    assert _names(f"rootfs@{app.manifest.digest}") == []
    # label: KEY, KEY=VALUE, and KEY!=... excludes.
    assert set(_names("-f", "label=sealos.io.type")) == {APP, "quay.io/org/app:v2", ROOTFS}
    assert _names("-f", "label=sealos.io.type=rootfs") == [ROOTFS]
    assert set(_names("-f", "label!=sealos.io.type=rootfs", "-f", "dangling=false")) == {
        APP,
        "quay.io/org/app:v2",
        "docker.io/library/other:v1",
    }
    # dangling
    assert _names("-f", "dangling=true") == ["<none>:<none>"]
    assert "<none>:<none>" not in _names("-f", "dangling=false")
    # id (a prefix of IMAGE ID, the config digest) and digest (of the manifest)
    config_hex = app.config.digest.split(":")[1]
    assert set(_names("-f", f"id={config_hex[:8]}")) == {APP, "quay.io/org/app:v2"}
    assert set(_names("-f", f"id=sha256:{config_hex}")) == {APP, "quay.io/org/app:v2"}
    assert _names("-f", f"digest={stored.manifest.digest[:15]}") == ["<none>:<none>"]
    # before / since: in the order images lists, by when the name was stored.
    # The untagged image keeps the time it was stored as other:v1, before the new other:v1.
    assert _names("-f", f"since={ROOTFS}") == ["docker.io/library/other:v1", "<none>:<none>"]
    assert set(_names("-f", "before=quay.io/org/app:v2")) == {APP}
    assert set(_names("-f", "after=quay.io/org/app:v2")) == every - {APP, "quay.io/org/app:v2"}


def test_filters_combine(ci_home: Path, stored: OciImage) -> None:
    # The same key twice: reference matches either; different keys must all match.
    either = _names("-f", "reference=rootfs", "-f", "reference=quay.io/*/*")
    assert set(either) == {ROOTFS, "quay.io/org/app:v2"}
    both = _names("-f", "reference=*app*", "-f", "label=team=blue", "-f", "reference=*:v1")
    assert set(both) == {APP, "quay.io/org/app:v2"}
    assert _names("-f", "label=team=blue", "-f", "reference=rootfs") == []
    # label twice: the image must have both.
    assert set(_names("-f", "label=team", "-f", "label=sealos.io.type=application")) == {
        APP,
        "quay.io/org/app:v2",
    }
    assert _names("-f", "label=team", "-f", "label=sealos.io.type=rootfs") == []
    # reference!= excludes from the rest.
    assert set(_names("-f", "reference!=*app*", "-f", "dangling=false")) == {
        ROOTFS,
        "docker.io/library/other:v1",
    }
    # Filters pick rows; -q prints each image ID once.
    assert len(run_cli("images", "-q", "-f", "reference=*app*").stdout.split()) == 1


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["-f", "color=red"], 2, "unknown filter 'color' (known: reference, label, dangling,"),
        (["-f", "reference"], 2, "expected KEY=VALUE"),
        (["-f", "dangling=maybe"], 2, "dangling takes true or false"),
        (["-f", "dangling=true", "-f", "dangling=false"], 2, "opposite values"),
        (["-f", "digest=abc"], 2, "digest takes sha256:HEX"),
        (["-f", "id=xyz"], 2, "id takes hex digits"),
        (["app", "-f", "label=a"], 2, "give an IMAGE or --filter"),
        (["-f", "before=nothere:v9"], 1, "--filter before=nothere:v9: nothere:v9"),
        (["--format", "{{.Nope}}"], 2, "images have no field 'Nope' (fields: Created,"),
        (["--format", "{{.ID"], 2, "unclosed action"),
        (["--format", "{{range .}}{{end}}"], 2, "'range' is not supported"),
    ],
)
def test_bad_filters_and_formats_are_one_line(
    ci_home: Path, app: OciImage, args: list[str], code: int, expected: str
) -> None:
    run_cli("pull", "-q", app.transport_ref, "--name", APP)
    assert expected in _one_line_error(run_cli("images", *args, check=False), code)


def test_a_bad_format_or_filter_fails_with_nothing_stored(ci_home: Path) -> None:
    _one_line_error(run_cli("images", "--format", "{{.Nope}}", check=False), 2)
    _one_line_error(run_cli("images", "-f", "nope=1", check=False), 2)
    assert run_cli("images", "--format", "{{.ID}}").stdout == ""


def test_format_fields(ci_home: Path, app: OciImage) -> None:
    run_cli("pull", "-q", app.transport_ref, "--name", APP)
    run_cli("tag", APP, "localhost/app:v2")
    size = app.manifest.size + app.config.size + sum(layer.size for layer in app.layers)
    fmt = (
        "{{.Repository}}|{{.Tag}}|{{.ID}}|{{.Digest}}|{{.Size}}|{{.Created}}|{{.CreatedSince}}"
        "|{{.Labels}}|{{.Names}}|{{.Dangling}}|{{json .RepoTags}}"
        '|{{index .Labels "sealos.io.type"}}'
    )
    lines = run_cli("images", "--format", fmt).stdout.splitlines()
    assert lines[0].split("|") == [
        "localhost/app",
        "v2",
        app.config.digest.split(":")[1][:12],
        app.manifest.digest,
        f"{size} B",
        "reproducible",
        "reproducible",
        "map[sealos.io.type:application team:blue]",
        "[docker.io/library/app:v1 localhost/app:v2]",
        "false",
        '["docker.io/library/app:v1","localhost/app:v2"]',
        "application",
    ]
    assert lines[1].startswith("docker.io/library/app|v1|")
    # \t and \n as two characters, as podman reads them; --no-trunc in {{.ID}} too.
    out = run_cli("images", "--no-trunc", "--format", "{{.ID}}\\t{{.Tag}}").stdout
    assert out.splitlines()[0] == f"{app.config.digest}\tv2"
    # A table: a header row, aligned columns; --noheading drops the header.
    table = run_cli("images", "--format", "table {{.ID}}\\t{{.Repository}} {{.Size}}").stdout
    lines = table.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["IMAGE ID", "REPOSITORY", "SIZE"]
    assert re.split(r"\s{2,}", lines[1]) == [app.config.digest[7:19], "localhost/app", f"{size} B"]
    assert lines[0].index("REPOSITORY") == lines[1].index("localhost/app")
    bare = run_cli("images", "-n", "--format", "table {{.ID}}").stdout.splitlines()
    assert len(bare) == 2 and "IMAGE ID" not in bare[0]
    assert len(run_cli("images", "-n").stdout.splitlines()) == 2
    # json (and {{json .}}) is the --json output.
    as_json = json.loads(run_cli("images", "--json").stdout)
    assert json.loads(run_cli("images", "--format", "json").stdout) == as_json
    assert json.loads(run_cli("images", "--format", "{{json .}}").stdout) == as_json
    assert [item["Repository"] + ":" + item["Tag"] for item in as_json] == [
        "localhost/app:v2",
        APP,
    ]
    assert set(as_json[0]) == {
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "CreatedAt",
        "Size",
        "Labels",
        "Names",
        "Digest",
        "Digests",
        "Dangling",
        "Repository",
        "Tag",
    }
    assert as_json[0]["Size"] == size
    assert as_json[0]["Labels"] == {"sealos.io.type": "application", "team": "blue"}


def test_inspect_format(ci_home: Path, app: OciImage) -> None:
    run_cli("pull", "-q", app.transport_ref, "--name", APP)

    def fmt(template: str, *args: str) -> str:
        return run_cli("inspect", *args, "--format", template, APP).stdout

    assert fmt("{{.Config.Labels}}") == "map[sealos.io.type:application team:blue]\n"
    assert fmt('{{index .Config.Labels "team"}}') == "blue\n"
    assert fmt("{{.Digest}} {{.Id}}") == f"{app.manifest.digest} {app.config.digest[7:]}\n"
    config = json.loads(fmt("{{json .Config}}"))
    assert config["Labels"] == {"sealos.io.type": "application", "team": "blue"}
    assert json.loads(fmt("json")) == json.loads(run_cli("inspect", APP).stdout)
    # Over the manifest and the config as -t shows them.
    assert fmt("{{.config.digest}} {{len .layers}}", "-t", "manifest") == (
        f"{app.config.digest} 1\n"
    )
    assert fmt("{{.config.Labels.team}} {{.os}}", "-t", "config") == "blue linux\n"
    # Any transport.
    direct = run_cli("inspect", "-f", "{{.Digest}}", app.transport_ref).stdout
    assert direct == app.manifest.digest + "\n"
    bad = run_cli("inspect", "--format", "{{.Config.Nope}}", APP, check=False)
    assert "no field 'Nope' (fields: Cmd, Entrypoint, Env, Labels, User, WorkingDir)" in (
        _one_line_error(bad, 2)
    )
    syntax = run_cli("inspect", "--format", "{{if}}", "nothere:1", check=False)
    assert "'if' is not supported" in _one_line_error(syntax, 2)  # before any lookup


def _complete(words: str, cword: int | None = None, *extra: str) -> list[str]:
    split = words.split(" ")
    env = {
        "_CLUSTERIMAGE_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(split) - 1 if cword is None else cword),
    }
    result = run_cli(*extra, env=env)
    assert result.stderr == ""
    return result.stdout.split()


def test_completion_offers_stored_names(ci_home: Path, app: OciImage, tmp_path: Path) -> None:
    run_cli("pull", "-q", app.transport_ref, "--name", APP)
    run_cli("tag", APP, "localhost/mine:v1", "quay.io/org/app:v2")
    # The short form where it finds the same image, the full name where it does not.
    assert set(_complete("clusterimage inspect ")) == {"app:v1", "mine:v1", "quay.io/org/app:v2"}
    assert _complete("clusterimage inspect mi") == ["mine:v1"]
    assert _complete("clusterimage rmi docker.io/") == [APP]
    assert _complete("clusterimage inspect qu") == ["quay.io/org/app:v2"]
    assert "localhost/mine:v1" in _complete("clusterimage rmi localhost/")
    for command in ("tag", "push", "save", "diff", "unpack", "create", "merge", "images"):
        assert _complete(f"clusterimage {command} mi") == ["mine:v1"], command
    # Commands, options and --filter keys complete as well.
    assert "images" in _complete("clusterimage ima")
    assert _complete("clusterimage images --fil") == ["--filter"]
    assert _complete("clusterimage images --filter da") == ["dangling="]
    # zsh's and fish's scripts ask in their own way; the names are the same.
    zsh = run_cli(
        env={"_CLUSTERIMAGE_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "clusterimage tag m"}
    )
    assert zsh.stdout == "_arguments '*: :((\"mine\\\\:v1\"))'\n"  # ':' escaped for zsh
    fish = run_cli(
        env={
            "_CLUSTERIMAGE_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "clusterimage rmi m",
        }
    )
    assert fish.stdout.split() == ["mine:v1"]
    # --store on the line is where names come from; a store that is not there offers nothing.
    other = tmp_path / "other"
    run_cli("--store", other, "pull", "-q", app.transport_ref, "--name", "localhost/elsewhere:v1")
    assert _complete(f"clusterimage --store {other} inspect e") == ["elsewhere:v1"]
    assert _complete(f"clusterimage --store {tmp_path}/absent inspect ") == []
    (ci_home / "store" / "index.json").write_text("{broken")
    assert _complete("clusterimage inspect ") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_scripts(ci_home: Path, shell: str) -> None:
    script = run_cli("completion", shell).stdout
    assert "clusterimage" in script and "_CLUSTERIMAGE_COMPLETE" in script
    if shell == "bash":
        bash = require_tool("bash")
        # The script is valid bash and registers the completion function.
        check = "source /dev/stdin; complete -p clusterimage"
        result = subprocess.run(
            [bash, "-c", check], input=script, capture_output=True, text=True, check=True
        )
        assert "_clusterimage_completion" in result.stdout


def test_completion_bad_shell_and_install_option(ci_home: Path) -> None:
    bad = run_cli("completion", "tcsh", check=False)
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish', 'powershell'" in _one_line_error(bad, 2)
    helptext = run_cli("--help").stdout
    assert "--install-completion" in helptext and "completion" in helptext
