"""Subprocesses of test_store_concurrency.py: ``python -m tests.integration.store_worker``.

``import STORE SOURCE WORKER COUNT GO``: wait for file GO, then COUNT times import image
``w<WORKER>-<i>`` from the OCI layout SOURCE into STORE as ``localhost/w<WORKER>/img:<i>`` and tag
it ``localhost/w<WORKER>/alias:<i>`` (2 x COUNT store operations).

``write STORE SIZE``: write SIZE bytes of ``big_bytes(SIZE)`` through ``blob_writer`` slowly,
printing ``started`` once some are on disk, forever unless killed (it never commits).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from clusterimage.copy import copy_image
from clusterimage.oci.digest import Digest
from clusterimage.store import Store
from clusterimage.transports import Context, parse
from tests.helpers.images import big_bytes


def _import(store_dir: Path, source: Path, worker: str, count: int, go: Path) -> None:
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    ctx = Context(store_dir=store_dir)
    store = Store(store_dir)
    for i in range(count):
        name = f"localhost/w{worker}/img:{i}"
        copy_image(parse(f"oci:{source}:w{worker}-{i}"), parse(f"store:{name}"), ctx)
        store.tag(name, f"localhost/w{worker}/alias:{i}")
    print("done", flush=True)


def _write(store_dir: Path, size: int) -> None:
    data = big_bytes(size)
    store = Store(store_dir)
    chunk = 256 << 10
    with store.blob_writer(Digest.of(data), size) as writer:
        for offset in range(0, size - chunk, chunk):
            writer.write(data[offset : offset + chunk])
            if offset == 2 << 20:
                print("started", flush=True)
            time.sleep(0.01)
        time.sleep(3600)  # the test kills us before we get further


def main(argv: list[str]) -> None:
    if argv[0] == "import":
        _import(Path(argv[1]), Path(argv[2]), argv[3], int(argv[4]), Path(argv[5]))
    elif argv[0] == "write":
        _write(Path(argv[1]), int(argv[2]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
