"""Word tables: counting is independent of sharding, and the Parquet form round-trips."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import sample_documents
from tokmix.bpe.pretokenizers import GPT2, SENTENCEPIECE_DIGITS
from tokmix.bpe.words import WordTable, count_words
from tokmix.io.datasets import read_dataset, write_dataset
from tokmix.schemas import WORD_COUNTS

DOCS = sample_documents("python", 60_000) + sample_documents("books", 60_000)


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(0, len(DOCS)))
def test_tables_of_shards_add_up(cut: int) -> None:
    whole = count_words(DOCS, GPT2)
    summed = count_words(DOCS[:cut], GPT2) + count_words(DOCS[cut:], GPT2)
    assert summed == whole


def test_counts_are_the_pre_token_multiset() -> None:
    for pretok in (GPT2, SENTENCEPIECE_DIGITS):
        table = count_words(DOCS[:5], pretok)
        expected = Counter(w for d in DOCS[:5] for w in pretok.words(d))
        assert table.counts == expected
        assert table.pretokens == sum(expected.values())
        assert table.bytes_ == sum(len(d.encode()) for d in DOCS[:5])


def test_parquet_round_trip(tmp_path: Path) -> None:
    table = count_words(DOCS, GPT2)
    write_dataset(
        table.to_arrow("py"),
        str(tmp_path),
        "word_counts",
        schema=WORD_COUNTS,
        partition_cols=("category",),
        provenance={},
        input_hashes={"x": "1"},
    )
    back = read_dataset(str(tmp_path), "word_counts", WORD_COUNTS)
    again = WordTable.from_arrays(back["word"].to_pylist(), back["count"].to_numpy())
    assert again.counts == table.counts
