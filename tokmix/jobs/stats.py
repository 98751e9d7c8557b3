"""Token statistics of several tokenizers side by side (ARCHITECTURE.md §6), branching off word
tables.

Tokenizers that share a pre-tokenizer share one word table per category (one
``word_counts/pretokenizer=KEY`` dataset, the corpus read once per family); each tokenizer
then encodes every distinct word once. Per tokenizer it commits ``token_stats/``,
``token_frequencies/`` and ``undertrained/`` (``tokenizer=NAME``), skipped when committed for
the same tokenizer file and word-table inputs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from tokmix.analytics.encoders import word_encoder
from tokmix.analytics.token_stats import (
    TokenCounts,
    count_tokens,
    token_names,
    token_vocabulary,
    undertrained,
    word_junctions,
    worth_splitting,
)
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import WordTable
from tokmix.errors import TokmixError
from tokmix.io import catalog
from tokmix.io.datasets import is_committed, read_dataset, write_dataset
from tokmix.jobs.count import check_engine, count_inputs, read_word_tables
from tokmix.jobs.count_ray import count_for
from tokmix.jobs.executors import LocalExecutor
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.jobs.stage import RunContext, Stage
from tokmix.jobs.tokenizers import load_tokenizer
from tokmix.schemas import TOKEN_FREQUENCIES, TOKEN_STATS, UNDERTRAINED
from tokmix.schemas.run_spec import CountEngine, RunSpec

STATS_VERSION = "1"
"""Bumped when what the stage computes changes, so committed results are recomputed."""

DATASETS = {d.kind: d.schema for d in catalog.of_stage("stats")}


def dataset_name(kind: str, tokenizer: str) -> str:
    return next(d for d in catalog.of_stage("stats") if d.kind == kind).name(tokenizer)


def stats_inputs(tokenizer: LoadedTokenizer, word_table_inputs: dict[str, str]) -> dict[str, str]:
    return {
        "tokenizer": tokenizer.sha256,
        "word_tables": json.dumps(word_table_inputs, sort_keys=True),
        "stats_version": STATS_VERSION,
    }


def run_stats(
    tokenizers: Sequence[str | LoadedTokenizer],
    categories: list[CategorySpec],
    out: str,
    options: SampleOptions,
    *,
    pretokenizer: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
    engine: CountEngine = "auto",
    engine_key: str = "count.engine",
) -> pa.Table:
    """``tokmix stats``: the stats stage alone, its tasks in this process; the ``token_stats``
    rows of these tokenizers (one per tokenizer and category). ``engine`` counts the word
    tables (``engine_key`` names it in messages)."""
    loaded = [
        t if isinstance(t, LoadedTokenizer) else load_tokenizer(t, pretokenizer=pretokenizer)
        for t in tokenizers
    ]
    _check_names(loaded)
    spec = RunSpec.model_validate(
        {
            "out": out,
            "tokenizers": [t.path for t in loaded],
            "categories": {c.name: {"paths": [c.path]} for c in categories},
            "pretokenizer": pretokenizer,
            "stages": ["stats"],
            "bootstrap": {"groups": 1},
            "count": {"engine": engine},
        }
    )
    for tok in loaded:
        check_engine(tok.stats_pretokenizer, spec.count.engine, engine_key)
    options_of = {c.name: options for c in categories}
    ctx = RunContext(spec, loaded, {}, categories, options_of, LocalExecutor(), force, log)
    STATS.run(ctx)
    return read_token_stats(out, [t.name for t in loaded])


def _check_names(tokenizers: list[LoadedTokenizer]) -> None:
    seen: dict[str, str] = {}
    for tok in tokenizers:
        if tok.name in seen:
            raise TokmixError(
                f"two tokenizers are both named {tok.name!r} ({seen[tok.name]} and {tok.path}); "
                "outputs are keyed by name: copy or rename one file (the name is the file's "
                "stem, or its directory's for tokenizer.json / tokenizer.model)"
            )
        seen[tok.name] = tok.path


def tokenizer_counts(
    tokenizer: LoadedTokenizer, tables: dict[str, WordTable]
) -> dict[str, TokenCounts]:
    encoder = word_encoder(tokenizer)
    cuts = word_junctions(tokenizer) if worth_splitting(tokenizer) else None
    return {category: count_tokens(table, encoder, cuts) for category, table in tables.items()}


def write_stats(
    tokenizer: LoadedTokenizer,
    tables: dict[str, WordTable],
    out: str,
    inputs: dict[str, str],
) -> dict[str, TokenCounts]:
    """Encode every category's word table and commit the three datasets of ``tokenizer``."""
    counts = tokenizer_counts(tokenizer, tables)
    provenance = {"stage": "stats", "tokenizer_name": tokenizer.name, **inputs}
    for kind, table in stats_tables(tokenizer, counts).items():
        write_dataset(
            table,
            out,
            dataset_name(kind, tokenizer.name),
            schema=DATASETS[kind],
            partition_cols=(),
            provenance=provenance,
            input_hashes=inputs,
        )
    return counts


def stats_tables(tokenizer: LoadedTokenizer, counts: dict[str, TokenCounts]) -> dict[str, pa.Table]:
    """The three datasets' rows for one tokenizer (see ``tokmix.schemas``)."""
    name = tokenizer.name
    vocab_size = len(token_vocabulary(tokenizer))
    stats_rows: list[dict[str, Any]] = []
    freq: dict[str, list[Any]] = {k: [] for k in TOKEN_FREQUENCIES.names}
    produced: Counter[int] = Counter()
    names = token_names(tokenizer)
    for category, c in counts.items():
        stats_rows.append(
            {
                "tokenizer": name,
                "category": category,
                "pretokenizer": tokenizer.stats_pretokenizer.key,
                "documents": c.documents,
                "bytes": c.bytes_,
                "chars": c.chars,
                "pretokens": c.pretokens,
                "tokens": c.tokens,
                "vocab_size": vocab_size,
                "tokens_used": c.tokens_used,
            }
        )
        ids = c.token_ids.tolist()
        n = len(ids)
        freq["tokenizer"] += [name] * n
        freq["category"] += [category] * n
        freq["token_id"] += ids
        freq["token"] += [names.get(i, b"") for i in ids]
        freq["count"] += c.token_counts.tolist()
        produced.update(dict(zip(ids, c.token_counts.tolist(), strict=True)))
    candidates = undertrained(tokenizer, produced)
    under = {
        "tokenizer": [name] * len(candidates),
        "token_id": [c[0] for c in candidates],
        "token": [c[1] for c in candidates],
        "reason": [c[2] for c in candidates],
        "count": [c[3] for c in candidates],
    }
    return {
        "token_stats": pa.Table.from_pylist(stats_rows, schema=TOKEN_STATS),
        "token_frequencies": pa.table(freq, schema=TOKEN_FREQUENCIES),
        "undertrained": pa.table(under, schema=UNDERTRAINED),
    }


def read_token_stats(out: str, tokenizers: Sequence[str]) -> pa.Table:
    """Committed ``token_stats`` rows of the named tokenizers, in that order."""
    parts = [read_dataset(out, dataset_name("token_stats", n), TOKEN_STATS) for n in tokenizers]
    return pa.concat_tables([p.select(TOKEN_STATS.names).cast(TOKEN_STATS) for p in parts])


def _stats_task(
    tokenizer_path: str, pretokenizer: str | None, out: str, inputs: dict[str, str]
) -> list[dict[str, Any]]:
    tok = load_tokenizer(tokenizer_path, pretokenizer=pretokenizer)
    tables = read_word_tables(out, tok.stats_pretokenizer)
    write_stats(tok, tables, out, inputs)
    return read_token_stats(out, [tok.name]).to_pylist()


def _committed(out: str, tokenizer: LoadedTokenizer, inputs: dict[str, str]) -> bool:
    return all(is_committed(out, dataset_name(k, tokenizer.name), inputs) for k in DATASETS)


def _run_stats_stage(ctx: RunContext) -> None:
    """Token statistics: one word table per encoder pre-tokenizer family (counted by the
    count stage's tasks, shared by the tokenizers of the family), then one task per
    tokenizer."""
    spec = ctx.spec
    families: dict[str, list[LoadedTokenizer]] = {}
    for tok in ctx.tokenizers:
        families.setdefault(tok.stats_pretokenizer.key, []).append(tok)
    calls = []
    for members in families.values():
        pretok = members[0].stats_pretokenizer
        table_inputs = count_inputs(ctx.categories, pretok, ctx.options)
        todo = [
            tok
            for tok in members
            if ctx.force or not _committed(spec.out, tok, stats_inputs(tok, table_inputs))
        ]
        if not todo:
            ctx.log(f"stats: {', '.join(t.name for t in members)} already committed")
            continue
        count_for(ctx, pretok, ctx.force and "count" not in spec.stages)  # else just counted
        ctx.log(
            f"stats: word tables of pre-tokenizer {pretok.name} for "
            f"{', '.join(t.name for t in todo)}"
        )
        calls += [
            (t.path, spec.pretokenizer, spec.out, stats_inputs(t, table_inputs)) for t in todo
        ]
    ctx.executor.map(_stats_task, calls, resources=spec.resources_for("stats"), retries=2)
    rows = read_token_stats(spec.out, [t.name for t in ctx.tokenizers]).to_pylist()
    ctx.summary["token_stats"] = rows


STATS = Stage("stats", tuple(catalog.of_stage("stats")), _run_stats_stage)
