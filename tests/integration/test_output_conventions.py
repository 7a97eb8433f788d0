"""The output conventions every command keeps (README, "Output conventions"), one row per command.

- ``--json``: stdout is one JSON document whose keys are camelCase (``^[a-z][a-zA-Z0-9]*$``,
  acronyms as words: ``chainId``), except for the commands that print what podman prints
  (``images``, ``inspect``), whose keys are podman's PascalCase. Two kinds of subtree are
  exempt, each listed below by its path: OCI documents (a config, a manifest) spelled as the
  OCI spec spells them, and maps whose keys are data (label names, ENV names, image names),
  whose values are still checked.
- ``-q``: stdout is exactly the ID/digest lines (or nothing where the result is a file), the
  right ones, stderr holds nothing but warnings, the option's help says so, and ``--json``
  wins over it.

The store of every test is a copy of one made once per module: two small images pulled from OCI
layouts (``make_oci_layout``), one of them pushed to a loopback docker-registry, saved to an
oci-archive and laid out in a registry folder.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.fixtures.oci_layout import make_oci_layout
from tests.fixtures.registry import Registry, start_registry

pytestmark = pytest.mark.integration

# camelCase, acronyms included: chainId, not chainID.
CAMEL = re.compile(r"^(?!.*[A-Z]{2})[a-z][a-zA-Z0-9]*$")
PASCAL = re.compile(r"^[A-Z][a-zA-Z0-9]*$")
DIGEST = r"sha256:[0-9a-f]{{64}}"  # templates: {{ }} are braces
IMAGE_ID = r"[0-9a-f]{{12}}"
INSECURE = "--tls-verify=false"


@dataclass(frozen=True)
class Scene:
    """What every row runs against: a template home (copied per test), a registry, files."""

    home: Path
    registry: Registry
    layout: Path  # an OCI layout holding v1 and v2 (the images in the store)
    context: Path  # a small build context (no RUN, no embedded image: builds offline)
    images_context: Path  # a context whose manifests/ name the image in the registry
    bundle: Path  # oci-archive of localhost/app:v1
    registry_dir: Path  # a registry folder (distribution's layout) holding that image
    seeded: str  # HOST/seed/app: the repository the registry holds, tag v1
    digests: dict[str, str]  # v1, v2: the manifest digests of localhost/app:v1 and :v2


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("conventions")
    # The `registry` fixture's server, started once for the module: every row pushes to a
    # repository of its own, so they share it.
    registry = start_registry(root / "registry")
    try:
        home = root / "home"
        env = {"CLUSTERIMAGE_HOME": str(home)}
        layout = root / "layout"
        v1 = make_oci_layout(layout, ref="v1", labels={"io.example.Role": "app"})
        v2 = make_oci_layout(
            layout,
            ref="v2",
            layers=({"hello.txt": b"hello v2\n"}, {"etc/extra.conf": b"x=1\n"}),
            labels={"io.example.Role": "app", "io.example.Version": "2"},
        )
        run_cli("pull", "-q", f"oci:{layout}:v1", "--name", "localhost/app:v1", env=env)
        run_cli("pull", "-q", f"oci:{layout}:v2", "--name", "localhost/app:v2", env=env)
        seeded = f"{registry.host}/seed/app"
        run_cli("push", "-q", INSECURE, "localhost/app:v1", f"{seeded}:v1", env=env)
        bundle = root / "bundle.tar"
        run_cli("save", "-q", "-o", bundle, "localhost/app:v1", env=env)

        context = root / "context"
        context.mkdir()
        (context / "hello.txt").write_text("hello\n")
        (context / "Kubefile").write_text(
            'FROM scratch\nLABEL sealos.io.type=application\nCOPY hello.txt /\nCMD ["true"]\n'
        )
        images_context = root / "images-context"
        (images_context / "manifests").mkdir(parents=True)
        (images_context / "manifests" / "app.yaml").write_text(
            f"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: {seeded}:v1\n"
        )
        (images_context / "Kubefile").write_text(
            "FROM scratch\nARG VERSION=1\nLABEL sealos.io.type=application "
            "sealos.io.version=$VERSION\nCOPY manifests manifests\nCOPY registry registry\n"
            'CMD ["kubectl apply -f manifests"]\n'
        )
        registry_dir = root / "registry-dir"
        run_cli(
            "registry", "save", "-q", INSECURE, images_context,
            "--registry-dir", registry_dir, env=env,
        )  # fmt: skip
        digests = {"v1": v1.manifest.digest, "v2": v2.manifest.digest}
        yield Scene(
            home, registry, layout, context, images_context, bundle, registry_dir, seeded, digests
        )
    finally:
        registry.stop()


@pytest.fixture
def home(scene: Scene, ci_home: Path) -> Path:
    """``ci_home`` holding a copy of the scene's store and caches."""
    shutil.copytree(scene.home, ci_home, dirs_exist_ok=True, symlinks=True)
    return ci_home


# -- --json -------------------------------------------------------------------------------------


def fill(template: str, scene: Scene, tmp: Path) -> str:
    """A row's template, its placeholders filled: {host} the registry, {seeded} its
    repository holding v1, {layout} the OCI layout, {context} and {images_context} the build
    contexts, {bundle} the oci-archive, {registry_dir} the registry folder, {tmp} a fresh folder
    of the test, {insecure} --tls-verify=false, {v1} and {v2} the images' manifest digests."""
    values = {
        **scene.digests,
        "host": scene.registry.host,
        "seeded": scene.seeded,
        "layout": scene.layout,
        "context": scene.context,
        "images_context": scene.images_context,
        "bundle": scene.bundle,
        "registry_dir": scene.registry_dir,
        "tmp": tmp,
        "insecure": INSECURE,
    }
    return template.format(**values)


def command_line(template: str, scene: Scene, tmp: Path) -> list[str]:
    return fill(template, scene, tmp).split()


Prepare = Callable[[Scene, Path], None]


def _manifest_list(scene: Scene, tmp: Path) -> None:
    run_cli("manifest", "create", "localhost/list:v1", "localhost/app:v1", "localhost/app:v2")


def _auth_file(scene: Scene, tmp: Path) -> None:
    token = base64.b64encode(b"someone:secret").decode()
    auths = {"auths": {scene.registry.host: {"auth": token}}}
    (tmp / "auth.json").write_text(json.dumps(auths))


@dataclass(frozen=True)
class JsonRow:
    """One command with ``--json``: its command line, whose keys it prints, its exemptions.

    Paths are dot-separated keys, ``[]`` for any item of a list, ``*`` for any key of a data
    map. ``documents``: OCI documents, not checked at all. ``data_maps``: maps whose keys are
    data (label and ENV names, image names); their values are checked.
    """

    name: str
    args: str
    keys: str = "camelCase"  # or "podman": PascalCase, as podman prints the same thing
    documents: tuple[str, ...] = ()
    data_maps: tuple[str, ...] = ()
    prepare: Prepare | None = field(default=None, compare=False)


# Podman's image inspect (pkg/inspect ImageData): Config is an OCI image config (its keys are
# the spec's, PascalCase too), History its OCI history entries (created_by, empty_layer);
# Labels, Annotations and GraphDriver.Data are data, as is inspect's own EmbeddedImages (image
# names). inspect prints one object for one image, images a list.
_PODMAN_IMAGE_DOCUMENTS = ("History", "[].History")
_PODMAN_IMAGE_MAPS = tuple(
    prefix + name
    for prefix in ("", "[].")
    for name in (
        "Labels",
        "Annotations",
        "Config.Labels",
        "Config.ExposedPorts",
        "Config.Volumes",
        "GraphDriver.Data",
        "EmbeddedImages",
    )
)
# A plan: ociConfig is the image config the build writes, history its entries (the OCI spec's
# created_by/empty_layer); a step's changes are the OCI config fields it sets.
_PLAN_DOCUMENTS = ("ociConfig", "history", "stages.[].steps.[].changes")
_PLAN_MAPS = ("buildArgs", "hooks", "config.labels", "stages.[].args", "stages.[].config.labels")
# diff: config is OCI config field -> {a: its value in A, b: in B}.
_DIFF_DOCUMENTS = ("config.*.a", "config.*.b")

JSON_ROWS = (
    JsonRow("version", "version --json"),
    JsonRow(
        "images",
        "images --json",
        keys="podman",
        documents=_PODMAN_IMAGE_DOCUMENTS,
        data_maps=_PODMAN_IMAGE_MAPS,
    ),
    JsonRow(
        "inspect",
        "inspect localhost/app:v1",
        keys="podman",
        documents=_PODMAN_IMAGE_DOCUMENTS,
        data_maps=_PODMAN_IMAGE_MAPS,
    ),
    JsonRow("prune", "prune --json"),
    JsonRow("fsck", "fsck --json"),
    JsonRow("pull", "pull --json oci:{layout}:v1 --name localhost/other:v1"),
    JsonRow("pull docker://", "pull --json {insecure} {seeded}:v1"),
    JsonRow("build", "build --json -t localhost/built:v1 {context}", data_maps=("images",)),
    JsonRow(
        "build --dry-run",
        "build --dry-run --json {insecure} --build-arg VERSION=2 {images_context}",
        documents=_PLAN_DOCUMENTS,
        data_maps=_PLAN_MAPS,
    ),
    JsonRow("create", "create --json localhost/app:v1", data_maps=("env", "labels", "hooks")),
    JsonRow(
        "login",
        "login --json {insecure} -u someone -p secret --authfile {tmp}/auth.json {host}",
    ),
    JsonRow("logout", "logout --json --authfile {tmp}/auth.json {host}", prepare=_auth_file),
    JsonRow("push", "push --json {insecure} localhost/app:v2 {host}/p/app:v2"),
    JsonRow("copy", "copy --json --dest-tls-verify=false oci:{layout}:v2 docker://{host}/c/a:v2"),
    JsonRow(
        "manifest push",
        "manifest push --json {insecure} localhost/list:v1 {host}/ml/app:v1",
        prepare=_manifest_list,
    ),
    JsonRow("tags", "tags --json {insecure} {seeded}"),
    JsonRow("save", "save --json -o {tmp}/out.tar localhost/app:v1"),
    JsonRow("load", "load --json -i {bundle}"),
    JsonRow("merge", "merge --json -t m:v1 localhost/app:v1 localhost/app:v2"),
    JsonRow(
        "registry save",
        "registry save --json {insecure} {images_context} --registry-dir {tmp}/reg",
        data_maps=("images",),
    ),
    JsonRow("registry sync", "registry sync --json {insecure} {registry_dir} {host}/s"),
    JsonRow("unpack", "unpack --json localhost/app:v2 {tmp}/unpacked"),
    JsonRow(
        "diff",
        "diff --json localhost/app:v1 localhost/app:v2",
        documents=_DIFF_DOCUMENTS,
        data_maps=("config",),
    ),
    JsonRow("bundle verify", "bundle verify --json {bundle}"),
    JsonRow("bundle inventory", "bundle inventory {bundle}"),
)


def _matches(path: tuple[str, ...], pattern: str) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p in ("*", q) for p, q in zip(parts, path, strict=True))


def bad_keys(
    data: Any,
    key: re.Pattern[str],
    documents: tuple[str, ...] = (),
    data_maps: tuple[str, ...] = (),
    path: tuple[str, ...] = (),
) -> list[str]:
    """Every key under ``data`` that ``key`` does not match, as a dotted path."""
    if any(_matches(path, p) for p in documents):
        return []
    found: list[str] = []
    if isinstance(data, list):
        for item in data:
            found += bad_keys(item, key, documents, data_maps, (*path, "[]"))
    elif isinstance(data, dict):
        is_data = any(_matches(path, p) for p in data_maps)
        for name, value in data.items():
            if not is_data and not key.match(name):
                found.append(".".join((*path, name)))
            child = "*" if is_data else name
            found += bad_keys(value, key, documents, data_maps, (*path, child))
    return found


def test_bad_keys_walks_lists_documents_and_data_maps() -> None:
    data = {
        "okKey": [{"bad_key": 1, "labels": {"io.x/y": {"inner_bad": 2}}}],
        "ociConfig": {"Env": []},
    }
    assert bad_keys(data, CAMEL) == [
        "okKey.[].bad_key",
        "okKey.[].labels.io.x/y",
        "okKey.[].labels.io.x/y.inner_bad",
        "ociConfig.Env",
    ]
    assert bad_keys(data, CAMEL, ("ociConfig",), ("okKey.[].labels",)) == [
        "okKey.[].bad_key",
        "okKey.[].labels.*.inner_bad",
    ]


def _commands_with(option: str) -> dict[str, str]:
    """Every command line (``registry sync``) that takes ``option`` -> that option's help,
    read from the commands themselves (each module registered into a fresh app)."""
    import typer

    from clusterimage.cli.main import _COMMAND_MODULES

    app = typer.Typer()
    for name in _COMMAND_MODULES:
        importlib.import_module(f"clusterimage.cli.{name}").register(app)
    found: dict[str, str] = {}

    def visit(command: Any, words: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):  # a group (typer vendors click: no click to import)
            for name, sub in command.commands.items():
                visit(sub, (*words, name))
            return
        for param in command.params:
            if option in param.opts:
                found[" ".join(words)] = getattr(param, "help", None) or ""

    visit(typer.main.get_command(app), ())
    return found


def test_every_json_command_has_a_row() -> None:
    """A command that gains ``--json`` joins the table (bundle inventory prints JSON always)."""
    covered = {row.name.removesuffix(" docker://").removesuffix(" --dry-run") for row in JSON_ROWS}
    assert set(_commands_with("--json")) | {"inspect", "bundle inventory"} == covered


@pytest.mark.parametrize("row", JSON_ROWS, ids=lambda row: row.name)
def test_json_keys_follow_the_convention(
    row: JsonRow, scene: Scene, home: Path, tmp_path: Path
) -> None:
    if row.prepare is not None:
        row.prepare(scene, tmp_path)
    result = run_cli(*command_line(row.args, scene, tmp_path))
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)  # the whole of stdout is one document
    assert data not in ({}, [], None), result.stdout
    pattern = PASCAL if row.keys == "podman" else CAMEL
    assert bad_keys(data, pattern, row.documents, row.data_maps) == [], result.stdout


# -- -q -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuietRow:
    """One command with ``-q``: its command line and a regex (a template: {v1} is that image's
    digest) of the one line it prints per result; None: nothing at all, the result being a file
    or a folder."""

    name: str
    args: str
    line: str | None
    lines: int = 1
    prepare: Prepare | None = field(default=None, compare=False)


QUIET_ROWS = (
    QuietRow("images", "images -q", IMAGE_ID, lines=2),
    QuietRow("build", "build -q -t b:v1 {context}", DIGEST),
    QuietRow("pull", "pull -q oci:{layout}:v1 --name o:v1", "{v1}"),
    QuietRow("pull docker://", "pull -q {insecure} {seeded}:v1", "{v1}"),
    QuietRow("push", "push -q {insecure} localhost/app:v2 {host}/q/app:v2", "{v2}"),
    QuietRow(
        "copy", "copy -q --dest-tls-verify=false oci:{layout}:v1 docker://{host}/qc/a:v1", "{v1}"
    ),
    QuietRow(
        "manifest push",
        "manifest push -q {insecure} localhost/list:v1 {host}/mq/a:v1",
        DIGEST,
        prepare=_manifest_list,
    ),
    QuietRow("load", "load -q -i {bundle}", "{v1}"),
    QuietRow("merge", "merge -q -t m:v1 localhost/app:v1 localhost/app:v2", DIGEST),
    QuietRow(
        "registry save",
        "registry save -q {insecure} {images_context} --registry-dir {tmp}/reg",
        "{v1}",
    ),
    QuietRow("registry sync", "registry sync -q {insecure} {registry_dir} {host}/qs", "{v1}"),
    QuietRow("registry copy", "registry copy -q {insecure} {seeded}:v1 {host}/rc", "{v1}"),
    QuietRow("save", "save -q -o {tmp}/o.tar localhost/app:v1", None),
    QuietRow("unpack", "unpack -q localhost/app:v2 {tmp}/u", None),
)


@pytest.mark.parametrize("row", QUIET_ROWS, ids=lambda row: row.name)
def test_quiet_prints_only_ids(row: QuietRow, scene: Scene, home: Path, tmp_path: Path) -> None:
    if row.prepare is not None:
        row.prepare(scene, tmp_path)
    result = run_cli(*command_line(row.args, scene, tmp_path))
    if row.line is None:
        assert result.stdout == ""
    else:
        lines = result.stdout.splitlines()
        assert len(lines) == row.lines, result.stdout
        pattern = fill(row.line, scene, tmp_path)
        assert all(re.fullmatch(pattern, line) for line in lines), result.stdout
    others = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert others == [], result.stderr


def test_bundle_inventory_quiet_keeps_the_inventory_and_drops_the_status_line(
    scene: Scene, home: Path
) -> None:
    loud = run_cli("bundle", "inventory", scene.bundle)
    quiet = run_cli("bundle", "inventory", "-q", scene.bundle)
    assert quiet.stdout == loud.stdout and json.loads(quiet.stdout)["images"]
    assert quiet.stderr == ""
    assert re.fullmatch(r"inventory sha256:[0-9a-f]{64}: 1 image, \d+ blobs\n", loud.stderr)


_JSON_AND_QUIET = [row for row in QUIET_ROWS if row.name in {j.name for j in JSON_ROWS}]


@pytest.mark.parametrize("row", _JSON_AND_QUIET, ids=lambda row: row.name)
def test_json_wins_over_quiet(row: QuietRow, scene: Scene, home: Path, tmp_path: Path) -> None:
    """-q with --json: stdout is the JSON document alone (build refuses the pair instead)."""
    if row.prepare is not None:
        row.prepare(scene, tmp_path)
    result = run_cli(*command_line(row.args, scene, tmp_path), "--json", check=False)
    if row.name == "build":
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert result.stderr.startswith("error: "), result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) not in ({}, [], None), result.stdout


def test_every_short_q_has_a_row_and_says_what_it_prints() -> None:
    """``-q`` means "only the IDs/digests"; a command that gains it joins the table, and its
    help says so. bundle inventory is the one exception: its output is the inventory document
    itself, and -q drops the status line that carries its digest."""
    helps = _commands_with("-q")
    assert set(helps) == {row.name.removesuffix(" docker://") for row in QUIET_ROWS} | {
        "bundle inventory"
    }
    for row in QUIET_ROWS:
        said = helps[row.name.removesuffix(" docker://")]
        if row.line == IMAGE_ID:
            assert said.startswith("Print image IDs only"), (row.name, said)
        elif row.line is None:
            assert said.startswith("Print nothing but warnings and errors"), (row.name, said)
        else:
            assert said.startswith("Print only the"), (row.name, said)
            assert "digest" in said, (row.name, said)
