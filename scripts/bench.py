#!/usr/bin/env python3
"""Benchmarks of clusterimage against the tools it replaces, on this machine.

    scripts/bench.py build [--size MIB] [--compression gzip|zstd|none] [--json] [--keep]
    scripts/bench.py push|pull|save|load [--size MIB] [--layers N] [--rounds N] [--warmup N]
                                         [--jobs N] [--json] [--keep]
    scripts/bench.py build-images [--images N] [--image-mib M] [--binary-mib B] [--json]
    scripts/bench.py delta [--images N] [--image-mib M] [--base-mib B] [--rounds N] [--json]

Subcommands register themselves in ``COMMANDS`` (one ``add_<name>_parser`` + ``run_<name>`` pair
each); ``push`` and ``pull`` (registry transfers against skopeo) belong there too.

``build``: a generated cluster-image context of ``--size`` MiB (manifests and charts as text,
binaries as incompressible random bytes, image archives as compressible data), built

- by ``clusterimage build`` cold (fresh CLUSTERIMAGE_HOME) and then unchanged (cache reuse);
- by ``buildah build --isolation chroot`` in a private ``--root``/``--runroot`` followed by
  ``buildah push <image> oci:DIR`` in the same timed run (what sealos build + save does),

and prints both times and the ratios. Goals: cold <= 0.5x buildah, unchanged rebuild <= 1 s.

``save`` / ``load``: a 1 GiB image of 4 layers from the store to an oci-archive file, and that
file into a fresh store, against ``skopeo copy`` to and from ``oci-archive:``; medians after a
warm-up round, peak RSS, and the bytes read in all against the image's size. Goals: <= 0.6x
skopeo's time both ways, peak RSS <= 100 MiB, each blob read once.

``build-images``: a context whose manifests name 8 images of ~30 MiB sharing an 8 MiB base layer
(in a loopback registry) plus a 20 MiB binary, built by ``clusterimage build`` cold, unchanged,
and after a manifest edit (blob downloads counted in the registry's log), against the sealos
pipeline with sealos's tools in the same run: a registry on the context's registry/, ``skopeo
copy`` of each image in turn, ``buildah build`` and ``buildah push`` to ``oci:``. Goals: cold
<= 0.2x the pipeline, unchanged rebuild <= 0.3 s, no blob downloaded after a manifest edit.

``delta``: the same kind of context built as v1 and as v2 (one image replaced, one manifest file
edited); a full ``save`` of v2 against ``save --delta-from`` v1's bundle (and v1's inventory),
and loading each into a store that holds v1: times, sizes and ratios. Goal: the delta under 1/6
of the full bundle (registry/ is one layer per image, so v2 shares all but one with v1).
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
        "--save-image=false",  # the context's files; `build-images` measures embedding
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


# -- push / pull ---------------------------------------------------------------------------------
#
# A ~500 MiB image of 4 gzip layers of incompressible data is written straight into a fresh
# clusterimage store (an OCI layout, so skopeo reads the very same files as oci:STORE:REF). Each
# round starts fresh registries (docker-registry on loopback, temporary storage) so no tool can
# skip or mount a blob a previous round left, and alternates which tool goes first. ``--warmup``
# rounds (one by default) run both tools untimed first: on this 2-core VM, single runs of either
# tool were up to 0.4 s slower right after the set-up wrote the image (page-cache and memory
# first-touch effects), which a median of 3 does not always hide.


def _write_bench_image(store: Path, ref: str, size_mib: int, layers: int) -> dict[str, Any]:
    """Write the image into ``store`` (an OCI image layout) from a separate process: its memory
    must not count as ours (a child's ru_maxrss includes what it inherited before exec)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_write_bench_image_here, (store, ref, size_mib, layers))
    return result


def _write_bench_image_here(store: Path, ref: str, size_mib: int, layers: int) -> dict[str, Any]:
    import hashlib

    from isal import isal_zlib

    blobs = store / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (store / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> str:
        hexdigest = hashlib.sha256(data).hexdigest()
        (blobs / hexdigest).write_bytes(data)
        return f"sha256:{hexdigest}"

    per_layer = size_mib * MIB // layers
    descriptors, diff_ids, total = [], [], 0
    for index in range(layers):
        # A tar of one incompressible file, gzip-compressed (level 1: stored blocks, fast).
        name = f"layer{index}.bin".encode()
        header = bytearray(512)
        header[: len(name)] = name
        header[100:108] = b"0000644\0"
        header[124:136] = f"{per_layer:011o}\0".encode()
        header[136:148] = b"00000000000\0"
        header[156:157] = b"0"
        header[257:263] = b"ustar\0"
        header[263:265] = b"00"
        header[148:156] = b" " * 8
        header[148:156] = f"{sum(header):06o}\0 ".encode()
        padding = (512 - per_layer % 512) % 512
        tar = bytes(header) + os.urandom(per_layer) + b"\0" * padding + b"\0" * 1024
        diff_ids.append(f"sha256:{hashlib.sha256(tar).hexdigest()}")
        packed = isal_zlib.compress(tar, 1, 31)
        del tar
        digest = put(packed)
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": len(packed),
            }
        )
        total += len(packed)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": descriptors,
        }
    ).encode()
    manifest_digest = put(manifest)
    layout_index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    (store / "index.json").write_text(json.dumps(layout_index))
    return {"digest": manifest_digest, "bytes": total + len(config) + len(manifest)}


class _BenchRegistry:
    """docker-registry on a free loopback port with its own storage (like the test fixture)."""

    def __init__(self, work: Path, storage: Path | None = None, access_log: bool = False) -> None:
        import socket

        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            sys.exit("bench: docker-registry is not installed (apt-get install docker-registry)")
        self.root = Path(tempfile.mkdtemp(prefix="registry-", dir=work))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.host = f"127.0.0.1:{port}"
        config = self.root / "config.yml"
        config.write_text(
            json.dumps(  # YAML is a superset of JSON
                {
                    "version": 0.1,
                    "log": {"level": "error", "accesslog": {"disabled": not access_log}},
                    "storage": {
                        "filesystem": {"rootdirectory": str(storage or self.root / "storage")},
                        "maintenance": {"uploadpurging": {"enabled": False}},
                        "redirect": {"disable": True},
                    },
                    "http": {"addr": self.host, "secret": os.urandom(16).hex()},
                }
            )
        )
        # docker-registry reads every REGISTRY_* variable as a configuration override.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self._log = open(self.root / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    sys.exit(f"bench: docker-registry did not start ({self.root}/registry.log)")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def blob_gets(self) -> int:
        """Blob downloads so far (needs access_log)."""
        text = (self.root / "registry.log").read_text(errors="replace")
        return sum(1 for line in text.splitlines() if '"GET /v2/' in line and "/blobs/" in line)


def _run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run to completion; wall seconds and the peak RSS (bytes) of that process tree's largest
    process, from wait4 (the child's own rusage, not the cumulative RUSAGE_CHILDREN)."""
    # Start every run with no dirty pages left by the previous one (or by the setup), so no
    # tool pays for another's writeback.
    os.sync()
    with tempfile.TemporaryFile() as output:  # a file, not a pipe: nothing can block on it
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            output.seek(0)
            text = output.read().decode(errors="replace")
            sys.exit(f"bench: `{' '.join(argv)}` failed ({proc.returncode}):\n{text}")
    return elapsed, usage.ru_maxrss * 1024  # Linux reports KiB


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _transfer_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "CLUSTERIMAGE_HOME": str(home)}
    env.pop("CLUSTERIMAGE_STORE", None)
    return env


def add_push_parser(sub: Any) -> None:
    parser = sub.add_parser("push", help="clusterimage push vs skopeo copy to a registry")
    _add_transfer_options(parser)


def add_pull_parser(sub: Any) -> None:
    parser = sub.add_parser("pull", help="clusterimage pull vs skopeo copy from a registry")
    _add_transfer_options(parser)


def _add_transfer_options(parser: Any) -> None:
    parser.add_argument("--size", type=int, default=500, metavar="MIB", help="image size")
    parser.add_argument("--layers", type=int, default=4, help="number of layers")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first (caches, page allocation)"
    )
    parser.add_argument("--jobs", type=int, default=4, help="clusterimage --jobs")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def _transfer_setup(args: argparse.Namespace, work: Path) -> tuple[Path, str, dict[str, Any]]:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        sys.exit("bench: skopeo is not installed")
    home = work / "home"
    ref = "localhost/bench/app:v1"
    image = _write_bench_image(home / "store", ref, args.size, args.layers)
    return home, ref, image


def run_push(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    try:
        home, ref, image = _transfer_setup(args, work)
        store = home / "store"
        ours: list[float] = []
        theirs: list[float] = []
        rss: list[int] = []
        repush: list[float] = []
        inner: list[float] = []
        for round_no in range(-args.warmup, args.rounds):
            timed = round_no >= 0
            order = ["ours", "skopeo"] if round_no % 2 == 0 else ["skopeo", "ours"]
            for tool in order:
                registry = _BenchRegistry(work)
                try:
                    dest = f"docker://{registry.host}/bench/app:v1"
                    if tool == "ours":
                        argv = [
                            sys.executable, "-m", "clusterimage", "push", ref, dest,
                            "-q", "--jobs", str(args.jobs),
                        ]  # fmt: skip
                        elapsed, peak = _run_measured(argv, _transfer_env(home))
                        again, _ = _run_measured(argv, _transfer_env(home))
                        if timed:
                            ours.append(elapsed)
                            rss.append(peak)
                            repush.append(again)
                            inner.append(_in_process(argv[3:], _transfer_env(home)))
                    else:
                        argv = [
                            "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                            f"oci:{store}:{ref}", dest,
                        ]  # fmt: skip
                        elapsed, _ = _run_measured(argv, dict(os.environ))
                        if timed:
                            theirs.append(elapsed)
                finally:
                    registry.stop()
        result = {
            "command": "push",
            "image_bytes": image["bytes"],
            "layers": args.layers,
            "rounds": args.rounds,
            "warmup_rounds": args.warmup,
            "clusterimage_s": _median(ours),
            "skopeo_s": _median(theirs),
            "ratio": _median(ours) / _median(theirs),
            "peak_rss_mib": max(rss) / MIB,
            "repush_s": _median(repush),
            "repush_in_process_s": _median(inner),
            "startup_s": _startup(_transfer_env(home)),
            "all": {"clusterimage": ours, "skopeo": theirs, "repush": repush},
        }
        _report_transfer(result, args.json, goal_extra=("repush_s", "re-push unchanged", 0.2))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run_pull(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    registry: _BenchRegistry | None = None
    try:
        home, ref, image = _transfer_setup(args, work)
        registry = _BenchRegistry(work)
        remote = f"{registry.host}/bench/app:v1"
        _timed(
            [sys.executable, "-m", "clusterimage", "push", ref, f"docker://{remote}", "-q"],
            _transfer_env(home),
        )
        ours: list[float] = []
        theirs: list[float] = []
        rss: list[int] = []
        for round_no in range(-args.warmup, args.rounds):
            timed = round_no >= 0
            order = ["ours", "skopeo"] if round_no % 2 == 0 else ["skopeo", "ours"]
            for tool in order:
                target = work / f"{tool}-{round_no}"
                if tool == "ours":
                    argv = [
                        sys.executable, "-m", "clusterimage", "pull", remote,
                        "-q", "--jobs", str(args.jobs),
                    ]  # fmt: skip
                    elapsed, peak = _run_measured(argv, _transfer_env(target))
                    if timed:
                        ours.append(elapsed)
                        rss.append(peak)
                else:
                    argv = [
                        "skopeo", "copy", "--quiet", "--src-tls-verify=false",
                        f"docker://{remote}", f"oci:{target}:v1",
                    ]  # fmt: skip
                    elapsed, _ = _run_measured(argv, dict(os.environ))
                    if timed:
                        theirs.append(elapsed)
                shutil.rmtree(target, ignore_errors=True)
        result = {
            "command": "pull",
            "image_bytes": image["bytes"],
            "layers": args.layers,
            "rounds": args.rounds,
            "warmup_rounds": args.warmup,
            "clusterimage_s": _median(ours),
            "skopeo_s": _median(theirs),
            "ratio": _median(ours) / _median(theirs),
            "peak_rss_mib": max(rss) / MIB,
            "all": {"clusterimage": ours, "skopeo": theirs},
        }
        _report_transfer(result, args.json)
    finally:
        if registry is not None:
            registry.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _in_process(cli_args: list[str], env: dict[str, str]) -> float:
    """Seconds ``main(cli_args)`` takes inside an interpreter that has imported clusterimage:
    the command's own work without the interpreter's start-up."""
    code = (
        "import sys, time\n"
        "from clusterimage.cli.main import main\n"
        "start = time.perf_counter()\n"
        "try:\n"
        f"    main({cli_args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(time.perf_counter() - start, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"bench: in-process {cli_args} failed:\n{result.stderr}")
    return float(result.stderr.strip().splitlines()[-1])


def _startup(env: dict[str, str]) -> float:
    """Median wall time of `clusterimage version`: the floor every command pays."""
    runs = [
        _run_measured([sys.executable, "-m", "clusterimage", "version"], env)[0] for _ in range(3)
    ]
    return _median(runs)


def _report_transfer(
    result: dict[str, Any],
    as_json: bool,
    goal_extra: tuple[str, str, float] | None = None,
    goal: float = 0.8,
) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    what = result["command"]
    size = result["image_bytes"] / MIB
    print(f"{what}: {size:.0f} MiB in {result['layers']} layers, median of {result['rounds']}")
    mbps = result["image_bytes"] / MIB / result["clusterimage_s"]
    print(f"clusterimage {what}:  {result['clusterimage_s']:7.2f} s  ({mbps:.0f} MiB/s)")
    mbps = result["image_bytes"] / MIB / result["skopeo_s"]
    print(f"skopeo copy:        {result['skopeo_s']:7.2f} s  ({mbps:.0f} MiB/s)")
    print(f"ratio:              {result['ratio']:7.2f}    (goal <= {goal})")
    print(f"peak RSS:           {result['peak_rss_mib']:7.1f} MiB (goal <= 100)")
    if goal_extra is not None:
        key, label, goal = goal_extra
        print(f"{label}:  {result[key]:7.2f} s  (goal <= {goal} s)")
        print(
            f"  of which start-up: {result['startup_s']:.2f} s (`clusterimage version`); "
            f"the push itself (main() in a warm interpreter): {result['repush_in_process_s']:.3f} s"
        )


# -- save / load ------------------------------------------------------------------------------


def add_save_parser(sub: Any) -> None:
    parser = sub.add_parser("save", help="clusterimage save vs skopeo copy to oci-archive:")
    _add_bundle_options(parser)


def add_load_parser(sub: Any) -> None:
    parser = sub.add_parser("load", help="clusterimage load vs skopeo copy from oci-archive:")
    _add_bundle_options(parser)


def _add_bundle_options(parser: Any) -> None:
    _add_transfer_options(parser)
    parser.set_defaults(size=1024)


def _read_bytes(cli_args: list[str], env: dict[str, str]) -> int:
    """Bytes the command read through read(2) and friends (``rchar`` of /proc/self/io), run
    in-process: how many times the image's bytes were read."""
    code = (
        "import sys\n"
        "from clusterimage.cli.main import main\n"
        "try:\n"
        f"    main({cli_args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "for line in open('/proc/self/io'):\n"
        "    if line.startswith('rchar:'):\n"
        "        print(line.split()[1], file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"bench: in-process {cli_args} failed:\n{result.stderr}")
    return int(result.stderr.strip().splitlines()[-1])


def run_save(args: argparse.Namespace) -> int:
    return _run_bundle(args, "save")


def run_load(args: argparse.Namespace) -> int:
    return _run_bundle(args, "load")


def _run_bundle(args: argparse.Namespace, command: str) -> int:
    """``save``: the store's image to an oci-archive file (ours) against ``skopeo copy oci:STORE
    oci-archive:FILE``. ``load``: that archive into a fresh store against ``skopeo copy
    oci-archive:FILE oci:DIR``. Alternating order, medians, one untimed warm-up round."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{command}-"))
    try:
        home, ref, image = _transfer_setup(args, work)
        store = home / "store"
        archive = work / "bundle.tar"
        _timed(
            [sys.executable, "-m", "clusterimage", "save", "-o", str(archive), ref],
            _transfer_env(home),
        )
        ours: list[float] = []
        theirs: list[float] = []
        rss: list[int] = []
        for round_no in range(-args.warmup, args.rounds):
            timed = round_no >= 0
            order = ["ours", "skopeo"] if round_no % 2 == 0 else ["skopeo", "ours"]
            for tool in order:
                target = work / f"{tool}-{round_no}"
                if command == "save":
                    out = f"{target}.tar"
                    if tool == "ours":
                        argv = [
                            sys.executable, "-m", "clusterimage", "save", "-q", "-o", out, ref,
                            "--jobs", str(args.jobs),
                        ]  # fmt: skip
                        env = _transfer_env(home)
                    else:
                        argv = [
                            "skopeo",
                            "copy",
                            "--quiet",
                            f"oci:{store}:{ref}",
                            f"oci-archive:{out}",
                        ]
                        env = dict(os.environ)
                else:
                    out = str(target)
                    if tool == "ours":
                        argv = [
                            sys.executable, "-m", "clusterimage", "load", "-q", "-i", str(archive),
                            "--jobs", str(args.jobs),
                        ]  # fmt: skip
                        env = _transfer_env(target)
                    else:
                        argv = [
                            "skopeo",
                            "copy",
                            "--quiet",
                            f"oci-archive:{archive}",
                            f"oci:{out}:v1",
                        ]
                        env = dict(os.environ)
                elapsed, peak = _run_measured(argv, env)
                if timed:
                    (ours if tool == "ours" else theirs).append(elapsed)
                    if tool == "ours":
                        rss.append(peak)
                if command == "save":
                    Path(out).unlink(missing_ok=True)
                shutil.rmtree(target, ignore_errors=True)
        if command == "save":
            out = str(work / "counted.tar")
            read = _read_bytes(["save", "-q", "-o", out, ref], _transfer_env(home))
        else:
            read = _read_bytes(["load", "-q", "-i", str(archive)], _transfer_env(work / "counted"))
        result = {
            "command": command,
            "image_bytes": image["bytes"],
            "layers": args.layers,
            "rounds": args.rounds,
            "warmup_rounds": args.warmup,
            "clusterimage_s": _median(ours),
            "skopeo_s": _median(theirs),
            "ratio": _median(ours) / _median(theirs),
            "peak_rss_mib": max(rss) / MIB,
            "read_bytes": read,
            "reads_per_image_byte": read / image["bytes"],
            "all": {"clusterimage": ours, "skopeo": theirs},
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            _report_transfer(result, False, goal=0.6)
            reads = result["reads_per_image_byte"]
            print(f"bytes read:         {reads:7.2f}x the image (goal 1: each blob read once)")
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# -- build-images: a context whose registry/ is filled ------------------------------------------


def add_build_images_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "build-images", help="build embedding N images vs the sealos pipeline (skopeo + buildah)"
    )
    parser.add_argument("--images", type=int, default=8, help="images the manifests name")
    parser.add_argument("--image-mib", type=int, default=30, help="size of each image")
    parser.add_argument("--base-mib", type=int, default=8, help="the layer they all share")
    parser.add_argument("--binary-mib", type=int, default=20, help="a binary in the context")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def _bench_images(work: Path, args: argparse.Namespace, source: _BenchRegistry) -> list[str]:
    """Push ``--images`` images (a shared base layer + one of their own) to ``source``."""
    layout = work / "layout"
    base = os.urandom(args.base_mib * MIB)
    refs = []
    for n in range(args.images):
        own = os.urandom((args.image_mib - args.base_mib) * MIB)
        _write_layout_image(layout, f"app-{n}", [base, own])
        ref = f"{source.host}/bench/app-{n}:v1"
        _timed(
            [sys.executable, "-m", "clusterimage", "copy", "-q", f"oci:{layout}:app-{n}",
             f"docker://{ref}"],
            {**os.environ, "CLUSTERIMAGE_HOME": str(work / "seed-home")},
        )  # fmt: skip
        refs.append(ref)
    return refs


def _write_layout_image(layout: Path, name: str, layers: list[bytes]) -> None:
    """An image of uncompressed layers (each a one-file tar) in an OCI layout."""
    import hashlib
    import io
    import tarfile

    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    descriptors = []
    for index, content in enumerate(layers):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(f"layer{index}.bin")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        descriptors.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(buffer.getvalue())}
        )
    config = json.dumps(
        {"architecture": "amd64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]}}
    ).encode()  # fmt: skip
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
         "layers": descriptors}
    ).encode()  # fmt: skip
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
             "annotations": {"org.opencontainers.image.ref.name": name}}  # fmt: skip
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {
        "schemaVersion": 2, "manifests": []}  # fmt: skip
    index["manifests"].append(entry)
    index_path.write_text(json.dumps(index))


def _images_context(work: Path, refs: list[str], binary_mib: int, copy_all: bool = False) -> Path:
    """A context whose manifests name ``refs``, with a binary; its Kubefile copies each
    folder, or with ``copy_all`` the whole context (`COPY . .`, as half the corpus does)."""
    context = work / "context"
    (context / "manifests").mkdir(parents=True)
    (context / "bin").mkdir()
    (context / "bin" / "tool").write_bytes(os.urandom(binary_mib * MIB))
    lines = [f"# app {n}\n---\nspec:\n  image: {ref}\n" for n, ref in enumerate(refs)]
    (context / "manifests" / "apps.yaml").write_text("".join(lines))
    copies = (
        "COPY . .\n"
        if copy_all
        else "COPY manifests manifests\nCOPY bin bin\nCOPY registry registry\n"
    )
    (context / "Kubefile").write_text(
        f'FROM scratch\n{copies}CMD ["kubectl apply -f manifests/"]\n'
    )
    return context


def run_build_images(args: argparse.Namespace) -> int:
    """Ours: ``clusterimage build`` cold, unchanged, and after a manifest edit. The sealos
    pipeline, with the tools sealos uses, in the same run: a registry whose storage is the
    context's registry/, ``skopeo copy`` of each image in turn, ``buildah build`` (chroot
    isolation, its own storage) and ``buildah push`` to ``oci:``."""
    for tool in ("skopeo", "buildah"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-build-images-"))
    source = _BenchRegistry(work, access_log=True)
    try:
        refs = _bench_images(work, args, source)
        context = _images_context(work, refs, args.binary_mib)
        home = work / "home"
        env = {**os.environ, "CLUSTERIMAGE_HOME": str(home)}
        env.pop("CLUSTERIMAGE_STORE", None)
        build = [sys.executable, "-m", "clusterimage", "build", "-q", "-t", "bench/app:v1",
                 str(context)]  # fmt: skip
        before = source.blob_gets()
        cold, rss = _run_measured(build, env)
        cold_gets = source.blob_gets() - before
        rebuild, _ = _run_measured(build, env)
        rebuild_gets = source.blob_gets() - before - cold_gets
        manifest = context / "manifests" / "apps.yaml"
        manifest.write_text(manifest.read_text() + "# edited\n")
        edited, _ = _run_measured(build, env)
        edited_gets = source.blob_gets() - before - cold_gets - rebuild_gets
        pipeline = _sealos_pipeline(work, context, refs)
        result = {
            "command": "build-images",
            "images": args.images,
            "image_mib": args.image_mib,
            "binary_mib": args.binary_mib,
            "clusterimage_cold_s": cold,
            "clusterimage_peak_rss_mib": rss / MIB,
            "clusterimage_blob_downloads": cold_gets,
            "rebuild_s": rebuild,
            "rebuild_blob_downloads": rebuild_gets,
            "edited_rebuild_s": edited,
            "edited_rebuild_blob_downloads": edited_gets,
            "sealos_pipeline_s": pipeline["total"],
            "sealos_pipeline": pipeline,
            "ratio_cold": cold / pipeline["total"],
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"build-images: {args.images} images of {args.image_mib} MiB + a "
                  f"{args.binary_mib} MiB binary")  # fmt: skip
            print(f"clusterimage cold:    {cold:7.2f} s ({cold_gets} blob downloads)")
            parts = f"skopeo {pipeline['skopeo']:.2f} s, buildah {pipeline['buildah']:.2f} s"
            print(f"sealos pipeline:      {pipeline['total']:7.2f} s ({parts})")
            print(f"ratio:                {result['ratio_cold']:7.2f}    (goal <= 0.2)")
            goal = "goal <= 0.3 s"
            print(f"unchanged rebuild:    {rebuild:7.2f} s ({rebuild_gets} blob downloads; {goal})")
            print(f"after a manifest edit:{edited:7.2f} s ({edited_gets} blob downloads; goal 0)")
    finally:
        source.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            subprocess.run(
                ["umount", "-R", str(work / "buildah")], capture_output=True, check=False
            )
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _sealos_pipeline(work: Path, context: Path, refs: list[str]) -> dict[str, float]:
    """What ``sealos build`` does with the same tools, timed from its first step to its last."""
    copy = work / "sealos-context"
    shutil.copytree(context, copy)
    started = time.perf_counter()
    registry = _BenchRegistry(work, storage=copy / "registry")
    try:
        for ref in refs:
            path = ref.split("/", 1)[1]
            _timed(
                ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                 f"docker://{ref}", f"docker://{registry.host}/{path}"],
                dict(os.environ),
            )  # fmt: skip
    finally:
        registry.stop()
    skopeo = time.perf_counter() - started
    built = _buildah(work, copy, "gzip", layers=False)
    return {"skopeo": skopeo, "buildah": built["total"], "total": skopeo + built["total"]}


# -- runtime: serve, merge, unpack -----------------------------------------------------------


def add_serve_parser(sub: Any) -> None:
    parser = sub.add_parser("serve", help="registry serve vs docker-registry: 8 parallel pulls")
    parser.add_argument("--size", type=int, default=1024, metavar="MIB", help="total image bytes")
    parser.add_argument("--clients", type=int, default=8, help="parallel pulls")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def add_merge_parser(sub: Any) -> None:
    parser = sub.add_parser("merge", help="clusterimage merge of two large images")
    parser.add_argument("--size", type=int, default=1024, metavar="MIB", help="each image")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def add_unpack_parser(sub: Any) -> None:
    parser = sub.add_parser("unpack", help="clusterimage unpack vs umoci unpack")
    parser.add_argument("--size", type=int, default=1024, metavar="MIB", help="image size")
    parser.add_argument("--layers", type=int, default=4, help="number of layers")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def _print_or_json(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))


def run_serve(args: argparse.Namespace) -> int:
    """``--clients`` pulls at once (curl: manifest, config, layers to /dev/null, so the client
    is not what is measured), of the images of one registry folder, served by ``clusterimage
    registry serve`` and by docker-registry on the same folder, alternating, in one run."""
    if shutil.which("curl") is None:
        sys.exit("bench: curl is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        home = work / "home"
        env = {**os.environ, "CLUSTERIMAGE_HOME": str(home)}
        per_image = max(1, args.size // args.clients)
        folder = work / "registry"
        for n in range(args.clients):
            store = work / f"image-{n}"
            _write_bench_image(store, f"app-{n}", per_image, 2)
            _timed([sys.executable, "-m", "clusterimage", "copy", f"oci:{store}:app-{n}",
                    f"registry-dir:{folder}:bench/app-{n}:v1"], env)  # fmt: skip
            shutil.rmtree(store)
        total = sum(p.stat().st_size for p in folder.rglob("data"))
        ours: list[float] = []
        theirs: list[float] = []
        for round_no in range(args.rounds):
            for tool in ["ours", "stock"] if round_no % 2 == 0 else ["stock", "ours"]:
                if tool == "ours":
                    port = _free_port()
                    host = f"127.0.0.1:{port}"
                    server = subprocess.Popen(
                        [sys.executable, "-m", "clusterimage", "registry", "serve", str(folder),
                         "--address", host],
                        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    _wait_http(host)
                    try:
                        ours.append(_parallel_pulls(host, folder, args.clients))
                    finally:
                        server.terminate()
                        server.wait()
                else:
                    stock = _BenchRegistry(work, storage=folder)
                    try:
                        theirs.append(_parallel_pulls(stock.host, folder, args.clients))
                    finally:
                        stock.stop()
        result = {
            "command": "serve",
            "bytes": total,
            "clients": args.clients,
            "rounds": args.rounds,
            "clusterimage_s": _median(ours),
            "docker_registry_s": _median(theirs),
            "clusterimage_mib_s": total / MIB / _median(ours),
            "docker_registry_mib_s": total / MIB / _median(theirs),
            "throughput_ratio": _median(theirs) / _median(ours),
            "all": {"clusterimage": ours, "docker_registry": theirs},
        }
        _print_or_json(result, args.json, [
            f"serve: {total / MIB:.0f} MiB, {args.clients} parallel pulls, median of {args.rounds}",
            f"registry serve:   {_median(ours):6.2f} s ({total / MIB / _median(ours):.0f} MiB/s)",
            f"docker-registry:  {_median(theirs):6.2f} s "
            f"({total / MIB / _median(theirs):.0f} MiB/s)",
            f"throughput ratio: {result['throughput_ratio']:6.2f}    (goal >= 1.0)",
        ])  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(host: str) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
    sys.exit(f"bench: nothing answers on {host}")


def _parallel_pulls(host: str, folder: Path, clients: int) -> float:
    """Seconds for ``clients`` curl pipelines, each pulling one image's manifest and blobs."""
    scripts = []
    accept = "application/vnd.oci.image.manifest.v1+json"
    for n in range(clients):
        name = f"bench/app-{n}"
        raw = subprocess.run(
            ["curl", "-sf", "-H", f"Accept: {accept}", f"http://{host}/v2/{name}/manifests/v1"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        manifest = json.loads(raw)
        digests = [manifest["config"]["digest"], *(x["digest"] for x in manifest["layers"])]
        urls = " ".join(f"http://{host}/v2/{name}/blobs/{d}" for d in digests)
        scripts.append(f"curl -sf -o /dev/null -H 'Accept: {accept}' "
                       f"http://{host}/v2/{name}/manifests/v1 && "
                       f"for u in {urls}; do curl -sf -o /dev/null $u || exit 1; done")  # fmt: skip
    start = time.perf_counter()
    running = [subprocess.Popen(["sh", "-c", script]) for script in scripts]
    for process in running:
        if process.wait() != 0:
            sys.exit("bench: a pull failed")
    return time.perf_counter() - start


def run_merge(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-merge-"))
    try:
        home = work / "home"
        env = _transfer_env(home)
        _write_bench_image(home / "store", "localhost/bench/a:v1", args.size, 4)
        _write_bench_image(work / "b", "localhost/bench/b:v1", args.size, 4)
        _timed(
            [
                sys.executable,
                "-m",
                "clusterimage",
                "pull",
                "-q",
                f"oci:{work / 'b'}:localhost/bench/b:v1",
            ],
            env,
        )
        argv = [sys.executable, "-m", "clusterimage", "merge", "-q", "-t", "localhost/bench/ab:v1",
                "localhost/bench/a:v1", "localhost/bench/b:v1"]  # fmt: skip
        elapsed, _ = _run_measured(argv, env)
        inner = _in_process(argv[3:], env)
        result = {"command": "merge", "image_mib": args.size, "clusterimage_s": elapsed,
                  "in_process_s": inner, "startup_s": _startup(env)}  # fmt: skip
        _print_or_json(result, args.json, [
            f"merge: two images of {args.size} MiB",
            f"clusterimage merge: {elapsed:6.3f} s (goal <= 0.2 s); warm interpreter {inner:.3f} s",
        ])  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run_unpack(args: argparse.Namespace) -> int:
    """``clusterimage unpack`` against ``umoci unpack --rootless`` of the same image (the store is
    an OCI layout umoci reads), alternating, medians, each into a fresh folder."""
    umoci = shutil.which("umoci")
    if umoci is None:
        sys.exit("bench: umoci is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-unpack-"))
    try:
        home = work / "home"
        env = _transfer_env(home)
        ref = "localhost/bench/app:v1"
        image = _write_bench_image(home / "store", ref, args.size, args.layers)
        ours: list[float] = []
        theirs: list[float] = []
        rss: list[int] = []
        for round_no in range(-1, args.rounds):
            for tool in ["ours", "umoci"] if round_no % 2 == 0 else ["umoci", "ours"]:
                target = work / f"{tool}-{round_no}"
                if tool == "ours":
                    elapsed, peak = _run_measured(
                        [sys.executable, "-m", "clusterimage", "unpack", "-q", ref, str(target)],
                        env,
                    )
                    if round_no >= 0:
                        ours.append(elapsed)
                        rss.append(peak)
                else:
                    elapsed, _ = _run_measured(
                        [
                            umoci,
                            "unpack",
                            "--rootless",
                            "--image",
                            f"{home / 'store'}:{ref}",
                            str(target),
                        ],
                        dict(os.environ),
                    )
                    if round_no >= 0:
                        theirs.append(elapsed)
                shutil.rmtree(target, ignore_errors=True)
        result = {
            "command": "unpack", "image_bytes": image["bytes"], "layers": args.layers,
            "rounds": args.rounds, "clusterimage_s": _median(ours), "umoci_s": _median(theirs),
            "ratio": _median(ours) / _median(theirs), "peak_rss_mib": max(rss) / MIB,
            "all": {"clusterimage": ours, "umoci": theirs},
        }  # fmt: skip
        _print_or_json(result, args.json, [
            f"unpack: {image['bytes'] / MIB:.0f} MiB, {args.layers} layers, "
            f"median of {args.rounds}",
            f"clusterimage unpack: {_median(ours):6.2f} s (peak RSS {max(rss) / MIB:.0f} MiB)",
            f"umoci unpack:        {result['umoci_s']:6.2f} s",
            f"ratio:               {result['ratio']:6.2f}    (goal <= 0.5)",
        ])  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# -- delta: v1 -> v2 of a cluster image as a delta bundle vs a full save ------------------------


def add_delta_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "delta", help="save --delta-from v1 of a v2 that changes one embedded image vs a full save"
    )
    parser.add_argument("--images", type=int, default=8, help="images the manifests name")
    parser.add_argument("--image-mib", type=int, default=30, help="size of each image")
    parser.add_argument("--base-mib", type=int, default=8, help="the layer they all share")
    parser.add_argument("--binary-mib", type=int, default=20, help="a binary in the context")
    parser.add_argument(
        "--copy-all", action="store_true", help="the Kubefile copies the context with COPY . ."
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (medians)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


def _shared_base(layout: Path) -> bytes:
    """The base layer's content the images of :func:`_bench_images` share (the replaced
    image shares it too, as a new version of an image does)."""
    import tarfile

    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    with tarfile.open(blobs / manifest["layers"][0]["digest"].split(":")[1]) as tar:
        member = tar.extractfile("layer0.bin")
        assert member is not None
        return member.read()


def run_delta(args: argparse.Namespace) -> int:
    """v1 and v2 of a cluster image embedding ``--images`` images, v2 with one image replaced
    and one manifest file edited, both built; then, timed (medians of ``--rounds``): a full
    ``save`` of v2, ``save --delta-from`` v1's bundle and from v1's inventory, and ``load`` of
    the full v2 and of the delta into a store that holds v1. Sizes of both bundles and the
    ratios. Goal: the delta under 1/6 of the full bundle."""
    if args.images < 2:
        sys.exit("bench: delta needs --images 2 or more")
    work = Path(tempfile.mkdtemp(prefix="bench-delta-"))
    source = _BenchRegistry(work)
    try:
        refs = _bench_images(work, args, source)
        changed = len(refs) // 2
        own = os.urandom((args.image_mib - args.base_mib) * MIB)
        _write_layout_image(work / "layout-v2", "changed", [_shared_base(work / "layout"), own])
        new_ref = refs[changed].rpartition(":")[0] + ":v2"
        _timed(
            [sys.executable, "-m", "clusterimage", "copy", "-q",
             f"oci:{work / 'layout-v2'}:changed", f"docker://{new_ref}"],
            {**os.environ, "CLUSTERIMAGE_HOME": str(work / "seed-home")},
        )  # fmt: skip
        v1_context = _images_context(work / "v1", refs, args.binary_mib, args.copy_all)
        v2_context = work / "v2" / "context"
        shutil.copytree(v1_context, v2_context)
        apps = v2_context / "manifests" / "apps.yaml"
        apps.write_text(apps.read_text().replace(refs[changed], new_ref))
        home = work / "home"
        env = _transfer_env(home)
        cli = [sys.executable, "-m", "clusterimage"]
        build_s = []
        for version, context in (("v1", v1_context), ("v2", v2_context)):
            elapsed, _ = _run_measured(
                [*cli, "build", "-q", "-t", f"bench/app:{version}", str(context)], env
            )
            build_s.append(elapsed)
        bundles = work / "bundles"
        bundles.mkdir()
        v1, full, delta = bundles / "v1.tar", bundles / "v2.tar", bundles / "v2-delta.tar"
        _run_measured([*cli, "save", "-q", "-o", str(v1), "bench/app:v1"], env)
        inventory = bundles / "v1.inventory.json"
        start = time.perf_counter()
        with open(inventory, "wb") as out:
            subprocess.run(
                [*cli, "bundle", "inventory", "-q", str(v1)], env=env, stdout=out, check=True
            )
        inventory_s = time.perf_counter() - start
        runs: dict[str, list[float]] = {
            "full_save": [], "delta_save": [], "delta_save_inventory": [],
            "full_load": [], "delta_load": [],
        }  # fmt: skip
        for round_ in range(args.rounds):
            for path in (full, delta):
                path.unlink(missing_ok=True)
            runs["full_save"].append(
                _run_measured([*cli, "save", "-q", "-o", str(full), "bench/app:v2"], env)[0]
            )
            runs["delta_save"].append(
                _run_measured(
                    [*cli, "save", "-q", "-o", str(delta), "--delta-from", str(v1),
                     "bench/app:v2"], env,
                )[0]
            )  # fmt: skip
            delta.unlink()
            runs["delta_save_inventory"].append(
                _run_measured(
                    [*cli, "save", "-q", "-o", str(delta), "--delta-from", str(inventory),
                     "bench/app:v2"], env,
                )[0]
            )  # fmt: skip
            for kind, bundle in (("full_load", full), ("delta_load", delta)):
                site = _transfer_env(work / f"site-{kind}-{round_}")
                _run_measured([*cli, "load", "-q", "-i", str(v1)], site)
                runs[kind].append(_run_measured([*cli, "load", "-q", "-i", str(bundle)], site)[0])
                shutil.rmtree(work / f"site-{kind}-{round_}", ignore_errors=True)
        medians = {name: _median(values) for name, values in runs.items()}
        full_bytes, delta_bytes = full.stat().st_size, delta.stat().st_size
        result = {
            "command": "delta",
            "copy_all": args.copy_all,
            "images": args.images,
            "image_mib": args.image_mib,
            "rounds": args.rounds,
            "build_v1_s": build_s[0],
            "build_v2_s": build_s[1],
            "inventory_s": inventory_s,
            "inventory_bytes": inventory.stat().st_size,
            "full_bytes": full_bytes,
            "delta_bytes": delta_bytes,
            "size_ratio": delta_bytes / full_bytes,
            **{f"{name}_s": value for name, value in medians.items()},
            "save_ratio": medians["delta_save"] / medians["full_save"],
            "load_ratio": medians["delta_load"] / medians["full_load"],
            "all": runs,
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"delta: {args.images} images of {args.image_mib} MiB, v2 replaces one and "
                  f"edits one manifest file; medians of {args.rounds} rounds")  # fmt: skip
            print(f"full bundle:          {full_bytes / MIB:8.2f} MiB")
            print(f"delta bundle:         {delta_bytes / MIB:8.2f} MiB "
                  f"(ratio {result['size_ratio']:.3f}; goal < {1 / 6:.3f})")  # fmt: skip
            print(f"inventory of v1:      {result['inventory_bytes']:8d} bytes "
                  f"in {inventory_s:.2f} s")  # fmt: skip
            print(f"full save:            {medians['full_save']:8.2f} s")
            print(f"delta save:           {medians['delta_save']:8.2f} s "
                  f"(ratio {result['save_ratio']:.2f}; from the inventory "
                  f"{medians['delta_save_inventory']:.2f} s)")  # fmt: skip
            print(f"load full on v1:      {medians['full_load']:8.2f} s")
            print(f"load delta on v1:     {medians['delta_load']:8.2f} s "
                  f"(ratio {result['load_ratio']:.2f})")  # fmt: skip
    finally:
        source.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# -- registry of subcommands ---------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "build": (add_build_parser, run_build),
    "push": (add_push_parser, run_push),
    "pull": (add_pull_parser, run_pull),
    "save": (add_save_parser, run_save),
    "load": (add_load_parser, run_load),
    "build-images": (add_build_images_parser, run_build_images),
    "serve": (add_serve_parser, run_serve),
    "merge": (add_merge_parser, run_merge),
    "unpack": (add_unpack_parser, run_unpack),
    "delta": (add_delta_parser, run_delta),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
    args = parser.parse_args(argv)
    _byte_compile()
    return COMMANDS[args.command][1](args)


def _byte_compile() -> None:
    # Measure the CLI as installed: pip byte-compiles a regular install, but an editable one
    # compiles on each start while PYTHONDONTWRITEBYTECODE is set (~30 ms per command).
    import compileall

    package = Path(__file__).resolve().parent.parent / "clusterimage"
    compileall.compile_dir(package, quiet=1)


if __name__ == "__main__":
    sys.exit(main())
