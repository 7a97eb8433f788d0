"""Platforms (``os/arch[/variant]``) and the rules that match an image to one.

Normalisation and matching follow containerd's ``platforms`` package, which Docker, buildah and
skopeo share: ``aarch64`` is ``arm64``, ``arm64`` means ``arm64/v8``, ``arm`` means ``arm/v7``.
"""

from __future__ import annotations

import platform as _host
import re
from dataclasses import dataclass, field
from typing import Any

from clusterimage.errors import ManifestError, UsageError

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}
_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}
# containerd's isKnownOS/isKnownArch (Go's GOOS/GOARCH lists): a platform given as one word must
# be one of them, so a typo is an error rather than an OS or architecture nobody builds for.
_KNOWN_OS = frozenset(
    [
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
        "zos",
    ]
)
_KNOWN_ARCH = frozenset(
    [
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "ppc64",
        "ppc64le",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    ]
)
_COMPONENT = re.compile(r"[a-z0-9_.-]+")
_VARIANT_ALIASES = {"8": "v8", "7": "v7", "6": "v6", "5": "v5"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, value: str) -> Platform:
        """Parse ``os/arch[/variant]`` (``linux/arm64/v8``), as containerd does: one word is
        an architecture (on linux) or an OS (on this machine's architecture)."""
        parts = value.strip().lower().split("/")
        if not value.strip() or len(parts) > 3 or not all(_COMPONENT.fullmatch(p) for p in parts):
            raise UsageError(f"invalid platform {value!r}: expected OS/ARCH[/VARIANT]")
        if len(parts) == 1:
            word = parts[0]
            if _ARCH_ALIASES.get(word, word) in _KNOWN_ARCH:
                parts = ["linux", word]
            elif word in _KNOWN_OS:
                parts = [word, cls.host().architecture]
            else:
                raise UsageError(
                    f"invalid platform {value!r}: unknown operating system or architecture "
                    "(expected OS/ARCH[/VARIANT], e.g. linux/arm64)"
                )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None).normalized()

    @classmethod
    def host(cls) -> Platform:
        machine = _host.machine().lower() or "amd64"
        return cls("linux", machine).normalized()

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "platform") -> Platform:
        """The platform fields of ``data`` (a descriptor's platform, or an image config);
        ManifestError naming ``where`` for a field of the wrong type."""
        for key in ("os", "architecture", "variant", "os.version"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ManifestError(f"{where}: {key} must be a string")
        features = data.get("os.features")
        if features is not None and not (
            isinstance(features, list) and all(isinstance(f, str) for f in features)
        ):
            raise ManifestError(f"{where}: os.features must be a list of strings")
        return cls(
            os=data.get("os") or "",
            architecture=data.get("architecture") or "",
            variant=data.get("variant") or None,
            os_version=data.get("os.version") or None,
            os_features=tuple(features or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if variant:
            variant = _VARIANT_ALIASES.get(variant, variant)
        if arch == "arm64" and variant == "v8":
            variant = None  # arm64 always means v8; keep the canonical form short
        return Platform(self.os, arch, variant, self.os_version, self.os_features)

    def matches(self, candidate: Platform) -> bool:
        """Whether an image built for ``candidate`` satisfies a request for ``self``.

        A request without a variant takes the default variant of the architecture, or any when
        architecture has none.
        """
        want, have = self.normalized(), candidate.normalized()
        if want.os != have.os or want.architecture != have.architecture:
            return False
        want_variant = want.variant or _DEFAULT_VARIANTS.get(want.architecture)
        have_variant = have.variant or _DEFAULT_VARIANTS.get(have.architecture)
        if want.variant is None and want.architecture not in _DEFAULT_VARIANTS:
            return True
        return want_variant == have_variant

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base
