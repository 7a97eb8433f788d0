"""Helpers for the registry tests (test_registry_*.py): images, CLI wrappers, a throttled relay.

The images are written here with tarfile/hashlib/json only, independent of clusterimage's code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool, run_cli, run_tool
from tests.fixtures.oci_layout import REF_NAME, host_architecture

MiB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture
def isolated_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No auth file of this machine is read or written: ``login`` writes the returned path
    ($XDG_RUNTIME_DIR/containers/auth.json under tmp_path).

    REGISTRY_AUTH_FILE is unset: the test that covers it passes it to one command only."""
    root = tmp_path / "auth"
    (root / "run").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "config.json").write_text("{}")  # buildah insists that it exists
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(root / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(root / "docker"))
    return root / "run" / "containers" / "auth.json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    layout: Path
    ref: str
    manifest_digest: str
    manifest_bytes: bytes
    config_digest: str
    layer_digests: tuple[str, ...]
    size: int  # bytes of all blobs

    @property
    def transport_ref(self) -> str:
        return f"oci:{self.layout}:{self.ref}"

    @property
    def blob_digests(self) -> list[str]:
        return [self.config_digest, *self.layer_digests]


def _put_blob(layout: Path, data: bytes) -> str:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def _tar_of(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _add_to_index(layout: Path, entry: dict[str, object]) -> None:
    index_path = layout / "index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text())
    else:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    ref = entry.get("annotations", {}).get(REF_NAME)  # type: ignore[attr-defined]
    index["manifests"] = [
        m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_NAME) != ref
    ]
    index["manifests"].append(entry)
    index_path.write_text(json.dumps(index))


def write_image(
    layout: Path,
    layer_sizes: list[int],
    *,
    ref: str = "latest",
    seed: int = 0,
    architecture: str | None = None,
    tagged: bool = True,
) -> Image:
    """An OCI layout image whose layers are uncompressed tars of one random file each
    (incompressible, and no time spent compressing in the test)."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    rng = random.Random(seed)
    layers, diff_ids, total = [], [], 0
    for i, size in enumerate(layer_sizes):
        tar = _tar_of(f"layer{i}.bin", rng.randbytes(size))
        digest = _put_blob(layout, tar)
        layers.append({"mediaType": OCI_LAYER_TAR, "digest": digest, "size": len(tar)})
        diff_ids.append(digest)
        total += len(tar)
    config = json.dumps(
        {
            "architecture": architecture or host_architecture(),
            "os": "linux",
            "config": {"Env": [f"SEED={seed}"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        },
        separators=(",", ":"),
    ).encode()
    config_digest = _put_blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    manifest_digest = _put_blob(layout, manifest)
    if tagged:
        _add_to_index(
            layout,
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {REF_NAME: ref},
            },
        )
    return Image(
        layout,
        ref,
        manifest_digest,
        manifest,
        config_digest,
        tuple(str(layer["digest"]) for layer in layers),
        total + len(config),
    )


@dataclass(frozen=True)
class MultiArch:
    layout: Path
    ref: str
    index_digest: str
    index_bytes: bytes
    images: dict[str, Image]  # by architecture

    @property
    def transport_ref(self) -> str:
        return f"oci:{self.layout}:{self.ref}"


def write_multiarch(layout: Path, *, ref: str = "multi") -> MultiArch:
    """An OCI index of two small images, linux/amd64 and linux/arm64."""
    images = {
        arch: write_image(layout, [4096 + i], seed=10 + i, architecture=arch, tagged=False)
        for i, arch in enumerate(("amd64", "arm64"))
    }
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": image.manifest_digest,
                    "size": len(image.manifest_bytes),
                    "platform": {"architecture": arch, "os": "linux"},
                }
                for arch, image in images.items()
            ],
        },
        separators=(",", ":"),
    ).encode()
    digest = _put_blob(layout, index)
    _add_to_index(
        layout,
        {
            "mediaType": OCI_INDEX,
            "digest": digest,
            "size": len(index),
            "annotations": {REF_NAME: ref},
        },
    )
    return MultiArch(layout, ref, digest, index, images)


def load(image: Image | MultiArch, name: str, *extra: str) -> str:
    """Put an OCI layout image into the clusterimage store under ``name``; returns its digest."""
    result = run_cli("pull", image.transport_ref, "--name", name, "-q", *extra)
    return result.stdout.strip()


def skopeo(*args: str, timeout: float = 180.0) -> str:
    return run_tool([require_tool("skopeo"), *args], timeout=timeout).stdout


def skopeo_digest(ref: str, *flags: str) -> str:
    return str(json.loads(skopeo("inspect", *flags, ref))["Digest"])


def ingest_sizes(store_dir: Path) -> dict[str, int]:
    """The partial downloads a store keeps for a resume: file name -> bytes so far."""
    return {p.name: p.stat().st_size for p in store_dir.glob(".clusterimage/ingest/*")}


def one_line_error(stderr: str) -> str:
    """The single ``error: ...`` line of a failed command (asserting there is only that)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


class ThrottledRelay:
    """A TCP relay on 127.0.0.1 that slows the server-to-client direction to ``rate`` bytes/s,
    so a test can stop a download in the middle. Counts bytes relayed to clients."""

    def __init__(self, upstream: str, rate: int) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self.rate = rate  # may be changed while running
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.bytes_down = 0
        self._active = 0
        self._conns: list[socket.socket] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._sock.getsockname()[1]}"

    def start(self) -> ThrottledRelay:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            with self._lock:
                self._conns += [client, upstream]
            with self._lock:
                self._active += 2
            for src, dst, slow in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(target=self._pump, args=(src, dst, slow), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        piece = 64 * 1024
        failed = False
        try:
            while not self._stop.is_set():
                data = src.recv(piece)
                if not data:
                    break
                dst.sendall(data)
                if slow:
                    with self._lock:
                        self.bytes_down += len(data)
                    time.sleep(len(data) / self.rate)
        except OSError:
            failed = True
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        if failed:  # one side died (a killed client): end both, so the server sees it too
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()
        with self._lock:
            self._active -= 1

    def idle(self) -> bool:
        """No connection is being relayed."""
        with self._lock:
            return self._active == 0

    def reset_count(self) -> None:
        with self._lock:
            self.bytes_down = 0

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        for thread in self._threads:
            thread.join(timeout=5)


@contextlib.contextmanager
def throttled(upstream: str, rate: int) -> Iterator[ThrottledRelay]:
    relay = ThrottledRelay(upstream, rate).start()
    try:
        yield relay
    finally:
        relay.stop()
