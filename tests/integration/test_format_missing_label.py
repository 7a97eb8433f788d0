"""`images --format` and `inspect --format` read a label that some images lack as podman does:
``<no value>`` for them, not a usage error for the whole listing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.fixtures.oci_layout import make_oci_layout


def test_a_label_some_images_lack_prints_no_value(ci_home: Path, tmp_path: Path) -> None:
    with_label = make_oci_layout(
        tmp_path / "a", ref="v1", layers=({"a": b"a\n"},), labels={"version": "1.2"}
    )
    without = make_oci_layout(tmp_path / "b", ref="v1", layers=({"b": b"b\n"},))
    run_cli("copy", with_label.transport_ref, "store:localhost/labelled:v1")
    run_cli("copy", without.transport_ref, "store:localhost/plain:v1")

    out = run_cli("images", "--format", "{{.Repository}} {{.Labels.version}}").stdout
    assert sorted(out.splitlines()) == ["localhost/labelled 1.2", "localhost/plain <no value>"]

    shown = run_cli("inspect", "--format", "{{.Config.Labels.version}}", "plain:v1").stdout
    assert shown == "<no value>\n"
    assert run_cli("inspect", "-f", "{{.Labels.version}}", "labelled:v1").stdout == "1.2\n"
    assert run_cli("inspect", "-f", "{{json .Annotations.nope}}", "plain:v1").stdout == "null\n"
    # The plain JSON is unchanged by it.
    assert json.loads(run_cli("inspect", "labelled:v1").stdout)["Labels"] == {"version": "1.2"}
    # A struct's unknown field is still the user's mistake.
    bad = run_cli("inspect", "--format", "{{.Config.Nope}}", "plain:v1", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
