"""How the runtime reads an image: type, env, expansion, and the command line ``create`` prints."""

from __future__ import annotations

import pytest

from clusterimage.runtime.command import (
    APPLICATION,
    PATCH,
    ROOTFS,
    ImageTypeError,
    expand,
    hooks,
    image_type,
    image_version,
    merge_env,
    runtime_command,
    shell_commands,
    workdir_for,
)

ENV = {"NAME": "nginx", "NS": "web", "EMPTY": "", "OPTS": "--set a=b"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("$(NAME)", "nginx"),
        ("${NAME}", "nginx"),
        ("$NAME", "nginx"),
        ("helm upgrade -i $(NAME) -n $(NS) $(OPTS)", "helm upgrade -i nginx -n web --set a=b"),
        ("${NAME}-svc.${NS}", "nginx-svc.web"),
        ("$NAME/$NS", "nginx/web"),
        ("$NAMES", "$NAMES"),  # a longer name is another variable, unknown here
        ("$NAME.x", "nginx.x"),
        ("x$(EMPTY)y", "xy"),
        ("$(MISSING) ${MISSING} $MISSING", "$(MISSING) ${MISSING} $MISSING"),
        ("$$(NAME)", "$(NAME)"),  # $$ escapes
        ("$$NAME", "$NAME"),
        ("a $$ b", "a $ b"),
        ("$(cat /etc/hostname)", "$(cat /etc/hostname)"),  # command substitution stays
        ("${NAME:-x}", "${NAME:-x}"),  # shell operators stay for the shell
        ("$(NAME", "$(NAME"),  # unterminated
        ("${NAME", "${NAME"),
        ("trailing $", "trailing $"),
        ("$1 $@ $?", "$1 $@ $?"),
        ("$(NAME)$(NS)", "nginxweb"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(NAME) ${NAME} $NAME", "nginx ${NAME} $NAME"),
        ("$$(NAME) $$NAME", "$(NAME) $NAME"),
        ("${NAME", "${NAME"),
    ],
)
def test_expand_without_shell_forms(text: str, expected: str) -> None:
    assert expand(text, ENV, shell_forms=False) == expected


def test_expand_does_not_expand_substituted_values() -> None:
    assert expand("$(A)", {"A": "$(B)", "B": "no"}) == "$(B)"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, APPLICATION),
        ({"sealos.io.type": "rootfs"}, ROOTFS),
        ({"apps.sealos.io/type": "patch"}, PATCH),
        ({"sealos.io.type": "", "apps.sealos.io/type": "rootfs"}, ROOTFS),
        ({"sealos.io.type": "application", "apps.sealos.io/type": "rootfs"}, APPLICATION),
        ({"other": "rootfs"}, APPLICATION),
    ],
)
def test_image_type(labels: dict[str, str], expected: str) -> None:
    assert image_type(labels) == expected


def test_unknown_image_type_is_an_error_naming_label_and_value() -> None:
    with pytest.raises(ImageTypeError, match=r"img: unknown image type 'kernel' in label sealos"):
        image_type({"sealos.io.type": "kernel"}, "img")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, None),
        ({"sealos.io.version": "v1beta1"}, "v1beta1"),
        ({"apps.sealos.io/version": "v2"}, "v2"),
    ],
)
def test_image_version(labels: dict[str, str], expected: str | None) -> None:
    assert image_version(labels) == expected


@pytest.mark.parametrize(
    ("elements", "expected"),
    [
        ([], []),
        (["/bin/sh", "-c", "kubectl apply -f manifests/"], ["kubectl apply -f manifests/"]),
        (
            ["kubectl apply -f a.yaml", "kubectl apply -f b.yaml"],
            ["kubectl apply -f a.yaml", "kubectl apply -f b.yaml"],
        ),
        (["bash", "-c", "x"], ["bash", "x"]),  # only exact /bin/sh and -c go
        (["sh", "/bin/bash"], ["sh", "/bin/bash"]),
        (["", "  ", "ok"], ["ok"]),
    ],
)
def test_shell_commands(elements: list[str], expected: list[str]) -> None:
    assert shell_commands(elements) == expected


@pytest.mark.parametrize(
    ("image_env", "cluster_env", "expected"),
    [
        ([], None, {}),
        (["A=1", "B=2"], None, {"A": "1", "B": "2"}),
        (["PATH=/usr/bin", "A=1"], None, {"A": "1"}),
        (["A=1", "B=2"], {"A": "9"}, {"A": "9", "B": "2"}),
        (["A=1"], {"C": "3", "B": "2"}, {"A": "1", "C": "3", "B": "2"}),
        (["A=x=y", "E="], None, {"A": "x=y", "E": ""}),
        (["A=1"], {"PATH": "/opt/bin"}, {"A": "1", "PATH": "/opt/bin"}),
    ],
)
def test_merge_env(
    image_env: list[str], cluster_env: dict[str, str] | None, expected: dict[str, str]
) -> None:
    merged = merge_env(image_env, cluster_env)
    assert merged == expected
    assert list(merged) == list(expected)  # order: image first, new cluster keys after


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ROOTFS, "/var/lib/sealos/data/default/rootfs"),
        (PATCH, "/var/lib/sealos/data/default/rootfs"),
        (APPLICATION, "/var/lib/sealos/data/default/applications/nginx/workdir"),
    ],
)
def test_workdir_for(kind: str, expected: str) -> None:
    assert workdir_for(kind, app_name="nginx") == expected


def test_workdir_for_cluster_and_data_root() -> None:
    assert workdir_for(ROOTFS, cluster="prod", data_root="/srv/") == "/srv/prod/rootfs"


def test_hooks_in_runtime_order() -> None:
    labels = {"check": "check.sh", "init": "init.sh", "vip": "x", "clean": ""}
    assert list(hooks(labels)) == ["init", "check"]


CASES = [
    pytest.param(
        {
            "env": ["NAME=nginx", "NAMESPACE=nginx"],
            "entrypoint": [],
            "cmd": ["helm upgrade -i $(NAME) ./charts/nginx -n $(NAMESPACE)"],
            "labels": {},
            "app_name": "nginx",
        },
        'export NAME="nginx"; export NAMESPACE="nginx"; '
        "cd /var/lib/sealos/data/default/applications/nginx/workdir && "
        "helm upgrade -i nginx ./charts/nginx -n nginx",
        id="helm-app",
    ),
    pytest.param(
        {
            "env": [],
            "entrypoint": ["/bin/sh", "-c", "echo first"],
            "cmd": ["/bin/sh", "-c", "kubectl apply -f manifests/"],
            "labels": {},
            "workdir": "/w",
        },
        "cd /w && echo first; cd /w && kubectl apply -f manifests/",
        id="shell-form-entrypoint-then-cmd",
    ),
    pytest.param(
        {
            "env": ["criData=/var/lib/containerd", "PATH=/bin"],
            "entrypoint": [],
            "cmd": ["bash init.sh $criData", "bash check.sh"],
            "labels": {"sealos.io.type": "rootfs"},
            "cluster": "c1",
        },
        'export criData="/var/lib/containerd"; '
        "cd /var/lib/sealos/data/c1/rootfs && bash init.sh $criData; "
        "cd /var/lib/sealos/data/c1/rootfs && bash check.sh",
        id="rootfs-two-commands",
    ),
    pytest.param(
        {
            "env": ['Q=say "hi" $x `y` \\z'],
            "entrypoint": [],
            "cmd": [],
            "labels": {},
            "workdir": "/a dir",
        },
        'export Q="say \\"hi\\" \\$x \\`y\\` \\\\z";',
        id="values-quoted-no-commands",
    ),
    pytest.param(
        {
            "env": ["NAME=nginx", "HELM_OPTS="],
            "entrypoint": [],
            "cmd": ["helm install $(NAME) charts/x $(HELM_OPTS)"],
            "labels": {"sealos.io.type": "patch"},
            "cluster_env": {"NAME": "web", "HELM_OPTS": "--wait"},
        },
        'export NAME="web"; export HELM_OPTS="--wait"; '
        "cd /var/lib/sealos/data/default/rootfs && helm install web charts/x --wait",
        id="cluster-env-overlay",
    ),
    pytest.param(
        {
            "env": [],
            "entrypoint": [],
            "cmd": ["ls"],
            "labels": {},
            "workdir": "/a dir",
        },
        "cd '/a dir' && ls",
        id="workdir-quoted",
    ),
]


@pytest.mark.parametrize(("kwargs", "expected"), CASES)
def test_command_line(kwargs: dict[str, object], expected: str) -> None:
    assert runtime_command(**kwargs).command_line == expected  # type: ignore[arg-type]


def test_to_dict_carries_everything_create_prints() -> None:
    rc = runtime_command(
        env=["A=1"],
        entrypoint=[],
        cmd=["/bin/sh", "-c", "run $(A)"],
        labels={"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1", "init": "init.sh"},
        workdir="/r",
    )
    data = rc.to_dict()
    assert data == {
        "type": "rootfs",
        "version": "v1beta1",
        "env": {"A": "1"},
        "entrypoint": [],
        "cmd": ["run 1"],
        "workdir": "/r",
        "labels": {"sealos.io.type": "rootfs", "sealos.io.version": "v1beta1", "init": "init.sh"},
        "hooks": {"init": "init.sh"},
        "commands": ["cd /r && run 1"],
        "commandLine": 'export A="1"; cd /r && run 1',
    }


@pytest.mark.parametrize(
    "value",
    ['say "hi"', "$HOME and $(id) and `id`", "back\\slash\\", "multi\nline", "", "a=b c=d"],
)
def test_exported_values_reach_the_shell_unchanged(tmp_path: object, value: str) -> None:
    import subprocess

    rc = runtime_command(
        env=[f"Q={value}"],
        entrypoint=[],
        cmd=['printf %s "$Q"'],
        labels={},
        workdir=str(tmp_path),
    )
    out = subprocess.run(
        ["/bin/sh", "-c", rc.command_line], capture_output=True, text=True, check=True
    )
    assert out.stdout == value


def test_commands_run_in_the_workdir(tmp_path: object) -> None:
    import subprocess

    rc = runtime_command(
        env=[], entrypoint=["pwd"], cmd=["/bin/sh", "-c", "pwd"], labels={}, workdir=str(tmp_path)
    )
    out = subprocess.run(
        ["/bin/sh", "-c", rc.command_line], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [str(tmp_path), str(tmp_path)]


@pytest.mark.parametrize(
    "command",
    ["echo $(NAME)-${NS}-$NAME", "echo ${NAME}.$NS", "echo $(MISSING)x"],
)
def test_shell_resolves_what_the_text_leaves_the_same_as_full_expansion(
    tmp_path: object, command: str
) -> None:
    """${V} and $V are left to the shell; with the exports it gives what expand() gives."""
    import subprocess

    env = {"NAME": "nginx", "NS": "web"}
    rc = runtime_command(
        env=[f"{k}={v}" for k, v in env.items()],
        entrypoint=[],
        cmd=[command],
        labels={},
        workdir=str(tmp_path),
    )
    out = subprocess.run(
        ["/bin/sh", "-c", rc.command_line + " 2>/dev/null"], capture_output=True, text=True
    )
    expected = subprocess.run(
        ["/bin/sh", "-c", expand(command, env) + " 2>/dev/null"], capture_output=True, text=True
    )
    assert out.stdout == expected.stdout
