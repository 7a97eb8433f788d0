"""Build plans: context checks, steps, the final config, labels with meaning, rendering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clusterimage.build.plan import (
    BuildPlan,
    ConfigStep,
    CopyStep,
    RunStep,
    parse_assignments,
    plan_build,
)
from clusterimage.errors import KubefileError, UsageError
from clusterimage.kubefile import DEFAULT_PATH
from clusterimage.oci.platform import Platform
from clusterimage.runtime.command import image_type, image_version


def make_context(
    root: Path, kubefile: str, files: tuple[str, ...] = (), name: str = "Kubefile"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(kubefile)
    for item in files:
        path = root / item
        if item.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("content")
    return root


def plan_of(tmp_path: Path, kubefile: str, files: tuple[str, ...] = (), **kwargs: Any) -> BuildPlan:
    context = make_context(tmp_path / "ctx", kubefile, files)
    return plan_build(context, platform="linux/amd64", **kwargs)


# -- the Kubefile and context ------------------------------------------------------------------


def test_discovery_order_and_explicit_file(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch\nENV WHO=dockerfile\n", name="Dockerfile")
    (context / "Sealfile").write_text("FROM scratch\nENV WHO=sealfile\n")
    plan = plan_build(context)
    assert plan.kubefile == str(context / "Sealfile")
    assert plan.config.env_dict()["WHO"] == "sealfile"
    other = tmp_path / "elsewhere" / "My.kubefile"
    other.parent.mkdir()
    other.write_text("FROM scratch\nENV WHO=explicit\n")
    plan = plan_build(context, other)
    assert plan.kubefile == str(other)
    assert plan.config.env_dict()["WHO"] == "explicit"


def test_context_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a directory"):
        plan_build(tmp_path / "nope")


def test_no_kubefile_in_context(tmp_path: Path) -> None:
    with pytest.raises(KubefileError, match="no Kubefile, Sealfile, Dockerfile or Containerfile"):
        plan_build(tmp_path)


def test_empty_kubefile(tmp_path: Path) -> None:
    context = make_context(tmp_path, "# only a comment\n")
    with pytest.raises(KubefileError) as caught:
        plan_build(context)
    assert (
        str(caught.value)
        == f"{context / 'Kubefile'}: the Kubefile is empty: it has no instructions"
    )


def test_unknown_instruction_names_file_and_line(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch\nCOPY . .\nCOPPY a b\n")
    with pytest.raises(KubefileError, match=r"Kubefile:3: unknown instruction: COPPY"):
        plan_build(context)


def test_unterminated_exec_json(tmp_path: Path) -> None:
    context = make_context(tmp_path, 'FROM scratch\n\nCMD ["a", "b"\n')
    with pytest.raises(KubefileError, match=r"Kubefile:3: CMD: unterminated exec-form JSON"):
        plan_build(context)


@pytest.mark.parametrize("source", ["../x", "a/../../x", "..", "../ctx/file"])
def test_source_outside_context(tmp_path: Path, source: str) -> None:
    context = make_context(tmp_path / "ctx", f"FROM scratch\nENV A=1\nCOPY {source} /x\n")
    (tmp_path / "x").write_text("outside")
    with pytest.raises(KubefileError) as caught:
        plan_build(context)
    assert str(caught.value) == (
        f"{context / 'Kubefile'}:3: COPY source '{source}' is outside the build context"
    )


def test_source_outside_context_even_in_unused_stage(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch AS unused\nADD ../x /\nFROM scratch\n")
    with pytest.raises(KubefileError, match=r"Kubefile:2: ADD source '../x' is outside"):
        plan_build(context)


def test_unknown_from_stage(tmp_path: Path) -> None:
    kubefile = "FROM scratch AS build\nCOPY . .\nFROM scratch\nCOPY --from=biuld /x /x\n"
    context = make_context(tmp_path, kubefile)
    with pytest.raises(KubefileError, match=r"Kubefile:4: COPY --from=biuld: unknown stage"):
        plan_build(context)


# -- sources -----------------------------------------------------------------------------------


def test_missing_sources_are_warnings(tmp_path: Path) -> None:
    kubefile = "FROM scratch\nCOPY charts charts\nCOPY manifests ./manifests\nCOPY *.sh opt/ ./\n"
    plan = plan_of(tmp_path, kubefile, ("charts/a/Chart.yaml",))
    assert [(m.location.line, m.source) for m in plan.missing_sources] == [
        (3, "manifests"),
        (4, "*.sh"),
        (4, "opt/"),
    ]
    error = plan.missing_sources[0].error()
    assert isinstance(error, KubefileError)
    assert str(error).endswith("Kubefile:3: COPY source 'manifests' not found in the build context")
    steps = plan.target_stage.steps
    assert isinstance(steps[0], CopyStep)
    assert steps[0].context_paths == ("charts",)
    assert isinstance(steps[1], CopyStep)
    assert steps[1].missing == ("manifests",)
    messages = [str(w) for w in plan.warnings]
    assert any(
        m.endswith("Kubefile:3: COPY source 'manifests' not found in the build context")
        for m in messages
    )


def test_wildcards_and_absolute_sources(tmp_path: Path) -> None:
    kubefile = "FROM scratch\nCOPY /etc/app.conf *.yaml [m]anifests/ /dst/\n"
    plan = plan_of(tmp_path, kubefile, ("etc/app.conf", "a.yaml", "b.yaml", "manifests/x.yaml"))
    step = plan.target_stage.steps[0]
    assert isinstance(step, CopyStep)
    assert step.context_paths == ("etc/app.conf", "a.yaml", "b.yaml", "manifests")
    assert step.missing == ()
    assert step.dest_path == "/dst/"


def test_bad_wildcard_is_an_error(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch\nCOPY [ab /x\n")
    with pytest.raises(KubefileError, match=r"Kubefile:2: COPY source '\[ab': syntax error"):
        plan_build(context)


def test_ignored_sources_count_as_missing(tmp_path: Path) -> None:
    kubefile = "FROM scratch\nCOPY secret.txt /\nCOPY keep.txt /\n"
    plan = plan_of(
        tmp_path, kubefile, ("secret.txt", "keep.txt"), is_ignored=lambda p: p == "secret.txt"
    )
    assert [m.source for m in plan.missing_sources] == ["secret.txt"]


def test_registry_is_overlaid(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "FROM scratch\nCOPY registry registry\nCOPY ./registry ./registry\n")
    assert plan.missing_sources == ()
    assert plan.copies_registry is True


@pytest.mark.parametrize(
    ("copy", "copies"),
    [
        ("COPY . .", True),
        ("COPY ./ /", True),
        ("COPY registry/ registry/", True),
        ("COPY * /", True),
        ("COPY reg* /", True),
        ("COPY charts charts", False),
        ("COPY --from=busybox:1.36 registry registry", False),
    ],
)
def test_copies_registry(tmp_path: Path, copy: str, copies: bool) -> None:
    plan = plan_of(tmp_path, f"FROM scratch\n{copy}\n", ("charts/x",))
    assert plan.copies_registry is copies


def test_registry_in_unused_stage_does_not_count(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "FROM scratch AS unused\nCOPY . .\nFROM scratch\nENV A=1\n")
    assert plan.copies_registry is False
    assert plan.stages[0].used is False


def test_missing_sources_in_unused_stages_are_not_reported(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "FROM scratch AS unused\nCOPY nope /\nFROM scratch\nENV A=1\n")
    assert plan.missing_sources == ()


def test_add_remote_and_from_sources_are_not_context(tmp_path: Path) -> None:
    kubefile = (
        "FROM scratch AS build\nCOPY a /a\n"
        "FROM scratch\nADD https://example.com/x.tgz /opt/\nCOPY --from=build /a /b\n"
    )
    plan = plan_of(tmp_path, kubefile, ("a",))
    add, copy = plan.target_stage.steps
    assert isinstance(add, CopyStep) and isinstance(copy, CopyStep)
    assert add.remote == ("https://example.com/x.tgz",)
    assert add.is_add and add.from_context
    assert copy.from_stage == 0 and not copy.from_context
    assert copy.context_paths == () and copy.missing == ()
    assert plan.missing_sources == ()


# -- steps and config --------------------------------------------------------------------------


def test_steps_of_a_rootfs_like_kubefile(tmp_path: Path) -> None:
    kubefile = (
        "FROM scratch\n"
        "MAINTAINER sealos\n"
        'LABEL init="init-cri.sh \\$registryDomain && bash init.sh" \\\n'
        '      check="check.sh \\$registryData"\n'
        "ENV criData=/var/lib/containerd \\\n"
        "    registryDomain=sealos.hub\n"
        "WORKDIR /opt\n"
        "COPY . .\n"
        'CMD ["bash init.sh"]\n'
    )
    plan = plan_of(
        tmp_path,
        kubefile,
        ("scripts/init.sh",),
        labels={"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1"},
    )
    steps = plan.target_stage.steps
    assert [type(step) for step in steps] == [
        ConfigStep,
        ConfigStep,
        ConfigStep,
        ConfigStep,
        CopyStep,
        ConfigStep,
    ]
    assert [step.creates_layer for step in steps] == [False, False, False, True, True, False]
    workdir = steps[3]
    assert isinstance(workdir, ConfigStep) and workdir.mkdir == "/opt"
    copy = steps[4]
    assert isinstance(copy, CopyStep)
    assert copy.context_paths == (".",)
    assert copy.dest_path == "/opt/"
    assert copy.created_by == "COPY . /opt/"
    assert plan.image_type == "rootfs"
    assert plan.image_version == "v1beta1"
    assert plan.hooks == {
        "init": "init-cri.sh $registryDomain && bash init.sh",
        "check": "check.sh $registryData",
    }
    assert plan.needs_run is False
    oci = plan.config.to_oci()
    assert oci["Env"] == [
        f"PATH={DEFAULT_PATH}",
        "criData=/var/lib/containerd",
        "registryDomain=sealos.hub",
    ]
    assert oci["Cmd"] == ["bash init.sh"]
    assert oci["WorkingDir"] == "/opt"
    assert oci["Labels"]["sealos.io.type"] == "rootfs"
    assert plan.config.author == "sealos"
    assert [entry.created_by for entry in plan.history()] == [step.created_by for step in steps]
    assert [entry.empty_layer for entry in plan.history()] == [not s.creates_layer for s in steps]


def test_labels_override_and_type_defaults(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "FROM scratch\nLABEL a=kube b=kube\n", labels={"b": "cli"})
    assert plan.config.labels == {"a": "kube", "b": "cli"}
    assert plan.image_type == "application"
    assert plan.image_version is None
    plan = plan_of(tmp_path / "2", 'FROM scratch\nLABEL sealos.io.type="patch"\n')
    assert plan.image_type == "patch"
    plan = plan_of(tmp_path / "3", 'FROM scratch\nLABEL "apps.sealos.io/type"=rootfs\n')
    assert plan.image_type == "rootfs"


def test_invalid_type_label(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch\nENV A=1\nLABEL sealos.io.type=app\n")
    with pytest.raises(
        KubefileError, match=r"Kubefile:3: label sealos.io.type='app': must be one of"
    ):
        plan_build(context)
    with pytest.raises(UsageError, match=r"--label label sealos.io.type='bogus'"):
        plan_build(context, labels={"sealos.io.type": "bogus"})


@pytest.mark.parametrize(
    ("label_line", "expected_type", "expected_version"),
    [
        ('LABEL sealos.io.type=""', "application", None),
        ('LABEL sealos.io.type="" "apps.sealos.io/type"=patch', "patch", None),
        ('LABEL sealos.io.type=rootfs sealos.io.version=""', "rootfs", None),
        ('LABEL sealos.io.version="" "apps.sealos.io/version"=v2', "application", "v2"),
    ],
)
def test_empty_type_and_version_labels_count_as_unset_as_at_run_time(
    tmp_path: Path, label_line: str, expected_type: str, expected_version: str | None
) -> None:
    # A base's type is cleared with an empty label (labels cannot be removed): not an error,
    # and the plan reads it exactly as the runtime does.
    plan = plan_of(tmp_path, f"FROM scratch\n{label_line}\n")
    assert (plan.image_type, plan.image_version) == (expected_type, expected_version)
    labels = plan.config.labels
    assert (image_type(labels), image_version(labels)) == (expected_type, expected_version)
    assert plan.to_dict()["type"] == expected_type


def test_type_labels_disagree(tmp_path: Path) -> None:
    kubefile = 'FROM scratch\nLABEL sealos.io.type=rootfs "apps.sealos.io/type"=patch\n'
    plan = plan_of(tmp_path, kubefile)
    assert plan.image_type == "rootfs"
    assert any("disagree" in str(warning) for warning in plan.warnings)


def test_envs_and_build_args(tmp_path: Path) -> None:
    kubefile = "FROM scratch\nARG VERSION=1\nENV VERSION=$VERSION E1=k\n"
    plan = plan_of(tmp_path, kubefile, build_args={"VERSION": "2", "EXTRA": "x"}, envs={"E1": "v"})
    assert plan.config.env[1:] == ("VERSION=2", "E1=v")
    assert plan.unused_build_args == ("EXTRA",)
    assert any("not consumed: [EXTRA]" in str(warning) for warning in plan.warnings)
    assert plan.target_stage.args == (("VERSION", "2"),)


def test_needs_run_only_for_used_stages(tmp_path: Path) -> None:
    kubefile = "FROM busybox AS tools\nRUN echo hi > /x\nFROM scratch\nCOPY a /a\n"
    plan = plan_of(tmp_path, kubefile, ("a",))
    assert plan.needs_run is False
    assert [stage.used for stage in plan.stages] == [False, True]
    assert [stage.index for stage in plan.stages_to_build()] == [1]
    kubefile = "FROM busybox AS tools\nRUN echo hi > /x\nFROM scratch\nCOPY --from=tools /x /x\n"
    plan = plan_of(tmp_path / "2", kubefile)
    assert plan.needs_run is True
    run = plan.stages[0].steps[0]
    assert isinstance(run, RunStep)
    assert run.argv == ("/bin/sh", "-c", "echo hi > /x")
    assert run.env == (f"PATH={DEFAULT_PATH}",)


def test_multi_stage_history_and_target(tmp_path: Path) -> None:
    kubefile = (
        "FROM scratch AS base\nENV A=1\nCOPY a /a\n"
        "FROM base AS app\nCOPY b /b\n"
        "FROM scratch AS other\nENV O=1\n"
    )
    plan = plan_of(tmp_path, kubefile, ("a", "b"), target="app")
    assert plan.target_stage.name == "app"
    assert [entry.created_by for entry in plan.history()] == ["ENV A=1", "COPY a /a", "COPY b /b"]
    assert [stage.used for stage in plan.stages] == [True, True, False]


def test_base_image_warning_and_resolver(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "FROM busybox:1.36\nENV A=1\n")
    assert plan.target_stage.base_config_known is False
    assert any("busybox:1.36 is not known" in str(warning) for warning in plan.warnings)

    def resolver(reference: str, platform: Platform) -> dict[str, Any]:
        return {"config": {"Env": ["PATH=/bin", "HOME=/root"], "Cmd": ["sh"]}}

    plan = plan_of(tmp_path / "2", "FROM busybox:1.36\nENV A=$HOME\n", base_config=resolver)
    assert plan.target_stage.base_config_known is True
    assert plan.config.env == ("PATH=/bin", "HOME=/root", "A=/root")
    assert plan.config.cmd == ("sh",)
    assert not plan.warnings


def test_base_image_onbuild_warning(tmp_path: Path) -> None:
    def resolver(reference: str, platform: Platform) -> dict[str, Any]:
        return {"config": {"OnBuild": ["RUN make"]}}

    plan = plan_of(tmp_path, "FROM busybox:1.36\nENV A=1\n", base_config=resolver)
    assert any("has ONBUILD triggers" in str(w) and ":1:" in str(w) for w in plan.warnings)


def test_repeated_cmd_warning(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, 'FROM scratch\nCMD ["a"]\nCMD ["b"]\n')
    assert plan.config.cmd == ("b",)
    assert any("CMD is given 2 times" in str(w) and ":3:" in str(w) for w in plan.warnings)


def test_platform_option(tmp_path: Path) -> None:
    context = make_context(tmp_path, "FROM scratch\nARG TARGETARCH\nENV ARCH=$TARGETARCH\n")
    plan = plan_build(context, platform="linux/arm64")
    assert str(plan.platform) == "linux/arm64"
    assert plan.config.env_dict()["ARCH"] == "arm64"
    with pytest.raises(UsageError):
        plan_build(context, platform="not/a/valid/platform")


# -- output ------------------------------------------------------------------------------------


def test_to_dict_is_json_and_stable(tmp_path: Path) -> None:
    kubefile = (
        "FROM scratch AS b\nRUN true\nFROM scratch\nLABEL z=1 a=2\nENV A=1\n"
        "COPY --from=b --chown=1:1 --chmod=600 /x /y\nCOPY nope /\nEXPOSE 80\nVOLUME /v\n"
        'ENTRYPOINT ["e"]\nCMD ["c"]\nUSER u\nSTOPSIGNAL TERM\n'
    )
    first = plan_of(tmp_path, kubefile).to_dict()
    second = plan_of(tmp_path, kubefile).to_dict()
    assert json.dumps(first) == json.dumps(second)
    assert json.loads(json.dumps(first)) == first
    assert list(first["config"]["labels"]) == ["a", "z"]
    assert first["type"] == "application"
    assert first["needsRun"] is True
    assert first["ociConfig"]["ExposedPorts"] == {"80/tcp": {}}
    assert first["missingSources"][0]["source"] == "nope"
    copy = first["stages"][1]["steps"][2]
    assert copy["kind"] == "copy" and copy["fromStage"] == 0 and copy["chmod"] == "600"
    assert first["stages"][0]["steps"][0]["kind"] == "run"


def test_render_mentions_stages_steps_config_and_warnings(tmp_path: Path) -> None:
    kubefile = "FROM scratch AS unused\nENV U=1\nFROM scratch\nENV A=1\nCOPY missing /\n"
    text = plan_of(tmp_path, kubefile, labels={"init": "init.sh"}).render()
    assert "stage 0 unused: FROM scratch" in text
    assert "not built" in text
    assert "COPY missing /" in text
    assert "! missing in context: missing" in text
    assert "env         A=1" in text
    assert "init: init.sh" in text
    assert "warnings" in text


def test_parse_assignments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_ENV", "env-value")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    assert parse_assignments(["A=1", "B=x=y", "C=", "A=2"], "--build-arg") == {
        "A": "2",
        "B": "x=y",
        "C": "",
    }
    assert parse_assignments(["FROM_ENV", "UNSET_HERE"], "--build-arg", from_environ=True) == {
        "FROM_ENV": "env-value"
    }
    assert parse_assignments(["flag"], "--label") == {"flag": ""}
    with pytest.raises(UsageError, match="--env: expected KEY=VALUE"):
        parse_assignments(["=x"], "--env")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("COPY --from=² a /a", "²"),  # passes str.isdigit(), but is no stage index
        ("STOPSIGNAL ²", "²"),
    ],
)
def test_unicode_digits_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(KubefileError, match=rf"Kubefile:2: .*{message}"):
        plan_of(tmp_path, f"FROM scratch\n{line}\n", files=("a",))
