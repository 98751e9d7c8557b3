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
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

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
    ``likelihood`` (tokmix.solvers.likelihood; needs the ``gpu`` extra's torch)."""

    estimator: Literal["scaled", "paper", "likelihood"] = "scaled"
    scaled_power: float = Field(default=0.5, ge=0, le=2)
    per_step: int = Field(default=8, ge=1)
    max_rounds: int = Field(default=100, ge=1)
    threads: int = Field(default=1, ge=1)


class BootstrapOptions(_Strict):
    """Intervals by resampling document groups (DESIGN §5): each category's documents fall
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
    pretokenizer: str | None = None
    stages: list[Stage] = Field(default_factory=lambda: list(DEFAULT_STAGES))
    resources: dict[Stage, StageResources] = Field(default_factory=dict)
    shard_bytes: Size = Field(default=64 * 10**6, gt=0)
    reduce_partitions: int | None = Field(default=None, ge=1)
    solver: SolverOptions = Field(default_factory=SolverOptions)
    bootstrap: BootstrapOptions = Field(default_factory=BootstrapOptions)

    @field_validator("categories")
    @classmethod
    def _names(cls, value: dict[str, CategoryInput]) -> dict[str, CategoryInput]:
        for name in value:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"category name {name!r} may not be empty, hold '/' or start '.'")
        return value

    @field_validator("stages")
    @classmethod
    def _stage_order(cls, value: list[Stage]) -> list[Stage]:
        if not value:
            raise ValueError("name at least one stage")
        return sorted(set(value), key=STAGES.index)

    def resources_for(self, stage: Stage) -> StageResources:
        return self.resources.get(stage, StageResources())

    def fingerprint(self) -> str:
        """A short hash of the spec's content: the default run id."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:12]

    @property
    def effective_run_id(self) -> str:
        return self.run_id or f"run-{self.fingerprint()}"


def _resolve(path: str, base: Path) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


def load_run_spec(path: str | Path, *, out: str | None = None) -> RunSpec:
    """Read and validate a spec file; relative paths resolve against its directory."""
    spec_path = Path(path)
    try:
        raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokmixError(f"{spec_path}: no such run spec") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TokmixError(f"{spec_path}: not a readable YAML run spec ({exc})") from None
    if not isinstance(raw, dict):
        raise TokmixError(f"{spec_path}: a run spec is a YAML mapping (see `tokmix run --help`)")
    if out is not None:
        raw["out"] = out
    try:
        spec = RunSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise TokmixError(f"{spec_path}: invalid run spec: {problems}") from None
    base = spec_path.resolve().parent
    categories = {
        name: cat.model_copy(update={"paths": [_resolve(p, base) for p in cat.paths]})
        for name, cat in spec.categories.items()
    }
    return spec.model_copy(
        update={
            "tokenizers": [_resolve(t, base) for t in spec.tokenizers],
            "categories": categories,
        }
    )
