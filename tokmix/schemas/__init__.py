"""Arrow schemas of every Parquet output, declared once (ARCHITECTURE.md §7).

Each schema carries ``tokmix.schema`` (name) and ``tokmix.schema_version`` in its key-value
metadata; writers add provenance (tokenizer hash, corpus manifest hash, parameters) with
:func:`with_provenance`. Readers check name and version with :func:`check_schema`.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from tokmix import __version__
from tokmix.errors import DatasetError

SCHEMA_KEY = b"tokmix.schema"
VERSION_KEY = b"tokmix.schema_version"
PROVENANCE_KEY = b"tokmix.provenance"


def _schema(name: str, version: int, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(
        fields, metadata={SCHEMA_KEY: name.encode(), VERSION_KEY: str(version).encode()}
    )


WORD_COUNTS = _schema(
    "word_counts",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("word", pa.binary(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ],
)
"""One row per category and distinct pre-token (UTF-8 bytes)."""

CORPUS_STATS = _schema(
    "corpus_stats",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("pretokenizer", pa.string(), nullable=False),
        pa.field("documents", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("chars", pa.int64(), nullable=False),
        pa.field("pretokens", pa.int64(), nullable=False),
        pa.field("distinct_words", pa.int64(), nullable=False),
        pa.field("invalid_utf8_documents", pa.int64(), nullable=False),
        pa.field("files", pa.int64(), nullable=False),
    ],
)
"""One row per category: the sample's totals (pairs live with the trajectories)."""

TRAJECTORIES = _schema(
    "trajectories",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("left", pa.int32(), nullable=False),
        pa.field("right", pa.int32(), nullable=False),
        pa.field("delta", pa.int64(), nullable=False),
    ],
)
"""Sparse pair-count trajectory: ``step = 0`` rows are the initial counts ``c_1``; a row at
step ``t >= 1`` is ``c_{t+1} - c_t`` for one pair ``(left, right)`` of symbol ids (see
``tokmix.bpe.merges``). So ``c_t(p)`` is the sum of ``delta`` over rows with ``step < t``."""

MERGES = _schema(
    "merges",
    1,
    [
        pa.field("step", pa.int32(), nullable=False),
        pa.field("left", pa.int32(), nullable=False),
        pa.field("right", pa.int32(), nullable=False),
        pa.field("product", pa.int32(), nullable=False),
        pa.field("left_bytes", pa.binary(), nullable=False),
        pa.field("right_bytes", pa.binary(), nullable=False),
    ],
)
"""The per-step merge ids of a trajectory dataset (one file beside the deltas)."""

REPLAY_TOTALS = _schema(
    "replay_totals",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("pairs", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("first_step", pa.int32(), nullable=False),
        pa.field("last_step", pa.int32(), nullable=False),
    ],
)
"""Per category: ``pairs`` = total initial pair count ``d_i`` (the LP's normalizer)."""

MIXTURES = _schema(
    "mixtures",
    1,
    [
        pa.field("tokenizer", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("weight", pa.float64(), nullable=False),
        pa.field("byte_share", pa.float64(), nullable=False),
        pa.field("byte_share_low", pa.float64()),
        pa.field("byte_share_high", pa.float64()),
        pa.field("pairs", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
    ],
)
"""One row per tokenizer and category: ``weight`` is alpha (pair units), ``byte_share`` is
beta (share of training bytes, what people mean by "share of the data")."""

TOKEN_STATS = _schema(
    "token_stats",
    1,
    [
        pa.field("tokenizer", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("pretokenizer", pa.string(), nullable=False),
        pa.field("documents", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("chars", pa.int64(), nullable=False),
        pa.field("pretokens", pa.int64(), nullable=False),
        pa.field("tokens", pa.int64(), nullable=False),
        pa.field("vocab_size", pa.int64(), nullable=False),
        pa.field("tokens_used", pa.int64(), nullable=False),
    ],
)
"""One row per tokenizer and category: raw sums only (ratios do not add across shards, so
bytes/token, fertility and vocabulary use are derived at read time). ``tokens_used`` is the
number of distinct token ids produced at least once in the category."""

TOKEN_FREQUENCIES = _schema(
    "token_frequencies",
    1,
    [
        pa.field("tokenizer", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("token_id", pa.int32(), nullable=False),
        pa.field("token", pa.binary(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ],
)
"""One row per tokenizer, category and token produced there; ``token`` is the token's bytes
(SentencePiece-style: its UTF-8 text, with ``▁`` for space)."""

UNDERTRAINED = _schema(
    "undertrained",
    1,
    [
        pa.field("tokenizer", pa.string(), nullable=False),
        pa.field("token_id", pa.int32(), nullable=False),
        pa.field("token", pa.binary(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ],
)
"""One row per candidate under-trained token: ``reason`` is ``unreachable`` (no merge
sequence of the merge list produces it) or ``never_produced`` (on no category of the run)."""


TOKEN_STATS = _schema(
    "token_stats",
    1,
    [
        pa.field("tokenizer", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("pretokenizer", pa.string(), nullable=False),
        pa.field("documents", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("chars", pa.int64(), nullable=False),
        pa.field("pretokens", pa.int64(), nullable=False),
        pa.field("tokens", pa.int64(), nullable=False),
        pa.field("vocab_size", pa.int64(), nullable=False),
        pa.field("tokens_used", pa.int64(), nullable=False),
    ],
)
"""One row per tokenizer and category: raw sums only (ratios are derived at read time, see
``tokmix.analytics.token_stats.derived_ratios``). ``vocab_size`` counts the tokens encoding can
produce (vocabulary + byte-fallback pieces, no special tokens); ``tokens_used`` the distinct
ids produced at least once in the category."""

TOKEN_FREQUENCIES = _schema(
    "token_frequencies",
    1,
    [
        pa.field("tokenizer", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("token_id", pa.int32(), nullable=False),
        pa.field("token", pa.binary(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ],
)
"""One row per tokenizer, category and token produced there. ``token`` is the token's bytes;
SentencePiece-style tokens are their UTF-8 text (``▁`` for the space, ``<0xXX>`` for byte
pieces)."""

UNDERTRAINED = _schema(
    "undertrained",
    1,
    [
        pa.field("tokenizer", pa.string(), nullable=False),
        pa.field("token_id", pa.int32(), nullable=False),
        pa.field("token", pa.binary(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ],
)
"""One row per under-trained token candidate: ``reason`` is ``unreachable`` (no sequence of
merges makes it) or ``never_produced`` (reachable, produced on no category of the run).
``count``: times the run produced it (0, except unreachable tokens that ``ignore_merges`` emits
whole)."""

GROUP_WORD_COUNTS = _schema(
    "group_word_counts",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("group", pa.int32(), nullable=False),
        pa.field("word", pa.binary(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ],
)
"""Word counts per bootstrap group: each document of a category belongs to one of ``K``
groups by a hash of its text; summed over groups they are ``word_counts``."""

SAMPLE_GROUPS = _schema(
    "sample_groups",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("group", pa.int32(), nullable=False),
        pa.field("documents", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
    ],
)
"""Documents and bytes of each bootstrap group of a category's sample."""

GROUP_TRAJECTORIES = _schema(
    "group_trajectories",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("group", pa.int32(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("left", pa.int32(), nullable=False),
        pa.field("right", pa.int32(), nullable=False),
        pa.field("delta", pa.int64(), nullable=False),
    ],
)
"""Trajectory rows per bootstrap group (as ``trajectories``; summed over groups they are the
category's trajectory). A bootstrap replicate is a weighted sum of them (ARCHITECTURE.md §4)."""

GROUP_TOTALS = _schema(
    "group_totals",
    1,
    [
        pa.field("category", pa.string(), nullable=False),
        pa.field("group", pa.int32(), nullable=False),
        pa.field("pairs", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
    ],
)
"""Per bootstrap group: its initial pair count (``d``) and sample bytes."""
EVAL_RESULTS = _schema(
    "eval_results",
    1,
    [
        pa.field("setting", pa.string(), nullable=False),
        pa.field("n", pa.int32(), nullable=False),
        pa.field("trial", pa.int32(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("estimator", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("truth", pa.float64(), nullable=False),
        pa.field("estimate", pa.float64(), nullable=False),
        pa.field("low", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("log10_mse", pa.float64(), nullable=False),
        pa.field("train_merges", pa.int32(), nullable=False),
        pa.field("steps", pa.int32(), nullable=False),
        pa.field("train_bytes", pa.int64(), nullable=False),
        pa.field("sample_bytes", pa.int64(), nullable=False),
        pa.field("objective", pa.float64()),
        pa.field("constraints", pa.int64()),
        pa.field("missing_merges", pa.int64()),
        pa.field("slack_steps", pa.int64()),
        pa.field("seconds", pa.float64(), nullable=False),
    ],
)
"""``tokmix evaluate``: one row per trial, variant, estimator and category. ``truth`` and
``estimate`` are byte shares; ``low``/``high`` the bootstrap interval (LP estimators);
``log10_mse`` the trial's score (repeated on its rows); ``variant`` is ``base`` or a curve /
robustness point (``steps=T``, ``sample=BYTES``, ``shift``, ``leave-out=CATEGORY``)."""


def with_provenance(schema: pa.Schema, provenance: dict[str, Any]) -> pa.Schema:
    """The schema with provenance (hashes, parameters, tokmix version) in its metadata."""
    meta = dict(schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(
        {"tokmix_version": __version__, **provenance}, sort_keys=True, default=str
    ).encode()
    return schema.with_metadata(meta)


def check_schema(actual: pa.Schema, expected: pa.Schema, where: str) -> None:
    """Raise :class:`DatasetError` unless ``actual`` is ``expected``'s dataset and version."""
    meta = actual.metadata or {}
    want_name = expected.metadata[SCHEMA_KEY]
    want_version = expected.metadata[VERSION_KEY]
    if meta.get(SCHEMA_KEY) != want_name:
        raise DatasetError(
            f"{where}: expected a tokmix {want_name.decode()} dataset, found "
            f"{(meta.get(SCHEMA_KEY) or b'no tokmix schema').decode()}"
        )
    if meta.get(VERSION_KEY) != want_version:
        raise DatasetError(
            f"{where}: {want_name.decode()} schema version "
            f"{(meta.get(VERSION_KEY) or b'?').decode()}, this tokmix reads "
            f"{want_version.decode()}; re-run the stage with this version"
        )
    missing = [f.name for f in expected if f.name not in actual.names]
    if missing:
        raise DatasetError(f"{where}: columns {missing} are missing")


def provenance_of(schema: pa.Schema) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}
