"""Image references with Docker's normalisation.

``nginx`` is ``docker.io/library/nginx:latest``; ``host:port/repo:tag``; ``repo@sha256:...``;
``localhost/x``. The grammar is distribution's ``reference`` package (regexp.go); normalisation is
its ``normalize.go`` (ParseNormalizedNamed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from clusterimage.errors import InvalidDigest, InvalidReference
from clusterimage.oci.digest import Digest

DEFAULT_REGISTRY: Final = "docker.io"
# Where buildah, podman and sealos put a name built or tagged without a registry.
LOCAL_REGISTRY: Final = "localhost"
DEFAULT_TAG: Final = "latest"
_LEGACY_REGISTRIES: Final = frozenset({"index.docker.io", "registry-1.docker.io"})
_MAX_NAME_LENGTH: Final = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
# ASCII only: Go's \w, unlike Python's, does not match Unicode letters.
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_DOMAIN_RE: Final = re.compile(rf"^{_DOMAIN}$")
_PATH_RE: Final = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_TAG_RE: Final = re.compile(rf"^{_TAG}$")
_DIGEST_RE: Final = re.compile(rf"^{_DIGEST}$")
_IDENTIFIER_RE: Final = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    """A fully normalised image reference; ``tag`` and ``digest`` may both be set."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, value: str, *, default_tag: bool = True) -> Reference:
        """Parse and normalise; adds ``:latest`` when neither tag nor digest is given."""
        if not isinstance(value, str) or not value:
            raise InvalidReference("invalid reference: empty")
        if value != value.strip() or any(c.isspace() for c in value):
            raise InvalidReference(f"invalid reference {value!r}: contains whitespace")
        scheme = value.split("://", 1)[0].lower() if "://" in value else None
        if scheme in ("http", "https"):
            # A URL pasted as an image name: references carry no scheme.
            hint = (
                " and add --tls-verify=false for a plain-HTTP registry" if scheme == "http" else ""
            )
            raise InvalidReference(
                f"invalid reference {value!r}: image references have no scheme; drop "
                f"'{scheme}://' (e.g. {value.split('://', 1)[1]!r}){hint}"
            )
        if _IDENTIFIER_RE.match(value):
            # distribution refuses these: a 64-hex name would be mistaken for an image ID.
            raise InvalidReference(
                f"invalid reference {value!r}: a 64-character hex string is an ID, not a name"
            )
        name, tag, digest = _split(value)
        registry, repository = _split_domain(name, value)
        if repository != repository.lower():
            raise InvalidReference(
                f"invalid reference {value!r}: repository name must be lowercase"
            )
        if not _PATH_RE.match(repository):
            raise InvalidReference(f"invalid reference {value!r}: invalid repository name")
        if len(f"{registry}/{repository}") > _MAX_NAME_LENGTH:
            raise InvalidReference(f"invalid reference {value!r}: name longer than 255 characters")
        if tag is not None and not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid reference {value!r}: invalid tag {tag!r}")
        parsed_digest = None
        if digest is not None:
            if not _DIGEST_RE.match(digest):
                raise InvalidReference(f"invalid reference {value!r}: invalid digest")
            try:
                parsed_digest = Digest.parse(digest)
            except InvalidDigest as exc:
                raise InvalidReference(f"invalid reference {value!r}: {exc}") from None
        if tag is None and parsed_digest is None and default_tag:
            tag = DEFAULT_TAG
        return cls(registry, repository, tag, parsed_digest)

    @classmethod
    def parse_local(cls, value: str, *, default_tag: bool = True) -> Reference:
        """Parse a name an image is *stored* under (``build -t``, ``tag``, ``merge -t``,
        ``load``): without a registry it is ``localhost/NAME``, as buildah and podman store it,
        so a later ``push NAME`` does not go to Docker Hub.
        """
        ref = cls.parse(value, default_tag=default_tag)
        if is_short_name(value):
            name = _split(value)[0]
            return cls(LOCAL_REGISTRY, name, ref.tag, ref.digest)
        return ref

    @classmethod
    def local_candidates(cls, value: str) -> list[Reference]:
        """What a name may stand for in the store, in the order podman tries: a short name is
        ``localhost/NAME`` first, then Docker's ``docker.io/library/NAME``; a qualified name is
        itself.
        """
        ref = cls.parse(value)
        if not is_short_name(value):
            return [ref]
        return [cls.parse_local(value), ref]

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What a registry's manifest endpoint takes: the digest if any, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def familiar(self) -> str:
        """The short form Docker shows: ``nginx:latest``, ``me/app:v1``, ``quay.io/x/y:z``."""
        repo = self.repository
        if self.registry == DEFAULT_REGISTRY:
            prefix = "library/"
            if repo.startswith(prefix) and "/" not in repo[len(prefix) :]:
                repo = repo[len(prefix) :]
            return _suffixed(repo, self.tag, self.digest)
        return _suffixed(f"{self.registry}/{repo}", self.tag, self.digest)

    def __str__(self) -> str:
        return _suffixed(self.name, self.tag, self.digest)


def _suffixed(name: str, tag: str | None, digest: Digest | None) -> str:
    out = name
    if tag is not None:
        out += f":{tag}"
    if digest is not None:
        out += f"@{digest}"
    return out


def _split(value: str) -> tuple[str, str | None, str | None]:
    name, at, digest = value.partition("@")
    if at and (not digest or "@" in digest):
        raise InvalidReference(f"invalid reference {value!r}: invalid digest")
    # A colon after the last slash is a tag separator; before it, a registry port.
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not tag:
            raise InvalidReference(f"invalid reference {value!r}: empty tag")
    if not name:
        raise InvalidReference(f"invalid reference {value!r}: empty name")
    return name, tag, (digest if at else None)


def _split_domain(name: str, value: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash or not _is_domain(first):
        registry, repository = DEFAULT_REGISTRY, name
    else:
        registry, repository = first, rest
        if not _DOMAIN_RE.match(registry):
            raise InvalidReference(f"invalid reference {value!r}: invalid registry {registry!r}")
    if registry in _LEGACY_REGISTRIES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def is_short_name(value: str) -> bool:
    """True when ``value`` names no registry (``nginx``, ``me/app:v1``), so normalisation would
    choose one; false for ``host/x``, ``host:5000/x``, ``localhost/x`` and ``docker.io/x``."""
    first, slash, _ = _split(value)[0].partition("/")
    return not slash or not _is_domain(first)


def _is_domain(first: str) -> bool:
    """Whether a name's first component is a registry (normalize.go's splitDockerDomain)."""
    return any(c in first for c in ".:") or first == "localhost" or first.lower() != first


def parse(value: str) -> Reference:
    return Reference.parse(value)
