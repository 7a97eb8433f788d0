"""Stage evaluation: expansion in each instruction, ARG/ENV scoping, build args, config rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from clusterimage.errors import KubefileError, UsageError
from clusterimage.kubefile import DEFAULT_PATH, Copy, Env, Label, evaluate, parse_string
from clusterimage.kubefile.config import ConfigState, ExecConfig
from clusterimage.kubefile.stages import Evaluation, copy_destination, normalize_workdir
from clusterimage.oci.platform import Platform

AMD64 = Platform.parse("linux/amd64")


def run(
    text: str,
    build_args: Mapping[str, str] | None = None,
    *,
    target: str | None = None,
    envs: Mapping[str, str] | None = None,
    platform: Platform = AMD64,
    base_config: Any = None,
) -> Evaluation:
    return evaluate(
        parse_string(text, path="Kubefile"),
        build_args=build_args,
        platform=platform,
        target=target,
        envs=envs,
        base_config=base_config,
    )


def env_of(evaluation: Evaluation, index: int | None = None) -> dict[str, str]:
    stage = evaluation.stages[evaluation.target if index is None else index]
    return stage.config.env_dict()


# -- ENV / LABEL -------------------------------------------------------------------------------


def test_scratch_gets_default_path_first() -> None:
    evaluation = run("FROM scratch\nENV A=1\n")
    assert evaluation.target_stage.config.env == (f"PATH={DEFAULT_PATH}", "A=1")


def test_env_expands_with_the_previous_scope() -> None:
    evaluation = run("FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    env = env_of(evaluation)
    assert env["def"] == "hello"
    assert env["ghi"] == "bye"


def test_env_replaces_in_place_and_appends() -> None:
    evaluation = run("FROM scratch\nENV A=1 B=2\nENV A=3 C=4\n")
    assert evaluation.target_stage.config.env[1:] == ("A=3", "B=2", "C=4")


def test_env_forms_expand_like_docker() -> None:
    text = (
        "FROM scratch\n"
        'ENV NAME=${NAME:-"minio"}\n'
        'ENV HELM_OPTS=${HELM_OPTS:-" \\\n--set a=b \\\n"}\n'
        'ENV SVC_CIDR "10.96.0.0/22"\n'
        "ENV LEG some value  here\n"
        "ENV RUNTIME=$(NAME) Q='$NAME' E=\\$NAME\n"
    )
    env = env_of(run(text))
    assert env["NAME"] == "minio"
    assert env["HELM_OPTS"] == " --set a=b "
    assert env["SVC_CIDR"] == "10.96.0.0/22"
    assert env["LEG"] == "some value  here"
    assert env["RUNTIME"] == "$(NAME)"
    assert env["Q"] == "$NAME"
    assert env["E"] == "$NAME"


def test_label_keys_and_values_expand_and_keep_escaped_dollars() -> None:
    text = (
        "FROM scratch\n"
        "ARG KIND=rootfs\n"
        'LABEL init="init-cri.sh \\$registryDomain \\$registryPort && bash init.sh" \\\n'
        '      "apps.sealos.io/type"=$KIND vip="\\$defaultVIP"\n'
    )
    evaluation = run(text)
    labels = evaluation.target_stage.config.labels
    assert labels["init"] == "init-cri.sh $registryDomain $registryPort && bash init.sh"
    assert labels["apps.sealos.io/type"] == "rootfs"
    assert labels["vip"] == "$defaultVIP"
    label = evaluation.target_stage.instructions[1]
    assert isinstance(label.instruction, Label)
    assert label.change == {
        "Labels": {
            "init": "init-cri.sh $registryDomain $registryPort && bash init.sh",
            "apps.sealos.io/type": "rootfs",
            "vip": "$defaultVIP",
        }
    }
    assert evaluation.target_stage.label_locations["vip"].line == 3


def test_expanded_instruction_copies_keep_location() -> None:
    evaluation = run("FROM scratch\nARG V=1\nENV A=$V\n")
    item = evaluation.target_stage.instructions[1]
    assert isinstance(item.instruction, Env)
    assert item.instruction.pairs == (("A", "1"),)
    assert item.instruction.location.line == 3
    assert item.created_by == "ENV A=1"


# -- ARG scoping -------------------------------------------------------------------------------


def test_global_arg_needs_redeclaring_in_stage() -> None:
    text = "ARG G=glob\nFROM scratch\nENV BEFORE=$G\nARG G\nENV AFTER=$G\n"
    env = env_of(run(text))
    assert env["BEFORE"] == ""
    assert env["AFTER"] == "glob"


def test_global_arg_in_from_and_build_arg_override() -> None:
    text = "ARG TAG=1.0\nFROM busybox:${TAG} AS b\nARG TAG\nENV T=$TAG\n"
    evaluation = run(text)
    assert evaluation.stages[0].base.reference == "docker.io/library/busybox:1.0"
    assert env_of(evaluation)["T"] == "1.0"
    evaluation = run(text, {"TAG": "2.0"})
    assert evaluation.stages[0].base.reference == "docker.io/library/busybox:2.0"
    assert env_of(evaluation)["T"] == "2.0"


def test_global_arg_defaults_expand_in_order() -> None:
    text = "ARG A=x\nARG B=${A}y\nFROM scratch\nARG B\nENV B=$B\n"
    assert env_of(run(text))["B"] == "xy"
    assert env_of(run(text, {"A": "q"}))["B"] == "qy"
    assert env_of(run(text, {"B": "set"}))["B"] == "set"


def test_stage_arg_default_and_override() -> None:
    text = "FROM scratch\nARG X=1\nARG Y=${X}0\nENV X=$X Y=$Y\n"
    assert env_of(run(text)) | {} == {"PATH": DEFAULT_PATH, "X": "1", "Y": "10"}
    env = env_of(run(text, {"X": "5"}))
    assert (env["X"], env["Y"]) == ("5", "50")
    # a build arg value is used as is, never expanded
    assert env_of(run(text, {"X": "$HOME"}))["X"] == "$HOME"


def test_arg_is_not_in_image_env() -> None:
    evaluation = run("FROM scratch\nARG SECRET=s\nENV A=1\n")
    assert "SECRET" not in env_of(evaluation)
    assert evaluation.target_stage.args == (("SECRET", "s"),)


def test_arg_without_default_or_value_is_empty() -> None:
    env = env_of(run("FROM scratch\nARG NOPE\nENV A=${NOPE:-dflt} B=${NOPE-unset}\n"))
    assert env["A"] == "dflt"
    assert env["B"] == "unset"


def test_arg_after_env_shadows_for_expansion() -> None:
    # BuildKit keeps one scope: the later ARG value wins for expansion, the image ENV stays.
    text = "FROM scratch\nENV V=env\nARG V=arg\nENV W=$V\n"
    env = env_of(run(text))
    assert env["W"] == "arg"
    assert env["V"] == "env"


def test_env_after_arg_overrides_build_arg() -> None:
    text = "FROM scratch\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nENV SEEN=$CONT_IMG_VER\n"
    env = env_of(run(text, {"CONT_IMG_VER": "v2"}))
    assert env["SEEN"] == "v1.0.0"


def test_automatic_platform_args() -> None:
    text = (
        "FROM --platform=$BUILDPLATFORM scratch AS b\n"
        "ARG TARGETARCH\nARG TARGETPLATFORM\nARG TARGETVARIANT\n"
        "ENV ARCH=$TARGETARCH PLAT=$TARGETPLATFORM VAR=$TARGETVARIANT UNDECLARED=$TARGETOS\n"
    )
    evaluation = run(text, platform=Platform.parse("linux/arm/v7"))
    env = env_of(evaluation)
    assert env["ARCH"] == "arm"
    assert env["PLAT"] == "linux/arm/v7"
    assert env["VAR"] == "v7"
    assert env["UNDECLARED"] == ""
    assert evaluation.stages[0].platform == Platform.host()


def test_unused_build_args_are_reported() -> None:
    text = "ARG G\nFROM scratch AS a\nARG A\nFROM scratch AS b\nARG B\n"
    evaluation = run(text, {"G": "1", "A": "1", "B": "1", "X": "1", "HTTP_PROXY": "p"}, target="b")
    # stage a is not used by b, so its ARG A consumes nothing
    assert evaluation.unused_build_args == ("A", "X")
    assert evaluation.used == frozenset({1})


# -- stages ------------------------------------------------------------------------------------


def test_stage_inherits_env_config_and_scope() -> None:
    text = (
        'FROM scratch AS base\nARG B=barg\nENV E1=k BASEV=1\nCMD ["base-cmd"]\n'
        "LABEL keep=yes\nWORKDIR /srv\n"
        "FROM base\nENV SEEN=$E1-$B\n"
    )
    evaluation = run(text)
    final = evaluation.target_stage
    assert final.base.kind == "stage" and final.base.stage_index == 0
    assert final.depends_on == frozenset({0})
    env = final.config.env_dict()
    assert env["SEEN"] == "k-barg"
    assert final.config.cmd == ("base-cmd",)
    assert final.config.labels == {"keep": "yes"}
    assert final.config.working_dir == "/srv"
    assert evaluation.used == frozenset({0, 1})


def test_entrypoint_clears_inherited_cmd() -> None:
    text = 'FROM scratch AS base\nCMD ["base"]\nFROM base\nENTRYPOINT run.sh --x\n'
    final = run(text).target_stage
    assert final.config.entrypoint == ("/bin/sh", "-c", "run.sh --x")
    assert final.config.cmd is None


def test_entrypoint_after_cmd_in_same_stage_keeps_cmd() -> None:
    final = run('FROM scratch\nCMD echo "hi"\nENTRYPOINT ["a"]\n').target_stage
    assert final.config.cmd == ("/bin/sh", "-c", 'echo "hi"')
    assert final.config.entrypoint == ("a",)


def test_empty_exec_forms_clear() -> None:
    text = 'FROM scratch AS base\nENTRYPOINT ["x"]\nCMD ["y"]\nFROM base\nENTRYPOINT []\nCMD []\n'
    final = run(text).target_stage
    assert final.config.entrypoint is None
    assert final.config.cmd is None


def test_cmd_is_not_expanded_at_build_time() -> None:
    text = 'FROM scratch\nENV NAME=x\nCMD ["helm upgrade -i $(NAME) ${NAME} $NAME"]\n'
    assert run(text).target_stage.config.cmd == ("helm upgrade -i $(NAME) ${NAME} $NAME",)


def test_maintainer_sets_author() -> None:
    assert run("FROM scratch\nMAINTAINER sealos\n").target_stage.config.author == "sealos"


def test_target_selection() -> None:
    text = "FROM scratch AS a\nENV A=1\nFROM scratch AS b\nENV B=1\n"
    evaluation = run(text, target="A")
    assert evaluation.target == 0
    assert evaluation.used == frozenset({0})
    with pytest.raises(UsageError, match="target stage 'nope' not found"):
        run(text, target="nope")


def test_image_base_with_resolver() -> None:
    calls: list[tuple[str, Platform]] = []

    def resolver(reference: str, platform: Platform) -> Mapping[str, Any] | None:
        calls.append((reference, platform))
        return {
            "author": "upstream",
            "config": {
                "Env": ["PATH=/custom/bin", "BASE=1"],
                "Cmd": ["sh"],
                "WorkingDir": "/home",
                "Labels": {"from": "base"},
            },
        }

    text = "FROM registry.example.com:5000/team/app:v1\nENV P=$PATH:/x\nWORKDIR sub\n"
    final = run(text, base_config=resolver).target_stage
    assert calls == [("registry.example.com:5000/team/app:v1", AMD64)]
    assert final.base_config_known is True
    assert final.config.env == ("PATH=/custom/bin", "BASE=1", "P=/custom/bin:/x")
    assert final.config.cmd == ("sh",)
    assert final.config.working_dir == "/home/sub"
    assert final.config.labels == {"from": "base"}
    assert final.config.author == "upstream"


def test_image_base_without_resolver_is_unknown() -> None:
    final = run("FROM busybox\nENV A=1\n").target_stage
    assert final.base.kind == "image"
    assert final.base.reference == "docker.io/library/busybox:latest"
    assert final.base_config_known is False
    assert final.config.env == (f"PATH={DEFAULT_PATH}", "A=1")


def test_resolver_not_asked_for_unused_stages() -> None:
    asked: list[str] = []

    def resolver(reference: str, platform: Platform) -> None:
        asked.append(reference)

    run("FROM busybox AS unused\nFROM alpine AS used\n", base_config=resolver)
    assert asked == ["docker.io/library/alpine:latest"]


def test_from_platform_expansion_and_errors() -> None:
    evaluation = run("ARG P=linux/arm64\nFROM --platform=$P scratch\n")
    assert str(evaluation.target_stage.platform) == "linux/arm64"
    with pytest.raises(KubefileError, match=r"Kubefile:1: empty platform value"):
        run("FROM --platform=$NOPE scratch\n")
    with pytest.raises(KubefileError, match=r"Kubefile:1: FROM --platform: invalid platform"):
        run("FROM --platform=a/b/c/d scratch\n")


def test_from_errors() -> None:
    with pytest.raises(KubefileError, match=r"Kubefile:2: base name \(\$\{NOPE\}\) should not"):
        run("FROM scratch\nFROM ${NOPE}\n")
    with pytest.raises(KubefileError, match=r"Kubefile:1: invalid base image reference 'Bad"):
        run("FROM Bad:Ref!\n")


# -- --env -------------------------------------------------------------------------------------


def test_cli_env_is_applied_at_stage_end_and_moved_last() -> None:
    # buildah: --env is set on every stage's committed config, so a later stage sees it, but an
    # expansion inside the stage that sets it does not.
    text = "FROM scratch AS base\nENV E1=k BASEV=1\nFROM base\nENV J=$E1 X=$E2\n"
    evaluation = run(text, envs={"E1": "v", "E2": "w"})
    final = evaluation.target_stage.config
    assert final.env == (
        f"PATH={DEFAULT_PATH}",
        "BASEV=1",
        "J=v",
        "X=w",
        "E1=v",
        "E2=w",
    )


# -- WORKDIR / USER / EXPOSE / VOLUME / STOPSIGNAL ---------------------------------------------


def test_workdir_relative_and_expanded() -> None:
    text = "FROM scratch\nENV D=data\nWORKDIR app\nWORKDIR ../b/./c\nWORKDIR $D\nWORKDIR /\n"
    items = run(text).target_stage.instructions
    assert [item.change["WorkingDir"] for item in items[1:] if item.change] == [
        "/app",
        "/b/c",
        "/b/c/data",
        "/",
    ]
    assert [item.mkdir for item in items[1:]] == ["/app", "/b/c", "/b/c/data", None]


@pytest.mark.parametrize(
    ("current", "path", "expected"),
    [
        ("", "app", "/app"),
        ("/a", "b", "/a/b"),
        ("/a", "/x/../y/", "/y"),
        ("/a/b", "../..", "/"),
        ("/a", "//double", "/double"),
    ],
)
def test_normalize_workdir(current: str, path: str, expected: str) -> None:
    assert normalize_workdir(current, path) == expected


@pytest.mark.parametrize(
    ("workdir", "dest", "expected"),
    [
        ("", ".", "/"),
        ("/app", ".", "/app/"),
        ("/app", "./", "/app/"),
        ("/app", "x", "/app/x"),
        ("/app", "x/", "/app/x/"),
        ("/app", "/abs/./y/.", "/abs/y/"),
        ("", "registry", "/registry"),
        ("", "./registry", "/registry"),
        ("/app", "../etc/", "/etc/"),
    ],
)
def test_copy_destination(workdir: str, dest: str, expected: str) -> None:
    assert copy_destination(workdir, dest) == expected


def test_user_expose_volume_stopsignal() -> None:
    text = (
        "FROM scratch\nARG U=1000 PORT=8080\n"
        "USER $U:$U\n"
        'EXPOSE $PORT 53/UDP 7000-7002/tcp "9000"\n'
        'VOLUME /data\nVOLUME ["/var/$U"]\n'
        "STOPSIGNAL SIGQUIT\n"
    )
    config = run(text).target_stage.config
    assert config.user == "1000:1000"
    assert config.exposed_ports == (
        "53/udp",
        "7000/tcp",
        "7001/tcp",
        "7002/tcp",
        "8080/tcp",
        "9000/tcp",
    )
    assert config.volumes == ("/data", "/var/1000")
    assert config.stop_signal == "SIGQUIT"
    assert config.to_oci()["ExposedPorts"]["8080/tcp"] == {}


@pytest.mark.parametrize("signal", ["9", "KILL", "sigterm", "SIGRTMIN+3", "RTMAX-1"])
def test_valid_signals(signal: str) -> None:
    assert run(f"FROM scratch\nSTOPSIGNAL {signal}\n").target_stage.config.stop_signal == signal


EVAL_ERRORS: list[tuple[str, str, str]] = [
    (
        "bad signal",
        "FROM scratch\n\nSTOPSIGNAL SIGNOPE\n",
        "Kubefile:3: STOPSIGNAL: invalid signal",
    ),
    ("zero signal", "FROM scratch\nSTOPSIGNAL 0\n", "Kubefile:2: STOPSIGNAL: invalid signal"),
    ("bad proto", "FROM scratch\nEXPOSE 80/http\n", "Kubefile:2: EXPOSE 80/http: invalid protocol"),
    ("bad port", "FROM scratch\nEXPOSE eighty\n", "Kubefile:2: EXPOSE eighty: invalid port"),
    ("bad range", "FROM scratch\nEXPOSE 90-80\n", "Kubefile:2: EXPOSE 90-80: invalid port range"),
    ("bad subst", "FROM scratch\nENV A=${B\n", "Kubefile:2: ENV: failed to process"),
    ("open quote", 'FROM scratch\nLABEL a="b\n', "Kubefile:2: LABEL: failed to process"),
    (
        "required",
        "FROM scratch\nARG X\nENV A=${X:?required}\n",
        "Kubefile:3: ENV: failed to process",
    ),
    ("empty volume", "FROM scratch\nVOLUME $NOPE\n", "Kubefile:2: VOLUME specified can not be"),
    ("empty workdir", "FROM scratch\nWORKDIR $NOPE\n", "Kubefile:2: WORKDIR path is empty"),
    ("chmod", "FROM scratch\nCOPY --chmod=u+x a b\n", "Kubefile:2: COPY --chmod: invalid mode"),
    ("chmod big", "FROM scratch\nCOPY --chmod=17777 a b\n", "Kubefile:2: COPY --chmod: invalid"),
    (
        "many sources",
        "FROM scratch\nCOPY a b /dest\n",
        "Kubefile:2: when using COPY with more than one source file",
    ),
    (
        "unknown from stage",
        "FROM scratch AS builder\nFROM scratch\nCOPY --from=buidler a b\n",
        "Kubefile:3: COPY --from=buidler: unknown stage (stages before it: builder); "
        "did you mean 'builder'?",
    ),
    (
        "later stage",
        "FROM scratch\nCOPY --from=later a b\nFROM scratch AS later\n",
        "Kubefile:2: COPY --from=later: stage 'later' needs to be defined before",
    ),
    (
        "own stage",
        "FROM scratch AS me\nCOPY --from=me a b\n",
        "Kubefile:2: COPY --from=me: stage 'me' needs to be defined before",
    ),
    (
        "index not before",
        "FROM scratch\nCOPY --from=0 a b\n",
        "Kubefile:2: COPY --from=0: stage 0 needs to be defined before",
    ),
    (
        "variable from",
        "ARG S=a\nFROM scratch AS a\nFROM scratch\nCOPY --from=$S x y\n",
        "Kubefile:4: variable expansion is not supported for --from",
    ),
    (
        "bad from image",
        "FROM scratch\nCOPY --from=Reg/Bad:tag a b\n",
        "Kubefile:2: COPY --from=Reg/Bad:tag: invalid reference",
    ),
]


@pytest.mark.parametrize(
    ("text", "fragment"), [e[1:] for e in EVAL_ERRORS], ids=[e[0] for e in EVAL_ERRORS]
)
def test_evaluation_errors(text: str, fragment: str) -> None:
    with pytest.raises(KubefileError) as caught:
        run(text)
    assert str(caught.value).startswith(fragment.split(": ", 1)[0] + ": ")
    assert fragment in str(caught.value)


def test_copy_from_resolution() -> None:
    text = (
        "FROM scratch AS builder\nFROM scratch AS other\n"
        "FROM scratch\n"
        "COPY --from=BUILDER a /a\nCOPY --from=1 b /b\n"
        "COPY --from=busybox:1.36 /bin/busybox /bin/\nCOPY --from=quay.io/x/y c /c\n"
    )
    evaluation = run(text)
    items = evaluation.target_stage.instructions
    assert [(i.from_stage, i.from_image) for i in items] == [
        (0, None),
        (1, None),
        (None, "docker.io/library/busybox:1.36"),
        (None, "quay.io/x/y:latest"),
    ]
    assert evaluation.target_stage.depends_on == frozenset({0, 1})
    assert evaluation.used == frozenset({0, 1, 2})


def test_copy_expansion_and_heredoc() -> None:
    text = (
        "FROM scratch\nARG SRC=charts U=1000\nWORKDIR /app\n"
        "COPY --chown=$U:$U --chmod=0644 ${SRC} $SRC/x.yaml ./\n"
        "COPY <<EOF <<'RAW' /etc/\nhello $U 'q'\nEOF\nraw $U\nRAW\n"
    )
    items = run(text).target_stage.instructions
    copy = items[2].instruction
    assert isinstance(copy, Copy)
    assert copy.sources == ("charts", "charts/x.yaml")
    assert copy.chown == "1000:1000"
    assert copy.chmod == "0644"
    assert items[2].dest_path == "/app/"
    assert items[2].workdir == "/app"
    assert items[2].created_by == "COPY --chown=1000:1000 --chmod=0644 charts charts/x.yaml /app/"
    heredoc = items[3].instruction
    assert isinstance(heredoc, Copy)
    assert [f.content for f in heredoc.inline_files] == ["hello 1000 'q'\n", "raw $U\n"]


def test_run_sees_args_and_env() -> None:
    text = "FROM scratch\nARG A=1\nENV B=2\nRUN echo $A $B\n"
    item = run(text).target_stage.instructions[2]
    assert dict(item.build_env) == {"PATH": DEFAULT_PATH, "A": "1", "B": "2"}
    assert item.created_by == "RUN /bin/sh -c echo $A $B"
    assert run(text).target_stage.has_run


def test_cli_env_not_visible_inside_its_stage() -> None:
    env = env_of(run("FROM scratch\nENV X=$E1\n", envs={"E1": "v"}))
    assert env["X"] == ""
    assert env["E1"] == "v"


def test_config_env_keeps_order_and_duplicates_of_the_base() -> None:
    config = ConfigState(ExecConfig(env=("A=1", "B=2", "A=3")))
    config.set_env("A", "x")  # the first A, in place
    config.set_env("C", "4")
    assert config.env == [("A", "x"), ("B", "2"), ("A", "3"), ("C", "4")]
    config.override_env("A", "y")  # every A gone, one appended
    config.set_env("A", "z")
    config.set_env("B", "5")
    assert config.env == [("B", "5"), ("C", "4"), ("A", "z")]
    assert config.has_env("C") and not config.has_env("D")
