"""Stages and build-time expansion: walks a parsed Kubefile the way BuildKit's dockerfile2llb does.

:func:`evaluate` resolves every stage's base (``scratch``, an earlier stage, or an image), its
platform, and expands each instruction with the variables in scope at that point, updating the
stage's image config as it goes. Scoping rules (BuildKit's ``convert.go``):

- ARGs before the first FROM are *global*: FROM lines (image and ``--platform``) see them, and
  the automatic ``TARGETPLATFORM``/``TARGETOS``/``TARGETARCH``/``TARGETVARIANT`` and
  ``BUILDPLATFORM``/``BUILDOS``/``BUILDARCH``/``BUILDVARIANT``. Inside a stage a global ARG is
  only visible after ``ARG NAME`` redeclares it.
- ``--build-arg K=V`` overrides the default of every ``ARG K`` (global or in a stage); a build arg
  nobody declares is reported in :attr:`Evaluation.unused_build_args` (Docker warns, not fails).
- Within a stage, ARG values and ENV values share one scope, in instruction order; a stage
  ``FROM <earlier stage>`` starts with that stage's scope and config (ENV, labels, CMD...).
- All words of one ENV or LABEL instruction are expanded before any of them is set
  (``ENV a=1 b=$a`` sees the *previous* ``a``).
- ENTRYPOINT clears a CMD inherited from the base unless this stage set CMD before it.
- ``--env K=V`` (buildah's option) is applied at the end of each stage: the key is removed and
  appended, so it is last in Env and not visible to expansions inside the Kubefile.
- Every stage's Env gets ``PATH`` (:data:`DEFAULT_PATH`) when its base has none, as Docker and
  buildah do for ``FROM scratch``.

COPY/ADD ``--from`` names an earlier stage (by name, case-insensitively, or by index) or an image.
Docker takes any unknown name for an image; we only do so when it has a registry, tag or digest
(``/``, ``:`` or ``@``): a bare unknown name is almost surely a mistyped stage and is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from clusterimage.errors import ClusterImageError, UsageError
from clusterimage.kubefile.config import DEFAULT_PATH, ConfigState, ExecConfig
from clusterimage.kubefile.instructions import (
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Instruction,
    Kubefile,
    Label,
    Location,
    Maintainer,
    Run,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from clusterimage.kubefile.lexer import ExpansionError, ShellLex, utf8_length
from clusterimage.oci.platform import Platform
from clusterimage.oci.reference import Reference

#: Given a normalised image reference and the stage platform, the image's config JSON or None.
BaseConfigResolver = Callable[[str, Platform], Mapping[str, Any] | None]

#: Build args Docker accepts without an ARG (proxies) and those it sets itself (platforms).
PREDEFINED_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)
PLATFORM_ARGS = (
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
)

_SIGNAL_NAMES = (
    "ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV "
    "STKFLT STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ RTMIN RTMAX"
)
_SIGNALS = frozenset(
    _SIGNAL_NAMES.split()
    + [f"RTMIN+{n}" for n in range(1, 16)]
    + [f"RTMAX-{n}" for n in range(1, 15)]
)
_PROTOCOLS = ("tcp", "udp", "sctp")
_OCTAL_MODE = re.compile(r"^[0-7]+$")

#: All expansions of one Kubefile together may produce this much, in UTF-8 bytes. One word is
#: capped by the lexer, but ARGs that each extend the one before (``ARG b=${a}x``) grow
#: quadratically in total: 20,000 such lines would hold 200 MB.
MAX_TOTAL_EXPANSION = 16 << 20


@dataclass(frozen=True)
class BaseSpec:
    """What a stage starts from.

    ``kind`` is ``scratch``, ``stage`` (``stage_index`` names it) or ``image`` (``reference``
    is the normalised reference, ``name`` the expanded text as written).
    """

    kind: Literal["scratch", "stage", "image"]
    name: str
    stage_index: int | None = None
    reference: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "stageIndex": self.stage_index,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class Evaluated:
    """One instruction after expansion, with what the walk knew when it reached it.

    ``instruction`` is a copy of the parsed instruction with its words expanded. ``workdir`` and
    ``user`` are the values in effect *before* it; ``build_env`` is the scope (ARGs and ENV) a RUN
    sees; ``dest_path`` is a COPY/ADD destination made absolute against ``workdir`` (a trailing
    ``/`` kept: it means "a directory"); ``from_stage`` / ``from_image`` resolve ``--from``;
    ``change`` the config fields the instruction set (None when it sets none); ``mkdir`` the
    directory WORKDIR creates; ``created_by`` the history text.
    """

    instruction: Instruction
    workdir: str
    user: str
    created_by: str
    build_env: tuple[tuple[str, str], ...] = ()
    dest_path: str | None = None
    from_stage: int | None = None
    from_image: str | None = None
    change: Mapping[str, Any] | None = None
    mkdir: str | None = None


@dataclass(frozen=True)
class EvaluatedStage:
    """A stage after the walk: base, platform, expanded instructions, config at its end."""

    index: int
    name: str | None
    location: Location
    base: BaseSpec
    platform: Platform
    base_config_known: bool
    instructions: tuple[Evaluated, ...]
    config: ExecConfig
    args: tuple[tuple[str, str | None], ...]
    depends_on: frozenset[int]
    label_locations: Mapping[str, Location] = field(default_factory=dict)
    base_onbuild: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.name if self.name is not None else f"stage-{self.index}"

    @property
    def has_run(self) -> bool:
        return any(isinstance(item.instruction, Run) for item in self.instructions)


@dataclass(frozen=True)
class Evaluation:
    """All stages of a Kubefile, evaluated; ``used`` is the target and what it depends on."""

    kubefile: Kubefile
    stages: tuple[EvaluatedStage, ...]
    target: int
    used: frozenset[int]
    platform: Platform
    global_args: Mapping[str, str]
    consumed_build_args: frozenset[str]
    unused_build_args: tuple[str, ...]

    @property
    def target_stage(self) -> EvaluatedStage:
        return self.stages[self.target]


def platform_args(target: Platform, build: Platform) -> dict[str, str]:
    """The automatic platform ARGs Docker defines in the global scope."""
    return {
        "TARGETPLATFORM": str(target),
        "TARGETOS": target.os,
        "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant or "",
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant or "",
    }


def evaluate(
    kubefile: Kubefile,
    *,
    build_args: Mapping[str, str] | None = None,
    platform: Platform | None = None,
    target: str | None = None,
    envs: Mapping[str, str] | None = None,
    base_config: BaseConfigResolver | None = None,
) -> Evaluation:
    """Expand every stage of ``kubefile``; raises KubefileError (file:line) on a wrong Kubefile.

    ``base_config`` is asked for the config of each image a used stage starts FROM; without it
    (``--dry-run`` without a store) such a stage starts from an empty config and its
    :attr:`EvaluatedStage.base_config_known` is false.
    """
    walker = _Walker(
        kubefile,
        dict(build_args or {}),
        platform or Platform.host(),
        dict(envs or {}),
        base_config,
    )
    return walker.run(target)


class _Walker:
    def __init__(
        self,
        kubefile: Kubefile,
        build_args: dict[str, str],
        platform: Platform,
        envs: dict[str, str],
        base_config: BaseConfigResolver | None,
    ) -> None:
        self.kubefile = kubefile
        self.build_args = build_args
        self.platform = platform
        self.envs = envs
        self.base_config = base_config
        self.lex = ShellLex(kubefile.escape)
        self.stages: list[EvaluatedStage] = []
        self.scopes: list[dict[str, str]] = []
        self.names: dict[str, int] = {}
        self.global_args: dict[str, str] = {}
        self.expanded = 0  # UTF-8 bytes all expansions so far produced

    # -- whole file ---------------------------------------------------------------------------
    def run(self, target: str | None) -> Evaluation:
        global_args = platform_args(self.platform, Platform.host())
        for arg in self.kubefile.meta_args:
            for decl in arg.args:
                if decl.name in self.build_args:
                    global_args[decl.name] = self.build_args[decl.name]
                elif decl.default is not None:
                    global_args[decl.name] = self._expand(arg, decl.default, global_args)
        self.global_args = global_args
        target_index = self._target_index(target)
        needed = self._needed_stages(target_index)
        for stage in self.kubefile.stages:
            self._walk_stage(stage, global_args, stage.index in needed)
        used = self._closure(target_index)
        consumed = frozenset(self._consumed(used))
        unused = tuple(
            sorted(
                key
                for key in self.build_args
                if key not in consumed and key not in PREDEFINED_ARGS and key not in PLATFORM_ARGS
            )
        )
        return Evaluation(
            kubefile=self.kubefile,
            stages=tuple(self.stages),
            target=target_index,
            used=used,
            platform=self.platform,
            global_args=global_args,
            consumed_build_args=consumed,
            unused_build_args=unused,
        )

    def _target_index(self, target: str | None) -> int:
        if target is None:
            return len(self.kubefile.stages) - 1
        stage = self.kubefile.stage_by_name(target)
        if stage is None:
            names = [s.name for s in self.kubefile.stages if s.name]
            raise UsageError(
                f"target stage {target!r} not found in {self.kubefile.path} "
                f"(stages: {', '.join(names) or 'none named'})"
            )
        return stage.index

    def _needed_stages(self, target: int) -> set[int]:
        # Before the walk, a cheap over-approximation (names only) of the target's dependencies:
        # used to ask the base-config resolver only for stages that matter.
        needed: set[int] = set()
        pending = [target]
        while pending:
            index = pending.pop()
            if index in needed:
                continue
            needed.add(index)
            stage = self.kubefile.stages[index]
            refs = [stage.from_.image.lower()]
            refs += [
                item.from_.lower()
                for item in stage.instructions
                if isinstance(item, Copy) and item.from_
            ]
            for ref in refs:
                for other in self.kubefile.stages[:index]:
                    if other.name == ref or str(other.index) == ref:
                        pending.append(other.index)
        return needed

    def _closure(self, target: int) -> frozenset[int]:
        used: set[int] = set()
        pending = [target]
        while pending:
            index = pending.pop()
            if index not in used:
                used.add(index)
                pending.extend(self.stages[index].depends_on)
        return frozenset(used)

    def _consumed(self, used: frozenset[int]) -> set[str]:
        consumed = {decl.name for arg in self.kubefile.meta_args for decl in arg.args}
        for index in used:
            for item in self.stages[index].instructions:
                if isinstance(item.instruction, Arg):
                    consumed.update(decl.name for decl in item.instruction.args)
        return consumed

    # -- one stage ----------------------------------------------------------------------------
    def _walk_stage(self, stage: Stage, global_args: dict[str, str], needed: bool) -> None:
        frm = stage.from_
        base_name = self._expand(frm, frm.image, global_args)
        if not base_name:
            raise frm.error(f"base name ({frm.image}) should not be blank")
        platform = None
        if frm.platform is not None:
            text = self._expand(frm, frm.platform, global_args)
            if not text:
                raise frm.error(f"empty platform value from expression {frm.platform}")
            try:
                platform = Platform.parse(text)
            except ClusterImageError as exc:
                raise frm.error(f"FROM --platform: {exc}") from None

        scope: dict[str, str]
        known = True
        onbuild: tuple[str, ...] = ()
        depends: set[int] = set()
        if base_name.lower() in self.names:
            base_index = self.names[base_name.lower()]
            parent = self.stages[base_index]
            base = BaseSpec("stage", base_name.lower(), stage_index=base_index)
            config = ConfigState(parent.config)
            scope = dict(self.scopes[base_index])
            args = list(parent.args)
            platform = platform or parent.platform
            depends.add(base_index)
        elif base_name == "scratch":
            base = BaseSpec("scratch", "scratch")
            config = ConfigState(ExecConfig())
            scope = {}
            args = []
        else:
            try:
                reference = image_reference(base_name)
            except ClusterImageError as exc:
                raise frm.error(f"invalid base image reference {base_name!r}: {exc}") from None
            base = BaseSpec("image", base_name, reference=reference)
            data = None
            if needed and self.base_config is not None:
                data = self.base_config(reference, platform or self.platform)
            known = data is not None
            config = ConfigState(ExecConfig.from_image_config(data or {}))
            onbuild = tuple((data or {}).get("config", {}).get("OnBuild") or ())
            scope = {}
            args = []
        platform = platform or self.platform
        if not config.has_env("PATH"):
            config.set_env("PATH", DEFAULT_PATH)
        if base.kind != "stage":
            scope.update(config.env)

        stage_walk = _StageWalk(self, stage, config, scope, args, depends)
        evaluated = [stage_walk.step(item) for item in stage.instructions]
        for key, value in self.envs.items():
            config.override_env(key, value)
            scope[key] = value

        self.stages.append(
            EvaluatedStage(
                index=stage.index,
                name=stage.name,
                location=frm.location,
                base=base,
                platform=platform,
                base_config_known=known,
                instructions=tuple(evaluated),
                config=config.freeze(),
                args=tuple(args),
                depends_on=frozenset(depends),
                label_locations=dict(stage_walk.label_locations),
                base_onbuild=onbuild,
            )
        )
        self.scopes.append(scope)
        if stage.name is not None:
            self.names[stage.name] = stage.index

    def _expand(self, instruction: Instruction, word: str, scope: Mapping[str, str]) -> str:
        try:
            result = self.lex.process_word(word, scope)
        except ExpansionError as exc:
            raise instruction.error(f"{instruction.keyword}: {exc}") from None
        self.count_expansion(instruction, result)
        return result

    def count_expansion(self, instruction: Instruction, *results: str) -> None:
        """Add ``results`` to the Kubefile's total; beyond :data:`MAX_TOTAL_EXPANSION`, fail."""
        self.expanded += sum(utf8_length(text) for text in results)
        if self.expanded > MAX_TOTAL_EXPANSION:
            raise instruction.error(
                f"{instruction.keyword}: the Kubefile's expansions total more than "
                f"{MAX_TOTAL_EXPANSION >> 20} MiB (the limit)"
            )


class _StageWalk:
    """The state of one stage while its instructions are expanded and applied."""

    def __init__(
        self,
        walker: _Walker,
        stage: Stage,
        config: ConfigState,
        scope: dict[str, str],
        args: list[tuple[str, str | None]],
        depends: set[int],
    ) -> None:
        self.walker = walker
        self.stage = stage
        self.config = config
        self.scope = scope
        self.args = args
        self.depends = depends
        self.cmd_set = False
        self.label_locations: dict[str, Location] = {}

    def expand(self, instruction: Instruction, word: str) -> str:
        return self.walker._expand(instruction, word, self.scope)

    def step(self, instruction: Instruction) -> Evaluated:
        workdir, user = self.config.working_dir, self.config.user
        handler = getattr(self, f"_{type(instruction).__name__.lower()}")
        result: Evaluated = handler(instruction, workdir, user)
        return result

    # -- instructions ---------------------------------------------------------------------------
    def _arg(self, arg: Arg, workdir: str, user: str) -> Evaluated:
        build_args = self.walker.build_args
        global_args = self.walker.global_args
        parts: list[str] = []
        for decl in arg.args:
            value: str | None = None
            if decl.name in build_args:
                value = build_args[decl.name]
            elif decl.default is not None:
                value = self.expand(arg, decl.default)
            elif decl.name in global_args:
                value = global_args[decl.name]
            if value is not None:
                self.scope[decl.name] = value
            self.args.append((decl.name, value))
            parts.append(decl.name if value is None else f"{decl.name}={value}")
        return Evaluated(arg, workdir, user, created_by="ARG " + " ".join(parts))

    def _env(self, env: Env, workdir: str, user: str) -> Evaluated:
        pairs = tuple((self.expand(env, k), self.expand(env, v)) for k, v in env.pairs)
        for key, value in pairs:
            self.scope[key] = value
            self.config.set_env(key, value)
        text = " ".join(f"{k}={v}" for k, v in pairs)
        return Evaluated(
            dataclasses.replace(env, pairs=pairs),
            workdir,
            user,
            created_by=f"ENV {text}",
            change={"Env": [f"{k}={v}" for k, v in pairs]},
        )

    def _label(self, label: Label, workdir: str, user: str) -> Evaluated:
        pairs = tuple((self.expand(label, k), self.expand(label, v)) for k, v in label.pairs)
        for key, value in pairs:
            self.config.labels[key] = value
            self.label_locations[key] = label.location
        text = " ".join(f"{k}={v}" for k, v in pairs)
        return Evaluated(
            dataclasses.replace(label, pairs=pairs),
            workdir,
            user,
            created_by=f"LABEL {text}",
            change={"Labels": dict(pairs)},
        )

    def _maintainer(self, maintainer: Maintainer, workdir: str, user: str) -> Evaluated:
        self.config.author = maintainer.maintainer
        return Evaluated(
            maintainer,
            workdir,
            user,
            created_by=f"MAINTAINER {maintainer.maintainer}",
            change={"author": maintainer.maintainer},
        )

    def _cmd(self, cmd: Cmd, workdir: str, user: str) -> Evaluated:
        argv = cmd.argv() or None
        self.config.cmd = argv
        self.cmd_set = True
        return Evaluated(
            cmd,
            workdir,
            user,
            created_by=f"CMD {json.dumps(list(argv or ()))}",
            change={"Cmd": list(argv) if argv else None},
        )

    def _entrypoint(self, entrypoint: Entrypoint, workdir: str, user: str) -> Evaluated:
        argv = entrypoint.argv() or None
        self.config.entrypoint = argv
        change: dict[str, Any] = {"Entrypoint": list(argv) if argv else None}
        if not self.cmd_set and self.config.cmd is not None:
            # Docker: an ENTRYPOINT resets the CMD inherited from the base image.
            self.config.cmd = None
            change["Cmd"] = None
        return Evaluated(
            entrypoint,
            workdir,
            user,
            created_by=f"ENTRYPOINT {json.dumps(list(argv or ()))}",
            change=change,
        )

    def _workdir(self, workdir_instr: Workdir, workdir: str, user: str) -> Evaluated:
        path = self.expand(workdir_instr, workdir_instr.path)
        if not path:
            raise workdir_instr.error("WORKDIR path is empty after expansion")
        new = normalize_workdir(workdir, path)
        self.config.working_dir = new
        return Evaluated(
            dataclasses.replace(workdir_instr, path=path),
            workdir,
            user,
            created_by=f"WORKDIR {new}",
            change={"WorkingDir": new},
            mkdir=new if new != "/" else None,
        )

    def _user(self, user_instr: User, workdir: str, user: str) -> Evaluated:
        value = self.expand(user_instr, user_instr.user)
        if not value:
            raise user_instr.error("USER is empty after expansion")
        self.config.user = value
        return Evaluated(
            dataclasses.replace(user_instr, user=value),
            workdir,
            user,
            created_by=f"USER {value}",
            change={"User": value},
        )

    def _expose(self, expose: Expose, workdir: str, user: str) -> Evaluated:
        words: list[str] = []
        for port in expose.ports:
            try:
                expanded = self.walker.lex.process_words(port, self.scope)
            except ExpansionError as exc:
                raise expose.error(f"EXPOSE: {exc}") from None
            self.walker.count_expansion(expose, *expanded)
            words.extend(expanded)
        ports: list[str] = []
        for word in words:
            ports.extend(_port_spec(expose, word))
        for port in ports:
            self.config.exposed_ports[port] = None
        return Evaluated(
            dataclasses.replace(expose, ports=tuple(words)),
            workdir,
            user,
            created_by=f"EXPOSE {' '.join(ports)}",
            change={"ExposedPorts": ports},
        )

    def _volume(self, volume: Volume, workdir: str, user: str) -> Evaluated:
        paths = tuple(self.expand(volume, path) for path in volume.paths)
        if any(not path for path in paths):
            raise volume.error("VOLUME specified can not be an empty string")
        for path in paths:
            self.config.volumes[path] = None
        return Evaluated(
            dataclasses.replace(volume, paths=paths),
            workdir,
            user,
            created_by=f"VOLUME [{' '.join(paths)}]",
            change={"Volumes": list(paths)},
        )

    def _stopsignal(self, stop: StopSignal, workdir: str, user: str) -> Evaluated:
        signal = self.expand(stop, stop.signal)
        if not _valid_signal(signal):
            raise stop.error(f"STOPSIGNAL: invalid signal {signal!r}")
        self.config.stop_signal = signal
        return Evaluated(
            dataclasses.replace(stop, signal=signal),
            workdir,
            user,
            created_by=f"STOPSIGNAL {signal}",
            change={"StopSignal": signal},
        )

    def _run(self, run: Run, workdir: str, user: str) -> Evaluated:
        argv = run.argv()
        return Evaluated(
            run,
            workdir,
            user,
            created_by="RUN " + " ".join(argv),
            build_env=tuple(self.scope.items()),
        )

    def _copy(self, copy: Copy, workdir: str, user: str) -> Evaluated:
        name = copy.name
        sources = tuple(self.expand(copy, source) for source in copy.sources)
        dest = self.expand(copy, copy.dest)
        chown = self.expand(copy, copy.chown) if copy.chown is not None else None
        chmod = self.expand(copy, copy.chmod) if copy.chmod is not None else None
        if chmod is not None and (not _OCTAL_MODE.match(chmod) or int(chmod, 8) > 0o7777):
            raise copy.error(f"{name} --chmod: invalid mode {chmod!r} (an octal mode like 0755)")
        if chown is not None and not chown:
            raise copy.error(f"{name} --chown is empty after expansion")
        inline = tuple(
            dataclasses.replace(item, content=self._expand_heredoc(copy, item.content))
            if item.expand
            else item
            for item in copy.inline_files
        )
        from_stage, from_image = self._resolve_from(copy)
        dest_path = copy_destination(workdir, dest)
        if len(sources) + len(inline) > 1 and not dest_path.endswith("/"):
            raise copy.error(
                f"when using {name} with more than one source file, the destination must be a "
                f"directory and end with a /: {dest}"
            )
        flags = []
        if copy.from_:
            flags.append(f"--from={copy.from_}")
        if chown:
            flags.append(f"--chown={chown}")
        if chmod:
            flags.append(f"--chmod={chmod}")
        shown = [*sources, *(f"<<{item.name}" for item in inline)]
        return Evaluated(
            dataclasses.replace(
                copy, sources=sources, dest=dest, chown=chown, chmod=chmod, inline_files=inline
            ),
            workdir,
            user,
            created_by=" ".join([name, *flags, *shown, dest_path]),
            dest_path=dest_path,
            from_stage=from_stage,
            from_image=from_image,
        )

    def _expand_heredoc(self, copy: Copy, content: str) -> str:
        # BuildKit expands unquoted heredoc bodies with quotes left alone (SkipProcessQuotes).
        lex = ShellLex("\\", skip_process_quotes=True)
        try:
            expanded = lex.process_word(content, self.scope)
        except ExpansionError as exc:
            raise copy.error(f"{copy.name} heredoc: {exc}") from None
        self.walker.count_expansion(copy, expanded)
        return expanded

    def _resolve_from(self, copy: Copy) -> tuple[int | None, str | None]:
        value = copy.from_
        if value is None:
            return None, None
        if _expands(self.walker.lex, value):
            raise copy.error(
                "variable expansion is not supported for --from; define a stage with "
                "FROM ${ARG} (a global ARG) and copy from that stage instead"
            )
        current = self.stage.index
        if value.isascii() and value.isdigit():  # isdigit() alone takes "²"
            index = int(value)
            if index >= current:
                raise copy.error(
                    f"{copy.name} --from={value}: stage {index} needs to be defined before the "
                    f"current stage ({current})"
                )
            self.depends.add(index)
            return index, None
        wanted = value.lower()
        if wanted in self.walker.names:
            index = self.walker.names[wanted]
            self.depends.add(index)
            return index, None
        later = [s.name for s in self.walker.kubefile.stages[current:] if s.name]
        if wanted in later:
            raise copy.error(
                f"{copy.name} --from={value}: stage {wanted!r} needs to be defined before the "
                "current stage"
            )
        if not any(ch in value for ch in "/:@"):
            names = list(self.walker.names)
            close = difflib.get_close_matches(wanted, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = f" (stages before it: {', '.join(names)})" if names else ""
            raise copy.error(
                f"{copy.name} --from={value}: unknown stage{known}{hint}; an image reference "
                "needs a registry, tag or digest"
            )
        try:
            return None, image_reference(value)
        except ClusterImageError as exc:
            raise copy.error(f"{copy.name} --from={value}: {exc}") from None


def image_reference(name: str) -> str:
    """A base image name as the plan keeps it: a transport reference as written (checked by its
    transport), else the normalised reference (``nginx`` → ``docker.io/library/nginx:latest``)."""
    from clusterimage import transports

    if transports.is_transport_reference(name):
        return str(transports.parse(name))
    return str(Reference.parse(name))


def _expands(lex: ShellLex, word: str) -> bool:
    try:
        return lex.process_word(word, {}) != word
    except ExpansionError:
        return True


def normalize_workdir(current: str, path: str) -> str:
    """WORKDIR: relative paths join the current one; the result is clean and absolute."""
    if not path.startswith("/"):
        path = posixpath.join("/", current or "/", path)
    return _clean(path)


def copy_destination(workdir: str, dest: str) -> str:
    """BuildKit's pathRelativeToWorkingDir: absolute, clean, trailing ``/`` kept (a directory)."""
    if dest in ("", "."):
        dest = "./"
    keep_slash = dest.endswith("/") or dest.endswith("/.") or dest == "."
    if not dest.startswith("/"):
        dest = posixpath.join("/", workdir or "/", dest)
    cleaned = _clean(dest)
    if keep_slash and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _port_spec(expose: Expose, word: str) -> list[str]:
    """``80``, ``80/udp``, ``8000-8010/tcp`` (and ``ip:host:container``) to ``N/proto`` keys."""
    spec, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in _PROTOCOLS:
        raise expose.error(f"EXPOSE {word}: invalid protocol {proto!r} (tcp, udp or sctp)")
    container = spec.rsplit(":", 1)[-1]
    low, dash, high = container.partition("-")
    try:
        start = int(low)
        end = int(high) if dash else start
    except ValueError:
        raise expose.error(f"EXPOSE {word}: invalid port {container!r}") from None
    if not (0 <= start <= end <= 65535):
        raise expose.error(f"EXPOSE {word}: invalid port range {container!r}")
    return [f"{port}/{proto}" for port in range(start, end + 1)]


def _valid_signal(signal: str) -> bool:
    if signal.isascii() and signal.isdigit():
        return int(signal) > 0
    name = signal.upper()
    name = name[3:] if name.startswith("SIG") else name
    return name in _SIGNALS
