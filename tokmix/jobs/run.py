"""The whole pipeline from one run spec, on Ray: count -> replay -> solve (DESIGN §1).

    tokmix run SPEC.yaml                                   (embedded Ray, or RAY_ADDRESS)
    ray job submit --working-dir . -- python -m tokmix.jobs.run SPEC.yaml

Each stage commits atomically and is skipped when committed from the same inputs, so a run
that was killed (a node lost, a job cancelled) is resumed by submitting it again, and ends
with exactly what an uninterrupted run writes. A summary of the run goes to
``OUT/runs/RUN_ID.json`` and to the log; every log line names the run id.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import ray

from tokmix import __version__
from tokmix.bpe.pretokenizers import Pretokenizer
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.cli import add_run_arguments
from tokmix.errors import TokmixError
from tokmix.io.datasets import is_committed
from tokmix.io.fs import filesystem_for, join, write_bytes_atomic
from tokmix.jobs.count import count_inputs, read_word_tables
from tokmix.jobs.count_ray import run_count_ray
from tokmix.jobs.merge_checks import (
    MergeSteps,
    checks_for,
    known_bases,
    merge_steps,
    record_checks,
)
from tokmix.jobs.replay_ray import run_replay_ray
from tokmix.jobs.runtime import Log, get, ray_session, stderr_log
from tokmix.jobs.solve import (
    bootstrap_options,
    mixtures_name,
    read_mixture_json,
    run_solve,
    solve_inputs,
)
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.jobs.stats import DATASETS as STATS_DATASETS
from tokmix.jobs.stats import dataset_name as stats_dataset_name
from tokmix.jobs.stats import read_token_stats, stats_inputs, write_stats
from tokmix.jobs.tokenizers import load_tokenizer
from tokmix.schemas import MIXTURES
from tokmix.schemas.run_spec import RunSpec, load_run_spec


def _category_specs(spec: RunSpec) -> tuple[list[CategorySpec], dict[str, SampleOptions]]:
    cats, options = [], {}
    for name, cat in spec.categories.items():
        cats.append(CategorySpec(name, cat.paths if len(cat.paths) > 1 else cat.paths[0]))  # type: ignore[arg-type]
        options[name] = SampleOptions(
            max_bytes=cat.max_bytes,
            seed=cat.seed,
            text_field=cat.text_field,
            skip_documents=cat.skip_documents,
            txt_mode=cat.txt_mode,
        )
    return cats, options


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def ray_map(options: dict[str, Any]) -> Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]]:
    """A ``map`` that runs each call as a Ray task (the function is shipped once)."""

    def mapped(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        fn_ref = ray.put(fn)
        task = ray.remote(_apply).options(**options)
        return [get(ref) for ref in [task.remote(fn_ref, item) for item in items]]

    return mapped


def _solve_remote(
    out: str,
    tokenizer: str,
    options: dict[str, Any],
    bootstrap: dict[str, Any] | None,
    task_options: dict[str, Any],
) -> dict[str, Any]:
    """The solve stage's task; bootstrap replicates fan out as tasks of their own."""
    return run_solve(out, tokenizer, bootstrap=bootstrap, map_fn=ray_map(task_options), **options)


def _count(
    spec: RunSpec,
    categories: list[CategorySpec],
    options: dict[str, SampleOptions],
    pretokenizer: Pretokenizer,
    force: bool,
    log: Log,
) -> dict[str, dict[str, int]]:
    return run_count_ray(
        categories,
        options,
        pretokenizer,
        spec.out,
        shard_bytes=spec.shard_bytes,
        partitions=spec.reduce_partitions,
        groups=spec.bootstrap.groups,
        resources=spec.resources_for("count"),
        force=force,
        log=log,
    )


def _stats_remote(
    tokenizer_path: str, pretokenizer: str | None, out: str, inputs: dict[str, str]
) -> list[dict[str, Any]]:
    tok = load_tokenizer(tokenizer_path, pretokenizer=pretokenizer)
    tables = read_word_tables(out, tok.stats_pretokenizer)
    write_stats(tok, tables, out, inputs)
    return read_token_stats(out, [tok.name]).to_pylist()


def _run_stats_stage(
    spec: RunSpec,
    tokenizers: list[LoadedTokenizer],
    categories: list[CategorySpec],
    options: dict[str, SampleOptions],
    force: bool,
    log: Log,
) -> list[dict[str, Any]]:
    """Token statistics: one word table per encoder pre-tokenizer family (counted on Ray,
    shared by the tokenizers of the family), then one task per tokenizer."""
    task = ray.remote(_stats_remote).options(
        **spec.resources_for("stats").ray_options(), max_retries=2
    )
    refs, rows = [], []
    for tok in tokenizers:
        pretok = tok.stats_pretokenizer
        inputs = stats_inputs(tok, count_inputs(categories, pretok, options))
        if not force and all(
            is_committed(spec.out, stats_dataset_name(kind, tok.name), inputs)
            for kind in STATS_DATASETS
        ):
            log(f"stats {tok.name}: already committed for these word tables; skipped")
            rows += read_token_stats(spec.out, [tok.name]).to_pylist()
            continue
        _count(spec, categories, options, pretok, False, log)
        refs.append(task.remote(tok.path, spec.pretokenizer, spec.out, inputs))
    for ref in refs:
        rows += get(ref)
    for row in rows:
        tokens = row["tokens"] or 1
        log(
            f"stats {row['tokenizer']} {row['category']}: {row['bytes'] / tokens:.2f} bytes/token, "
            f"vocabulary use {row['tokens_used'] / max(row['vocab_size'], 1):.1%}"
        )
    return rows


def run_pipeline(spec: RunSpec, *, force: bool = False, log: Log | None = None) -> dict[str, Any]:
    """Run the spec's stages on the current Ray (see :func:`ray_session`); the run summary."""
    run_id = spec.effective_run_id
    log = log or stderr_log(run_id)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    tokenizers: list[LoadedTokenizer] = []
    for path in spec.tokenizers:
        tok = load_tokenizer(path, pretokenizer=spec.pretokenizer)
        for note in tok.notes:
            log(f"tokenizer {tok.name}: {note}")
        tokenizers.append(tok)
    names = [t.name for t in tokenizers]
    if len(set(names)) != len(names):
        raise TokmixError(f"tokenizer names must be unique within a run: {names}")
    categories, options = _category_specs(spec)
    log(
        f"run {run_id}: {len(tokenizers)} tokenizer(s), {len(categories)} categories, "
        f"stages {', '.join(spec.stages)}, out {spec.out}"
    )

    summary: dict[str, Any] = {
        "run_id": run_id,
        "tokmix_version": __version__,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "out": spec.out,
        "spec": spec.model_dump(mode="json"),
        "corpus": {},
        "tokenizers": {},
    }
    if "count" in spec.stages:
        t0 = time.perf_counter()
        for key, tok in {t.pretokenizer.key: t for t in tokenizers}.items():
            summary["corpus"][key] = _count(spec, categories, options, tok.pretokenizer, force, log)
        seconds["count"] = time.perf_counter() - t0

    steps: dict[str, MergeSteps] = {}
    if "replay" in spec.stages:
        t0 = time.perf_counter()
        bases = known_bases()
        for tok in tokenizers:
            steps[tok.name] = merge_steps(tok, spec.merge_range, spec.merges, bases)
            first, last = steps[tok.name].first, steps[tok.name].last
            for message in steps[tok.name].messages:
                log(f"{tok.name}: {message}")
            run_replay_ray(
                tok,
                spec.out,
                first,
                last,
                pretokenizer=spec.pretokenizer,
                resources=spec.resources_for("replay"),
                force=force,
                log=log,
            )
        seconds["replay"] = time.perf_counter() - t0

    if "solve" in spec.stages:
        t0 = time.perf_counter()
        solver = spec.solver.model_dump()
        bootstrap = bootstrap_options(spec.bootstrap)
        solve = ray.remote(_solve_remote).options(
            **spec.resources_for("solve").ray_options(), max_retries=2
        )
        pending = {}
        for tok in tokenizers:
            inputs = solve_inputs(spec.out, tok.name, {**solver, "bootstrap": bootstrap})
            if not force and is_committed(
                spec.out, mixtures_name(tok.name), inputs, schema=MIXTURES
            ):
                log(f"solve {tok.name}: already committed for these trajectories; skipped")
                summary["tokenizers"][tok.name] = read_mixture_json(spec.out, tok.name)
            else:
                pending[tok.name] = solve.remote(
                    spec.out, tok.name, solver, bootstrap, spec.resources_for("solve").ray_options()
                )
        for name, ref in pending.items():
            summary["tokenizers"][name] = get(ref)
            d = summary["tokenizers"][name]["diagnostics"]
            log(
                f"solve {name}: {d['constraints']} constraints, {d['rounds']} rounds, "
                f"{d['seconds']:.1f}s"
            )
        for tok in tokenizers:  # lineage, hand-inserted merges, order check: into the docs
            checks, warnings = checks_for(
                tok,
                steps.get(tok.name) or merge_steps(tok, spec.merge_range, spec.merges),
                read_word_tables(spec.out, tok.pretokenizer),
            )
            record_checks(spec.out, tok.name, checks, warnings)
            summary["tokenizers"][tok.name]["diagnostics"].update(checks)
            for warning in warnings:
                log(f"WARNING {tok.name}: {warning}")
        seconds["solve"] = time.perf_counter() - t0

    if "stats" in spec.stages:
        t0 = time.perf_counter()
        summary["token_stats"] = _run_stats_stage(spec, tokenizers, categories, options, force, log)
        seconds["stats"] = time.perf_counter() - t0

    summary["stage_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    fs, path = filesystem_for(join(spec.out, "runs", f"{run_id}.json"))
    write_bytes_atomic(fs, path, (json.dumps(summary, indent=1, default=str) + "\n").encode())
    for line in summary_lines(summary):
        log(line)
    return summary


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
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tokmix.jobs.run", description="Run a tokmix pipeline from a spec on Ray."
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run_from_args(args)
    except TokmixError as exc:
        print(f"tokmix: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    spec = load_run_spec(args.spec, out=args.out)
    log = stderr_log(spec.effective_run_id)
    with ray_session(num_cpus=args.num_cpus, log=log):
        summary = run_pipeline(spec, force=args.force, log=log)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    return summary


if __name__ == "__main__":
    sys.exit(main())
