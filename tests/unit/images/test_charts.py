"""charts/: rendered in-process by Helm's Go SDK (helm-python-sdk), then line-scanned."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from clusterimage.errors import DiscoveryError
from clusterimage.images import ChartOrigin, discover
from clusterimage.images.charts import render_error
from tests.unit.images.conftest import MakeContext

CHART_YAML = """apiVersion: v2
name: web
version: 0.1.0
dependencies:
  - name: cache
    version: 0.1.0
    condition: cache.enabled
"""
VALUES = """image:
  repository: nginx
  tag: "1.25"
cache:
  enabled: false
"""
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  template:
    spec:
      containers:
        - name: web
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"""
WEB = {
    "charts/web/Chart.yaml": CHART_YAML,
    "charts/web/values.yaml": VALUES,
    "charts/web/templates/deploy.yaml": DEPLOY,
    "charts/web/templates/_helpers.tpl": '{{- define "web.name" -}}web{{- end }}\n',
    "charts/web/charts/cache/Chart.yaml": "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    "charts/web/charts/cache/values.yaml": "image: redis:7\n",
    "charts/web/charts/cache/templates/pod.yaml": "spec:\n  image: {{ .Values.image }}\n",
}


def _found(context: Path) -> dict[str, tuple[object, ...]]:
    return {image.stored_path: image.origins for image in discover(context).images}


def test_a_chart_folder_renders_with_its_defaults(make_context: MakeContext) -> None:
    discovery = discover(make_context(WEB))
    assert discovery.charts_rendered == 1
    (image,) = discovery.images
    assert image.stored_path == "library/nginx:1.25"
    assert image.origins == (ChartOrigin("charts/web", "web/templates/deploy.yaml", 10),)


def test_the_values_file_is_merged_over_the_defaults(make_context: MakeContext) -> None:
    # Deep merge: the tag is replaced, the repository kept; the subchart is switched on.
    values = 'image:\n  tag: "1.26"\ncache:\n  enabled: true\n'
    context = make_context({**WEB, "charts/web.values.yaml": values})
    assert _found(context) == {
        "library/nginx:1.26": (ChartOrigin("charts/web", "web/templates/deploy.yaml", 10),),
        "library/redis:7": (ChartOrigin("charts/web", "web/charts/cache/templates/pod.yaml", 2),),
    }


def test_the_values_file_is_named_after_chart_yaml(make_context: MakeContext) -> None:
    files = {name.replace("charts/web/", "charts/web-1.0/"): text for name, text in WEB.items()}
    context = make_context({**files, "charts/web.values.yaml": 'image:\n  tag: "2"\n'})
    assert list(_found(context)) == ["library/nginx:2"]


def test_a_packaged_chart(make_context: MakeContext) -> None:
    context = make_context({"Kubefile": "FROM scratch\n"})
    (context / "charts").mkdir()
    with tarfile.open(context / "charts/web-0.1.0.tgz", "w:gz") as archive:
        for name, text in WEB.items():
            data = text.encode()
            info = tarfile.TarInfo(name.removeprefix("charts/"))
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert _found(context) == {
        "library/nginx:1.25": (
            ChartOrigin("charts/web-0.1.0.tgz", "web/templates/deploy.yaml", 10),
        ),
    }


def test_a_guard_against_installing_does_not_stop_discovery(make_context: MakeContext) -> None:
    # sealos renders with .Release.IsInstall false, so this guard (mysql-operator's) passes.
    guard = '{{- if .Release.IsInstall }}{{ fail "use -n" }}{{- end }}\n'
    context = make_context({**WEB, "charts/web/templates/guard.yaml": guard})
    assert list(_found(context)) == ["library/nginx:1.25"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            'a: 1\n{{ fail "boom requested" }}\n',
            "charts/web: cannot render at web/templates/bad.yaml:2: boom requested",
        ),
        (
            "a: {{ .Values.image.tag.nope.deeper }}\n",
            "charts/web: cannot render at web/templates/bad.yaml:1: executing "
            '"web/templates/bad.yaml" at <.Values.image.tag.nope.deeper>: ',
        ),
        (
            "a: {{ .Values.x\n",
            "charts/web: parse error at web/templates/bad.yaml:2: unclosed action",
        ),
    ],
)
def test_a_render_error_is_one_line_naming_chart_and_template_line(
    make_context: MakeContext, template: str, expected: str
) -> None:
    context = make_context({**WEB, "charts/web/templates/bad.yaml": template})
    with pytest.raises(DiscoveryError) as caught:
        discover(context)
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_a_folder_that_is_no_chart(make_context: MakeContext) -> None:
    context = make_context({**WEB, "charts/notes/README.md": "hello\n"})
    with pytest.raises(DiscoveryError, match=r"^charts/notes: not a Helm chart: it has no Chart"):
        discover(context)


def test_a_broken_archive(make_context: MakeContext) -> None:
    context = make_context({"charts/web-0.1.0.tgz": "not gzip"})
    with pytest.raises(DiscoveryError, match=r"^charts/web-0\.1\.0\.tgz: cannot load the chart: "):
        discover(context)


def test_a_broken_values_file(make_context: MakeContext) -> None:
    context = make_context({**WEB, "charts/web.values.yaml": "image: [\n"})
    with pytest.raises(DiscoveryError, match=r"^charts/web\.values\.yaml: invalid values: "):
        discover(context)


def test_files_in_charts_are_not_charts(make_context: MakeContext) -> None:
    context = make_context({**WEB, "charts/README.md": "x\n", "charts/web.values.yaml": ""})
    assert discover(context).charts_rendered == 1


@pytest.mark.parametrize(
    ("helm_message", "expected"),
    [
        (
            "execution error at (op/templates/sa.yaml:3:5): Please provide a namespace",
            "charts/op: cannot render at op/templates/sa.yaml:3: Please provide a namespace",
        ),
        (
            'template: op/templates/a.yaml:7:12: executing "op/templates/a.yaml" at <x>: boom',
            'charts/op: cannot render at op/templates/a.yaml:7: executing "op/templates/a.yaml" '
            "at <x>: boom",
        ),
        ("no line here\n  at all", "charts/op: cannot render: no line here at all"),
    ],
)
def test_render_error_wording(helm_message: str, expected: str) -> None:
    assert render_error("charts/op", Exception(helm_message)) == expected


def test_helm_is_loaded_only_for_charts(make_context: MakeContext) -> None:
    context = make_context({"manifests/a.yaml": "image: nginx\n"})
    code = (
        "import sys; from pathlib import Path; from clusterimage.images import discover; "
        f"discover(Path({str(context)!r})); print('helm_python' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
