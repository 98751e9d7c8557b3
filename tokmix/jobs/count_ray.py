"""Stage 1, sharded: shard the corpus, count each shard, reduce by word hash (ARCHITECTURE.md §3).

The tasks run on an executor (:mod:`tokmix.jobs.executors`): on Ray for ``tokmix run``, in
this process for ``tokmix infer`` and ``tokmix count``; the same tasks, the same files.

    plan     files -> shards (byte ranges, row groups, whole files; tokmix.io.shards)
    measure  (only with a byte budget or a skip) document sizes per shard, so each shard's
             part of the sample is known before counting: the sample equals the in-process one
    map      one task per shard: its word tables (one per bootstrap group of documents), split
             into R partitions by a stable word hash and checkpointed under ``OUT/_work/``
             (one Parquet file per shard, a row group per partition, a JSON sidecar last)
    reduce   one task per partition: sums its words over all shards and categories and writes
             ``word_counts/.../category=C/part-{r}.parquet`` (and ``group_word_counts``)
             itself; the driver only commits, then deletes the checkpoints

Nothing big passes through the driver or the object store. Tasks are pure functions of their
inputs and write deterministic file names, so Ray may retry any of them (a dead worker, a lost
node) and the committed result is the same as an uninterrupted run's; a run killed mid-count
skips the shards whose sidecars exist when it is started again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokmix.bpe.fast_pretokenize import Engine
from tokmix.bpe.pretokenizers import Pretokenizer
from tokmix.bpe.word_arrays import WordArrays, crc32
from tokmix.errors import CorpusReadError
from tokmix.io import catalog
from tokmix.io.corpus import no_text_message
from tokmix.io.datasets import (
    begin_dataset,
    commit_dataset,
    is_committed,
    read_dataset,
    write_part,
)
from tokmix.io.fs import ensure_parent, filesystem_for, join, remove_tree, write_bytes_atomic
from tokmix.io.shards import ShardSample, plan_shards, sample_plan, shard_documents
from tokmix.jobs.count import (
    check_engine,
    corpus_stats_name,
    count_documents,
    count_inputs,
    group_word_counts_name,
    sample_groups_name,
    stats_table_from_totals,
    word_counts_name,
)
from tokmix.jobs.executors import Executor
from tokmix.jobs.progress import Log, Progress
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.jobs.stage import RunContext, Stage
from tokmix.schemas import CORPUS_STATS, GROUP_WORD_COUNTS, SAMPLE_GROUPS, WORD_COUNTS
from tokmix.schemas.run_spec import StageResources

_PARTITION_SCHEMA = pa.schema([("group", pa.int32()), ("word", pa.binary()), ("count", pa.int64())])
MAX_DEFAULT_PARTITIONS = 64
"""Reduce partitions when the spec names none: one per CPU, up to this many (every reduce task
reads one row group of every shard's checkpoint, so thousands would cost more than they
spread)."""


def word_partition(words: WordArrays, partitions: int) -> np.ndarray:
    """The reduce partition of each word: ``zlib.crc32`` of its bytes modulo ``partitions``, a
    hash that is the same in every process (Python's ``hash`` is salted per process, so it
    would scatter one word over partitions). The partitions on disk depend on it: keep it."""
    return crc32(words).astype(np.int64) % partitions


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
    sample: ShardSample,
    pretokenizer: Pretokenizer,
    options: SampleOptions,
    partitions: int,
    groups: int,
    work: str,
    engine: Engine = "auto",
) -> dict[str, Any]:
    """Map: count one shard and checkpoint its word tables under ``work``: one Parquet file
    whose row group ``r`` holds reduce partition ``r`` (``group, word, count``), then a JSON
    sidecar with the shard's totals, written last. A shard whose sidecar exists (a run that
    was killed after counting it) is not counted again. Returns the sidecar."""
    data_url, done_url = _checkpoint_urls(work, sample)
    fs, done_path = filesystem_for(done_url)
    if fs.exists(done_path):
        previous: dict[str, Any] = json.loads(fs.cat_file(done_path))
        if previous.get("sample") == _sample_key(sample):
            return {**previous, "resumed": True}
    stop = None if sample.take is None else sample.skip + sample.take
    docs = itertools.islice(
        shard_documents(sample.shard, **_options_dict(options)), sample.skip, stop
    )
    tables, sources = count_documents(docs, pretokenizer, groups, engine)
    pieces: list[list[pa.Table]] = [[] for _ in range(partitions)]
    for g, table in enumerate(tables):
        for r, piece in enumerate(_split_by_partition(g, table.word_arrays(), partitions)):
            pieces[r].append(piece)
    row_groups = _write_checkpoint(data_url, [pa.concat_tables(p) for p in pieces])
    totals: Counter[str] = Counter()
    for table in tables:
        totals.update(table.text_totals())
    sidecar = {
        "sample": _sample_key(sample),
        "data": data_url,
        "row_groups": row_groups,
        "totals": dict(totals),
        "groups": [(t.documents, t.bytes_) for t in tables],
        "sources": sorted(sources),
    }
    write_bytes_atomic(fs, done_path, json.dumps(sidecar).encode())
    return {**sidecar, "resumed": False}


def _split_by_partition(group: int, words: WordArrays, partitions: int) -> list[pa.Table]:
    """One group's words as ``partitions`` tables (``group, word, count``), partition ``r``
    holding the words :func:`word_partition` sends to ``r``, each in the table's order. One
    stable sort by partition and slices, so a cluster with many partitions does not pass over
    every word once per partition; the words go to Arrow as buffers, not one by one."""
    part = word_partition(words, partitions)
    order = np.argsort(part, kind="stable")
    ends = np.cumsum(np.bincount(part, minlength=partitions)).tolist()
    table = pa.table(
        {
            "group": pa.array(np.full(len(words), group, dtype=np.int32)),
            "word": words.binary_array().take(pa.array(order)),
            "count": pa.array(words.counts[order]),
        },
        schema=_PARTITION_SCHEMA,
    )
    return [table.slice(lo, hi - lo) for lo, hi in zip([0, *ends[:-1]], ends, strict=True)]


def _sample_key(sample: ShardSample) -> list[Any]:
    s = sample.shard
    return [s.category, s.url, s.kind, s.start, s.end, sample.skip, sample.take]


def _checkpoint_urls(work: str, sample: ShardSample) -> tuple[str, str]:
    stem = f"{quote(sample.shard.category, safe='')}-{sample.shard.number:06d}"
    return join(work, f"{stem}.parquet"), join(work, f"{stem}.json")


def _write_checkpoint(url: str, parts: list[pa.Table]) -> list[int | None]:
    """Write each partition as its own row group; the row group of partition ``r`` (None when
    the shard has no words there). No dictionary encoding: a shard's words are distinct, so
    building one costs CPU (a third of the write) and makes the file no smaller."""
    fs, path = filesystem_for(url)
    ensure_parent(fs, path)
    index: list[int | None] = []
    written = 0
    with (
        fs.open(path, "wb") as sink,
        pq.ParquetWriter(sink, _PARTITION_SCHEMA, use_dictionary=False) as writer,
    ):
        for part in parts:
            if part.num_rows:
                writer.write_table(part, row_group_size=part.num_rows)
                index.append(written)
                written += 1
            else:
                index.append(None)
    return index


def _read_partition(sidecar: dict[str, Any], partition: int) -> pa.Table:
    row_group = sidecar["row_groups"][partition]
    if row_group is None:
        return _PARTITION_SCHEMA.empty_table()
    fs, path = filesystem_for(sidecar["data"])
    with fs.open(path, "rb") as f:
        return pq.ParquetFile(f).read_row_group(row_group)


def _category_table(schema: pa.Schema, category: str, table: pa.Table) -> pa.Table:
    """``table`` with a ``category`` column, as ``schema`` (the column by one vectorized take,
    not a Python list of a million equal strings)."""
    name = pa.array([category], pa.string()).take(pa.array(np.zeros(table.num_rows, np.int32)))
    columns = {"category": name, **{c: table[c] for c in table.column_names}}
    return pa.table(columns).select(schema.names).cast(schema)


def _sum_shards(parts: list[pa.Table], grouped: bool) -> tuple[pa.Table, pa.Table | None]:
    """One category's partition summed over its shards: ``word, count`` in byte order and,
    when ``grouped``, ``group, word, count`` by group then word (else None).

    Within one shard a word occurs once per group, so one shard needs only the sort; without
    bootstrap groups one aggregation by word is enough (every row is group 0)."""
    table = pa.concat_tables(parts)
    single = len(parts) == 1
    if not grouped:
        summed = table.select(["word", "count"]) if single else _sum_by(table, ["word"])
        return summed.sort_by("word"), None
    by_group = table if single else _sum_by(table, ["group", "word"])
    summed = _sum_by(by_group, ["word"])
    ordered = by_group.sort_by([("group", "ascending"), ("word", "ascending")])
    return summed.sort_by("word"), ordered


def _sum_by(table: pa.Table, keys: list[str]) -> pa.Table:
    """``count`` summed per distinct ``keys``: columns ``*keys, count``."""
    summed = table.group_by(keys).aggregate([("count", "sum")])
    return summed.select([*keys, "count_sum"]).rename_columns([*keys, "count"])


def _reduce_partition(
    number: int,
    categories: list[str],
    out: str,
    names: tuple[str, str | None],
    provenance: dict[str, Any],
    sidecars: list[dict[str, Any]],
) -> dict[str, Any]:
    """Reduce: sum partition ``number`` of every shard per category and write its files —
    ``word_counts`` and, with bootstrap groups, ``group_word_counts``."""
    words_name, groups_name = names
    parts = [_read_partition(sidecar, number) for sidecar in sidecars]
    full, grouped = [], []
    distinct: dict[str, int] = {}
    for category in sorted(set(categories)):
        mine = [p for c, p in zip(categories, parts, strict=True) if c == category and p.num_rows]
        if not mine:
            continue
        summed, by_group = _sum_shards(mine, grouped=groups_name is not None)
        full.append(_category_table(WORD_COUNTS, category, summed))
        distinct[category] = summed.num_rows
        if by_group is not None:
            grouped.append(_category_table(GROUP_WORD_COUNTS, category, by_group))
    if not full:
        return {"entries": [], "group_entries": [], "distinct": {}}
    table = pa.concat_tables(full)
    entries = write_part(
        table,
        out,
        words_name,
        number,
        schema=WORD_COUNTS,
        partition_cols=("category",),
        provenance=provenance,
    )
    group_entries = []
    if groups_name:
        group_entries = write_part(
            pa.concat_tables(grouped),
            out,
            groups_name,
            number,
            schema=GROUP_WORD_COUNTS,
            partition_cols=("category",),
            provenance=provenance,
        )
    return {"entries": entries, "group_entries": group_entries, "distinct": distinct}


def invalid_utf8_warnings(
    samples: list[tuple[str, ShardSample]], shard_stats: list[dict[str, Any]]
) -> list[str]:
    """A warning per input file whose documents held malformed UTF-8 (replaced by U+FFFD,
    which the tokenizer never saw): how many documents, which file."""
    per_file: Counter[tuple[str, str]] = Counter()
    for (name, sample), stats in zip(samples, shard_stats, strict=True):
        bad = int(stats["totals"].get("invalid_utf8_documents", 0))
        if bad:
            per_file[(name, sample.shard.url)] += bad
    return [
        f"warning: category {name}: {bad} document(s) in {url} held invalid UTF-8, counted "
        "with U+FFFD in its place (see corpus_stats.invalid_utf8_documents)"
        for (name, url), bad in sorted(per_file.items())
    ]


def run_count_ray(
    categories: list[CategorySpec],
    options: dict[str, SampleOptions],
    pretokenizer: Pretokenizer,
    out: str,
    *,
    shard_bytes: int,
    partitions: int | None = None,
    groups: int = 1,
    resources: StageResources | None = None,
    force: bool = False,
    log: Log = lambda _m: None,
    executor: Executor | None = None,
    engine: Engine = "auto",
    engine_key: str = "count.engine",
) -> dict[str, dict[str, int]]:
    """Count every category with ``executor``'s tasks (default: on the Ray cluster) and
    commit ``word_counts/`` and ``corpus_stats/`` (and, with ``groups > 1`` bootstrap groups,
    ``group_word_counts/`` and ``sample_groups/``); skipped when committed from the same
    inputs. The totals per category.

    ``engine`` (:func:`tokmix.bpe.fast_pretokenize.word_counter`) travels to every map task as
    an argument; it is not an input (both engines count the same words), so a commit made with
    either is reused. ``engine_key`` names it in the error for a ``compiled`` engine the
    pre-tokenizer has no form for."""
    check_engine(pretokenizer, engine, engine_key)
    inputs = {**count_inputs(categories, pretokenizer, options), "groups": str(groups)}
    words_name, stats_name = word_counts_name(pretokenizer), corpus_stats_name(pretokenizer)
    groups_name = group_word_counts_name(pretokenizer) if groups > 1 else None
    datasets = [(words_name, WORD_COUNTS), (stats_name, CORPUS_STATS)]
    if groups_name:
        datasets += [
            (groups_name, GROUP_WORD_COUNTS),
            (sample_groups_name(pretokenizer), SAMPLE_GROUPS),
        ]
    if not force and all(is_committed(out, n, inputs, schema=s) for n, s in datasets):
        log(f"count: word tables for pre-tokenizer {pretokenizer.key} already committed; skipped")
        return _committed_totals(out, stats_name)
    executor = executor or _ray_executor()
    partitions = partitions or min(MAX_DEFAULT_PARTITIONS, executor.cpus())

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
        _measure(plans, need_sizes, options, executor, resources, log)
    for spec in categories:
        if not plans[spec.name]:
            opt = options[spec.name]
            raise CorpusReadError(no_text_message(spec.path, 0, opt.max_bytes, opt.skip_documents))

    provenance = {"stage": "count", "pretokenizer": pretokenizer.key, **inputs}
    for name, _schema in datasets:
        begin_dataset(out, name)
    samples = [(name, sample) for name, plan in plans.items() for sample in plan]
    total_bytes = sum(s.shard.size for _, s in samples)
    log(
        f"count: {len(samples)} shards of {len(categories)} categories "
        f"({total_bytes / 1e6:.1f} MB), {partitions} reduce partitions"
    )
    work = work_dir(out, inputs)
    if force:  # recompute means recompute: not from a killed attempt's shards either
        remove_tree(work)
    pretok_ref = executor.share(pretokenizer)
    shard_stats = executor.map(
        _count_shard,
        [
            (sample, pretok_ref, options[name], partitions, groups, work, engine)
            for name, sample in samples
        ],
        resources=resources,
        progress=Progress("count", len(samples), total_bytes, log),
        weight=lambda i: samples[i][1].shard.size,
    )
    resumed = sum(s["resumed"] for s in shard_stats)
    if resumed:
        log(f"count: {resumed} of {len(samples)} shards were counted by an earlier attempt")

    names = [name for name, _ in samples]
    for line in invalid_utf8_warnings(samples, shard_stats):
        log(line)
    totals = _sum_totals(categories, names, shard_stats, [])
    for spec in categories:
        if totals[spec.name]["bytes"] == 0:
            opt = options[spec.name]
            documents = totals[spec.name]["documents"]
            raise CorpusReadError(
                no_text_message(spec.path, documents, opt.max_bytes, opt.skip_documents)
            )
    reduced = executor.map(
        _reduce_partition,
        [
            (r, names, out, (words_name, groups_name), provenance, shard_stats)
            for r in range(partitions)
        ],
        resources=resources,
        progress=Progress("count/reduce", partitions, 0, log),
    )
    totals = _sum_totals(categories, names, shard_stats, reduced)
    small_tables = [(stats_name, CORPUS_STATS, stats_table_from_totals(totals, pretokenizer))]
    if groups_name:
        entries = [e for r in reduced for e in r["group_entries"]]
        commit_dataset(
            out,
            groups_name,
            entries,
            schema=GROUP_WORD_COUNTS,
            partition_cols=("category",),
            provenance=provenance,
            input_hashes=inputs,
        )
        table = _sample_groups_table([s.name for s in categories], names, shard_stats, groups)
        small_tables.append((sample_groups_name(pretokenizer), SAMPLE_GROUPS, table))
    commit_dataset(
        out,
        words_name,
        [e for r in reduced for e in r["entries"]],
        schema=WORD_COUNTS,
        partition_cols=("category",),
        provenance=provenance,
        input_hashes=inputs,
    )
    for name, schema, table in small_tables:
        entries = write_part(
            table, out, name, 0, schema=schema, partition_cols=(), provenance=provenance
        )
        commit_dataset(
            out,
            name,
            entries,
            schema=schema,
            partition_cols=(),
            provenance=provenance,
            input_hashes=inputs,
        )
    remove_tree(work)
    return totals


def _ray_executor() -> Executor:
    from tokmix.jobs.ray_executor import RayExecutor

    return RayExecutor()


def work_dir(out: str, inputs: dict[str, str]) -> str:
    """Where map tasks checkpoint their shards until the stage commits; keyed by the stage's
    inputs, so a changed corpus or option never reuses another attempt's shards."""
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return join(out, "_work", f"count-{key}")


def _sample_groups_table(
    categories: list[str], names: list[str], shard_stats: list[dict[str, Any]], groups: int
) -> pa.Table:
    docs = {c: np.zeros(groups, dtype=np.int64) for c in categories}
    nbytes = {c: np.zeros(groups, dtype=np.int64) for c in categories}
    for name, stats in zip(names, shard_stats, strict=True):
        for g, (d, b) in enumerate(stats["groups"]):
            docs[name][g] += d
            nbytes[name][g] += b
    rows = [
        {"category": c, "group": g, "documents": int(docs[c][g]), "bytes": int(nbytes[c][g])}
        for c in categories
        for g in range(groups)
    ]
    return pa.Table.from_pylist(rows, schema=SAMPLE_GROUPS)


def _needs_sizes(options: SampleOptions) -> bool:
    return options.max_bytes is not None or options.skip_documents > 0


def _measure(
    plans: dict[str, list[ShardSample]],
    names: list[str],
    options: dict[str, SampleOptions],
    executor: Executor,
    resources: StageResources | None,
    log: Log,
) -> None:
    """Replace each budgeted category's plan by its exact ``(skip, take)`` per shard."""
    jobs = [(n, s) for n in names for s in plans[n]]
    sizes = executor.map(
        _measure_shard,
        [(s, options[n]) for n, s in jobs],
        resources=resources,
        progress=Progress("count/measure", len(jobs), sum(s.shard.size for _, s in jobs), log),
        weight=lambda i: jobs[i][1].shard.size,
    )
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
    rows = read_dataset(out, stats_name, CORPUS_STATS).to_pylist()
    return {r.pop("category"): {k: v for k, v in r.items() if k != "pretokenizer"} for r in rows}


def _run_count_stage(ctx: RunContext) -> None:
    """Count once per pre-tokenizer family of the run's tokenizers (tokenizers that split
    alike share word tables)."""
    for key, tok in {t.pretokenizer.key: t for t in ctx.tokenizers}.items():
        ctx.summary.setdefault("corpus", {})[key] = count_for(ctx, tok.pretokenizer, ctx.force)


def count_for(
    ctx: RunContext, pretokenizer: Pretokenizer, force: bool
) -> dict[str, dict[str, int]]:
    """The count stage for one pre-tokenizer (the stats stage counts its encoders' too)."""
    spec = ctx.spec
    return run_count_ray(
        ctx.categories,
        ctx.options,
        pretokenizer,
        spec.out,
        shard_bytes=spec.shard_bytes,
        partitions=spec.reduce_partitions,
        groups=spec.bootstrap.groups,
        resources=spec.resources_for("count"),
        force=force,
        log=ctx.log,
        executor=ctx.executor,
        engine=spec.count.engine,
    )


COUNT = Stage("count", tuple(catalog.of_stage("count")), _run_count_stage)
