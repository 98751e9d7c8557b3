"""``tokmix report``: read a run's committed datasets, write its HTML report and figures.

The reading side of :mod:`tokmix.analytics.report`. Datasets are found by listing the run's
output root (local or ``s3://``): ``mixtures/``, ``token_stats/``, ``token_frequencies/`` and
``undertrained/`` per ``tokenizer=NAME``, ``corpus_stats/`` per ``pretokenizer=KEY`` (or one
dataset committed at the top, should a stage write it unpartitioned). Only committed datasets
are read; one that is present but not committed is listed in the report, not an error.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from tokmix.analytics.group_comparison import GroupComparison
from tokmix.analytics.report import RunData, build_report, summarize_frequencies
from tokmix.errors import DatasetError
from tokmix.io.catalog import mixture_json_path, run_groups_chart_path
from tokmix.io.consistency import root_inconsistencies
from tokmix.io.datasets import MANIFEST, read_dataset
from tokmix.io.fs import filesystem_for, join, to_url, write_bytes_atomic
from tokmix.schemas import (
    CORPUS_STATS,
    MIXTURES,
    TOKEN_FREQUENCIES,
    TOKEN_STATS,
    UNDERTRAINED,
    provenance_of,
)

REPORT_DIR = "report"
INDEX = "index.html"


def _dataset_names(out: str, dataset: str, key: str) -> list[str]:
    """The committed-or-not datasets under ``out/dataset``: itself when it holds a manifest,
    else its ``key=VALUE`` subdirectories (names as listed, so quoted values stay quoted)."""
    fs, base = filesystem_for(join(out, dataset))
    if not fs.isdir(base):
        return []
    if fs.exists(posixpath.join(base, MANIFEST)):
        return [dataset]
    names = []
    for entry in fs.ls(base, detail=True):
        child = posixpath.basename(entry["name"].rstrip("/"))
        if entry.get("type") == "directory" and child.startswith(f"{key}="):
            names.append(f"{dataset}/{child}")
    return sorted(names)


def _read_all(
    out: str,
    dataset: str,
    key: str,
    schema: pa.Schema,
    skipped: list[str],
    reduce: Callable[[pa.Table], pa.Table] = lambda t: t,
) -> pa.Table | None:
    """Every committed dataset of one kind, each reduced, concatenated; None if there is none."""
    tables = []
    for name in _dataset_names(out, dataset, key):
        try:
            tables.append(reduce(read_dataset(out, name, schema)))
        except DatasetError as exc:
            skipped.append(f"{name}: {exc}")
    if not tables:
        return None
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables])


def _solution(out: str, tokenizer: str, mixtures: pa.Table) -> dict[str, Any]:
    """The solve's JSON document, or the diagnostics the mixture dataset's provenance keeps."""
    fs, path = filesystem_for(mixture_json_path(out, tokenizer))
    try:
        doc = json.loads(fs.cat_file(path))
        if isinstance(doc, dict) and isinstance(doc.get("diagnostics"), dict):
            return doc
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        pass
    return {"diagnostics": provenance_of(mixtures.schema).get("diagnostics") or {}}


def collect_run(out: str) -> RunData:
    """The committed tables of the run at ``out``; DatasetError when it has none at all."""
    run = RunData(source=out)
    skipped = run.skipped
    mixtures = []
    for name in _dataset_names(out, "mixtures", "tokenizer"):
        try:
            table = read_dataset(out, name, MIXTURES)
        except DatasetError as exc:
            skipped.append(f"{name}: {exc}")
            continue
        for tokenizer in sorted(set(table["tokenizer"].to_pylist())):
            run.solutions[tokenizer] = _solution(out, tokenizer, table)
        mixtures.append(table.replace_schema_metadata(None))
    run.mixtures = pa.concat_tables(mixtures) if mixtures else None
    run.token_stats = _read_all(out, "token_stats", "tokenizer", TOKEN_STATS, skipped)
    run.token_totals = _read_all(
        out, "token_frequencies", "tokenizer", TOKEN_FREQUENCIES, skipped, summarize_frequencies
    )
    run.undertrained = _read_all(out, "undertrained", "tokenizer", UNDERTRAINED, skipped)
    run.corpus_stats = _read_all(out, "corpus_stats", "pretokenizer", CORPUS_STATS, skipped)
    run.inconsistent = root_inconsistencies(out)
    found = (run.mixtures, run.token_stats, run.token_totals, run.undertrained, run.corpus_stats)
    if all(t is None for t in found):
        detail = f" ({'; '.join(skipped)})" if skipped else ""
        raise DatasetError(
            f"{out}: no committed tokmix datasets (mixtures/, token_stats/, corpus_stats/, ...)"
            f"{detail}; run `tokmix infer` or `tokmix stats` with --out {out} first"
        )
    return run


def run_report(
    out: str, dest: str | None = None, *, warn: Callable[[str], None] = lambda _m: None
) -> str:
    """Write ``dest`` (default ``out/report``): ``index.html`` and every figure as PNG; the
    figures first and the page last, so a page never names a figure that is not there.
    Datasets of the root that no single run produced together are flagged on the page and
    passed to ``warn``."""
    run = collect_run(out)
    for problem in run.inconsistent:
        warn(f"warning: {out}: {problem}")
    report = build_report(run)
    dest = dest or join(out, REPORT_DIR)
    for fig in report.figures:
        fs, path = filesystem_for(join(dest, fig.file_name))
        write_bytes_atomic(fs, path, fig.png)
    fs, path = filesystem_for(join(dest, INDEX))
    write_bytes_atomic(fs, path, report.html.encode("utf-8"))
    return to_url(fs, path)


def write_groups_chart(out: str, run_id: str, solutions: dict[str, dict[str, Any]]) -> str | None:
    """The run's comparison chart (tokenizers × category groups) at
    ``OUT/runs/RUN_ID-groups.png``, beside the run summary; None when no tokenizer has groups.
    ``tokmix report`` draws the same chart from the same documents (``groups.png``)."""
    comparison = GroupComparison.from_solutions(solutions)
    if not comparison:
        return None
    fs, path = filesystem_for(run_groups_chart_path(out, run_id))
    write_bytes_atomic(fs, path, comparison.chart())
    return to_url(fs, path)
