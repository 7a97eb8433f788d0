"""Several platforms in one build: parsing --platform lists, whether this machine can run a
platform's RUN (binfmt_misc), registry/ and image-cache folders per platform, and the index
and manifest list :func:`runner.build_index` stores (native engine, no network)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from clusterimage.build import runner
from clusterimage.build.engine import cannot_run, check_runnable
from clusterimage.build.plan import BuildPlan, plan_build
from clusterimage.build.runner import BuildSettings, parse_platforms
from clusterimage.errors import KubefileError, UsageError
from clusterimage.oci import mediatypes as mt
from clusterimage.oci.manifest import ImageIndex
from clusterimage.oci.platform import Platform
from clusterimage.store import Store

HOST = Platform.host()
# A platform this machine does not run natively (the test binfmt folders decide the rest).
FOREIGN = Platform.parse("linux/s390x" if HOST.architecture != "s390x" else "linux/arm64")
QEMU = {"s390x": "s390x", "arm64": "aarch64"}[FOREIGN.architecture]


# -- parsing ---------------------------------------------------------------------------------


def test_one_platform_and_none() -> None:
    assert parse_platforms(None) == []
    assert parse_platforms("linux/arm64") == [Platform("linux", "arm64")]


def test_a_list_keeps_its_order_and_flags_may_repeat() -> None:
    got = parse_platforms(["linux/arm64, linux/amd64", "linux/arm/v7"])
    assert [str(p) for p in got] == ["linux/arm64", "linux/amd64", "linux/arm/v7"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("linux/amd64,linux/amd64", "--platform 'linux/amd64': given twice"),
        ("linux/arm64,linux/aarch64", "--platform 'linux/aarch64': given twice (as 'linux/arm64')"),
        ("linux/arm64,linux/arm64/v8", "given twice (as 'linux/arm64')"),
        ("linux/amd64,,linux/arm64", "an empty platform in the list"),
        ("linux/amd64,nope", "invalid platform 'nope'"),
        ("linux/amd64,a/b/c/d", "invalid platform 'a/b/c/d'"),
    ],
)
def test_bad_lists_are_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_platforms(value)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_settings_say_when_an_index_is_built(tmp_path: Path) -> None:
    assert not BuildSettings(tmp_path).multi
    assert not BuildSettings(tmp_path, platform="linux/arm64").multi
    assert BuildSettings(tmp_path, platform="linux/amd64,linux/arm64").multi
    assert BuildSettings(tmp_path, manifest="apps/list:v1").multi
    with pytest.raises(UsageError, match="not a digest"):
        BuildSettings(tmp_path, manifest="apps/list@sha256:" + "a" * 64).check()


# -- can this machine run a platform? ------------------------------------------------------------


def _binfmt(root: Path, *handlers: tuple[str, str, str], status: str = "enabled") -> Path:
    root.mkdir()
    (root / "status").write_text(f"{status}\n")
    (root / "register").write_text("")
    for name, state, interpreter in handlers:
        (root / name).write_text(f"{state}\ninterpreter {interpreter}\nflags: F\noffset 0\n")
    return root


def test_the_host_platform_runs_without_binfmt(tmp_path: Path) -> None:
    assert cannot_run(HOST, tmp_path / "missing") is None


def test_a_foreign_platform_needs_an_enabled_handler(tmp_path: Path) -> None:
    none = _binfmt(tmp_path / "none")
    reason = cannot_run(FOREIGN, none)
    assert reason is not None and f"no binfmt_misc handler for {QEMU}" in reason
    assert str(HOST) in reason and FOREIGN.architecture in reason  # and how to register one
    named = _binfmt(tmp_path / "named", (f"qemu-{QEMU}", "enabled", "/usr/bin/qemu-x"))
    assert cannot_run(FOREIGN, named) is None
    # Handlers registered under another name are found by their interpreter.
    static = _binfmt(
        tmp_path / "static", (FOREIGN.architecture, "enabled", f"/usr/bin/qemu-{QEMU}-static")
    )
    assert cannot_run(FOREIGN, static) is None
    debian = _binfmt(
        tmp_path / "debian", ("other", "enabled", f"/usr/libexec/qemu-binfmt/{QEMU}-binfmt-P")
    )
    assert cannot_run(FOREIGN, debian) is None
    off = _binfmt(tmp_path / "off", (f"qemu-{QEMU}", "disabled", f"/usr/bin/qemu-{QEMU}"))
    assert cannot_run(FOREIGN, off) is not None
    global_off = _binfmt(
        tmp_path / "global-off", (f"qemu-{QEMU}", "enabled", f"/usr/bin/qemu-{QEMU}"), status="0"
    )
    assert "binfmt_misc is disabled" in (cannot_run(FOREIGN, global_off) or "")
    assert "no binfmt_misc handler" in (cannot_run(FOREIGN, tmp_path / "not-mounted") or "")


def test_another_os_cannot_run(tmp_path: Path) -> None:
    reason = cannot_run(Platform("windows", HOST.architecture), tmp_path)
    assert reason is not None and "windows" in reason


def _plan(tmp_path: Path, kubefile: str, platform: Platform) -> BuildPlan:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Kubefile").write_text(kubefile)
    return plan_build(context, None, platform=platform)


def test_check_runnable_names_the_run_line_and_the_platform(tmp_path: Path) -> None:
    empty = _binfmt(tmp_path / "binfmt")
    plan = _plan(tmp_path, 'FROM scratch\nCOPY Kubefile /k\nRUN ["/bin/true"]\n', FOREIGN)
    with pytest.raises(KubefileError) as caught:
        check_runnable(plan, "buildah", empty)
    message = str(caught.value)
    assert "Kubefile:3" in message and str(FOREIGN) in message and "\n" not in message
    check_runnable(plan, "native", empty)  # nothing runs: nothing to check
    # A stage FROM --platform=$BUILDPLATFORM runs on this machine whatever the target is.
    builder = _plan(
        tmp_path,
        'FROM --platform=$BUILDPLATFORM scratch AS b\nCOPY Kubefile /k\nRUN ["/bin/true"]\n'
        "FROM scratch\nCOPY --from=b /k /k\n",
        FOREIGN,
    )
    check_runnable(builder, "buildah", empty)


# -- folders per platform ------------------------------------------------------------------------


def test_registry_folders_and_caches_are_per_platform(tmp_path: Path, ci_home: Path) -> None:
    amd, arm = Platform.parse("linux/amd64"), Platform.parse("linux/arm64")
    folders = {runner.registry_folder(tmp_path, p) for p in (amd, arm, None)}
    assert len(folders) == 3 and all(f.is_relative_to(ci_home) for f in folders)
    assert runner.registry_folder(tmp_path, arm) == runner.registry_folder(tmp_path, arm)
    assert runner.image_cache() == ci_home / "cache" / "images"
    assert runner.image_cache(False, HOST) == ci_home / "cache" / "images"
    assert runner.image_cache(True, FOREIGN) == ci_home / "cache" / "images-all"
    slug = str(FOREIGN).replace("/", "-")
    assert runner.image_cache(False, FOREIGN) == ci_home / "cache" / f"images-{slug}"


# -- the index ---------------------------------------------------------------------------------


def _context(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Kubefile").write_text(
        "FROM scratch\nARG TARGETARCH\nCOPY Kubefile /k-$TARGETARCH\n"
    )
    return context


def _names(store: Store) -> list[str | None]:
    return [entry.name for entry in store.images()]


def test_build_index_stores_one_index_under_the_tag(tmp_path: Path, ci_home: Path) -> None:
    store = Store(tmp_path / "store")
    settings = BuildSettings(
        _context(tmp_path),
        tags=("apps/x:v1",),
        platform="linux/arm64,linux/amd64",
        save_image=False,
    )
    with pytest.raises(UsageError, match="build_index"):
        runner.build(settings, store)
    outcome = runner.build_index(settings, store)
    assert outcome.tags == ("localhost/apps/x:v1",) and outcome.manifest is None
    assert _names(store) == ["localhost/apps/x:v1"]  # the platforms' images: no entries
    index = store.get_manifest(outcome.descriptor.digest)
    assert isinstance(index, ImageIndex) and index.media_type == mt.OCI_INDEX
    assert [str(d.platform) for d in index.manifests] == ["linux/arm64", "linux/amd64"]
    assert [d.digest for d in index.manifests] == [b.descriptor.digest for b in outcome.builds]
    summary = outcome.summary(store)
    assert [p["platform"] for p in summary["platforms"]] == ["linux/arm64", "linux/amd64"]
    # The same build again: the same index; every platform's image is still reachable.
    assert runner.build_index(settings, store).descriptor == outcome.descriptor
    assert store.resolve(str(index.manifests[0].digest)).digest == index.manifests[0].digest
    assert store.fsck() == []


def test_a_manifest_list_replaces_the_same_platform_whatever_its_spelling(
    tmp_path: Path, ci_home: Path
) -> None:
    store = Store(tmp_path / "store")
    context = _context(tmp_path)

    def build(platform: str, labels: dict[str, str] | None = None) -> runner.IndexOutcome:
        settings = BuildSettings(
            context,
            platform=platform,
            manifest="apps/list:v1",
            labels=labels or {},
            save_image=False,
        )
        return runner.build_index(settings, store)

    first = build("linux/amd64,linux/arm64")
    listed = store.get_manifest(first.descriptor.digest)
    assert isinstance(listed, ImageIndex)
    # The list as another tool may have written it: arm64 spelt with its variant v8.
    v8 = Platform("linux", "arm64", "v8")
    arm_v8 = [
        d if str(d.platform) != "linux/arm64" else replace(d, platform=v8) for d in listed.manifests
    ]
    odd = ImageIndex.build(arm_v8)
    store.put_bytes(odd.raw, expected=odd.digest)
    store.set_ref("localhost/apps/list:v1", odd.descriptor())
    second = build("linux/arm64", labels={"rev": "2"})
    index = store.get_manifest(second.descriptor.digest)
    assert isinstance(index, ImageIndex)
    assert [str(d.platform) for d in index.manifests] == ["linux/amd64", "linux/arm64"]
    assert index.manifests[1].digest == second.builds[0].descriptor.digest
    assert index.manifests[0].digest == first.builds[0].descriptor.digest
    # The list's older versions are not left behind as unnamed images.
    assert _names(store) == ["localhost/apps/list:v1"]
    store.tag(first.builds[0].descriptor, "localhost/apps/plain:v1")
    with pytest.raises(UsageError, match="not a manifest list"):
        runner.build_index(
            BuildSettings(context, platform="linux/amd64", manifest="apps/plain:v1"), store
        )


def test_the_cli_keeps_each_platforms_layers_and_says_a_warning_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from clusterimage.build.engine import BuildEvent
    from clusterimage.cli.build import _Printer

    printer = _Printer(quiet=True)
    for platform, kind in (("linux/amd64", "layer"), ("linux/arm64", "cached")):
        printer(BuildEvent("platform", f"PLATFORM: {platform}", {"platform": platform}))
        printer(BuildEvent("warning", "registry/ is not copied"))
        printer(BuildEvent(kind, "--> layer", {"digest": "sha256:" + "1" * 64}))  # type: ignore[arg-type]
    assert printer.warnings == ["registry/ is not copied"]
    assert capsys.readouterr().err.count("registry/ is not copied") == 1
    assert {
        p: [layer["cached"] for layer in layers] for p, layers in printer.platform_layers.items()
    } == {
        "linux/amd64": [False],
        "linux/arm64": [True],
    }
