"""What a refusal says: a token's missing scope read from its claims, a 403 DENIED that is a
scope refusal, and whose credentials a 401 refused (--creds or the auth file)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from clusterimage.remote import credentials
from clusterimage.remote.auth import Scopes, granted_scopes, lacking_scopes
from clusterimage.remote.client import ClientOptions, Registry


def _jwt(access: object) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'sub': 'bob', 'access': access})}.c2ln"


def test_lacking_scopes_reads_the_tokens_access_claim() -> None:
    token = _jwt([{"type": "repository", "name": "alice/app", "actions": ["pull"]}])
    wanted = Scopes(["repository:alice/app:pull,push", "repository:bob/x:pull"])
    assert lacking_scopes(token, wanted) == [
        "repository:alice/app:push",
        "repository:bob/x:pull",
    ]
    everything = _jwt([{"type": "repository", "name": "alice/app", "actions": ["*"]}])
    assert lacking_scopes(everything, Scopes(["repository:alice/app:pull,push"])) == []


@pytest.mark.parametrize("token", ["opaque-token", "a.!!!.c", "a." + "e30" + ".c", ""])
def test_an_unreadable_token_lacks_all_that_was_asked(token: str) -> None:
    assert granted_scopes(token) is None
    assert lacking_scopes(token, Scopes(["repository:app:pull,push"])) == [
        "repository:app:pull,push"
    ]


def _registry(creds: str | None, auth_file: Path | None = None) -> Registry:
    return Registry("127.0.0.1:5999", ClientOptions(creds=creds, auth_file=auth_file))


def test_403_denied_for_a_token_without_push_names_the_scope() -> None:
    registry = _registry("bob:pw")
    token = _jwt([{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    response = httpx.Response(
        403,
        json={"errors": [{"code": "DENIED", "message": "requested access is denied"}]},
    )
    error = registry.error_for(
        response,
        "manifest upload",
        "PUT x",
        scopes=Scopes(["repository:team/app:pull,push"]),
        token=token,
    )
    assert str(error) == (
        "127.0.0.1:5999: the token for 127.0.0.1:5999 lacks the scope "
        "repository:team/app:push that push needs (user bob)"
    )


def test_403_that_is_no_scope_matter_stays_access_denied() -> None:
    registry = _registry("bob:pw")
    response = httpx.Response(403, json={"errors": [{"code": "TOOMANY", "message": "quota"}]})
    error = registry.error_for(response, "blob upload", "POST x", scopes=Scopes())
    assert str(error) == "127.0.0.1:5999: blob upload: access denied (TOOMANY: quota)"


def test_401_for_basic_credentials_from_an_auth_file_says_which_file(tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    secret = base64.b64encode(b"carol:old").decode()
    auth_file.write_text(json.dumps({"auths": {"127.0.0.1:5999": {"auth": secret}}}))
    registry = _registry(None, auth_file)
    assert registry.credentials.source == str(auth_file)
    error = registry.error_for(httpx.Response(401), "manifest", "GET x")
    assert str(error) == (
        "registry 127.0.0.1:5999 refused the stored credentials for 127.0.0.1:5999 "
        f"(user carol, from {auth_file}); run `clusterimage login 127.0.0.1:5999`"
    )


def test_401_for_creds_flag_points_at_the_flag() -> None:
    registry = _registry("dave:pw")
    assert registry.credentials == credentials.Credentials("dave", "pw")  # source not compared
    error = registry.error_for(httpx.Response(401), "manifest", "GET x")
    assert str(error) == (
        "registry 127.0.0.1:5999 refused the credentials given with --creds (user dave); "
        "check the user name and password"
    )
