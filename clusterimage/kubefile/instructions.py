"""The instruction model: one frozen dataclass per Kubefile instruction we support.

The parser (:mod:`clusterimage.kubefile.parser`) fills these with the words as written (quotes,
``$V`` and escapes still in place); :mod:`clusterimage.kubefile.stages` returns copies with every
build-time expansion done. Each instruction knows its :class:`Location`, so any later error can
name ``file:line``.

Supported: FROM, COPY, ADD, ENV, LABEL, ARG, CMD, ENTRYPOINT, RUN, WORKDIR, USER, MAINTAINER,
EXPOSE, VOLUME, STOPSIGNAL. HEALTHCHECK, ONBUILD and SHELL are rejected by the parser with a
clear error (they only exist in Docker's image format, not in OCI's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from clusterimage.errors import KubefileError


@dataclass(frozen=True)
class Location:
    """Where an instruction is: the Kubefile path as the user named it, first and last line."""

    path: str
    line: int
    end_line: int

    def error(self, message: str) -> KubefileError:
        return KubefileError(message, self.path, self.line)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Instruction:
    """Base of every instruction; ``original`` is the source text, continuations joined."""

    keyword: ClassVar[str] = ""
    location: Location
    original: str

    def error(self, message: str) -> KubefileError:
        return self.location.error(message)


@dataclass(frozen=True)
class From(Instruction):
    """``FROM [--platform=P] image [AS name]``; ``name`` is lower-cased as Docker does."""

    keyword: ClassVar[str] = "FROM"
    image: str
    name: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class InlineFile:
    """A heredoc body: ``COPY <<EOF /dest`` or ``RUN <<EOF``.

    ``expand`` is false when the delimiter was quoted (``<<"EOF"``): the body is then literal.
    ``chomp`` is ``<<-EOF``: leading tabs are stripped from each line.
    """

    name: str
    content: str
    expand: bool = True
    chomp: bool = False

    def data(self) -> str:
        if not self.chomp:
            return self.content
        return "".join(line.lstrip("\t") for line in self.content.splitlines(keepends=True))


@dataclass(frozen=True)
class Copy(Instruction):
    """``COPY`` / ``ADD`` (``is_add``) with its flags; ``sources`` excludes heredoc sources."""

    keyword: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    is_add: bool = False
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    checksum: str | None = None
    keep_git_dir: bool = False
    json: bool = False
    inline_files: tuple[InlineFile, ...] = ()

    @property
    def name(self) -> str:
        return "ADD" if self.is_add else "COPY"


@dataclass(frozen=True)
class Env(Instruction):
    """``ENV K=V ...`` or the legacy ``ENV K V``; pairs in order."""

    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Label(Instruction):
    """``LABEL K=V ...`` or the legacy ``LABEL K V``; pairs in order."""

    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ArgDecl:
    """One name of an ARG instruction; ``default`` is None for ``ARG NAME``."""

    name: str
    default: str | None = None


@dataclass(frozen=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDecl, ...]


@dataclass(frozen=True)
class _CommandLine(Instruction):
    """CMD / ENTRYPOINT / RUN: exec form (``args`` as given) or shell form (one string)."""

    args: tuple[str, ...]
    shell_form: bool

    def argv(self, shell: tuple[str, ...] = ("/bin/sh", "-c")) -> tuple[str, ...]:
        """The command as it ends up in the config: shell form is ``/bin/sh -c "<text>"``."""
        if self.shell_form:
            return (*shell, " ".join(self.args))
        return self.args


@dataclass(frozen=True)
class Cmd(_CommandLine):
    keyword: ClassVar[str] = "CMD"


@dataclass(frozen=True)
class Entrypoint(_CommandLine):
    keyword: ClassVar[str] = "ENTRYPOINT"


@dataclass(frozen=True)
class Run(_CommandLine):
    """``RUN`` with BuildKit's ``--mount`` / ``--network`` / ``--security`` flags kept raw."""

    keyword: ClassVar[str] = "RUN"
    mounts: tuple[str, ...] = ()
    network: str | None = None
    security: str | None = None
    inline_files: tuple[InlineFile, ...] = field(default=())


@dataclass(frozen=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True)
class Maintainer(Instruction):
    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@dataclass(frozen=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True)
class Stage:
    """One build stage: its FROM and the instructions after it, in order."""

    index: int
    from_: From
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        return self.from_.name


@dataclass(frozen=True)
class Kubefile:
    """A parsed Kubefile: global ARGs (before the first FROM) and the stages.

    ``escape`` is the escape token (``\\`` unless a ``# escape=`` directive says otherwise);
    expansion must use the same one.
    """

    path: str
    escape: str
    meta_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]

    def stage_by_name(self, name: str) -> Stage | None:
        wanted = name.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage
        return None
