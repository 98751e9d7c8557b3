"""The whole inference on one machine: count -> replay -> solve, each stage committed.

``tokmix infer`` calls :func:`run_infer`; a stage whose inputs are unchanged since its last
commit is skipped, so an interrupted run resumes where it stopped. With bootstrap groups the
stages write the datasets ``tokmix run`` writes (group word counts, group trajectories) and the
byte shares get the same intervals, from the same functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tokmix.bpe.loaders import load_tokenizer
from tokmix.jobs.count import run_count_groups
from tokmix.jobs.replay import run_replay
from tokmix.jobs.solve import bootstrap_options, run_solve
from tokmix.jobs.spec import CategorySpec, SampleOptions, parse_merge_range
from tokmix.schemas.run_spec import BootstrapOptions


def run_infer(
    tokenizer_path: str,
    categories: list[CategorySpec],
    out: str,
    options: SampleOptions,
    *,
    merges: int | None = None,
    merge_range: str | None = None,
    pretokenizer: str | None = None,
    bootstrap: BootstrapOptions | None = None,
    solver_options: dict[str, Any] | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Infer the mixture of ``tokenizer_path`` over ``categories``; the JSON document.

    ``bootstrap``: intervals from document groups (None or ``groups: 1``: point estimates
    only); ``solver_options`` go to :func:`tokmix.solvers.mixture_lp.solve_mixture`."""
    groups = bootstrap.groups if bootstrap is not None else 1
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_path, pretokenizer=pretokenizer)
    seconds["load"] = time.perf_counter() - t0
    for note in tokenizer.notes:
        log(f"tokenizer: {note}")
    first, last = parse_merge_range(merge_range, merges, tokenizer.n_merges)
    log(
        f"{tokenizer.name}: {tokenizer.format}, {tokenizer.n_merges} merges, "
        f"pre-tokenizer {tokenizer.pretokenizer.name}; replaying steps {first}..{last}"
    )

    t0 = time.perf_counter()
    tables, group_tables = run_count_groups(
        categories, tokenizer.pretokenizer, out, options, groups=groups, force=force
    )
    seconds["count"] = time.perf_counter() - t0
    for name, table in tables.items():
        log(
            f"count {name}: {table.documents} documents, {table.bytes_:,} bytes, "
            f"{len(table):,} distinct words"
        )

    t0 = time.perf_counter()
    run_replay(tokenizer, tables, out, first, last, group_tables=group_tables, force=force)
    seconds["replay"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    doc = run_solve(
        out,
        tokenizer.name,
        bootstrap=bootstrap_options(bootstrap),
        log=log,
        **(solver_options or {}),
    )
    seconds["solve"] = time.perf_counter() - t0
    doc["diagnostics"]["stage_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    doc["diagnostics"]["out"] = out
    return doc
