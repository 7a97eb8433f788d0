"""A registry that answers an anonymous request 403 DENIED (GHCR does, for an image that is
private): the refusal must not speak of an identity token nobody gave, and must say to log in."""

from __future__ import annotations

import httpx

from clusterimage.remote.auth import Scopes
from clusterimage.remote.client import ClientOptions, Registry
from clusterimage.remote.credentials import ANONYMOUS


def test_403_denied_without_credentials_says_to_log_in() -> None:
    registry = Registry("127.0.0.1:5999", ClientOptions(auth_file=None))
    registry.use_credentials(ANONYMOUS)  # nothing stored for it, no --creds
    response = httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "denied"}]})
    error = registry.error_for(
        response,
        "manifest",
        "GET x",
        scopes=Scopes(["repository:team/private:pull"]),
        token="opaque-anonymous-token",
    )
    message = str(error)
    assert "identity token" not in message
    assert "run `clusterimage login 127.0.0.1:5999`" in message, message
