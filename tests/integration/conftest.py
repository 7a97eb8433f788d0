"""Fixtures that start real servers: registries, a token server, a fault proxy, dockerd.

- ``registry``: a fresh plain-HTTP docker-registry (function scope). ``registry_factory(...)``
  starts more (``tls=``, ``users=``, ``token_server=``, ``config=``); all stop at teardown.
- ``tls_registry``: HTTPS with our own CA and htpasswd: ``.username``, ``.password``,
  ``.credentials``, ``.ca_path``, ``.cert_dir`` (holds ca.crt), ``.certs_d`` (<host>/ca.crt).
- ``token_registry``: ``auth: token`` with ``.token_server`` (users, permissions, ``issued``).
  ``token_registry_factory(users=, permissions=, lifetime=5, strict_expiry=True, tls=False)``.
- ``fault_proxy``: a :class:`FaultProxy` in front of ``registry`` (``.registry`` is it);
  ``fault_proxy_factory(registry, seed=0, **knobs)`` for others.
- ``dockerd`` (session scope, started only when a test asks): :class:`DockerDaemon`.
- ``oci_image``: a one-layer OCI layout written by :func:`make_oci_layout` in tmp_path.
- ``image_mirror`` (session, autouse): a loopback mirror of every image Kubefile.examples name,
  its registries.conf exported as ``CONTAINERS_REGISTRIES_CONF``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import DockerDaemon, start_dockerd
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.mirror import Mirror, start_mirror
from tests.fixtures.oci_layout import OciImage, make_oci_layout
from tests.fixtures.pki import make_server_tls, make_token_signer
from tests.fixtures.registry import Registry, start_registry
from tests.fixtures.token_server import ANONYMOUS, TokenServer


def default_token_permissions() -> dict[str, dict[str, set[str]]]:
    """alice may do anything; bob owns bob/* and may only pull elsewhere; anonymous pulls
    public/*."""
    return {
        "alice": {"*": {"*"}},
        "bob": {"bob/*": {"*"}, "*": {"pull"}},
        ANONYMOUS: {"public/*": {"pull"}},
    }


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Registry]]:
    started: list[Registry] = []

    def make(
        *,
        tls: bool = False,
        users: Mapping[str, str] | None = None,
        token_server: TokenServer | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Registry:
        workdir = tmp_path_factory.mktemp("registry")
        server_tls = make_server_tls(workdir / "tls") if tls else None
        registry = start_registry(
            workdir, tls=server_tls, users=users, token_server=token_server, config=config
        )
        started.append(registry)
        return registry

    yield make
    for registry in reversed(started):
        registry.stop()


@pytest.fixture
def registry(registry_factory: Callable[..., Registry]) -> Registry:
    """A fresh plain-HTTP registry on 127.0.0.1 (docker and skopeo treat loopback as insecure:
    pass --tls-verify=false to skopeo)."""
    return registry_factory()


@pytest.fixture
def tls_registry(registry_factory: Callable[..., Registry]) -> Registry:
    """HTTPS (own CA) + htpasswd user ``tester`` with a random password."""
    return registry_factory(tls=True, users={"tester": secrets.token_urlsafe(18)})


@pytest.fixture
def token_registry_factory(
    registry_factory: Callable[..., Registry], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Registry]:
    def make(
        *,
        users: Mapping[str, str] | None = None,
        permissions: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
        lifetime: int = 5,
        strict_expiry: bool = True,
        tls: bool = False,
    ) -> Registry:
        if users is None:
            users = {"alice": secrets.token_urlsafe(18), "bob": secrets.token_urlsafe(18)}
        signer = make_token_signer(tmp_path_factory.mktemp("token-signer"))
        server = TokenServer(
            signer=signer,
            users=users,
            permissions=default_token_permissions() if permissions is None else permissions,
            lifetime=lifetime,
            strict_expiry=strict_expiry,
        )
        server.start()
        try:
            registry = registry_factory(tls=tls, token_server=server)
        except BaseException:
            server.stop()
            raise
        if users:
            registry.username, registry.password = next(iter(users.items()))
        return registry

    return make


@pytest.fixture
def token_registry(token_registry_factory: Callable[..., Registry]) -> Registry:
    """Token auth, tokens live 5 s (really: the registry rejects them after 5 s); users alice
    (everything) and bob (bob/*, pull elsewhere); ``.username``/``.password`` are alice's."""
    return token_registry_factory()


@pytest.fixture
def fault_proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    started: list[FaultProxy] = []

    def make(registry: Registry, *, seed: int = 0, **knobs: Any) -> FaultProxy:
        proxy = FaultProxy(registry.url, ca_path=registry.ca_path, seed=seed)
        proxy.registry = registry
        proxy.configure(**knobs)
        proxy.start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in reversed(started):
        proxy.stop()


@pytest.fixture
def fault_proxy(registry: Registry, fault_proxy_factory: Callable[..., FaultProxy]) -> FaultProxy:
    """A fault proxy (no faults configured yet) in front of the ``registry`` fixture."""
    return fault_proxy_factory(registry)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerDaemon]:
    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def oci_image(tmp_path: Path) -> OciImage:
    """A one-layer OCI image at ``tmp_path/oci-layout`` tagged ``latest``."""
    return make_oci_layout(tmp_path / "oci-layout")


@pytest.fixture(scope="session", autouse=True)
def image_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """The loopback mirror behind every image Kubefile.examples name (see
    tests/fixtures/mirror.py): builds of the examples embed them offline. Its registries.conf
    is exported for the whole session, so clusterimage, skopeo and docker-registry's clients
    all pull through it; a test that wants another registries.conf sets its own."""
    from clusterimage.errors import DiscoveryError
    from clusterimage.images import discover
    from tests.conftest import REPO_ROOT

    references = set()
    for context in sorted((REPO_ROOT / "Kubefile.examples").iterdir()):
        if not context.is_dir():
            continue
        try:
            references |= {str(image.reference) for image in discover(context).images}
        except DiscoveryError:
            # An example whose prepare.sh makes the archives its tar.txt names (offline-bundle)
            # cannot be discovered before that: its images come from those, not from a mirror.
            if not (context / "prepare.sh").is_file():
                raise
    mirror = start_mirror(tmp_path_factory.mktemp("mirror"), references)
    previous = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    os.environ["CONTAINERS_REGISTRIES_CONF"] = str(mirror.conf)
    try:
        yield mirror
    finally:
        if previous is None:
            os.environ.pop("CONTAINERS_REGISTRIES_CONF", None)
        else:
            os.environ["CONTAINERS_REGISTRIES_CONF"] = previous
        mirror.registry.stop()
