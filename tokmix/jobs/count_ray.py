"""Stage 1 on Ray: shard the corpus, count each shard, reduce by word hash (DESIGN §3).

    plan     files -> shards (byte ranges, row groups, whole files; tokmix.io.shards)
    measure  (only with a byte budget or a skip) document sizes per shard, so each shard's
             part of the sample is known before counting: the sample equals the in-process one
    map      one task per shard: its word table, split into R partitions by a stable word hash
    reduce   one task per partition: sums its words over all shards and categories and writes
             ``word_counts/.../category=C/part-{r}.parquet`` itself; the driver only commits

Nothing big passes through the driver. Tasks are pure functions of their inputs and write
deterministic file names, so Ray may retry any of them (a dead worker, a lost object) and the
committed result is the same as an uninterrupted run's.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from tokmix.bpe.pretokenizers import Pretokenizer
from tokmix.bpe.words import WordTable
from tokmix.errors import CorpusReadError
from tokmix.io.corpus import _no_text_message
from tokmix.io.datasets import begin_dataset, commit_dataset, is_committed, write_part
from tokmix.io.shards import ShardSample, plan_shards, sample_plan, shard_documents
from tokmix.jobs.count import (
    corpus_stats_name,
    count_inputs,
    stats_table_from_totals,
    word_counts_name,
)
from tokmix.jobs.runtime import Log, Progress, cluster_cpus, wait_all
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.schemas import CORPUS_STATS, WORD_COUNTS
from tokmix.schemas.run_spec import StageResources

_PARTITION_SCHEMA = pa.schema([("word", pa.binary()), ("count", pa.int64())])
MAX_DEFAULT_PARTITIONS = 64
"""Reduce partitions when the spec names none: one per CPU, up to this many (each map task
returns one object per partition, so thousands would cost more than they spread)."""
_TOTALS = ("documents", "bytes", "chars", "pretokens", "invalid_utf8_documents")


def word_partition(words: Sequence[bytes], partitions: int) -> np.ndarray:
    """The reduce partition of each word: a hash that is the same in every process (Python's
    ``hash`` is salted per process, so it would scatter one word over partitions)."""
    hashes = np.fromiter((zlib.crc32(w) for w in words), dtype=np.int64, count=len(words))
    return hashes % partitions


def _options_dict(options: SampleOptions) -> dict[str, Any]:
    return {"text_field": options.text_field, "txt_mode": options.txt_mode}


def _measure_shard(sample: ShardSample, options: SampleOptions) -> np.ndarray:
    """UTF-8 size of every document of a shard (for the sample plan)."""
    sizes = [
        len(doc.text.encode("utf-8"))
        for doc in shard_documents(sample.shard, **_options_dict(options))
    ]
    return np.asarray(sizes, dtype=np.int64)


def _count_shard(
    sample: ShardSample, pretokenizer: Pretokenizer, options: SampleOptions, partitions: int
) -> list[Any]:
    """Map: the shard's word table as ``partitions`` Arrow tables, then its totals."""
    table = WordTable()
    seen = 0
    sources: set[str] = set()
    for doc in shard_documents(sample.shard, **_options_dict(options)):
        seen += 1
        if seen <= sample.skip:
            continue
        if sample.take is not None and seen > sample.skip + sample.take:
            break
        table.add_text(doc.text, pretokenizer)
        table.invalid_utf8_documents += doc.invalid_utf8
        sources.add(doc.source)
    words = list(table.counts)
    counts = np.fromiter(table.counts.values(), dtype=np.int64, count=len(words))
    part = word_partition(words, partitions)
    word_array = pa.array(words, pa.binary())
    out: list[Any] = []
    for r in range(partitions):
        idx = np.flatnonzero(part == r)
        out.append(
            pa.table(
                {"word": word_array.take(pa.array(idx)), "count": pa.array(counts[idx])},
                schema=_PARTITION_SCHEMA,
            )
        )
    totals = {k: int(v) for k, v in table.totals().items() if k in _TOTALS}
    out.append({"totals": totals, "sources": sorted(sources), "bytes_read": sample.shard.size})
    return out


def _reduce_partition(
    number: int,
    categories: list[str],
    out: str,
    dataset: str,
    provenance: dict[str, Any],
    *parts: pa.Table,
) -> dict[str, Any]:
    """Reduce: sum partition ``number`` of every shard per category and write its files."""
    tables = []
    for category in sorted(set(categories)):
        mine = [p for c, p in zip(categories, parts, strict=True) if c == category and p.num_rows]
        if not mine:
            continue
        summed = pa.concat_tables(mine).group_by("word").aggregate([("count", "sum")])
        summed = summed.rename_columns(["word", "count"]).sort_by("word")
        tables.append(
            pa.table(
                {
                    "category": pa.array([category] * summed.num_rows, pa.string()),
                    "word": summed["word"],
                    "count": summed["count"],
                },
                schema=WORD_COUNTS,
            )
        )
    if not tables:
        return {"entries": [], "distinct": {}}
    table = pa.concat_tables(tables)
    entries = write_part(
        table,
        out,
        dataset,
        number,
        schema=WORD_COUNTS,
        partition_cols=("category",),
        provenance=provenance,
    )
    distinct = {
        row["category"]: row["count_all"]
        for row in table.group_by("category").aggregate([([], "count_all")]).to_pylist()
    }
    return {"entries": entries, "distinct": distinct}


def run_count_ray(
    categories: list[CategorySpec],
    options: dict[str, SampleOptions],
    pretokenizer: Pretokenizer,
    out: str,
    *,
    shard_bytes: int,
    partitions: int | None = None,
    resources: StageResources | None = None,
    force: bool = False,
    log: Log = lambda _m: None,
) -> dict[str, dict[str, int]]:
    """Count every category on the Ray cluster and commit ``word_counts/`` and
    ``corpus_stats/`` (skipped when committed from the same inputs); the totals per category."""
    inputs = count_inputs(categories, pretokenizer, options)
    words_name, stats_name = word_counts_name(pretokenizer), corpus_stats_name(pretokenizer)
    if (
        not force
        and is_committed(out, words_name, inputs, schema=WORD_COUNTS)
        and is_committed(out, stats_name, inputs, schema=CORPUS_STATS)
    ):
        log(f"count: word tables for pre-tokenizer {pretokenizer.key} already committed; skipped")
        return _committed_totals(out, stats_name)
    task = (resources or StageResources()).ray_options()
    partitions = partitions or min(MAX_DEFAULT_PARTITIONS, cluster_cpus())

    plans: dict[str, list[ShardSample]] = {}
    for spec in categories:
        opt = options[spec.name]
        shards = plan_shards(
            spec.name,
            spec.path,
            shard_bytes=shard_bytes,
            txt_mode=opt.txt_mode,
            seed=opt.seed,
        )
        plans[spec.name] = [ShardSample(s, 0, None) for s in shards]
    need_sizes = [s.name for s in categories if _needs_sizes(options[s.name])]
    if need_sizes:
        _measure(plans, need_sizes, options, task, log)
    for spec in categories:
        if not plans[spec.name]:
            opt = options[spec.name]
            raise CorpusReadError(_no_text_message(spec.path, 0, opt.max_bytes, opt.skip_documents))

    provenance = {"stage": "count", "pretokenizer": pretokenizer.key, **inputs}
    begin_dataset(out, words_name)
    begin_dataset(out, stats_name)
    samples = [(name, sample) for name, plan in plans.items() for sample in plan]
    total_bytes = sum(s.shard.size for _, s in samples)
    log(
        f"count: {len(samples)} shards of {len(categories)} categories "
        f"({total_bytes / 1e6:.1f} MB), {partitions} reduce partitions"
    )
    count_task = ray.remote(_count_shard).options(num_returns=partitions + 1, **task)
    pretok_ref = ray.put(pretokenizer)
    mapped: list[Any] = [
        count_task.remote(sample, pretok_ref, options[name], partitions) for name, sample in samples
    ]
    progress = Progress("count", len(samples), total_bytes, log)
    shard_stats = wait_all([m[-1] for m in mapped], progress, lambda i: samples[i][1].shard.size)

    names = [name for name, _ in samples]
    totals = _sum_totals(categories, names, shard_stats, [])
    for spec in categories:
        if totals[spec.name]["bytes"] == 0:
            opt = options[spec.name]
            documents = totals[spec.name]["documents"]
            raise CorpusReadError(
                _no_text_message(spec.path, documents, opt.max_bytes, opt.skip_documents)
            )
    reduce_task = ray.remote(_reduce_partition).options(**task)
    reduced_refs = [
        reduce_task.remote(r, names, out, words_name, provenance, *[m[r] for m in mapped])
        for r in range(partitions)
    ]
    reduced = wait_all(reduced_refs, Progress("count/reduce", partitions, 0, log))
    totals = _sum_totals(categories, names, shard_stats, reduced)
    commit_dataset(
        out,
        words_name,
        [e for r in reduced for e in r["entries"]],
        schema=WORD_COUNTS,
        partition_cols=("category",),
        provenance=provenance,
        input_hashes=inputs,
    )
    stats = stats_table_from_totals(totals, pretokenizer)
    stat_entries = write_part(
        stats, out, stats_name, 0, schema=CORPUS_STATS, partition_cols=(), provenance=provenance
    )
    commit_dataset(
        out,
        stats_name,
        stat_entries,
        schema=CORPUS_STATS,
        partition_cols=(),
        provenance=provenance,
        input_hashes=inputs,
    )
    return totals


def _needs_sizes(options: SampleOptions) -> bool:
    return options.max_bytes is not None or options.skip_documents > 0


def _measure(
    plans: dict[str, list[ShardSample]],
    names: list[str],
    options: dict[str, SampleOptions],
    task: dict[str, Any],
    log: Log,
) -> None:
    """Replace each budgeted category's plan by its exact ``(skip, take)`` per shard."""
    measure = ray.remote(_measure_shard).options(**task)
    jobs = [(n, s) for n in names for s in plans[n]]
    progress = Progress("count/measure", len(jobs), sum(s.shard.size for _, s in jobs), log)
    refs = [measure.remote(s, options[n]) for n, s in jobs]
    sizes = wait_all(refs, progress, lambda i: jobs[i][1].shard.size)
    for name in names:
        mine = [sz for (n, _), sz in zip(jobs, sizes, strict=True) if n == name]
        opt = options[name]
        plans[name] = sample_plan(
            [s.shard for s in plans[name]],
            mine,
            max_bytes=opt.max_bytes,
            skip_documents=opt.skip_documents,
        )


def _sum_totals(
    categories: list[CategorySpec],
    names: list[str],
    shard_stats: list[dict[str, Any]],
    reduced: list[dict[str, Any]],
) -> dict[str, dict[str, int]]:
    totals: dict[str, Counter[str]] = {s.name: Counter() for s in categories}
    sources: dict[str, set[str]] = {s.name: set() for s in categories}
    for name, stats in zip(names, shard_stats, strict=True):
        totals[name].update(stats["totals"])
        sources[name].update(stats["sources"])
    for r in reduced:
        for name, distinct in r["distinct"].items():
            totals[name]["distinct_words"] += distinct
    return {
        name: {
            "documents": t["documents"],
            "bytes": t["bytes"],
            "chars": t["chars"],
            "pretokens": t["pretokens"],
            "distinct_words": t["distinct_words"],
            "invalid_utf8_documents": t["invalid_utf8_documents"],
            "files": len(sources[name]),
        }
        for name, t in totals.items()
    }


def _committed_totals(out: str, stats_name: str) -> dict[str, dict[str, int]]:
    from tokmix.io.datasets import read_dataset

    rows = read_dataset(out, stats_name, CORPUS_STATS).to_pylist()
    return {r.pop("category"): {k: v for k, v in r.items() if k != "pretokenizer"} for r in rows}
