"""The corpus through the command line: every Kubefile passes ``clusterimage build --dry-run``
(exit 0, the plan on stdout is the one ``plan_build`` makes, nothing written), and corpus folders
whose context is complete build with ``clusterimage build``, their files read back with umoci.

Which complete contexts are built is decided by a rule, so the choice follows the corpus: for each
(image type, Kubefile name) pair, the context with the most bytes and the one with the most files,
plus the first six others in the order of the sha256 of their path (about 12 builds, ~10 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusterimage.build.plan import REGISTRY_DIR, BuildPlan, CopyStep, plan_build
from clusterimage.cli import main as cli_main
from tests.conftest import require_tool, run_cli, run_tool
from tests.integration.test_corpus_dryrun import (
    CORPUS,
    EXPECTED_COUNT,
    KUBEFILES,
    ROOTFS_LABELS,
)

pytestmark = pytest.mark.integration


def _label_args(relative: Path) -> list[str]:
    if relative.parts[0] != "runtime":
        return []
    return [arg for key, value in ROOTFS_LABELS.items() for arg in ("--label", f"{key}={value}")]


def _labels(relative: Path) -> dict[str, str]:
    return dict(ROOTFS_LABELS) if relative.parts[0] == "runtime" else {}


def _dry_run_argv(kubefile: Path) -> list[str]:
    relative = kubefile.relative_to(CORPUS)
    # Discovery over the corpus is tests/integration/test_discovery_corpus.py's: here the plan.
    return ["build", "--dry-run", "--json", "--save-image=false", *_label_args(relative),
            "-f", str(kubefile), str(kubefile.parent)]  # fmt: skip


def _main_in_process(argv: list[str]) -> tuple[int, str, str]:
    """Run the console script's entry point, ``clusterimage.cli.main:main``, in this process:
    the whole command line path (options, the dry-run branch, JSON out, error lines) without a
    0.2 s interpreter start per Kubefile."""
    out, err = io.StringIO(), io.StringIO()
    registered = list(cli_main.app.registered_commands)
    status: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli_main.main(argv)
    except SystemExit as exc:
        status = exc.code
    finally:
        cli_main.app.registered_commands[:] = registered  # main() registers its command again
    return (status if isinstance(status, int) else 1), out.getvalue(), err.getvalue()


def _check_dry_run(kubefile: Path, status: int, stdout: str, stderr: str) -> str | None:
    relative = kubefile.relative_to(CORPUS)
    if status != 0 or "Traceback" in stderr:
        return f"{relative}: exit {status}: {stderr.strip()}"
    expected = plan_build(kubefile.parent, kubefile, labels=_labels(relative)).to_dict()
    if json.loads(stdout) != json.loads(json.dumps(expected)):
        return f"{relative}: the plan printed differs from plan_build's"
    return None


def test_every_corpus_kubefile_passes_cli_dry_run(ci_home: Path) -> None:
    if len(KUBEFILES) != EXPECTED_COUNT:
        pytest.fail(f"expected {EXPECTED_COUNT} Kubefiles under {CORPUS}, found {len(KUBEFILES)}")
    failures = []
    warned = 0
    for kubefile in KUBEFILES:
        status, stdout, stderr = _main_in_process(_dry_run_argv(kubefile))
        failure = _check_dry_run(kubefile, status, stdout, stderr)
        if failure is None:
            warned += bool(json.loads(stdout)["missingSources"])
        else:
            failures.append(failure)
    assert not failures, "\n".join(failures)
    assert 0 < warned < EXPECTED_COUNT  # incomplete contexts are warnings, not failures
    assert list(ci_home.iterdir()) == []  # a dry run writes nothing


def test_corpus_dry_run_in_a_real_process(ci_home: Path) -> None:
    # Every 16th Kubefile and every rootfs one, each in its own `python -m clusterimage`.
    sample = [k for i, k in enumerate(KUBEFILES) if i % 16 == 0 or "runtime" in k.parts]
    failures = []
    for kubefile in sample:
        result = run_cli(*_dry_run_argv(kubefile), check=False)
        failure = _check_dry_run(kubefile, result.returncode, result.stdout, result.stderr)
        if failure is not None:
            failures.append(failure)
    assert not failures, "\n".join(failures)
    assert len(sample) >= 16
    assert list(ci_home.iterdir()) == []


# -- complete contexts build ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    kubefile: Path
    plan: BuildPlan
    size: int
    files: int

    @property
    def relative(self) -> Path:
        return self.kubefile.relative_to(CORPUS)


def _complete_contexts() -> list[_Context]:
    found = []
    for kubefile in KUBEFILES:
        plan = plan_build(kubefile.parent, kubefile, labels=_labels(kubefile.relative_to(CORPUS)))
        if plan.missing_sources or plan.needs_run:
            continue
        paths = [p for p in kubefile.parent.rglob("*") if p.is_file()]
        found.append(_Context(kubefile, plan, sum(p.stat().st_size for p in paths), len(paths)))
    return found


_SPREAD = 6


def _chosen(contexts: list[_Context]) -> list[_Context]:
    groups: dict[tuple[str, str], list[_Context]] = {}
    for context in contexts:
        groups.setdefault((context.plan.image_type, context.kubefile.name), []).append(context)
    chosen: dict[Path, _Context] = {}
    for members in groups.values():
        for key in (lambda c: (c.size, str(c.kubefile)), lambda c: (c.files, str(c.kubefile))):
            pick = max(members, key=key)
            chosen[pick.kubefile] = pick
    # and a spread of ordinary ones: the first few in the order of their path's sha256
    by_hash = sorted(contexts, key=lambda c: hashlib.sha256(bytes(c.relative)).hexdigest())
    for context in [c for c in by_hash if c.kubefile not in chosen][:_SPREAD]:
        chosen[context.kubefile] = context
    return sorted(chosen.values(), key=lambda c: str(c.kubefile))


def _expected_files(plan: BuildPlan) -> dict[str, str]:
    """Image path -> sha256 of each context file the Kubefile's COPY steps put in the image,
    following Docker's rules: a directory source copies its contents into the destination, a
    file goes to the destination itself unless that ends with ``/``."""
    context = Path(plan.context)
    out: dict[str, str] = {}
    for stage in plan.stages_to_build():
        for step in stage.steps:
            if not isinstance(step, CopyStep) or step.from_stage is not None or step.from_image:
                continue
            dest = step.dest_path.strip("/")
            for source in step.context_paths:
                path = context / source
                if not path.exists():
                    assert source.split("/")[0] == REGISTRY_DIR, source  # generated, overlaid
                    continue
                if path.is_dir():
                    for file in (p for p in path.rglob("*") if p.is_file()):
                        inside = file.relative_to(path).as_posix()
                        out[f"{dest}/{inside}".lstrip("/")] = _sha256(file)
                elif step.dest_path.endswith("/"):
                    out[f"{dest}/{path.name}".lstrip("/")] = _sha256(path)
                else:
                    out[dest] = _sha256(path)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}  # fmt: skip


def _unpacked_files(rootfs: Path) -> dict[str, str]:
    return {
        p.relative_to(rootfs).as_posix(): _sha256(p)
        for p in rootfs.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_complete_corpus_contexts_build(tmp_path: Path, ci_home: Path) -> None:
    umoci = require_tool("umoci")
    complete = _complete_contexts()
    assert len(complete) > EXPECTED_COUNT // 2  # most corpus contexts are complete as copied
    chosen = _chosen(complete)
    assert {c.plan.image_type for c in chosen} == {"application", "rootfs", "patch"}
    assert {c.kubefile.name for c in chosen} >= {"Kubefile", "Dockerfile"}
    assert len(chosen) >= 10
    before = {c.kubefile: _listing(c.kubefile.parent) for c in chosen}
    store = ci_home / "store"
    for number, context in enumerate(chosen):
        tag = f"localhost/corpus/c{number}:v1"
        # The corpus names hundreds of real images; what is built here is its files.
        argv = ["build", "-q", "--save-image=false", "-t", tag, *_label_args(context.relative)]
        result = run_cli(*argv, "-f", context.kubefile, context.kubefile.parent)
        digest = result.stdout.strip()
        assert digest.startswith("sha256:") and result.stderr == "", context.relative

        inspected = json.loads(run_cli("inspect", tag).stdout)
        oci = context.plan.config.to_oci()
        assert inspected["Labels"] == oci.get("Labels", {}), context.relative
        assert inspected["Config"]["Env"] == oci["Env"], context.relative
        copies = [s for s in context.plan.target_stage.steps if isinstance(s, CopyStep)]
        assert len(inspected["RootFS"]["Layers"]) == len(copies), context.relative

        bundle = tmp_path / f"bundle-{number}"
        run_tool([umoci, "unpack", "--rootless", "--image", f"{store}:{tag}", str(bundle)])
        rootfs = bundle / "rootfs"
        expected = _expected_files(context.plan)
        assert expected, context.relative
        assert _unpacked_files(rootfs) == expected, context.relative
        if context.plan.copies_registry:
            assert (rootfs / REGISTRY_DIR).is_dir(), context.relative
    fsck = run_cli("fsck", "--json")
    assert json.loads(fsck.stdout)["images"] == len(chosen)
    # The corpus folders are only read.
    assert {c.kubefile: _listing(c.kubefile.parent) for c in chosen} == before
