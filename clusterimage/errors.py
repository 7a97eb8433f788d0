"""The exception hierarchy.

Every error a user can cause is a :class:`ClusterImageError`; the CLI prints its message as one
line (``error: ...``) and exits 1 (2 for :class:`UsageError`). Anything else is a bug and gets a
traceback.
"""

from __future__ import annotations


class ClusterImageError(Exception):
    """A user-facing error: the message is one line that says what and where."""

    exit_code = 1
    #: True when this error only follows from another one already raised (an archive that an
    #: earlier blob spoilt refuses the next): where several transfers fail, report the cause.
    consequence = False


class UsageError(ClusterImageError):
    """The command line itself is wrong."""

    exit_code = 2


class InvalidReference(ClusterImageError):
    """A string is not a valid image reference."""


class InvalidDigest(ClusterImageError):
    """A string is not a valid digest."""


class DigestMismatch(ClusterImageError):
    """Content did not hash to the digest (or size) it was announced with."""


class ManifestError(ClusterImageError):
    """A manifest, index or config could not be read."""


class ImageNotFound(ClusterImageError):
    """No image with that reference or digest exists where it was looked for."""


class BlobNotFound(ClusterImageError):
    """A blob is missing."""


class StoreError(ClusterImageError):
    """The local store is missing, not a layout, or damaged."""


class TransportError(ClusterImageError):
    """A transport reference is wrong, or a transport cannot do what was asked."""


class RegistryError(ClusterImageError):
    """A registry answered with an error, or could not be reached."""


class AuthError(RegistryError):
    """Credentials are missing or were refused."""


class RegistryBlocked(RegistryError):
    """registries.conf (``blocked = true``) forbids pulling from the registry a reference names."""


class TransferInterrupted(ClusterImageError):
    """A blob transfer broke off (connection lost, server busy); trying it again may succeed.

    The copy engine retries the blob, resuming at the offset the destination reports.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KubefileError(ClusterImageError):
    """A Kubefile is wrong; the message names file and line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class BuildError(ClusterImageError):
    """A build failed for a reason other than the Kubefile's syntax."""


class LayerError(ClusterImageError):
    """A layer's content is damaged or unsafe (bad compression, a member escaping its root)."""


class DiscoveryError(ClusterImageError):
    """The images a build context needs cannot be listed: a chart that does not render, a bad
    tar.txt entry, two images stored under one path."""
