"""The pipeline: one stage order, run by one loop, on either executor (ARCHITECTURE.md §1).

    corpus --count--> word tables --replay--> trajectories --solve--> mixtures
                           '--stats--> token statistics

``tokmix run SPEC.yaml`` is :func:`run_pipeline` (the stages' tasks on Ray: embedded, or
``RAY_ADDRESS``; ``python -m tokmix run SPEC.yaml`` as a Ray job); ``tokmix infer`` is
:func:`tokmix.jobs.infer.run_infer` (the same stages, their tasks in this process). Each stage
commits atomically and is skipped when committed from the same inputs, so a run that was
killed (a node lost, a job cancelled) is resumed by submitting it again, and ends with exactly
what an uninterrupted run writes; ``tokmix run`` reuses what ``tokmix infer`` committed. A
summary of a run goes to ``OUT/runs/RUN_ID.json`` and to the log; every log line names the run
id.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from tokmix import __version__
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokmixError
from tokmix.io.catalog import run_summary_path
from tokmix.io.fs import filesystem_for, write_bytes_atomic
from tokmix.io.root import owned_root
from tokmix.jobs.count import check_engine, read_word_tables
from tokmix.jobs.count_ray import COUNT
from tokmix.jobs.executors import Executor
from tokmix.jobs.merge_checks import (
    MergeSteps,
    checks_for,
    known_bases,
    merge_steps,
    record_checks,
)
from tokmix.jobs.progress import Log, stderr_log
from tokmix.jobs.replay_ray import REPLAY
from tokmix.jobs.report import write_groups_chart
from tokmix.jobs.solve import SOLVE, check_device
from tokmix.jobs.solve_checkpoints import checkpoint_seconds
from tokmix.jobs.spec import categories_of
from tokmix.jobs.stage import RunContext, Stage
from tokmix.jobs.stats import STATS
from tokmix.jobs.tokenizers import load_tokenizer
from tokmix.schemas.mixture import MixtureResult
from tokmix.schemas.run_spec import STAGES as STAGE_NAMES
from tokmix.schemas.run_spec import RunSpec

STAGES: tuple[Stage, ...] = (COUNT, REPLAY, SOLVE, STATS)
"""Every stage, in the one order they run in."""
assert tuple(s.name for s in STAGES) == STAGE_NAMES, "the spec's stage names follow STAGES"


def _merge_steps(
    spec: RunSpec,
    tok: LoadedTokenizer,
    bases: list[LoadedTokenizer],
    keys: tuple[str, str],
    prefix: str,
) -> MergeSteps:
    """The spec's merge range checked against a tokenizer, as soon as it has loaded; lineage
    (``auto``) and hand-inserted merges decide the default (:mod:`tokmix.jobs.merge_checks`)."""
    try:
        return merge_steps(tok, spec.merge_range, spec.merges, bases, keys=keys)
    except TokmixError as exc:
        raise TokmixError(f"{prefix}{exc}") from None


def prepare(
    spec: RunSpec,
    executor: Executor,
    *,
    force: bool = False,
    log: Log = lambda _m: None,
    range_keys: tuple[str, str] = ("merges", "merge_range"),
    message_prefix: str = "",
    engine_key: str = "count.engine",
) -> RunContext:
    """Load the spec's tokenizers and check everything that needs them (unique names, the
    merge range, the solver's device, a ``compiled`` count engine) before any stage runs;
    ``range_keys`` and ``engine_key`` name the options in messages as the user gave them."""
    check_device(spec, executor)
    if "solve" in spec.stages:
        checkpoint_seconds()  # a bad TOKMIX_SOLVE_CHECKPOINT_SECONDS fails now, not after counting
    tokenizers: list[LoadedTokenizer] = []
    for path in spec.tokenizers:
        tok = load_tokenizer(path, pretokenizer=spec.pretokenizer)
        for note in tok.notes:
            log(f"tokenizer {tok.name}: {note}")
        tokenizers.append(tok)
    names = [t.name for t in tokenizers]
    if len(set(names)) != len(names):
        raise TokmixError(f"tokenizer names must be unique within a run: {names}")
    try:
        check_engines(spec, tokenizers, engine_key)
    except TokmixError as exc:
        raise TokmixError(f"{message_prefix}{exc}") from None
    bases = known_bases(spec.bases)
    checked = {t.name: _merge_steps(spec, t, bases, range_keys, message_prefix) for t in tokenizers}
    for name, found in checked.items():
        for message in found.messages:
            log(f"tokenizer {name}: {message}")
    steps = {name: (found.first, found.last) for name, found in checked.items()}
    categories, options = categories_of(spec)
    return RunContext(
        spec, tokenizers, steps, categories, options, executor, force, log, merge_checks=checked
    )


def check_engines(spec: RunSpec, tokenizers: list[LoadedTokenizer], key: str) -> None:
    """The spec's count engine against every pre-tokenizer its stages will count with (the
    stats stage also counts with each tokenizer's encoder split)."""
    pretokenizers = [t.pretokenizer for t in tokenizers]
    if "stats" in spec.stages:
        pretokenizers += [t.stats_pretokenizer for t in tokenizers]
    for pretokenizer in pretokenizers:
        check_engine(pretokenizer, spec.count.engine, key)


def run_stages(ctx: RunContext) -> dict[str, float]:
    """Run the spec's stages in the one order; seconds per stage. After the solve, the merge
    checks (lineage, hand-inserted merges, the order check on the counted samples) join each
    tokenizer's result and solve document.

    The output root is claimed and leased for the duration (:mod:`tokmix.io.root`): a folder
    that is not tokmix's is refused unless ``force``, and a second run into the same root fails
    at once instead of mixing its datasets into this one's."""
    seconds: dict[str, float] = {}
    with owned_root(ctx.spec.out, ctx.spec.effective_run_id, force=ctx.force) as lease:
        if lease.broken is not None:
            ctx.log(
                f"output root {ctx.spec.out}: took over the lease of run "
                f"{lease.broken.get('run_id')!r} (host {lease.broken.get('host')}), which "
                "stopped without releasing it"
            )
        for stage in STAGES:
            if stage.name in ctx.spec.stages:
                t0 = time.perf_counter()
                stage.run(ctx)
                if stage.name == "solve":
                    _record_merge_checks(ctx)
                seconds[stage.name] = time.perf_counter() - t0
    return seconds


def _record_merge_checks(ctx: RunContext) -> None:
    results = ctx.summary.get("tokenizers", {})
    for tok in ctx.tokenizers:
        if tok.name not in results:
            continue
        tables = read_word_tables(ctx.spec.out, tok.pretokenizer)
        diagnostics, warnings = checks_for(tok, ctx.merge_checks[tok.name], tables)
        results[tok.name] = record_checks(ctx.spec.out, results[tok.name], diagnostics)
        for warning in warnings:
            ctx.log(f"WARNING {tok.name}: {warning}")


def run_pipeline(
    spec: RunSpec,
    *,
    force: bool = False,
    log: Log | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run the spec's stages with ``executor`` (default: the current Ray, see
    :func:`tokmix.jobs.runtime.ray_session`); the run summary, also written to
    ``OUT/runs/RUN_ID.json``."""
    if executor is None:
        from tokmix.jobs.ray_executor import RayExecutor

        executor = RayExecutor()
    run_id = spec.effective_run_id
    log = log or stderr_log(run_id)
    started = time.perf_counter()
    ctx = prepare(spec, executor, force=force, log=log, message_prefix="run spec: ")
    log(
        f"run {run_id}: {len(ctx.tokenizers)} tokenizer(s), {len(ctx.categories)} categories, "
        f"stages {', '.join(spec.stages)}, out {spec.out}"
    )
    ctx.summary.update(
        {
            "run_id": run_id,
            "tokmix_version": __version__,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "out": spec.out,
            "spec": spec.model_dump(mode="json"),
            "corpus": {},
            "tokenizers": {},
        }
    )
    seconds = run_stages(ctx)
    summary = ctx.summary
    summary["tokenizers"] = {
        name: result.to_json() for name, result in summary["tokenizers"].items()
    }
    summary["stage_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    chart = write_groups_chart(spec.out, run_id, summary["tokenizers"])
    if chart is not None:
        summary["groups_chart"] = chart
    fs, path = filesystem_for(run_summary_path(spec.out, run_id))
    write_bytes_atomic(fs, path, (json.dumps(summary, indent=1, default=str) + "\n").encode())
    for line in summary_lines(summary):
        log(line)
    return summary


def mixture_of(ctx: RunContext, tokenizer: str) -> MixtureResult:
    result: MixtureResult = ctx.summary["tokenizers"][tokenizer]
    return result


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The run summary as a person reads it."""
    lines = [f"run {summary['run_id']} done in {summary['seconds']:.1f}s"]
    stages = summary.get("stage_seconds", {})
    if stages:
        lines.append("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()))
    for key, cats in summary.get("corpus", {}).items():
        total = sum(c["bytes"] for c in cats.values())
        docs = sum(c["documents"] for c in cats.values())
        lines.append(f"  corpus ({key}): {len(cats)} categories, {docs} documents, {total:,} bytes")
    for name, doc in summary.get("tokenizers", {}).items():
        rows = sorted(doc["categories"], key=lambda r: -r["byte_share"])
        shares = ", ".join(f"{r['name']} {r['byte_share']:.1%}" for r in rows)
        lines.append(f"  {name}: {shares}")
    if "groups_chart" in summary:
        lines.append(f"  category groups chart: {summary['groups_chart']}")
    for row in summary.get("token_stats", []):
        lines.append(
            f"  stats {row['tokenizer']} {row['category']}: "
            f"{row['bytes'] / (row['tokens'] or 1):.2f} bytes/token, "
            f"vocabulary use {row['tokens_used'] / max(row['vocab_size'], 1):.1%}"
        )
    return lines
