"""The compiled pre-tokenizer and counter equal the ``regex`` path, word for word and in order.

The oracle is :meth:`Pretokenizer.split` (``regex``), itself checked against ``tokenizers``
and tiktoken in ``test_pretokenizers.py``. Both paths use ``regex``'s Unicode tables, so no
code point is excluded here: the Unicode 17 additions and U+0295 are generated like any other.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import corpus_heads
from tests.test_pretokenizers import EDGE_CASES, HARD_CHARS, PIPELINES, SEQUENCES
from tokmix.bpe import fast_pretokenize as fp
from tokmix.bpe import pretokenizers as P
from tokmix.bpe.unicode_classes import all_code_points
from tokmix.bpe.words import WordTable, count_words

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _with_digits(pattern: str, individual: bool) -> P.Pretokenizer:
    steps = (P.DigitsSplit(individual), P.RegexSplit(pattern, "removed", invert=True))
    return P.Pretokenizer(f"digits-{individual}", steps)


COMPILED: list[P.Pretokenizer] = [
    *P.FAMILIES.values(),
    P.Pretokenizer("cl100k-isolated", (P.RegexSplit(P.CL100K_PATTERN),)),
    P.Pretokenizer("o200k-isolated", (P.RegexSplit(P.O200K_PATTERN),)),
    P.Pretokenizer("qwen2", (P.RegexSplit(fp.QWEN2_PATTERN),)),
    P.Pretokenizer("gpt2-bytelevel-prefix", (P.ByteLevelSplit(True, True),)),
    P.Pretokenizer("gpt2-nfkc", P.GPT2.steps, normalizer="nfkc"),
    _with_digits(P.CL100K_PATTERN, True),
    _with_digits(P.LLAMA3_PATTERN, False),
    _with_digits(P.O200K_PATTERN, True),
    _with_digits(P.GPT2_PATTERN, False),
    P.Pretokenizer("sp-first", (P.MetaspaceSplit("first", True),), byte_level=False),
    P.Pretokenizer("sp-never", (P.MetaspaceSplit("never", True),), byte_level=False),
    P.Pretokenizer(
        "sp-digit-runs", (P.MetaspaceSplit("always"), P.DigitsSplit(False)), byte_level=False
    ),
    P.Pretokenizer("sp-runs", (P.SentencePieceRunsSplit("always"),), byte_level=False),
    P.Pretokenizer("sp-runs-never", (P.SentencePieceRunsSplit("never"),), byte_level=False),
    P.Pretokenizer(
        "sp-runs-digits",
        (P.SentencePieceRunsSplit("always"), P.DigitsSplit(True)),
        byte_level=False,
    ),
    P.Pretokenizer(
        "sp-nfkc-digits",
        (P.MetaspaceSplit("always"), P.DigitsSplit(True)),
        normalizer="nfkc",
        byte_level=False,
    ),
]
IDS = [p.name for p in COMPILED]

any_char = st.characters(exclude_categories=["Cs"])  # the Unicode 17 gap included
runs = st.tuples(
    st.sampled_from([" ", "\n", "\t", "0", "7", "a", "A", "'", "!", "/", "\r\n", "\u0301", "ʰ"]),
    st.integers(1, 30),
).map(lambda t: t[0] * t[1])
element = st.one_of(
    st.sampled_from(HARD_CHARS),
    st.sampled_from([*SEQUENCES, "'S", "'ſ", "\u2581", " \u2581 ", "ʕa", "Aʰb", "'ll"]),
    any_char,
    runs,
)
texts = st.lists(element, max_size=30).map("".join)
surrogate_texts = st.lists(
    st.one_of(element, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)), max_size=16
).map("".join)


def assert_same_split(pre: P.Pretokenizer, text: str) -> None:
    want = pre.split(text)
    got = fp.split(pre, text)
    if got != want:
        first = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        raise AssertionError(
            f"{pre.name}: word {first} differs: compiled {got[first : first + 3]!r}, "
            f"regex {want[first : first + 3]!r} (text {text[:80]!r})"
        )


def test_every_shape_compiles() -> None:
    for pre in COMPILED:
        assert fp.compile_plan(pre) is not None, pre.name


@pytest.mark.parametrize("pre", COMPILED, ids=IDS)
@SETTINGS
@given(text=st.one_of(texts, surrogate_texts))
def test_compiled_split_equals_regex_on_generated_text(pre: P.Pretokenizer, text: str) -> None:
    assert_same_split(pre, text)


@pytest.mark.parametrize("pre", COMPILED, ids=IDS)
def test_compiled_split_equals_regex_on_edge_cases(pre: P.Pretokenizer) -> None:
    cases = [*EDGE_CASES, *HARD_CHARS, *SEQUENCES]
    long_runs = [c * 3_000 for c in [" ", "\n", "\t", "a", "Ж", "日", "7", "!", "\u0301", "ʰ"]]
    mixed = ["Ab" * 2_000, " a" * 2_000, "\r\n " * 1_000, "a'll " * 500, "x1" * 2_000]
    for text in [*cases, *long_runs, *mixed, "".join(HARD_CHARS) * 3]:
        assert_same_split(pre, text)


def _category_texts() -> dict[str, str]:
    """Every code point, grouped by general category as ``regex`` sees it."""
    text, _ = all_code_points()
    cats = [
        "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
        "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn",
    ]  # fmt: skip
    return {cat: "".join(regex.findall(rf"\p{{{cat}}}", text)) for cat in cats}


@pytest.fixture(scope="module")
def category_texts() -> dict[str, str]:
    return _category_texts()


@pytest.mark.parametrize("pre", COMPILED, ids=IDS)
def test_compiled_split_equals_regex_on_every_code_point(
    pre: P.Pretokenizer, category_texts: dict[str, str]
) -> None:
    """Each category as one run, one character at a time between contexts that each
    alternative of the patterns reacts to, and after every other category's first letters."""
    contexts = [" ", "a", "A", "'", "1", "\n", "!", " \n"]
    for cat, chars in category_texts.items():
        if pre.normalizer != "none" and cat == "Cn":
            continue  # the normalizer sees them, not the splitter; kept cheap
        assert_same_split(pre, chars)
        for i, ctx in enumerate(contexts):
            sample = chars[i :: max(1, len(chars) // 4_000)]
            assert_same_split(pre, ctx.join(sample))
            assert_same_split(pre, "".join(c + ctx + c for c in sample[:2_000]))
        heads = "".join(t[:40] for t in category_texts.values())
        after = "".join(c + heads[j % len(heads)] for j, c in enumerate(chars[:5_000]))
        assert_same_split(pre, after)


@pytest.fixture(scope="module")
def corpus_docs(corpora_dir: Path) -> dict[str, list[str]]:
    """Documents of every category of the shared corpora (the first 10 of each)."""
    return corpus_heads(corpora_dir, 10)


@pytest.mark.parametrize("pre", list(P.FAMILIES.values()), ids=list(P.FAMILIES))
def test_compiled_counts_equal_regex_on_every_corpus_category(
    pre: P.Pretokenizer, corpus_docs: dict[str, list[str]]
) -> None:
    for name, docs in corpus_docs.items():
        compiled = count_words(docs, pre)
        reference = WordTable()
        counter = fp.RegexWordCounter(pre)
        reference.pretokens = sum(counter.add(d) for d in docs)
        assert compiled.counts == counter.drain(), name
        assert compiled.pretokens == reference.pretokens, name
        for doc in docs[:3]:
            assert_same_split(pre, doc)


@SETTINGS
@given(data=st.binary(max_size=60), pre=st.sampled_from(COMPILED))
def test_invalid_utf8_is_replaced_as_decode_utf8_does(data: bytes, pre: P.Pretokenizer) -> None:
    want = Counter(pre.words(P.decode_utf8(data)))
    assert fp.count_pretokens(pre, data, "compiled") == want
    assert fp.split(pre, data) == pre.split(P.decode_utf8(data))


METASPACE_SHAPES = [p for p in COMPILED if (plan := fp.compile_plan(p)) and plan.metaspace]
"""The SentencePiece shapes: their kernel reads a space as ``▁`` and gives words their ``▁``
back when it hands them over, so spaces and a literal U+2581 in the text must stay one."""
_MARKS = [" ", "\u2581", "\u2580", "\u2582", "\u2581\u2581", "  ", "a", "ab", "7", "日", "\n"]


@pytest.mark.parametrize("pre", METASPACE_SHAPES, ids=[p.name for p in METASPACE_SHAPES])
@SETTINGS
@given(parts=st.lists(st.sampled_from(_MARKS), max_size=40))
def test_metaspace_spaces_and_literal_marks_count_as_one(
    pre: P.Pretokenizer, parts: list[str]
) -> None:
    """Spaces, U+2581 and its UTF-8 neighbours (U+2580, U+2582 share two of its bytes), at
    the start, in runs and mixed, counted and split as the ``regex`` path does."""
    text = "".join(parts)
    assert fp.count_pretokens(pre, text, "compiled") == Counter(pre.words(text))
    assert_same_split(pre, text)


@pytest.mark.parametrize("pre", METASPACE_SHAPES, ids=[p.name for p in METASPACE_SHAPES])
def test_metaspace_words_written_both_ways_are_summed(pre: P.Pretokenizer) -> None:
    """One word typed with a space and with ``▁`` is one word: over many documents, with the
    table growing, and through invalid UTF-8 that cuts ``▁``'s bytes short."""
    docs = [f"w{i} word x\u2581w{i}\u2581word \u2581\u2581y{i % 7}  z" for i in range(20_000)]
    table = count_words(docs, pre)
    want: Counter[bytes] = Counter()
    for doc in docs:
        want.update(pre.words(doc))
    assert table.counts == want
    assert table.counts["\u2581word".encode()] == want["\u2581word".encode()] == 40_000
    for data in (b"a\xe2\x96 b", b"\xe2\x96\x81\xe2\x96", b" \xe2\x81 \xe2\x96\x81x"):
        assert fp.count_pretokens(pre, data, "compiled") == Counter(pre.words(P.decode_utf8(data)))


@settings(max_examples=100, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 4_000), max_size=12),
    garbage=st.lists(st.binary(min_size=1, max_size=4), max_size=12),
)
def test_invalid_utf8_inside_real_text(cuts: list[int], garbage: list[bytes]) -> None:
    data = bytearray(("Ünïcödé text, ʕ•ᴥ•ʔ 日本語 12345 don't " * 100).encode())
    for at, junk in zip(cuts, garbage, strict=False):
        data[at:at] = junk
    for pre in (P.GPT2, P.O200K, P.SENTENCEPIECE):
        assert fp.count_pretokens(pre, bytes(data), "compiled") == Counter(
            pre.words(P.decode_utf8(bytes(data)))
        )


def test_table_growth_long_words_and_shared_heads() -> None:
    """Tens of thousands of distinct words (the table doubles many times), words of 7, 8 and
    thousands of bytes, and long words that agree in their first 7 bytes and length."""
    words = [f"w{i}" for i in range(30_000)]
    words += [f"abcdefg{i:05d}" for i in range(3_000)]  # one head per length
    words += ["x" * 7, "y" * 8, "z" * 5_000, "z" * 5_001, "日本語日本"]
    text = " ".join(words * 2) + " " + " ".join(words[::7])
    counter = fp.word_counter(P.GPT2, "compiled")
    assert isinstance(counter, fp.CompiledWordCounter)
    for part in (text[:1_000], text[1_000:]):  # a word may straddle: the regex path agrees
        counter.add(part)
    want = Counter(P.GPT2.words(text[:1_000])) + Counter(P.GPT2.words(text[1_000:]))
    assert counter.drain() == want
    assert counter.drain() == Counter()  # drained means empty


def test_word_table_reads_after_more_text_and_sums() -> None:
    a, b = WordTable(), WordTable()
    docs = ["hello world", "hello there 123", "x  \n\n y"]
    for d in docs:
        a.add_text(d, P.CL100K)
    first = dict(a.counts)
    a.add_text("hello again", P.CL100K)
    assert a.counts == Counter(first) + Counter(P.CL100K.words("hello again"))
    b.add_text("hello", P.O200K)  # another pre-tokenizer: earlier words kept
    b.add_text("hello", P.GPT2)
    assert b.counts == Counter({b"hello": 2})
    assert (a + b).counts == a.counts + b.counts
    assert a == count_words([*docs, "hello again"], P.CL100K)


def test_uncompilable_pipelines_keep_the_regex_path_and_say_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pre = P.Pretokenizer("custom-ws", (P.RegexSplit(r"\s", "isolated"),))
    assert fp.compile_plan(pre) is None
    with caplog.at_level(logging.INFO, logger="tokmix.bpe.fast_pretokenize"):
        for _ in range(3):
            assert isinstance(fp.word_counter(pre), fp.RegexWordCounter)
    assert len([r for r in caplog.records if "no compiled form" in r.message]) == 1
    with pytest.raises(ValueError, match="no compiled form"):
        fp.word_counter(pre, "compiled")
    table = count_words(["a b  c"], pre)
    assert table.counts == Counter(pre.words("a b  c"))


def test_engine_argument() -> None:
    """The engine is an argument (the run spec's ``count.engine``); the core reads no
    environment."""
    assert isinstance(fp.word_counter(P.GPT2), fp.CompiledWordCounter)
    assert isinstance(fp.word_counter(P.GPT2, "regex"), fp.RegexWordCounter)
    with pytest.raises(ValueError, match="count engine must be one of"):
        fp.word_counter(P.GPT2, "fast")  # type: ignore[arg-type]


@pytest.mark.parametrize(("pre", "norm"), PIPELINES, ids=lambda p: json.dumps(p)[:60])
@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_hf_json_pipelines_compile_or_fall_back_exactly(
    pre: dict[str, Any], norm: dict[str, Any] | None, text: str
) -> None:
    ours = P.from_hf_json(pre, norm, byte_level=True)
    assert fp.count_pretokens(ours, text) == Counter(ours.words(text))
    if fp.compile_plan(ours) is not None:
        assert_same_split(ours, text)


@pytest.mark.parametrize(("folder", "family"), [("gpt-3.5", "llama3"), ("hf-bpe-small", "gpt2")])
def test_real_tokenizer_files_compile(folder: str, family: str, tokenizers_dir: Path) -> None:
    doc = json.loads((tokenizers_dir / folder / "tokenizer.json").read_text())
    ours = P.from_hf_json(doc["pre_tokenizer"], doc["normalizer"], byte_level=True)
    plan = fp.compile_plan(ours)
    assert plan is not None
    assert plan.kind == {"llama3": fp.LLAMA3, "gpt2": fp.GPT2}[family]


def test_every_shared_tokenizer_counts_compiled(tokenizers_dir: Path) -> None:
    """Every released tokenizer in the shared data, both its training and its encoding split."""
    from tokmix.bpe.loaders import load_tokenizer

    seen = 0
    for folder in sorted(p for p in tokenizers_dir.iterdir() if p.is_dir()):
        if folder.name == "not-bpe":
            continue
        loaded = load_tokenizer(folder)
        for pre in vars(loaded).values():
            if isinstance(pre, P.Pretokenizer):
                assert fp.compile_plan(pre) is not None, (folder.name, pre.name)
                assert_same_split(pre, " ".join(HARD_CHARS) + " 1234 x  y\n\n z ")
                seen += 1
    assert seen >= 9


def test_classes_are_regex_classes() -> None:
    """Spot checks that the table is regex's (Unicode 17) and not Python's unicodedata."""
    from tokmix.bpe import unicode_classes as uc

    table = uc.class_table()
    assert table[ord("ʕ")] & uc.UPPERISH and table[ord("ʕ")] & uc.LOWERISH  # Lo, not Ll
    assert table[0x017F] & uc.FOLD["s"] and table[ord("S")] & uc.FOLD["s"]
    assert not table[ord("K")] & uc.FOLD["s"]
    assert table[0x0085] & uc.SPACE and table[0x3000] & uc.SPACE and not table[0x200B] & uc.SPACE
    newer = [c for c in range(0x2FFFF) if regex.match(r"\P{Cn}", chr(c)) and
             unicodedata.category(chr(c)) == "Cn" and c < 0xD800]  # fmt: skip
    assert newer, "regex's Unicode is newer than Python 3.11's"
    assert all(bool(table[c] & uc.LETTER) == bool(regex.match(r"\p{L}", chr(c))) for c in newer)
