"""Corpus -> word tables, sequentially: the reference the count stage is tested against.

The count stage (:mod:`tokmix.jobs.count_ray`, on either executor) shards the corpus; this
module counts each category as one stream of documents, in order (ARCHITECTURE.md §3), and
commits the same datasets with the same input hashes. It also holds what both share: dataset
names, the input digest of a count, the check of the count engine and the readers of committed
word tables.

The count engine (``compiled`` or ``regex``, :mod:`tokmix.bpe.fast_pretokenize`) is passed down
to every counter but is not an input of the digest: both are exact, so they commit the same
word tables and either reuses the other's commit (``CountOptions`` in the run spec).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from tokmix.bpe.fast_pretokenize import Engine, compile_plan
from tokmix.bpe.pretokenizers import Pretokenizer
from tokmix.bpe.words import WordTable, document_group
from tokmix.errors import CorpusReadError, DatasetError, TokmixError
from tokmix.io import catalog
from tokmix.io.corpus import Document, OnInvalidUtf8, TxtMode, iter_documents, no_text_message
from tokmix.io.datasets import is_committed, read_dataset, read_manifest, write_dataset
from tokmix.io.fingerprint import content_fingerprint
from tokmix.io.fs import expand
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.schemas import CORPUS_STATS, GROUP_WORD_COUNTS, SAMPLE_GROUPS, WORD_COUNTS

GroupTables = dict[str, dict[int, WordTable]]
"""Per category, the word table of each bootstrap group of its sample (groups with no words
left out, as the Ray count leaves them out)."""


def word_counts_name(pretokenizer: Pretokenizer) -> str:
    return catalog.WORD_COUNTS.name(pretokenizer.key)


def corpus_stats_name(pretokenizer: Pretokenizer) -> str:
    return catalog.CORPUS_STATS.name(pretokenizer.key)


def group_word_counts_name(pretokenizer: Pretokenizer) -> str:
    return catalog.GROUP_WORD_COUNTS.name(pretokenizer.key)


def sample_groups_name(pretokenizer: Pretokenizer) -> str:
    return catalog.SAMPLE_GROUPS.name(pretokenizer.key)


def corpus_fingerprint(categories: list[CategorySpec]) -> str:
    """Hash of every input file's name and content fingerprint
    (:func:`tokmix.io.fingerprint.content_fingerprint`: a content hash locally, the ETag on
    S3), so a rewrite that keeps a file's size and mtime is still a new input."""
    h = hashlib.sha256()
    for spec in sorted(categories, key=lambda c: c.name):
        h.update(spec.name.encode() + b"\0")
        for url in expand(spec.path):
            h.update(f"{url}\0{content_fingerprint(url)}\0".encode())
    return h.hexdigest()


def check_engine(pretokenizer: Pretokenizer, engine: Engine, key: str = "count.engine") -> None:
    """Refuse ``compiled`` for a pre-tokenizer with no compiled form before anything is read
    (``key`` names the option as the user gave it: the spec's key or the CLI's flag)."""
    if engine == "compiled" and compile_plan(pretokenizer) is None:
        raise TokmixError(
            f"{key} compiled: pre-tokenizer {pretokenizer.name} ({pretokenizer.key}) has no "
            "compiled form; use 'auto' (compiled where possible) or 'regex'"
        )


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


def read_category(
    paths: str | Sequence[str],
    pretokenizer: Pretokenizer,
    *,
    text_field: str = "text",
    txt_mode: TxtMode = "file",
    max_bytes: int | None = None,
    seed: int | None = None,
    skip_documents: int = 0,
    on_invalid_utf8: OnInvalidUtf8 = "replace",
    engine: Engine = "auto",
) -> WordTable:
    """The word table of one category's sample (options as :func:`iter_documents`).

    ``files`` counts the files that gave the sample at least one document. A sample with no
    text at all is an error rather than an empty table: an empty category would silently drop
    out of the mixture.
    """
    return read_category_groups(
        paths,
        pretokenizer,
        1,
        text_field=text_field,
        txt_mode=txt_mode,
        max_bytes=max_bytes,
        seed=seed,
        skip_documents=skip_documents,
        on_invalid_utf8=on_invalid_utf8,
        engine=engine,
    )[0]


def read_category_groups(
    paths: str | Sequence[str],
    pretokenizer: Pretokenizer,
    groups: int,
    *,
    text_field: str = "text",
    txt_mode: TxtMode = "file",
    max_bytes: int | None = None,
    seed: int | None = None,
    skip_documents: int = 0,
    on_invalid_utf8: OnInvalidUtf8 = "replace",
    engine: Engine = "auto",
) -> tuple[WordTable, list[WordTable]]:
    """:func:`read_category`'s table and the same sample split into ``groups`` bootstrap
    groups of documents (:func:`count_documents`); the groups add up to the table."""
    docs = iter_documents(
        paths,
        text_field=text_field,
        txt_mode=txt_mode,
        max_bytes=max_bytes,
        seed=seed,
        skip_documents=skip_documents,
        on_invalid_utf8=on_invalid_utf8,
    )
    tables, sources = count_documents(docs, pretokenizer, groups, engine)
    table = tables[0] if len(tables) == 1 else WordTable.total(tables)
    table.files = len(sources)
    if table.bytes_ == 0:
        raise CorpusReadError(no_text_message(paths, table.documents, max_bytes, skip_documents))
    return table, tables


def count_documents(
    docs: Iterable[Document], pretokenizer: Pretokenizer, groups: int = 1, engine: Engine = "auto"
) -> tuple[list[WordTable], set[str]]:
    """Word tables of some documents, one per bootstrap group (one table when ``groups`` is
    1), and the files they came from.

    A document's group is :func:`tokmix.bpe.words.document_group` of its text. This is the
    one counter of both pipelines (``tokmix infer`` per category, ``tokmix run`` per shard),
    so they split a sample into the same groups and their intervals agree."""
    tables = [WordTable() for _ in range(max(groups, 1))]
    sources: set[str] = set()
    for doc in docs:
        table = tables[document_group(doc.text.encode("utf-8"), groups) if groups > 1 else 0]
        table.add_text(doc.text, pretokenizer, engine)
        table.invalid_utf8_documents += doc.invalid_utf8
        sources.add(doc.source)
    return tables, sources


def count_category(
    spec: CategorySpec,
    pretokenizer: Pretokenizer,
    options: SampleOptions,
    groups: int = 1,
    engine: Engine = "auto",
) -> tuple[WordTable, list[WordTable]]:
    """A category's word table and its ``groups`` bootstrap groups' tables."""
    return read_category_groups(
        spec.path,
        pretokenizer,
        groups,
        text_field=options.text_field,
        max_bytes=options.max_bytes,
        seed=options.seed,
        skip_documents=options.skip_documents,
        txt_mode=options.txt_mode,
        engine=engine,
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
    options: SampleOptions | dict[str, SampleOptions],
    *,
    groups: int = 1,
    force: bool = False,
    engine: Engine = "auto",
) -> dict[str, WordTable]:
    """Count every category and commit ``word_counts/`` and ``corpus_stats/`` (and with
    ``groups > 1`` the bootstrap groups' datasets, see :func:`run_count_groups`); skipped when
    already committed for the same inputs."""
    return run_count_groups(
        categories, pretokenizer, out, options, groups=groups, force=force, engine=engine
    )[0]


def run_count_groups(
    categories: list[CategorySpec],
    pretokenizer: Pretokenizer,
    out: str,
    options: SampleOptions | dict[str, SampleOptions],
    *,
    groups: int = 1,
    force: bool = False,
    engine: Engine = "auto",
) -> tuple[dict[str, WordTable], GroupTables | None]:
    """:func:`run_count`, also returning each category's bootstrap groups (None when
    ``groups <= 1``).

    With ``groups > 1`` the documents of each category fall into groups by a hash of their
    text, as in the Ray count, and ``group_word_counts/`` and ``sample_groups/`` are committed
    too. The input hashes are those of the Ray count, so either pipeline reuses the other's
    commit. Without groups, word tables committed with any number of groups are reused; with
    any ``engine`` too (not an input: both engines count the same words)."""
    check_engine(pretokenizer, engine)
    groups = max(groups, 1)
    inputs = {**count_inputs(categories, pretokenizer, options), "groups": str(groups)}
    names = [word_counts_name(pretokenizer), corpus_stats_name(pretokenizer)]
    if groups > 1:
        names += [group_word_counts_name(pretokenizer), sample_groups_name(pretokenizer)]
    elif not force:
        reuse = _committed_groups(out, names[0], inputs)
        inputs = reuse if all(is_committed(out, n, reuse) for n in names) else inputs
    if not force and all(is_committed(out, n, inputs) for n in names):
        tables = read_word_tables(out, pretokenizer)
        return tables, read_group_word_tables(out, pretokenizer) if groups > 1 else None
    tables, grouped = {}, {}
    for spec in categories:
        sample = options[spec.name] if isinstance(options, dict) else options
        tables[spec.name], grouped[spec.name] = count_category(
            spec, pretokenizer, sample, groups, engine
        )
    provenance = {"stage": "count", "pretokenizer": pretokenizer.key, **inputs}
    commit = {"provenance": provenance, "input_hashes": inputs}
    write_dataset(
        pa.concat_tables([t.to_arrow(n) for n, t in tables.items()]),
        out,
        names[0],
        schema=WORD_COUNTS,
        partition_cols=("category",),
        **commit,
    )
    write_dataset(
        stats_table(tables, pretokenizer),
        out,
        names[1],
        schema=CORPUS_STATS,
        partition_cols=(),
        **commit,
    )
    if groups == 1:
        return tables, None
    write_dataset(
        pa.concat_tables(_group_word_counts(n, ts) for n, ts in grouped.items()),
        out,
        names[2],
        schema=GROUP_WORD_COUNTS,
        partition_cols=("category",),
        **commit,
    )
    rows = [
        {"category": n, "group": g, "documents": t.documents, "bytes": t.bytes_}
        for n, ts in grouped.items()
        for g, t in enumerate(ts)
    ]
    write_dataset(
        pa.Table.from_pylist(rows, schema=SAMPLE_GROUPS),
        out,
        names[3],
        schema=SAMPLE_GROUPS,
        partition_cols=(),
        **commit,
    )
    return tables, {n: {g: t for g, t in enumerate(ts) if len(t)} for n, ts in grouped.items()}


def _committed_groups(out: str, name: str, inputs: dict[str, str]) -> dict[str, str]:
    """``inputs`` with the number of groups of the committed ``name`` when the rest agrees:
    word tables do not depend on how the documents were grouped."""
    try:
        committed = read_manifest(out, name)["input_hashes"]
    except DatasetError:
        return inputs
    same = {k: v for k, v in committed.items() if k != "groups"} == {
        k: v for k, v in inputs.items() if k != "groups"
    }
    return {**inputs, "groups": committed.get("groups", "1")} if same else inputs


def _group_word_counts(category: str, tables: list[WordTable]) -> pa.Table:
    parts = []
    for g, table in enumerate(tables):
        words, counts = table.sorted_items()
        parts.append(
            pa.table(
                {
                    "category": pa.array([category] * len(words), pa.string()),
                    "group": pa.array([g] * len(words), pa.int32()),
                    "word": pa.array(words, pa.binary()),
                    "count": pa.array(counts, pa.int64()),
                },
                schema=GROUP_WORD_COUNTS,
            )
        )
    return pa.concat_tables(parts)


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


def group_word_counts_current(out: str, pretokenizer: Pretokenizer) -> bool:
    """Whether the run's bootstrap groups were committed by the same count as its word
    tables (a later count without groups leaves stale ones behind)."""
    try:
        inputs = read_manifest(out, word_counts_name(pretokenizer))["input_hashes"]
        grouped = read_manifest(out, group_word_counts_name(pretokenizer))["input_hashes"]
        samples = read_manifest(out, sample_groups_name(pretokenizer))["input_hashes"]
    except DatasetError:
        return False
    return bool(grouped == inputs and samples == inputs)


def read_group_word_tables(out: str, pretokenizer: Pretokenizer) -> GroupTables | None:
    """The committed word tables of each bootstrap group, or None when the run has none
    current (see :func:`group_word_counts_current`). Only ``documents`` and ``bytes`` of a
    group's totals are stored."""
    if not group_word_counts_current(out, pretokenizer):
        return None
    rows = read_dataset(out, group_word_counts_name(pretokenizer), GROUP_WORD_COUNTS)
    sizes = read_dataset(out, sample_groups_name(pretokenizer), SAMPLE_GROUPS).to_pylist()
    out_tables: GroupTables = {}
    for category in dict.fromkeys(r["category"] for r in sizes):
        sel = rows.filter(pa.compute.equal(rows["category"], category)).sort_by("group")
        group = sel["group"].to_numpy()
        by_group = out_tables.setdefault(category, {})
        for r in (r for r in sizes if r["category"] == category):
            lo, hi = np.searchsorted(group, [r["group"], r["group"] + 1])
            if hi > lo:
                part = sel.slice(lo, hi - lo)
                by_group[r["group"]] = WordTable.from_arrays(
                    part["word"].to_pylist(),
                    part["count"].to_numpy(),
                    documents=r["documents"],
                    bytes_=r["bytes"],
                )
    return out_tables
