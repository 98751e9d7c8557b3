"""Stage 1: corpus -> word tables (DESIGN §3). The only stage that reads the corpus.

Run alone: ``python -m tokmix.jobs.count`` (see ``tokmix count --help``).
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from tokmix.bpe.pretokenizers import Pretokenizer
from tokmix.bpe.words import WordTable
from tokmix.io.corpus import read_category
from tokmix.io.datasets import is_committed, read_dataset, write_dataset
from tokmix.io.fs import expand, filesystem_for
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.schemas import CORPUS_STATS, WORD_COUNTS


def word_counts_name(pretokenizer: Pretokenizer) -> str:
    return f"word_counts/pretokenizer={pretokenizer.key}"


def corpus_stats_name(pretokenizer: Pretokenizer) -> str:
    return f"corpus_stats/pretokenizer={pretokenizer.key}"


def corpus_fingerprint(categories: list[CategorySpec]) -> str:
    """Hash of every input file's path, size and modification stamp: cheap to take on
    terabytes, and it changes when a file is replaced."""
    h = hashlib.sha256()
    for spec in sorted(categories, key=lambda c: c.name):
        h.update(spec.name.encode() + b"\0")
        for url in expand(spec.path):
            fs, path = filesystem_for(url)
            info = fs.info(path)
            stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""
            h.update(f"{url}\0{info.get('size')}\0{stamp}\0".encode())
    return h.hexdigest()


def count_inputs(
    categories: list[CategorySpec],
    pretokenizer: Pretokenizer,
    options: SampleOptions | dict[str, SampleOptions],
) -> dict[str, str]:
    """What a committed count depends on: the files, the pre-tokenizer and each category's
    sampling options (in-process and Ray counts of the same inputs hash alike)."""
    per_category = (
        options if isinstance(options, dict) else {spec.name: options for spec in categories}
    )
    sample = {name: vars(per_category[name]) for name in sorted(per_category)}
    return {
        "corpus": corpus_fingerprint(categories),
        "pretokenizer": pretokenizer.key,
        "sample": hashlib.sha256(json.dumps(sample, sort_keys=True).encode()).hexdigest(),
    }


def count_category(
    spec: CategorySpec, pretokenizer: Pretokenizer, options: SampleOptions
) -> WordTable:
    return read_category(
        spec.path,
        pretokenizer,
        text_field=options.text_field,
        max_bytes=options.max_bytes,
        seed=options.seed,
        skip_documents=options.skip_documents,
        txt_mode=options.txt_mode,
    )


def stats_table(tables: dict[str, WordTable], pretokenizer: Pretokenizer) -> pa.Table:
    return stats_table_from_totals({n: t.totals() for n, t in tables.items()}, pretokenizer)


def stats_table_from_totals(
    totals: dict[str, dict[str, int]], pretokenizer: Pretokenizer
) -> pa.Table:
    rows = [
        {"category": name, "pretokenizer": pretokenizer.key, **values}
        for name, values in totals.items()
    ]
    return pa.Table.from_pylist(rows, schema=CORPUS_STATS)


def run_count(
    categories: list[CategorySpec],
    pretokenizer: Pretokenizer,
    out: str,
    options: SampleOptions,
    *,
    force: bool = False,
) -> dict[str, WordTable]:
    """Count every category and commit ``word_counts/`` and ``corpus_stats/``; skipped when
    already committed for the same inputs."""
    inputs = count_inputs(categories, pretokenizer, options)
    name = word_counts_name(pretokenizer)
    if (
        not force
        and is_committed(out, name, inputs)
        and is_committed(out, corpus_stats_name(pretokenizer), inputs)
    ):
        return read_word_tables(out, pretokenizer)
    tables = {spec.name: count_category(spec, pretokenizer, options) for spec in categories}
    provenance = {"stage": "count", "pretokenizer": pretokenizer.key, **inputs}
    write_dataset(
        pa.concat_tables([t.to_arrow(n) for n, t in tables.items()]),
        out,
        name,
        schema=WORD_COUNTS,
        partition_cols=("category",),
        provenance=provenance,
        input_hashes=inputs,
    )
    write_dataset(
        stats_table(tables, pretokenizer),
        out,
        corpus_stats_name(pretokenizer),
        schema=CORPUS_STATS,
        partition_cols=(),
        provenance=provenance,
        input_hashes=inputs,
    )
    return tables


def read_word_tables(out: str, pretokenizer: Pretokenizer) -> dict[str, WordTable]:
    """The committed word tables of a run, per category."""
    words = read_dataset(out, word_counts_name(pretokenizer), WORD_COUNTS)
    stats = read_dataset(out, corpus_stats_name(pretokenizer), CORPUS_STATS).to_pylist()
    by_cat: dict[str, WordTable] = {}
    for row in stats:
        cat = row["category"]
        sel = words.filter(pa.compute.equal(words["category"], cat))
        by_cat[cat] = WordTable.from_arrays(
            sel["word"].to_pylist(),
            sel["count"].to_numpy(),
            documents=row["documents"],
            bytes_=row["bytes"],
            chars=row["chars"],
            pretokens=row["pretokens"],
            invalid_utf8_documents=row["invalid_utf8_documents"],
            files=row["files"],
        )
    return by_cat
