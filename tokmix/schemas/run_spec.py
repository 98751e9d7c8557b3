"""The run spec: one YAML file that says what a ``tokmix run`` computes and where.

    run_id: nightly-mixture          # optional; default: derived from the spec's content
    out: s3://my-bucket/tokmix/runs/nightly
    tokenizers: [s3://my-bucket/tokenizers/cl100k/tokenizer.json]
    categories:
      english: {paths: ["s3://my-corpora/en/*.jsonl.gz"], max_bytes: 1GB, text_field: text}
      python:  {paths: ["s3://my-corpora/code/python/"], max_bytes: 1GB}
    merges: 30000                    # or merge_range: "100000:130000"
    stages: [count, replay, solve]
    resources: {count: {num_cpus: 1}, replay: {num_cpus: 1, memory: 4GB}}
    shard_bytes: 64MB
    count: {engine: auto}            # auto | compiled | regex (the same words; see CountOptions)

Validated by pydantic so a typo fails before a cluster spends an hour: unknown keys are errors,
sizes take units (``500MB``, ``1GiB``). Relative input paths (tokenizers, corpora) resolve
against the spec's directory, so a spec travels with its data; a relative ``out`` is relative to
the current directory, as for any command's output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tokmix.errors import TokmixError
from tokmix.units import parse_size

Stage = Literal["count", "replay", "solve", "stats"]
STAGES: tuple[Stage, ...] = ("count", "replay", "solve", "stats")
DEFAULT_STAGES: tuple[Stage, ...] = ("count", "replay", "solve")

Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryInput(_Strict):
    """One category's text: path specs (files, directories, globs, ``s3://`` prefixes)."""

    paths: list[str] = Field(min_length=1)
    max_bytes: Size | None = None
    seed: int | None = None
    text_field: str = "text"
    txt_mode: Literal["file", "line", "paragraph"] = "file"
    skip_documents: int = Field(default=0, ge=0)

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class StageResources(_Strict):
    """What one task of a stage asks Ray for (declared per stage, as Ray schedules them)."""

    num_cpus: float = Field(default=1.0, gt=0)
    num_gpus: float = Field(default=0.0, ge=0)
    memory: Size | None = None

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            options["num_gpus"] = self.num_gpus
        if self.memory:
            options["memory"] = self.memory
        return options


class SolverOptions(_Strict):
    """``estimator``: ``scaled`` (the noise-scaled LP, default: better than the paper's LP on
    the controlled experiment, README "Accuracy"), ``paper`` (the paper's LP unchanged) or
    ``likelihood`` (tokmix.solvers.likelihood; needs the ``gpu`` extra's torch).

    ``device``: where the LP's violation sweep (tokmix.solvers.torch_sweep) and the
    likelihood run: ``auto`` (CUDA when torch sees a GPU where the solve runs, else the CPU),
    ``cpu`` or ``cuda`` (an error before any stage runs when there is none; on Ray give the
    solve stage GPUs: ``resources: {solve: {num_gpus: 1}}``). Same rows and optimum on
    either; not part of a solve's inputs.

    ``merge_stride``: the LPs over every k-th merge step of the range only (1, the default:
    every step). An approximation that costs about what a k times shorter range does and
    keeps the late merges such a range drops (tokmix.solvers.mixture_lp.solve_mixture)."""

    estimator: Literal["scaled", "paper", "likelihood"] = "scaled"
    scaled_power: float = Field(default=0.5, ge=0, le=2)
    per_step: int = Field(default=8, ge=1)
    max_rounds: int = Field(default=10_000, ge=1)
    threads: int = Field(default=1, ge=1)
    merge_stride: int = Field(default=1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _stride_for_the_lps(self) -> SolverOptions:
        if self.merge_stride > 1 and self.estimator == "likelihood":
            raise ValueError(STRIDE_NOT_FOR_LIKELIHOOD)
        return self


STRIDE_NOT_FOR_LIKELIHOOD = (
    "merge_stride applies to the LPs; the likelihood estimator uses every merge step "
    "(use merge_stride 1, or the scaled or paper estimator)"
)


CountEngine = Literal["auto", "compiled", "regex"]


class CountOptions(_Strict):
    """How the count stage splits and counts words. ``engine``: ``auto`` (the compiled
    pre-tokenizer where the family has one, else the ``regex`` path; the default),
    ``compiled`` (refuse a pre-tokenizer without a compiled form, so a run cannot fall back to
    the slow path unnoticed) or ``regex`` (the reference, ``tokmix.bpe.pretokenizers``).

    Both engines are exact and tested equal word for word, so the engine is *not* an input of
    the count: a commit made with one is reused by the other, and the run id (the spec's
    :meth:`RunSpec.fingerprint`) leaves these options out. They choose speed, not results."""

    engine: CountEngine = "auto"


class BootstrapOptions(_Strict):
    """Intervals by resampling document groups (ARCHITECTURE.md §5): each category's documents fall
    into ``groups`` groups by a hash of their text; a replicate redraws groups with
    replacement — and blocks of ``merge_block`` consecutive merges, for the noise the
    tokenizer's own training text put in its merges (0: documents only) — and re-solves.
    ``groups: 1`` turns intervals off."""

    groups: int = Field(default=10, ge=1, le=1000)
    replicates: int = Field(default=20, ge=2)
    level: float = Field(default=0.95, gt=0, lt=1)
    seed: int = 0
    merge_block: int = Field(default=20, ge=0)


class RunSpec(_Strict):
    """A whole pipeline run (see the module docstring for the YAML)."""

    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    out: str
    tokenizers: list[str] = Field(min_length=1)
    categories: dict[str, CategoryInput] = Field(min_length=1)
    merges: int | None = Field(default=None, ge=1)
    merge_range: str | None = None
    """``A:B``, or ``auto``: the extension of the longest of ``bases`` the tokenizer continues."""
    bases: list[str] = Field(default_factory=list)
    """Tokenizers the run's tokenizers may extend (lineage; ``merge_range: auto``), besides
    those in ``$TOKMIX_KNOWN_TOKENIZERS``."""
    pretokenizer: str | None = None
    groups: dict[str, str] = Field(default_factory=dict)
    """Category groups, name -> glob over category names (``code: "code-*"``): each group's
    share, with an interval over the bootstrap replicates (``tokmix.analytics.groups``)."""
    stages: list[Stage] = Field(default_factory=lambda: list(DEFAULT_STAGES))
    resources: dict[Stage, StageResources] = Field(default_factory=dict)
    shard_bytes: Size = Field(default=64 * 10**6, gt=0)
    reduce_partitions: int | None = Field(default=None, ge=1)
    solver: SolverOptions = Field(default_factory=SolverOptions)
    bootstrap: BootstrapOptions = Field(default_factory=BootstrapOptions)
    count: CountOptions = Field(default_factory=CountOptions)

    @field_validator("categories")
    @classmethod
    def _names(cls, value: dict[str, CategoryInput]) -> dict[str, CategoryInput]:
        for name in value:
            check_category_name(name)
        return value

    @field_validator("merge_range")
    @classmethod
    def _range_syntax(cls, value: str | None) -> str | None:
        if value is not None and value != "auto":
            merge_range_bounds(value)
        return value

    @model_validator(mode="after")
    def _one_range(self) -> RunSpec:
        if self.merges is not None and self.merge_range is not None:
            raise ValueError("give merges or merge_range, not both")
        return self

    def merge_steps(
        self, n_merges: int, tokenizer: str, keys: tuple[str, str] = ("merges", "merge_range")
    ) -> tuple[int, int]:
        """The steps to replay of a tokenizer with ``n_merges`` merges (see :func:`merge_steps`;
        ``keys`` name the two options as the user gave them)."""
        return merge_steps(self.merges, self.merge_range, n_merges, tokenizer=tokenizer, keys=keys)

    @field_validator("stages")
    @classmethod
    def _stage_order(cls, value: list[Stage]) -> list[Stage]:
        if not value:
            raise ValueError("name at least one stage")
        return sorted(set(value), key=STAGES.index)

    def resources_for(self, stage: Stage) -> StageResources:
        return self.resources.get(stage, StageResources())

    def fingerprint(self) -> str:
        """A short hash of the spec's content: the default run id. ``count`` is left out: it
        picks how fast words are counted, not which (:class:`CountOptions`)."""
        content = self.model_dump(mode="json", exclude={"count"})
        payload = json.dumps(content, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]

    @property
    def effective_run_id(self) -> str:
        return self.run_id or f"run-{self.fingerprint()}"


DEFAULT_MERGES = 30_000
"""Merges replayed when neither ``merges`` nor ``merge_range`` is given (or all, when fewer)."""


def check_category_name(name: str) -> str:
    """A category name becomes a folder name and a log and terminal string: no ``/``, no leading
    ``.``, printable characters only (no control characters or newlines that could forge a log
    line)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"category name {name!r} may not be empty, hold '/' or start with '.'")
    if not name.isprintable():
        raise ValueError(
            f"category name {name!r} holds control characters or line breaks; use printable text"
        )
    return name


def merge_range_bounds(text: str) -> tuple[int, int | None]:
    """``A:B`` as ``(A, B)``: replay merges ``A+1 .. B``; ``A:`` runs to the last merge
    (``B`` None) and ``:B`` starts at the first. Syntax and ``A < B`` are checked here, when a
    spec loads; ``B`` against the tokenizer by :func:`merge_steps`, when it loads."""
    a, sep, b = text.partition(":")
    try:
        first, last = int(a.strip() or 0), int(b) if b.strip() else None
    except ValueError:
        first = last = -1
    if not sep or first < 0 or (last is not None and last <= first):
        raise ValueError(f"merge range is A:B with integers 0 <= A < B, got {text!r}")
    return first, last


def merge_steps(
    merges: int | None,
    merge_range: str | None,
    n_merges: int,
    *,
    tokenizer: str = "the tokenizer",
    keys: tuple[str, str] = ("merges", "merge_range"),
) -> tuple[int, int]:
    """``(first_step, last_step)`` to replay, checked against the tokenizer's ``n_merges``.

    Default: the first :data:`DEFAULT_MERGES` merges, or all when fewer. ``keys`` name the two
    options as the user wrote them (the spec's keys, or the CLI's flags) in messages.
    """
    merges_key, range_key = keys
    if n_merges == 0:
        raise ValueError(f"{tokenizer} has no merges; there is nothing to replay")
    if merges is not None and merge_range is not None:
        raise ValueError(f"give {merges_key} or {range_key}, not both")
    if merge_range is not None:
        try:
            first, last = merge_range_bounds(merge_range)
        except ValueError as exc:
            raise ValueError(f"{range_key}: {exc}") from None
        last = n_merges if last is None else last
        if not first < last <= n_merges:
            raise ValueError(
                f"{range_key} {merge_range!r} must satisfy 0 <= A < B <= {n_merges} "
                f"({tokenizer}'s merges)"
            )
        return first + 1, last
    last = min(n_merges, DEFAULT_MERGES) if merges is None else merges
    if not 1 <= last <= n_merges:
        raise ValueError(
            f"{merges_key} must be between 1 and {n_merges} ({tokenizer}'s merges), got {last}"
        )
    return 1, last


def _resolve(path: str, base: Path) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


class _DuplicateKey(Exception):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key that appears twice in one mapping (plain YAML keeps
    the last silently: two ``books:`` categories would become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise _DuplicateKey(
                    f"duplicate key {key!r} at line {line} (first at line {seen[key]})"
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def check_out_root(out: str, key: str = "out") -> str:
    """An output root must be a directory (new or a previous run's), never an existing file."""
    if "://" not in out and Path(out).exists() and not Path(out).is_dir():
        raise TokmixError(f"{key} {out}: is a file; name a directory (new or a previous run's)")
    return out


def load_run_spec(path: str | Path, *, out: str | None = None) -> RunSpec:
    """Read and validate a spec file; relative paths resolve against its directory.

    Every value is checked here, before any stage runs; only what needs the tokenizer (the
    merge range's upper end) waits until it loads (:meth:`RunSpec.merge_steps`)."""
    spec_path = Path(path)
    try:
        raw = yaml.load(
            spec_path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader
        )  # a SafeLoader
    except FileNotFoundError:
        raise TokmixError(f"{spec_path}: no such run spec") from None
    except _DuplicateKey as exc:
        raise TokmixError(f"{spec_path}: {exc}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TokmixError(f"{spec_path}: not a readable YAML run spec ({exc})") from None
    if not isinstance(raw, dict):
        raise TokmixError(f"{spec_path}: a run spec is a YAML mapping (see `tokmix run --help`)")
    if out is not None:
        raw["out"] = out
    try:
        spec = RunSpec.model_validate(raw)
    except ValidationError as exc:
        raise TokmixError(f"{spec_path}: invalid run spec: {validation_problems(exc)}") from None
    check_out_root(spec.out, "--out" if out is not None else f"{spec_path}: out:")
    base = spec_path.resolve().parent
    categories = {
        name: cat.model_copy(update={"paths": [_resolve(p, base) for p in cat.paths]})
        for name, cat in spec.categories.items()
    }
    return spec.model_copy(
        update={
            "tokenizers": [_resolve(t, base) for t in spec.tokenizers],
            "bases": [_resolve(t, base) for t in spec.bases],
            "categories": categories,
        }
    )


def validation_problems(exc: ValidationError, names: dict[str, str] | None = None) -> str:
    """A pydantic error as one line naming each bad key (``names`` renames keys, e.g. to the
    CLI flags the user typed)."""
    names = names or {}
    problems = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"])
        message = str(e["msg"]).removeprefix("Value error, ")
        problems.append(f"{names.get(key, key) or '(top)'}: {message}")
    return "; ".join(problems)
