#!/usr/bin/env python3
"""Benchmarks of clusterimage against the tools it replaces, on this machine.

    scripts/bench.py build [--size MIB] [--compression gzip|zstd|none] [--json] [--keep]

Subcommands register themselves in ``COMMANDS`` (one ``add_<name>_parser`` + ``run_<name>`` pair
each); ``push`` and ``pull`` (registry transfers against skopeo) belong there too.

``build``: a generated cluster-image context of ``--size`` MiB (manifests and charts as text,
binaries as incompressible random bytes, image archives as compressible data), built

- by ``clusterimage build`` cold (fresh CLUSTERIMAGE_HOME) and then unchanged (cache reuse);
- by ``buildah build --isolation chroot`` in a private ``--root``/``--runroot`` followed by
  ``buildah push <image> oci:DIR`` in the same timed run (what sealos build + save does),

and prints both times and the ratios. Goals: cold <= 0.5x buildah, unchanged rebuild <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20

_KUBEFILE = """\
FROM scratch
LABEL sealos.io.type="application" \\
      sealos.io.version="v1beta1"
ENV NAMESPACE=bench
COPY manifests manifests
COPY charts charts
COPY bin bin
COPY images images
COPY registry registry
CMD ["kubectl apply -f manifests/"]
"""

_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{n}
  namespace: bench
  labels:
    app.kubernetes.io/name: app-{n}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app.kubernetes.io/name: app-{n}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-{n}
    spec:
      containers:
        - name: app
          image: registry.example.com/bench/app-{n}:v{n}.{replicas}
          ports:
            - containerPort: {port}
          resources:
            limits: {{cpu: "{cpu}m", memory: "{mem}Mi"}}
"""


# -- build ----------------------------------------------------------------------------------------


def _write_compressible(path: Path, size: int, rng: random.Random) -> None:
    """Log-like text: compresses about 5:1 with gzip, as image tarballs of text layers do."""
    words = [f"{rng.getrandbits(32):08x}" for _ in range(2048)] + [
        "level=info",
        "msg=",
        "component=controller",
        "reconcile",
        "namespace=bench",
        "\n",
    ]
    with open(path, "wb") as out:
        written = 0
        while written < size:
            line = " ".join(rng.choice(words) for _ in range(64)).encode() + b"\n"
            chunk = line * 256
            chunk = chunk[: size - written]
            out.write(chunk)
            written += len(chunk)


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            n = min(remaining, 4 * MIB)
            out.write(os.urandom(n))
            remaining -= n


def generate_context(root: Path, size_mib: int, seed: int = 42) -> dict[str, int]:
    """A cluster-image context of about ``size_mib`` MiB; returns bytes per folder."""
    rng = random.Random(seed)
    sizes: dict[str, int] = {}
    (root / "registry").mkdir(parents=True)  # buildah needs it on disk; we overlay it anyway
    manifests = root / "manifests"
    manifests.mkdir()
    total = 0
    for n in range(400):
        text = _MANIFEST.format(
            n=n,
            replicas=rng.randint(1, 5),
            port=8000 + n,
            cpu=rng.randint(100, 2000),
            mem=rng.randint(64, 4096),
        )
        (manifests / f"app-{n:03d}.yaml").write_text(text)
        total += len(text)
    sizes["manifests"] = total
    chart = root / "charts" / "bench"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bench\nversion: 1.0.0\n")
    total = 0
    for n in range(100):
        text = _MANIFEST.format(n=n, replicas="{{ .Values.replicas }}", port=9000, cpu=1, mem=1)
        (chart / "templates" / f"t{n:03d}.yaml").write_text(text)
        total += len(text)
    sizes["charts"] = total
    budget = size_mib * MIB - sizes["manifests"] - sizes["charts"]
    binaries = int(budget * 0.6)
    images = budget - binaries
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for index, share in enumerate((0.5, 0.3, 0.2)):
        path = bin_dir / f"tool-{index}"
        _write_random(path, int(binaries * share))
        path.chmod(0o755)
    sizes["bin"] = binaries
    images_dir = root / "images"
    images_dir.mkdir()
    for index in range(4):
        _write_compressible(images_dir / f"image-{index}.tar", images // 4, rng)
    sizes["images"] = images
    (root / "Kubefile").write_text(_KUBEFILE)
    return sizes


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: `{' '.join(argv)}` failed ({result.returncode}):\n{result.stderr}")
    return elapsed, result.stdout.strip()


def _clusterimage(work: Path, context: Path, compression: str) -> dict[str, Any]:
    home = work / "clusterimage-home"
    env = {**os.environ, "CLUSTERIMAGE_HOME": str(home)}
    env.pop("CLUSTERIMAGE_STORE", None)
    argv = [
        sys.executable,
        "-m",
        "clusterimage",
        "build",
        "-q",
        "--compression",
        compression,
        "-t",
        "bench.local/app:v1",
        str(context),
    ]
    cold, digest = _timed(argv, env)
    rebuild, again = _timed(argv, env)
    if again != digest:
        sys.exit(f"bench: the unchanged rebuild gave {again}, the cold build {digest}")
    return {"cold": cold, "rebuild": rebuild, "digest": digest}


def _buildah_driver(buildah: str, root: Path) -> str:
    """overlay when it mounts here, else vfs (overlay inside overlay often does not)."""
    base = [buildah, "--root", str(root / "probe"), "--runroot", str(root / "probe-run")]
    ok = subprocess.run(
        [*base, "--storage-driver", "overlay", "from", "scratch"],
        capture_output=True,
        text=True,
        check=False,
    )
    driver = "vfs"
    if ok.returncode == 0:
        container = ok.stdout.strip()
        mounted = subprocess.run(
            [*base, "--storage-driver", "overlay", "mount", container],
            capture_output=True,
            check=False,
        )
        driver = "overlay" if mounted.returncode == 0 else "vfs"
        subprocess.run([*base, "--storage-driver", "overlay", "rm", "--all"], capture_output=True)
    subprocess.run(["umount", "-R", str(root / "probe")], capture_output=True, check=False)
    shutil.rmtree(root / "probe", ignore_errors=True)
    shutil.rmtree(root / "probe-run", ignore_errors=True)
    return driver


def _buildah(work: Path, context: Path, compression: str, layers: bool) -> dict[str, Any]:
    buildah = shutil.which("buildah")
    if buildah is None:
        return {"skipped": "buildah is not installed"}
    storage = work / "buildah"
    storage.mkdir()
    driver = _buildah_driver(buildah, storage)
    base = [
        buildah,
        "--root",
        str(storage / "root"),
        "--runroot",
        str(storage / "run"),
        "--storage-driver",
        driver,
    ]
    flags = {
        "gzip": ["--compression-format", "gzip"],
        "zstd": ["--compression-format", "zstd"],
        "none": ["--disable-compression"],
    }[compression]
    env = {**os.environ, "TMPDIR": str(work)}
    start = time.perf_counter()
    _timed(
        [
            *base,
            "build",
            "--isolation",
            "chroot",
            f"--layers={'true' if layers else 'false'}",
            "--format",
            "oci",
            "--timestamp",
            "0",
            "-t",
            "bench.local/app:v1",
            "-f",
            str(context / "Kubefile"),
            str(context),
        ],
        env,
    )
    built = time.perf_counter() - start
    _timed([*base, "push", "--quiet", *flags, "bench.local/app:v1", f"oci:{work}/oci:app"], env)
    total = time.perf_counter() - start
    subprocess.run([*base, "rmi", "--all", "--force"], capture_output=True, env=env, check=False)
    subprocess.run(["umount", "-R", str(storage)], capture_output=True, check=False)
    return {"build": built, "push": total - built, "total": total, "driver": driver}


def add_build_parser(sub: Any) -> None:
    parser = sub.add_parser("build", help="clusterimage build (cold, unchanged) vs buildah")
    parser.add_argument("--size", type=int, default=200, metavar="MIB", help="context size")
    parser.add_argument("--compression", choices=("gzip", "zstd", "none"), default="gzip")
    parser.add_argument(
        "--buildah-layers", action="store_true", help="buildah build --layers (one per step)"
    )
    parser.add_argument("--no-buildah", action="store_true", help="time clusterimage only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run_build(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="clusterimage-bench-"))
    try:
        context = work / "context"
        sizes = generate_context(context, args.size)
        ours = _clusterimage(work, context, args.compression)
        theirs = (
            {"skipped": "--no-buildah"}
            if args.no_buildah
            else _buildah(work, context, args.compression, args.buildah_layers)
        )
        result: dict[str, Any] = {
            "context_mib": round(sum(sizes.values()) / MIB, 1),
            "compression": args.compression,
            "clusterimage": ours,
            "buildah": theirs,
            "goals": {"cold_vs_buildah": 0.5, "rebuild_seconds": 1.0},
        }
        if "total" in theirs:
            result["ratio_cold"] = ours["cold"] / theirs["total"]
            result["ratio_rebuild"] = ours["rebuild"] / theirs["total"]
        _report(result, args.json)
        return 0
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    ours, theirs = result["clusterimage"], result["buildah"]
    print(f"context: {result['context_mib']} MiB, compression {result['compression']}")
    print(f"clusterimage build, cold:        {ours['cold']:7.2f} s")
    print(f"clusterimage build, unchanged:   {ours['rebuild']:7.2f} s   (goal <= 1 s)")
    if "total" in theirs:
        print(
            f"buildah build + push oci:        {theirs['total']:7.2f} s   "
            f"(build {theirs['build']:.2f} s, push {theirs['push']:.2f} s, {theirs['driver']})"
        )
        print(f"ratio cold / buildah:            {result['ratio_cold']:7.2f}    (goal <= 0.5)")
        print(f"ratio unchanged / buildah:       {result['ratio_rebuild']:7.3f}")
    else:
        print(f"buildah: skipped ({theirs['skipped']})")


# -- registry of subcommands ---------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "build": (add_build_parser, run_build),
    # "push": (add_push_parser, run_push),   remote helper
    # "pull": (add_pull_parser, run_pull),   remote helper
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
