"""The run catalog: every dataset a run commits under its output root, declared once.

A dataset is a kind (``word_counts``), the key that names one instance (``pretokenizer=K`` or
``tokenizer=T``), its Arrow schema, its partition columns and the stage that commits it. Stages
name, read, write and check the freshness of each other's datasets through this table, not
through each other's modules, so one stage's output is the next one's input by name alone
(docs/ARCHITECTURE.md, "Stages and datasets").

Freshness is one scheme everywhere: a stage records the inputs it was computed from in the
dataset's ``_SUCCESS`` manifest (:func:`tokmix.io.datasets.write_dataset`), where a committed
dataset stands for its content by :func:`tokmix.io.datasets.content_digest`; a later run with
equal inputs skips the stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tokmix import schemas
from tokmix.io.datasets import (
    Filters,
    content_digest,
    is_committed,
    read_dataset,
    read_manifest,
    write_dataset,
)
from tokmix.io.fs import join


@dataclass(frozen=True)
class Dataset:
    """One kind of dataset of a run (see the module docstring)."""

    kind: str
    key: str
    """``pretokenizer`` (word tables, shared by tokenizers that split alike) or ``tokenizer``."""
    schema: pa.Schema
    partition_cols: tuple[str, ...]
    stage: str

    def name(self, value: str) -> str:
        """The dataset's path under the output root: ``kind/key=value``."""
        return f"{self.kind}/{self.key}={value}"

    def read(self, out: str, value: str, *, filters: Filters | None = None) -> pa.Table:
        return read_dataset(out, self.name(value), self.schema, filters=filters)

    def write(
        self,
        table: pa.Table,
        out: str,
        value: str,
        *,
        provenance: dict[str, Any],
        inputs: dict[str, str],
    ) -> None:
        write_dataset(
            table,
            out,
            self.name(value),
            schema=self.schema,
            partition_cols=self.partition_cols,
            provenance=provenance,
            input_hashes=inputs,
        )

    def is_current(
        self, out: str, value: str, inputs: dict[str, Any], *, check_schema: bool = False
    ) -> bool:
        """Committed from exactly these inputs (and, if asked, this schema version)."""
        schema = self.schema if check_schema else None
        return is_committed(out, self.name(value), inputs, schema=schema)

    def manifest(self, out: str, value: str) -> dict[str, Any]:
        return read_manifest(out, self.name(value))

    def digest(self, out: str, value: str) -> str:
        """What a later stage records as this dataset, as its input: its content digest."""
        return content_digest(self.manifest(out, value))


WORD_COUNTS = Dataset("word_counts", "pretokenizer", schemas.WORD_COUNTS, ("category",), "count")
CORPUS_STATS = Dataset("corpus_stats", "pretokenizer", schemas.CORPUS_STATS, (), "count")
GROUP_WORD_COUNTS = Dataset(
    "group_word_counts", "pretokenizer", schemas.GROUP_WORD_COUNTS, ("category",), "count"
)
SAMPLE_GROUPS = Dataset("sample_groups", "pretokenizer", schemas.SAMPLE_GROUPS, (), "count")
TRAJECTORIES = Dataset("trajectories", "tokenizer", schemas.TRAJECTORIES, ("category",), "replay")
MERGES = Dataset("merges", "tokenizer", schemas.MERGES, (), "replay")
REPLAY_TOTALS = Dataset("replay_totals", "tokenizer", schemas.REPLAY_TOTALS, (), "replay")
GROUP_TRAJECTORIES = Dataset(
    "group_trajectories", "tokenizer", schemas.GROUP_TRAJECTORIES, ("category",), "replay"
)
GROUP_TOTALS = Dataset("group_totals", "tokenizer", schemas.GROUP_TOTALS, (), "replay")
MIXTURES = Dataset("mixtures", "tokenizer", schemas.MIXTURES, (), "solve")
MIXTURE_GROUPS = Dataset("mixture_groups", "tokenizer", schemas.MIXTURE_GROUPS, (), "solve")
TOKEN_STATS = Dataset("token_stats", "tokenizer", schemas.TOKEN_STATS, (), "stats")
TOKEN_FREQUENCIES = Dataset(
    "token_frequencies", "tokenizer", schemas.TOKEN_FREQUENCIES, (), "stats"
)
UNDERTRAINED = Dataset("undertrained", "tokenizer", schemas.UNDERTRAINED, (), "stats")

CATALOG: tuple[Dataset, ...] = (
    WORD_COUNTS,
    CORPUS_STATS,
    GROUP_WORD_COUNTS,
    SAMPLE_GROUPS,
    TRAJECTORIES,
    MERGES,
    REPLAY_TOTALS,
    GROUP_TRAJECTORIES,
    GROUP_TOTALS,
    MIXTURES,
    MIXTURE_GROUPS,
    TOKEN_STATS,
    TOKEN_FREQUENCIES,
    UNDERTRAINED,
)
"""Every dataset of a run, in stage order."""


def of_stage(stage: str) -> Sequence[Dataset]:
    return tuple(d for d in CATALOG if d.stage == stage)


def mixture_json_path(out: str, tokenizer: str) -> str:
    """The solve's JSON document (:class:`tokmix.schemas.mixture.MixtureResult`), beside (not
    inside) the committed ``mixtures`` dataset."""
    return join(out, "mixtures", f"{tokenizer}.json")


def run_summary_path(out: str, run_id: str) -> str:
    """A ``tokmix run``'s summary document."""
    return join(out, "runs", f"{run_id}.json")


def run_groups_chart_path(out: str, run_id: str) -> str:
    """A ``tokmix run``'s chart of category groups per tokenizer, beside its summary."""
    return join(out, "runs", f"{run_id}-groups.png")
