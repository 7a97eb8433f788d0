"""``diff``'s file listing: layers applied in order, each layer's whiteouts before its own
entries (they hide lower layers only, as the OCI image spec says)."""

from __future__ import annotations

from pathlib import Path

from clusterimage.runtime.diff import diff
from clusterimage.transports import Context, parse
from tests.fixtures.oci_layout import make_oci_layout


def test_an_opaque_folder_hides_lower_layers_not_what_its_own_layer_adds(
    tmp_path: Path,
) -> None:
    a = make_oci_layout(tmp_path / "a", ref="v1", layers=({"d/old": b"old\n"},))
    # In the tar, d/-new comes before d/.wh..wh..opq (sorted: '-' < '.').
    b = make_oci_layout(
        tmp_path / "b",
        ref="v2",
        layers=({"d/old": b"old\n"}, {"d/-new": b"new\n", "d/.wh..wh..opq": b""}),
    )
    changes = diff(parse(a.transport_ref), parse(b.transport_ref), Context(), None)
    assert changes.files.to_dict() == {"added": ["d/-new"], "removed": ["d/old"], "changed": []}


def test_a_plain_whiteout_removes_the_path_and_all_below_it(tmp_path: Path) -> None:
    a = make_oci_layout(tmp_path / "a", ref="v1", layers=({"d/x/y": b"y\n", "e": b"e\n"},))
    b = make_oci_layout(
        tmp_path / "b", ref="v2", layers=({"d/x/y": b"y\n", "e": b"e\n"}, {"d/.wh.x": b""})
    )
    changes = diff(parse(a.transport_ref), parse(b.transport_ref), Context(), None)
    assert changes.files.removed == ["d/x", "d/x/y"] and changes.files.added == []
