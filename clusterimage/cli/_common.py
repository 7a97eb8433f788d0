"""What every command shares: global state, the store location, output helpers, progress."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from clusterimage.paths import default_store
from clusterimage.paths import home_dir as home_dir  # re-exported for the commands

# The flags most commands share, spelled once.
Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Print only the digest of each image: no progress, no status lines."
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from clusterimage.copy import CopyEvent


class _LazyConsole:
    # Importing rich costs ~12 ms, a tenth of an unchanged re-push; most runs never print
    # through it, so the console is made on first use.
    _console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    @property
    def in_use(self) -> bool:
        return self._console is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


_stderr = _LazyConsole()


stderr = cast("Console", _stderr)


@dataclass
class State:
    debug: bool = False
    store: Path | None = None


STATE = State()


def store_dir() -> Path:
    """``--store DIR`` if given, else ``$CLUSTERIMAGE_STORE``, else ``<home>/store``."""
    return STATE.store if STATE.store is not None else default_store()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """``text`` as one printable line: messages quote registries' replies and files' contents,
    so line breaks become spaces and other control characters (terminal escapes) ``\\xNN``."""
    text = _LINE_BREAKS.sub(" ", text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def _line(text: str) -> None:
    """One line on stderr, as it is: no markup, never wrapped (a log is no terminal).

    Through rich only when rich is already drawing (progress bars), so the line lands above
    them; otherwise written directly, which spares a command that only reports importing rich
    (~12 ms, for an `error:` line).
    """
    if _stderr.in_use:
        stderr.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")


def error(message: str) -> None:
    """The ``error: ...`` line of a failure, on stderr (without the ``[Errno N]`` that Python's
    OSError messages carry: the words after it say the same to a person)."""
    _line(f"error: {one_line(_ERRNO.sub('', message))}")


def info(message: str) -> None:
    """A status line on stderr (never on stdout, which carries results)."""
    _line(message)


def warn(message: str) -> None:
    if not interactive():
        _line(f"warning: {message}")
        return
    from rich.markup import escape

    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def interactive() -> bool:
    return sys.stderr.isatty()


class TransferTotals:
    """The overall amount of a copy, from its events: ``total`` is the bytes this run transfers
    (every planned or started blob, less what the destination already has and what a resumed
    write kept), ``done`` the part of it transferred so far.

    Sizes come from the manifests ("blob-planned" before any transfer), so the total is known
    early; a blob first seen when it starts is added then. A blob is counted once however many
    images of the copy share it.
    """

    def __init__(self) -> None:
        self._size: dict[str, int] = {}  # counted blobs: their size
        self._base: dict[str, int] = {}  # bytes a resumed write already had (not transferred)
        self._done: dict[str, int] = {}  # bytes of each blob so far (resumed bytes included)
        self._moving: set[str] = set()  # blobs whose transfer has started
        self.total = 0
        self.done = 0

    def feed(self, event: CopyEvent) -> None:
        key = str(event.descriptor.digest)
        size = max(event.descriptor.size, 0)
        if key not in self._size:
            if event.kind in ("blob-skipped", "blob-mounted"):
                return  # nothing travels
            self._size[key] = size
            self._base[key] = 0
            self._done[key] = 0
            self.total += size
        if event.kind == "blob-planned":
            return
        if event.kind in ("blob-skipped", "blob-mounted"):
            if key not in self._moving:  # planned, then found at the destination
                self.total -= self._size.pop(key) - self._base.pop(key)
                self.done -= self._done.pop(key)
            return  # (else another image of the copy brought it: it counts as transferred)
        if key not in self._moving:
            self._moving.add(key)
            # A resumed write starts at the bytes kept from last time: not part of this run.
            base = min(max(event.done, 0), self._size[key])
            self._base[key] = base
            self.total -= base
        done = size if event.kind == "blob-done" else event.done
        done = min(max(done - self._base[key], 0), self._size[key] - self._base[key])
        self.done += done - self._done[key]
        self._done[key] = done


class CopyProgress:
    """Rich progress bars for a copy, on stderr, only when stderr is a terminal: a "total" row
    (bytes done of all, rate, time left) above one row per blob."""

    def __init__(self, enabled: bool | None = None, *, console: Console | None = None) -> None:
        self._enabled = interactive() if enabled is None else enabled
        self._console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._overall: TaskID | None = None
        self.totals = TransferTotals()

    def __enter__(self) -> CopyProgress:
        if self._enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self._console or _stderr.get(),
                transient=False,
            )
            # Unknown total until the first blob is planned (an indeterminate bar meanwhile).
            self._overall = self._progress.add_task("total", total=None)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: CopyEvent) -> None:
        if self._progress is None:
            return
        self.totals.feed(event)
        assert self._overall is not None
        self._progress.update(self._overall, total=self.totals.total, completed=self.totals.done)
        if event.kind == "blob-planned":
            return  # its row appears when its transfer starts (or it is found)
        key = str(event.descriptor.digest)
        task = self._tasks.get(key)
        if task is None:
            labels = {"blob-skipped": "exists ", "blob-mounted": "mounted"}
            label = labels.get(event.kind, "copying")
            task = self._progress.add_task(
                f"{label} {event.descriptor.digest.short}", total=event.descriptor.size
            )
            self._tasks[key] = task
        self._progress.update(task, completed=event.done)


# -- shell completion of stored image names -------------------------------------------------------


def StoredImage(**kwargs: Any) -> Any:  # CamelCase: it stands where typer.Argument does
    """``typer.Argument(...)`` for an argument that names images in the store: the same
    options, plus completion of the names stored (``complete_images``)."""
    return typer.Argument(autocompletion=complete_images, **kwargs)


def complete_images(ctx: typer.Context, incomplete: str) -> list[str]:
    """Image names in the store for shell completion (``autocompletion=`` of IMAGE arguments).

    Reads index.json only (no manifest, no lock: a TAB must answer at once), honours a
    ``--store`` given earlier on the line, and never fails: any problem means no completions.
    """
    from clusterimage.oci.descriptor import REF_NAME_ANNOTATION
    from clusterimage.store.layout import read_index_bytes

    try:
        chosen = ctx.find_root().params.get("store")
        root = Path(chosen) if chosen else store_dir()
        # Bounded, and never from a FIFO (StoreError): a TAB must not hang the shell.
        data = json.loads(read_index_bytes(root / "index.json"))
        names = [
            entry["annotations"][REF_NAME_ANNOTATION]
            for entry in data["manifests"]
            if isinstance(entry.get("annotations"), dict)
            and isinstance(entry["annotations"].get(REF_NAME_ANNOTATION), str)
        ]
        return image_name_completions(names, incomplete)
    except Exception:  # a completion never breaks the user's shell: no answer instead
        return []


def image_name_completions(names: list[str], incomplete: str) -> list[str]:
    """Each name, and its short form where that finds the same image (``myapp:v1`` for
    ``localhost/myapp:v1``, ``nginx:1.25`` for ``docker.io/library/nginx:1.25`` unless a
    ``localhost/nginx:1.25`` is stored too, which the short name would find first). With
    nothing typed yet, one form per image name: the shortest."""
    held = set(names)
    out: list[str] = []
    for name in names:
        short = _short_form(name, held)
        forms = [short, name] if short else [name]
        if not incomplete:
            out.append(forms[0])
        else:
            out.extend(form for form in forms if form.startswith(incomplete))
    return list(dict.fromkeys(out))


def _short_form(name: str, held: set[str]) -> str | None:
    for prefix in ("localhost/", "docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            short = name[len(prefix) :]
            break
    else:
        return None
    from clusterimage.oci.reference import is_short_name

    if not is_short_name(short):
        return None  # the short form would name a registry
    slash = "/" in short
    if prefix != "localhost/" and f"localhost/{short}" in held:
        return None  # localhost/SHORT is looked up first
    if prefix == "docker.io/" and not slash:
        return None
    return short
