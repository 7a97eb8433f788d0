"""``registry sync``: every image of a registry folder, a cluster image's registry/ or a
registry, into a registry, through the copy engine.

sealos's sync walks ``_catalog`` and each repository's tags, so manifests that no tag names
(an image pinned by digest) are lost on the way. From a folder or an image we list every
revision too (:func:`clusterimage.transports.registry_dir.walk`) and copy those by digest. What
the destination has already (the same manifest under the same tag, or the digest) is skipped
without a blob request; the rest copies in parallel (copy_many), each blob once, blobs the
destination holds in another repository mounted rather than uploaded.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clusterimage.copy import CopyEvent, CopyJob, CopyOptions, copy_many
from clusterimage.errors import ClusterImageError
from clusterimage.oci.digest import Digest
from clusterimage.oci.reference import Reference
from clusterimage.remote.client import Registry
from clusterimage.remote.repository import Repository
from clusterimage.runtime.registryfiles import RegistryFiles
from clusterimage.transports.base import Context, ImageReference
from clusterimage.transports.docker import DockerReference, client_options
from clusterimage.transports.registry_dir import RegistryDirReference, walk


@dataclass(frozen=True)
class SyncItem:
    repository: str
    tag: str | None
    digest: Digest
    source: ImageReference

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{self.digest}"


@dataclass
class SyncResult:
    copied: list[str] = field(default_factory=list)
    copied_digests: list[Digest] = field(default_factory=list)  # of each copied, in order
    skipped: list[str] = field(default_factory=list)
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "copied": self.copied,
            "skipped": self.skipped,
            "blobsCopied": self.blobs_copied,
            "blobsMounted": self.blobs_mounted,
            "blobsSkipped": self.blobs_skipped,
        }


def folder_items(root: Path) -> list[SyncItem]:
    """Every tag and digest-only manifest of a registry folder."""
    return [
        SyncItem(
            e.repository,
            e.tag,
            e.digest,
            RegistryDirReference(root, e.repository, e.tag, None if e.tag else e.digest),
        )
        for e in walk(root)
    ]


def registry_items(host: str, ctx: Context) -> list[SyncItem]:
    """Every tag of every repository a registry's ``_catalog`` lists (a registry API cannot
    list manifests that no tag names)."""
    items = []
    with Registry(host, client_options(ctx, ctx.source)) as client:
        for name in _catalog(client):
            repository = Repository(client, name)
            for tag in repository.tags():
                found = repository.head_manifest(tag)
                if found is None:
                    continue
                reference = Reference.parse(f"{host}/{name}:{tag}")
                items.append(SyncItem(name, tag, found.digest, DockerReference(reference)))
    return items


def _catalog(client: Registry) -> Iterator[str]:
    path = "/v2/_catalog?n=1000"
    from clusterimage.remote.auth import Scopes

    while path:
        response = client.request(
            "GET", path, scopes=Scopes(["registry:catalog:*"]), what="catalog"
        )
        data = response.json()
        yield from (str(name) for name in data.get("repositories") or [])
        link = response.headers.get("Link", "")
        path = link.split(";")[0].strip("<> ") if 'rel="next"' in link else ""


def sync(
    items: list[SyncItem],
    destination: str,
    ctx: Context,
    *,
    parallel: int = 4,
    on_event: Callable[[CopyEvent], None] | None = None,
) -> SyncResult:
    """Copy ``items`` into the registry ``destination`` (``host[:port][/prefix]``)."""
    result = SyncResult()
    host, _, prefix = destination.partition("/")
    wanted = []
    with Registry(host, client_options(ctx, ctx.destination)) as client:
        for item in items:
            repository = f"{prefix}/{item.repository}" if prefix else item.repository
            there = Repository(client, repository).head_manifest(item.tag or str(item.digest))
            target = f"{host}/{repository}" + (f":{item.tag}" if item.tag else f"@{item.digest}")
            if there is not None and there.digest == item.digest:
                result.skipped.append(item.name)
                continue
            wanted.append((item, DockerReference(Reference.parse(target))))
    options = CopyOptions(all_platforms=True, on_event=on_event)
    jobs = [CopyJob(item.source, dest, options, f"{item.name}") for item, dest in wanted]
    for (item, _), copied in zip(wanted, copy_many(jobs, ctx, parallel=parallel), strict=True):
        result.copied.append(item.name)
        result.copied_digests.append(item.digest)
        result.blobs_copied += copied.blobs_copied
        result.blobs_mounted += copied.blobs_mounted
        result.blobs_skipped += copied.blobs_skipped
    return result


@contextlib.contextmanager
def image_items(files: RegistryFiles) -> Iterator[list[SyncItem]]:
    """Every image of a cluster image's registry/, served on a loopback port for the time of
    the sync: the copy engine reads it through the registry API, as from any registry, and the
    files stay where they lie in the image's layers."""
    from clusterimage.runtime.serve import Registry as FilesRegistry
    from clusterimage.runtime.serve import ServeOptions, Server

    server = Server(files, ServeOptions(address="127.0.0.1:0"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        items = []
        for name, tag, digest in FilesRegistry(files).entries():
            suffix = f":{tag}" if tag else f"@{digest}"
            reference = Reference.parse(f"{server.address}/{name}{suffix}")
            items.append(SyncItem(name, tag, digest, DockerReference(reference)))
        yield items
    finally:
        server.stop()
        thread.join(timeout=10)


def check_destination(destination: str) -> None:
    if "://" in destination:
        raise ClusterImageError(
            f"{destination}: give the registry as HOST[:PORT][/PREFIX], without a scheme"
        )


def rehomed(ref: Reference, destination: str) -> str:
    """Where ``ref`` goes in the registry ``destination`` (``HOST[:PORT][/PREFIX]``), under its
    own path as sealos's ``registry copy`` puts it: docker.io/library/nginx:1.25 into
    hub:5000/mirror is ``docker://hub:5000/mirror/library/nginx:1.25``."""
    host, _, prefix = destination.rstrip("/").partition("/")
    path = f"{prefix}/{ref.repository}" if prefix else ref.repository
    suffix = f":{ref.tag}" if ref.tag else f"@{ref.digest}"
    return f"docker://{host}/{path}{suffix}"
