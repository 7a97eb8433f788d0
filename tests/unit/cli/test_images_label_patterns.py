"""`images --filter label=PATTERN` as podman's MatchLabelFilters: the key pattern's ``*`` spans
a ``/`` (podman turns the separators into ``|`` before matching), so ``apps.sealos.io*``
finds sealos' ``apps.sealos.io/type`` label."""

from __future__ import annotations

from clusterimage.cli.images import _label_matches


def test_a_key_pattern_spans_slashes_as_in_podman() -> None:
    labels = {"apps.sealos.io/type": "application"}
    assert _label_matches(labels, "apps.sealos.io*", None)
    assert _label_matches(labels, "apps*type", "application")
    assert _label_matches(labels, "*/type", None)
    assert not _label_matches(labels, "apps*type", "rootfs")
    assert not _label_matches(labels, "other*", None)
    # Without a * the key is compared as it is.
    assert not _label_matches(labels, "apps.sealos.io", None)


def test_an_empty_value_matches_any_value_as_in_podman() -> None:
    # podman: `label=team=` is `label=team` (strings.Cut leaves "" as the value: any).
    assert _label_matches({"team": "blue"}, "team", "")
    assert _label_matches({"team": ""}, "team", "")
    assert not _label_matches({"other": "x"}, "team", "")
