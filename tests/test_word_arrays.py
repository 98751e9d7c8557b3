"""The word arrays path of the sharded count equals the dict path it replaced, byte for byte.

The map task of the count stage used to take a shard's words as a ``dict`` (one ``bytes`` per
word), hash each with ``zlib.crc32`` and hand them to Arrow one by one. It now takes them as
arrays from the compiled counter (:meth:`CompiledWordCounter.arrays`) and hashes them in
numba. The oracles here are that dict path: the counter's own :meth:`drain`, ``zlib.crc32``
and the split as it was written before (:func:`_split_with_a_dict`, kept verbatim below), on
real text of every shared corpus category and on adversarial text: invalid UTF-8, long runs,
SentencePiece's spaces and literal ``▁`` (which the compiled counter holds as two records that
must come out as one word).
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import corpus_heads
from tests.test_fast_pretokenize import _MARKS, COMPILED, METASPACE_SHAPES, SETTINGS, texts
from tokmix.bpe import fast_pretokenize as fp
from tokmix.bpe import pretokenizers as P
from tokmix.bpe.word_arrays import WordArrays, crc32
from tokmix.bpe.words import WordTable
from tokmix.jobs.count_ray import (
    _PARTITION_SCHEMA,
    _split_by_partition,
    run_count_ray,
    word_partition,
)
from tokmix.jobs.executors import LocalExecutor
from tokmix.jobs.spec import CategorySpec, SampleOptions

FAMILIES = list(P.FAMILIES.values())
FAMILY_IDS = list(P.FAMILIES)


def _split_with_a_dict(group: int, counts: dict[bytes, int], partitions: int) -> list[pa.Table]:
    """``_split_by_partition`` as it was before word arrays (commit c861118), the reference."""
    words = list(counts)
    hashes = np.fromiter(map(zlib.crc32, words), dtype=np.int64, count=len(words))
    part = hashes % partitions
    order = np.argsort(part, kind="stable")
    ends = np.cumsum(np.bincount(part, minlength=partitions)).tolist()
    table = pa.table(
        {
            "group": pa.array(np.full(len(words), group, dtype=np.int32)),
            "word": pa.array(words, pa.binary()).take(pa.array(order)),
            "count": pa.array(np.fromiter(counts.values(), np.int64, len(words))[order]),
        },
        schema=_PARTITION_SCHEMA,
    )
    return [table.slice(lo, hi - lo) for lo, hi in zip([0, *ends[:-1]], ends, strict=True)]


def assert_same_arrays(got: WordArrays, want: WordArrays) -> None:
    assert got.data.dtype == np.uint8 and got.offsets.dtype == got.counts.dtype == np.int64
    assert got.words() == want.words()
    assert bytes(got.data) == bytes(want.data)
    assert got.offsets.tolist() == want.offsets.tolist()
    assert got.counts.tolist() == want.counts.tolist()


def assert_arrays_are_the_drain(counter: fp.WordCounter) -> Counter[bytes]:
    """The counter's arrays equal its drained dict, word for word and in the dict's order;
    the drained dict."""
    arrays = counter.arrays()
    assert_same_arrays(counter.arrays(), arrays)  # reading the arrays changes nothing
    drained = counter.drain()
    assert_same_arrays(arrays, WordArrays.from_counts(drained))
    assert dict(zip(arrays.words(), arrays.counts.tolist(), strict=True)) == drained
    return drained


def assert_same_split(words: WordTable, partitions: int, group: int = 0) -> None:
    """The split of the table's arrays equals the split of its dict (table order too)."""
    got = _split_by_partition(group, words.word_arrays(), partitions)
    want = _split_with_a_dict(group, words.counts, partitions)
    assert len(got) == len(want) == partitions
    for r, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a.schema == b.schema == _PARTITION_SCHEMA
        assert a.equals(b), f"partition {r}"


# ------------------------------------------------------------------ the hash


@SETTINGS
@given(words=st.lists(st.binary(max_size=40), max_size=50))
def test_crc32_is_zlibs(words: list[bytes]) -> None:
    arrays = WordArrays.from_counts(dict.fromkeys(words, 1))
    want = [zlib.crc32(w) for w in dict.fromkeys(words)]
    assert crc32(arrays).tolist() == want
    for partitions in (1, 3, 64, 1000):
        assert word_partition(arrays, partitions).tolist() == [h % partitions for h in want]


def test_crc32_of_long_words_and_every_byte() -> None:
    words = [bytes(range(256)), b"\xff" * 100_000, b"\x00", "\u2581x日".encode(), b""]
    assert crc32(WordArrays.from_counts(dict.fromkeys(words, 2))).tolist() == [
        zlib.crc32(w) for w in words
    ]


def test_arrays_are_an_arrow_binary_array() -> None:
    counts = {b"a": 3, b"": 1, "日本".encode(): 7, b"\xff\x00": 2}
    arrays = WordArrays.from_counts(counts)
    column = arrays.binary_array()
    assert column.type == pa.binary()
    assert column.to_pylist() == arrays.words() == list(counts)
    assert len(WordArrays.from_counts({})) == 0
    assert WordArrays.from_counts({}).binary_array().to_pylist() == []


# ------------------------------------------------------------------ the counters


@pytest.fixture(scope="module")
def corpus_docs(corpora_dir: Path) -> dict[str, list[str]]:
    """The first 20 documents of every category of the shared corpora (skips without them)."""
    return corpus_heads(corpora_dir, 20)


@pytest.mark.parametrize("pre", FAMILIES, ids=FAMILY_IDS)
def test_compiled_arrays_equal_the_drain_on_real_text(
    pre: P.Pretokenizer, corpus_docs: dict[str, list[str]]
) -> None:
    """Every corpus category, one counter each, and then all of them in one counter (the
    table grows many times); the dict equals the ``regex`` path's."""
    everything = fp.word_counter(pre, "compiled")
    reference = fp.RegexWordCounter(pre)
    for name, docs in corpus_docs.items():
        counter = fp.word_counter(pre, "compiled")
        for doc in docs:
            counter.add(doc)
            everything.add(doc)
            reference.add(doc)
        assert len(counter.arrays()), name
        assert_arrays_are_the_drain(counter)
    assert assert_arrays_are_the_drain(everything) == reference.drain()


@pytest.mark.parametrize("pre", COMPILED, ids=[p.name for p in COMPILED])
@SETTINGS
@given(docs=st.lists(texts, max_size=4))
def test_compiled_arrays_equal_the_drain_on_generated_text(
    pre: P.Pretokenizer, docs: list[str]
) -> None:
    counter = fp.word_counter(pre, "compiled")
    for doc in docs:
        counter.add(doc)
    want = Counter(w for doc in docs for w in pre.words(doc))
    assert assert_arrays_are_the_drain(counter) == want


@pytest.mark.parametrize("pre", [P.GPT2, P.O200K, P.SENTENCEPIECE], ids=["gpt2", "o200k", "sp"])
@SETTINGS
@given(data=st.lists(st.one_of(st.binary(max_size=6), st.sampled_from(_MARKS)), max_size=30))
def test_compiled_arrays_on_invalid_utf8(pre: P.Pretokenizer, data: list[bytes | str]) -> None:
    raw = b"".join(d.encode() if isinstance(d, str) else d for d in data)
    counter = fp.word_counter(pre, "compiled")
    counter.add(P.decode_utf8(raw))
    assert assert_arrays_are_the_drain(counter) == Counter(pre.words(P.decode_utf8(raw)))


@pytest.mark.parametrize("pre", METASPACE_SHAPES, ids=[p.name for p in METASPACE_SHAPES])
@SETTINGS
@given(parts=st.lists(st.sampled_from(_MARKS), max_size=40), repeat=st.integers(1, 3))
def test_metaspace_arrays_sum_spaces_and_literal_marks(
    pre: P.Pretokenizer, parts: list[str], repeat: int
) -> None:
    """A word typed with spaces and with ``▁`` is two records of the compiled table and one
    word of the arrays, in the order the dict gives (its first record's)."""
    text = "".join(parts)
    counter = fp.word_counter(pre, "compiled")
    for _ in range(repeat):
        counter.add(text)
    want = Counter({w: n * repeat for w, n in Counter(pre.words(text)).items()})
    assert assert_arrays_are_the_drain(counter) == want


@pytest.mark.parametrize("pre", METASPACE_SHAPES, ids=[p.name for p in METASPACE_SHAPES])
def test_metaspace_arrays_long_runs_and_growth(pre: P.Pretokenizer) -> None:
    """Runs of spaces and of ``▁`` thousands long, a 200 000-byte word, tens of thousands of
    words written both ways (the table grows while records of one word sit apart)."""
    docs = [f"w{i} word x\u2581w{i}\u2581word \u2581\u2581y{i % 7}  z" for i in range(20_000)]
    docs += [" " * 5_000 + "a" + "\u2581" * 5_000 + "a", "b" * 200_000, "\u2581" * 3 + "   "]
    counter = fp.word_counter(pre, "compiled")
    want: Counter[bytes] = Counter()
    for doc in docs:
        counter.add(doc)
        want.update(pre.words(doc))
    assert assert_arrays_are_the_drain(counter) == want


def test_gpt2_arrays_long_runs() -> None:
    text = " " * 10_000 + "x" * 100_000 + "\n" * 3_000 + "7" * 5_000 + "'s" * 2_000 + "\u2581"
    counter = fp.word_counter(P.GPT2, "compiled")
    counter.add(text)
    assert assert_arrays_are_the_drain(counter) == Counter(P.GPT2.words(text))


def test_regex_counter_arrays_equal_its_drain() -> None:
    counter = fp.RegexWordCounter(P.SENTENCEPIECE)
    counter.add("a \u2581a  b\xff\u2581\u2581")
    assert_arrays_are_the_drain(counter)


@pytest.mark.parametrize("engine", ["compiled", "regex"])
def test_word_table_arrays_follow_its_counts(engine: fp.Engine) -> None:
    """Straight from the counter, and after :attr:`WordTable.counts` was read and more text
    counted (the words then sit in two places and the dict sums them)."""
    table = WordTable()
    table.add_text("hello world \u2581hello", P.SENTENCEPIECE, engine)
    assert_same_arrays(table.word_arrays(), WordArrays.from_counts(table.counts))
    table.add_text("hello there \u2581world 12", P.SENTENCEPIECE, engine)
    arrays = table.word_arrays()
    assert_same_arrays(arrays, WordArrays.from_counts(table.counts))
    assert arrays.words() == list(table.counts)
    assert table.text_totals() == {
        k: v for k, v in table.totals().items() if k not in ("distinct_words", "files")
    }


# ------------------------------------------------------------------ the map task's split


@pytest.mark.parametrize("pre", FAMILIES, ids=FAMILY_IDS)
def test_split_equals_the_dict_path_on_real_text(
    pre: P.Pretokenizer, corpus_docs: dict[str, list[str]]
) -> None:
    table = WordTable()
    for docs in corpus_docs.values():
        for doc in docs[:5]:
            table.add_text(doc, pre)
    for partitions in (1, 2, 7, 64):
        assert_same_split(table, partitions, group=3)


@pytest.mark.parametrize("pre", METASPACE_SHAPES, ids=[p.name for p in METASPACE_SHAPES])
@SETTINGS
@given(parts=st.lists(st.sampled_from(_MARKS), max_size=40), partitions=st.integers(1, 9))
def test_split_equals_the_dict_path_with_literal_marks(
    pre: P.Pretokenizer, parts: list[str], partitions: int
) -> None:
    table = WordTable()
    table.add_text("".join(parts), pre, "compiled")
    table.add_text(" ".join(parts), pre, "compiled")
    assert_same_split(table, partitions)


def test_split_of_no_words() -> None:
    table = WordTable()
    assert [len(p) for p in _split_by_partition(0, table.word_arrays(), 3)] == [0, 0, 0]
    assert_same_split(table, 3)


@pytest.mark.parametrize(("groups", "shard_bytes"), [(1, 20_000), (3, 20_000), (1, 10**9)])
def test_sharded_sentencepiece_count_with_literal_marks_equals_the_regex_engine(
    tmp_path: Path, groups: int, shard_bytes: int
) -> None:
    """The whole count stage on SentencePiece text holding ``▁`` itself: each engine's
    committed files hold the same rows. With one shard the reduce sums nothing (one shard's
    words are distinct), so a word left twice by the map task would show."""
    lines = [
        json.dumps({"text": f"w{i} word x\u2581w{i}\u2581word \u2581\u2581y{i % 7}  z \xe9"})
        for i in range(3_000)
    ]
    path = tmp_path / "sp.jsonl"
    path.write_text("\n".join(lines) + "\n")
    spec = CategorySpec("sp", str(path))
    rows = {}
    for engine in ("compiled", "regex"):
        out = tmp_path / engine
        run_count_ray(
            [spec],
            {"sp": SampleOptions()},
            P.SENTENCEPIECE,
            str(out),
            shard_bytes=shard_bytes,
            partitions=3,
            groups=groups,
            executor=LocalExecutor(),
            engine=engine,
        )
        files = sorted(out.rglob("*.parquet"))
        assert files
        rows[engine] = {str(f.relative_to(out)): pq.read_table(f).to_pylist() for f in files}
    assert rows["compiled"] == rows["regex"]
