"""Kubefiles: parsing, the instruction model, build-time expansion and stages.

- :func:`parse_file` / :func:`parse_string` / :func:`find_kubefile` (:mod:`.parser`): the
  ``dockerfile`` package (BuildKit's parser) plus BuildKit's instruction checks, into a
  :class:`Kubefile` of typed instructions (:mod:`.instructions`).
- :class:`ShellLex` (:mod:`.lexer`): Docker's ``$V`` / ``${V:-d}`` / quote / escape expansion.
- :func:`evaluate` (:mod:`.stages`): stage bases, ARG/ENV scoping, ``--build-arg``, expansion of
  every instruction and the resulting image config (:class:`ExecConfig`).
- :mod:`.sources`: COPY sources against a context (Docker's wildcards, the context boundary).

:func:`clusterimage.build.plan.plan_build` puts these together for ``clusterimage build``.
"""

from __future__ import annotations

from clusterimage.kubefile.config import DEFAULT_PATH, ExecConfig
from clusterimage.kubefile.instructions import (
    Arg,
    ArgDecl,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    InlineFile,
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
from clusterimage.kubefile.lexer import ExpansionError, LexResult, ShellLex
from clusterimage.kubefile.parser import KUBEFILE_NAMES, find_kubefile, parse_file, parse_string
from clusterimage.kubefile.stages import (
    BaseConfigResolver,
    BaseSpec,
    Evaluated,
    EvaluatedStage,
    Evaluation,
    evaluate,
)

__all__ = [
    "DEFAULT_PATH",
    "KUBEFILE_NAMES",
    "Arg",
    "ArgDecl",
    "BaseConfigResolver",
    "BaseSpec",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Evaluated",
    "EvaluatedStage",
    "Evaluation",
    "ExecConfig",
    "ExpansionError",
    "Expose",
    "From",
    "InlineFile",
    "Instruction",
    "Kubefile",
    "Label",
    "LexResult",
    "Location",
    "Maintainer",
    "Run",
    "ShellLex",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "evaluate",
    "find_kubefile",
    "parse_file",
    "parse_string",
]
