"""The whole inference on this machine: the pipeline's count -> replay -> solve stages, their
tasks run one after the other (:class:`tokmix.jobs.executors.LocalExecutor`), the bootstrap
replicates in a pool of processes with ``workers``.

``tokmix infer`` builds a run spec from its flags and calls :func:`run_infer`; a stage whose
inputs are unchanged since its last commit is skipped, so an interrupted run resumes where it
stopped. The stages, tasks, datasets and input digests are ``tokmix run``'s, so either command
reuses what the other committed, and the intervals are the same, bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tokmix.jobs.executors import LocalExecutor
from tokmix.jobs.pipeline import mixture_of, prepare, run_stages
from tokmix.schemas.mixture import MixtureResult
from tokmix.schemas.run_spec import RunSpec

INFER_STAGES = ["count", "replay", "solve"]


def run_infer(
    spec: RunSpec,
    *,
    force: bool = False,
    workers: int = 1,
    log: Callable[[str], None] = lambda _msg: None,
    range_keys: tuple[str, str] = ("merges", "merge_range"),
    engine_key: str = "count.engine",
) -> MixtureResult:
    """Infer the mixture of the spec's (first) tokenizer over its categories.

    ``spec.bootstrap``: intervals from document groups (``groups: 1``: point estimates only);
    ``spec.solver``: the estimator and :func:`tokmix.solvers.mixture_lp.solve_mixture`'s
    options; ``spec.count``: the count engine. ``workers > 1`` solves the bootstrap
    replicates in a pool of that many processes (same results: the draws come from the seed
    before any is solved); count and replay tasks run here. ``range_keys`` and ``engine_key`` name
    ``merges``, ``merge_range`` and ``count.engine`` in messages as the user gave them."""
    spec = spec.model_copy(update={"tokenizers": spec.tokenizers[:1], "stages": INFER_STAGES})
    t0 = time.perf_counter()
    ctx = prepare(
        spec,
        LocalExecutor(fan_out=workers),
        force=force,
        log=log,
        range_keys=range_keys,
        engine_key=engine_key,
    )
    load = time.perf_counter() - t0
    tokenizer = ctx.tokenizers[0]
    first, last = ctx.steps[tokenizer.name]
    log(
        f"{tokenizer.name}: {tokenizer.format}, {tokenizer.n_merges} merges, "
        f"pre-tokenizer {tokenizer.pretokenizer.name}; replaying steps {first}..{last}"
    )
    seconds = {"load": load, **run_stages(ctx)}
    for name, totals in ctx.summary["corpus"][tokenizer.pretokenizer.key].items():
        log(
            f"count {name}: {totals['documents']} documents, {totals['bytes']:,} bytes, "
            f"{totals['distinct_words']:,} distinct words"
        )
    stage_seconds = {k: round(v, 3) for k, v in seconds.items()}
    return mixture_of(ctx, tokenizer.name).with_diagnostics(
        stage_seconds=stage_seconds, out=spec.out
    )
