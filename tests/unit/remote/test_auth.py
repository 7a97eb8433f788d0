"""WWW-Authenticate parsing, scopes, token lifetimes and the shared token cache."""

from __future__ import annotations

import threading
import time

from clusterimage.remote.auth import (
    Challenge,
    Scopes,
    Token,
    TokenCache,
    parse_www_authenticate,
    pick_challenge,
    token_lifetime,
)


def test_parse_bearer_with_commas_inside_quotes() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push",error="insufficient_scope"'
    )
    [challenge] = parse_www_authenticate(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scope == "repository:samalba/my-app:pull,push"
    assert challenge.params["error"] == "insufficient_scope"


def test_parse_several_challenges_escapes_and_tokens() -> None:
    header = 'Basic realm="a \\"quoted\\" realm", Bearer realm=https://x/t, service=svc'
    challenges = parse_www_authenticate(header)
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == 'a "quoted" realm'
    assert challenges[1].params == {"realm": "https://x/t", "service": "svc"}
    assert pick_challenge(challenges) == challenges[1]
    assert pick_challenge(parse_www_authenticate('Basic realm="r"')) == Challenge(
        "basic", {"realm": "r"}
    )
    assert pick_challenge(parse_www_authenticate("Negotiate")) is None
    assert parse_www_authenticate("") == []


def test_scopes_merge_actions_per_repository() -> None:
    scopes = Scopes.repository("a/b", "push").union(Scopes(["repository:a/b:pull"]))
    scopes.add("repository:c:pull repository:host:5000/x:pull")
    assert scopes.as_list() == [
        "repository:a/b:pull,push",
        "repository:c:pull",
        "repository:host:5000/x:pull",
    ]
    assert Scopes(scopes.as_list()).key() == scopes.key()
    assert not Scopes()


def test_token_lifetime_defaults_issued_at_and_margin() -> None:
    assert token_lifetime({}) == 54.0  # 60 s default, 10 % margin
    assert token_lifetime({"expires_in": 5}) == 4.5
    now = time.time()
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 100))
    assert abs(token_lifetime({"expires_in": 300, "issued_at": issued}, now) - 180) < 1.5
    # A skewed clock (issued "in the future", or long ago) must not expire every token at once.
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    assert token_lifetime({"expires_in": 300, "issued_at": future}, now) == 270
    assert token_lifetime({"expires_in": 300, "issued_at": "garbage"}, now) == 270
    assert token_lifetime({"expires_in": "nonsense"}) == 54.0
    assert token_lifetime({"expires_in": 0.2}) == 1.0  # floor


def test_token_cache_expiry_and_targeted_invalidation() -> None:
    cache = TokenCache()
    key = ("reg", "alice", ("repository:a:pull",))
    cache.put(key, Token("t1", time.monotonic() + 60))
    assert cache.get(key) is not None
    cache.invalidate(key, "other")  # someone else's stale token: ours stays
    assert cache.get(key) is not None
    cache.invalidate(key, "t1")
    assert cache.get(key) is None
    cache.put(key, Token("t2", time.monotonic() - 1))
    assert cache.get(key) is None  # expired


def test_token_cache_key_lock_is_shared_per_key() -> None:
    cache = TokenCache()
    key = ("reg", "", ("s",))
    locks = []

    def grab() -> None:
        locks.append(cache.key_lock(key))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(lock) for lock in locks}) == 1
    assert cache.key_lock(("reg", "", ("other",))) is not locks[0]
