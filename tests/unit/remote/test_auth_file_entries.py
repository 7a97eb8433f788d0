"""An auth file edited by hand: an ``auth`` value that is no string is one AuthError naming the
file and the entry, as a bad string is, not a TypeError traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterimage.errors import AuthError
from clusterimage.remote import credentials as cr


@pytest.mark.parametrize("value", [123, ["dTpw"], {"user": "u"}, True])
def test_an_auth_value_that_is_no_string_is_one_line(tmp_path: Path, value: object) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {"a.io": {"auth": value}}}))
    with pytest.raises(AuthError, match=r"auth.json: entry 'a.io' has an invalid 'auth' value"):
        cr.lookup("a.io", auth_file=path)
