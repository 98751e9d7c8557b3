"""The stage protocol: what a pipeline stage declares, and what it is given to run.

A stage is a :class:`Stage` value: its name, the catalog datasets it commits
(:mod:`tokmix.io.catalog`), and ``run(ctx)``, which finds what earlier stages committed by
name, skips itself when its datasets are committed from the same inputs (one digest scheme,
:func:`tokmix.io.datasets.content_digest`), and otherwise hands its tasks to ``ctx.executor``
(in this process, or on Ray) and commits. ``tokmix run``, ``tokmix infer`` and the stage verbs
are all :func:`tokmix.jobs.pipeline.run_stages` over :data:`tokmix.jobs.pipeline.STAGES`.
Adding a stage is one module defining a ``Stage`` and one entry in that tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.io.catalog import Dataset
from tokmix.jobs.executors import Executor
from tokmix.jobs.progress import Log
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.schemas.run_spec import RunSpec


@dataclass
class RunContext:
    """Everything a stage may use: the validated spec, the loaded tokenizers with their
    checked step ranges, the categories, the executor, and the summary it records into."""

    spec: RunSpec
    tokenizers: list[LoadedTokenizer]
    steps: dict[str, tuple[int, int]]
    categories: list[CategorySpec]
    options: dict[str, SampleOptions]
    executor: Executor
    force: bool = False
    log: Log = lambda _m: None
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage (see the module docstring)."""

    name: str
    datasets: tuple[Dataset, ...]
    run: Callable[[RunContext], None]
