"""Token statistics from word tables equal encoding the whole sample with the tokenizer's own
library (``tokenizers``, tiktoken, sentencepiece), on real tokenizers and real text; under-trained
candidates against brute force; a property test on random text."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tests.helpers import REPO, read_jsonl_gz, sample_documents, train_bytelevel_bpe
from tokmix.analytics.encoders import word_encoder
from tokmix.analytics.token_stats import (
    NEVER_PRODUCED,
    UNREACHABLE,
    TokenCounts,
    count_tokens,
    derived_ratios,
    merge_pairs,
    parity,
    reachable_ids,
    token_vocabulary,
    undertrained,
    word_junctions,
)
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.pretokenizers import CL100K_PATTERN
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import count_words

DEMO = REPO / "data" / "tokenizers" / "demo" / "tokenizer.json"
Encode = Callable[[str], list[int]]


def _hf(path: Path) -> Encode:
    lib = Tokenizer.from_file(str(path))
    return lambda text: lib.encode(text, add_special_tokens=False).ids


def _gpt2_pair(folder: Path) -> Encode:
    from tokenizers import models, pre_tokenizers

    lib = Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    lib.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return lambda text: lib.encode(text, add_special_tokens=False).ids


def _tiktoken(path: Path) -> Encode:
    import tiktoken

    from tokmix.bpe.tiktoken_ranks import parse_tiktoken_ranks

    ranks = parse_tiktoken_ranks(path.read_bytes(), str(path))
    enc = tiktoken.Encoding(
        "cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
    return enc.encode_ordinary


def _sentencepiece(path: Path) -> Encode:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    return lambda text: sp.encode(text)


# (tokenizer path under tokenizers/, the library's own encoder of the whole text)
REAL = {
    "gpt-3.5/tokenizer.json": _hf,
    "gpt-3.5/cl100k_base.tiktoken": _tiktoken,
    "gpt2": _gpt2_pair,
    "hf-bpe-small/tokenizer.json": _hf,
    "sp-bpe-small/tokenizer.model": _sentencepiece,
    "mistral-7b-v0.1/tokenizer.model": _sentencepiece,
}


@cache
def _real_text(corpora: Path) -> tuple[str, ...]:
    """About 300 KB of real text: prose in three scripts and source code."""
    parts = [("languages/de", 90_000), ("languages/ru", 60_000), ("languages/ja", 50_000)]
    parts += [("code/python", 60_000), ("domains/web", 40_000)]
    return tuple(
        doc
        for name, budget in parts
        for doc in read_jsonl_gz(corpora / name / "docs.jsonl.gz", budget)
    )


def _library_counts(texts: list[str], encode: Encode) -> Counter[int]:
    counts: Counter[int] = Counter()
    for text in texts:
        counts.update(encode(text))
    return counts


def _as_dict(tc: TokenCounts) -> dict[int, int]:
    return dict(zip(tc.token_ids.tolist(), tc.token_counts.tolist(), strict=True))


def _check_equal(tok: LoadedTokenizer, texts: list[str], encode: Encode) -> TokenCounts:
    """Word-table statistics, with and without cutting words at non-junctions, equal the
    library encoding every text."""
    table = count_words(texts, tok.stats_pretokenizer)
    encoder = word_encoder(tok)
    got = count_tokens(table, encoder, word_junctions(tok))
    whole = count_tokens(table, encoder)
    assert whole.tokens == got.tokens and _as_dict(whole) == _as_dict(got)
    want = _library_counts(texts, encode)
    assert got.tokens == sum(want.values())
    assert _as_dict(got) == dict(want)
    assert got.tokens_used == len(want)
    assert (got.documents, got.bytes_, got.chars) == (
        len(texts),
        sum(len(t.encode()) for t in texts),
        sum(len(t) for t in texts),
    )
    return got


@pytest.mark.parametrize("name", sorted(REAL))
def test_equals_library_encoding_on_real_text(name: str, tokenizers_dir: Path, corpora_dir: Path):
    path = tokenizers_dir / name
    tok = load_tokenizer(path)
    texts = list(_real_text(corpora_dir))
    got = _check_equal(tok, texts, REAL[name](path))

    # never produced: brute force is the library's encoding of the same sample
    produced = dict(zip(got.token_ids.tolist(), got.token_counts.tolist(), strict=True))
    reachable = reachable_ids(tok)
    assert set(produced) <= reachable | {tok.unk_id}
    rows = undertrained(tok, produced)
    never = {i for i, _, reason, _ in rows if reason == NEVER_PRODUCED}
    library_seen = set(_library_counts(texts, REAL[name](path)))
    assert never == (set(token_vocabulary(tok)) & reachable) - library_seen


def _reachable_brute_force(tok: LoadedTokenizer) -> set[int]:
    """Reachability as a recursive definition: a token is reachable when it is a base symbol or
    some merge of two reachable tokens makes it."""
    vocab = tok.vocab
    by_product: dict[bytes, list[tuple[bytes, bytes]]] = {}
    for a, b in merge_pairs(tok):
        by_product.setdefault(a + b, []).append((a, b))
    if tok.merge_list.alphabet == "bytes":
        base = {t for t in vocab if len(t) == 1}
    else:
        base = set(tok.merge_list.base)
    memo: dict[bytes, bool] = {}

    def reach(token: bytes) -> bool:
        if token not in memo:
            memo[token] = token in vocab and (
                token in base or any(reach(a) and reach(b) for a, b in by_product.get(token, ()))
            )
        return memo[token]

    return {vocab[t] for t in vocab if reach(t)} | set(tok.byte_pieces.values())


@pytest.mark.parametrize(
    "name", ["gpt2/r50k_base.tiktoken", "mistral-7b-v0.1/tokenizer.model", "hf-bpe-small"]
)
def test_reachable_equals_recursive_definition(name: str, tokenizers_dir: Path):
    tok = load_tokenizer(tokenizers_dir / name)
    assert reachable_ids(tok) == _reachable_brute_force(tok)


def _edited_tokenizer(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    """The demo tokenizer.json with an edit applied, saved beside the test."""
    doc = json.loads(DEMO.read_text())
    edit(doc)
    out = tmp_path / "edited"
    out.mkdir(exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(doc))
    return out / "tokenizer.json"


@pytest.mark.parametrize("ignore_merges", [False, True])
def test_unreachable_token_reported_and_ignore_merges_emits_it(tmp_path: Path, ignore_merges):
    """A vocabulary token no merge makes is unreachable; with ``ignore_merges`` the library
    still emits it for a pre-token equal to it, and the statistics follow the library."""

    def add_orphan(doc: dict) -> None:
        vocab = doc["model"]["vocab"]
        vocab["zqxj"] = max(vocab.values()) + 1
        doc["model"]["ignore_merges"] = ignore_merges

    path = _edited_tokenizer(tmp_path, add_orphan)
    tok = load_tokenizer(path)
    orphan = tok.vocab[b"zqxj"]
    texts = ["zqxj and zqxj, again\nzqxj.", "zqxj", "plain text without it"]
    got = _check_equal(tok, texts, _hf(path))
    rows = {i: (reason, n) for i, _, reason, n in undertrained(tok, _as_dict(got))}
    assert rows[orphan] == (UNREACHABLE, 3 if ignore_merges else 0)  # " zqxj" is no token
    assert orphan not in reachable_ids(tok)


def test_redundant_merge_list_with_ignore_merges_llama3_style(tmp_path: Path):
    """Llama 3 style: every split of each token listed as a merge, and ``ignore_merges``."""

    def llama3_style(doc: dict) -> None:
        model = doc["model"]
        vocab = model["vocab"]
        listed = {tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]}
        extra = []
        for token in sorted(vocab, key=vocab.__getitem__):
            for k in range(1, len(token)):
                pair = (token[:k], token[k:])
                if pair not in listed and pair[0] in vocab and pair[1] in vocab:
                    extra.append(list(pair))
        model["merges"] = [list(m) for m in sorted(listed, key=lambda p: vocab[p[0] + p[1]])]
        model["merges"] += extra
        model["ignore_merges"] = True

    path = _edited_tokenizer(tmp_path, llama3_style)
    tok = load_tokenizer(path)
    assert tok.ignore_merges and tok.encoding_merges is not None
    _check_equal(
        tok, sample_documents("books", 60_000) + sample_documents("rust", 60_000), _hf(path)
    )


def test_byte_fallback_and_unknown_characters(tmp_path: Path, tokenizers_dir: Path):
    """Characters outside a SentencePiece vocabulary: byte pieces, as sentencepiece does."""
    path = tokenizers_dir / "sp-bpe-small" / "tokenizer.model"
    tok = load_tokenizer(path)
    texts = ["Grüße aus Köln 🙂, ﷽ and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ½ x²", "零の日本語 text\twith tabs\nand lines"]
    texts += [" leading", "  two  spaces   and\n    indented 12  34", "x   ", "▁literal ▁▁ marks"]
    got = _check_equal(tok, texts, _sentencepiece(path))
    assert set(got.token_ids.tolist()) & set(tok.byte_pieces.values())


TEXT = st.text(
    alphabet=st.sampled_from(
        list("abcdefghij ABC xyz 0123456789 .,;:!?'\"()-_\n\t") + list("éßяж日本語🙂\u00a0")
    ),
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=5))
def test_property_random_text_equals_library(texts: list[str]):
    tok = _demo()
    _check_equal(tok, texts, _demo_library())


@settings(max_examples=30, deadline=None)
@given(st.lists(TEXT, min_size=2, max_size=6), st.integers(min_value=1, max_value=5))
def test_counts_of_shards_add_up(texts: list[str], cut: int):
    tok, enc = _demo(), word_encoder(_demo())
    whole = count_tokens(count_words(texts, tok.pretokenizer), enc)
    a = count_tokens(count_words(texts[:cut], tok.pretokenizer), enc)
    b = count_tokens(count_words(texts[cut:], tok.pretokenizer), enc)
    total = a + b
    assert total.tokens == whole.tokens and _as_dict(total) == _as_dict(whole)
    assert (total.documents, total.bytes_, total.pretokens) == (
        whole.documents,
        whole.bytes_,
        whole.pretokens,
    )


@cache
def _demo() -> LoadedTokenizer:
    return load_tokenizer(DEMO)


@cache
def _demo_library() -> Encode:
    return _hf(DEMO)


def test_trained_tokenizer_every_token_reachable(tmp_path: Path):
    """A tokenizer trained by the BpeTrainer makes every token by a merge: none unreachable,
    and the never-produced tokens on its own training text are exactly the library's."""
    texts = sample_documents("python", 80_000)
    tok = train_bytelevel_bpe(texts, 300, tmp_path)
    assert reachable_ids(tok) == set(tok.vocab.values())
    got = _check_equal(tok, texts, _hf(tmp_path / "tokenizer.json"))
    never = {i for i, _, r, _ in undertrained(tok, _as_dict(got)) if r == NEVER_PRODUCED}
    assert never == set(tok.vocab.values()) - set(got.token_ids.tolist())


def test_ratios_and_parity_from_raw_sums():
    rows = [
        {"tokenizer": "t1", "category": "en", "tokens": 100, "bytes": 400, "chars": 380,
         "pretokens": 80, "tokens_used": 50, "vocab_size": 1000},
        {"tokenizer": "t1", "category": "hi", "tokens": 300, "bytes": 900, "chars": 300,
         "pretokens": 70, "tokens_used": 20, "vocab_size": 1000},
        {"tokenizer": "t2", "category": "en", "tokens": 0, "bytes": 0, "chars": 0,
         "pretokens": 0, "tokens_used": 0, "vocab_size": 1000},
    ]  # fmt: skip
    r = derived_ratios(rows[0])
    assert r == {
        "bytes_per_token": 4.0,
        "chars_per_token": 3.8,
        "fertility": 1.25,
        "vocab_use": 0.05,
    }
    assert derived_ratios(rows[2])["bytes_per_token"] is None
    assert parity(rows, "hi", "en") == {"t1": 3.0, "t2": None}


# ------------------------------------------------------------------ the stage and the CLI


def _demo_categories() -> list:
    from tests.helpers import SAMPLES
    from tokmix.jobs.spec import CategorySpec

    return [CategorySpec(c, str(SAMPLES / f"{c}.jsonl.gz")) for c in ("books", "rust")]


def test_run_stats_shares_word_tables_and_skips_reruns(tmp_path: Path):
    from tokmix.jobs.spec import SampleOptions
    from tokmix.jobs.stats import dataset_name, run_stats

    trained = train_bytelevel_bpe(sample_documents("rust", 60_000), 200, tmp_path / "rust-bpe")
    out, opts = str(tmp_path / "out"), SampleOptions(max_bytes=60_000)
    logs: list[str] = []
    table = run_stats([str(DEMO), trained], _demo_categories(), out, opts, log=logs.append)
    assert table.num_rows == 4
    # one pre-tokenizer family: one word table dataset, the corpus read once
    assert sorted(p.name for p in (tmp_path / "out" / "word_counts").iterdir()) == [
        f"pretokenizer={_demo().pretokenizer.key}"
    ]
    assert len([m for m in logs if "word tables" in m]) == 1
    # each tokenizer's numbers equal encoding its own word table with its library
    for row in table.to_pylist():
        tok = _demo() if row["tokenizer"] == "demo" else trained
        path = DEMO if tok is _demo() else tmp_path / "rust-bpe" / "tokenizer.json"
        texts = sample_documents(row["category"], 60_000)
        assert row["tokens"] == sum(len(_hf(path)(t)) for t in texts)
        assert row["vocab_size"] == len(tok.vocab)
    manifest = tmp_path / "out" / dataset_name("token_stats", "demo") / "_SUCCESS"
    first = manifest.stat().st_mtime_ns
    logs.clear()
    again = run_stats([str(DEMO), trained], _demo_categories(), out, opts, log=logs.append)
    assert again == table and logs == ["stats: demo, rust-bpe already committed"]
    assert manifest.stat().st_mtime_ns == first
    logs.clear()
    forced = run_stats([str(DEMO)], _demo_categories(), out, opts, force=True, log=logs.append)
    assert forced == table.slice(0, 2) and any("word tables" in m for m in logs)


def test_run_stats_refuses_two_tokenizers_of_one_name(tmp_path: Path):
    from tokmix.errors import TokmixError
    from tokmix.jobs.spec import SampleOptions
    from tokmix.jobs.stats import run_stats

    with pytest.raises(TokmixError, match="both named 'demo'"):
        run_stats([str(DEMO), str(DEMO)], _demo_categories(), str(tmp_path), SampleOptions())


def test_cli_stats_json_and_parity(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from tokmix.cli import main

    cats = [f"--category={c.name}={c.path}" for c in _demo_categories()]
    out = str(tmp_path / "out")
    args = ["stats", str(DEMO), *cats, "--max-bytes", "50KB", "--out", out]
    assert main([*args, "--parallel", "rust,books", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["token_stats"]
    assert [r["category"] for r in rows] == ["books", "rust"]
    assert doc["parity"]["rust/books"]["demo"] == pytest.approx(
        rows[1]["tokens"] / rows[0]["tokens"]
    )
    assert rows[0]["bytes_per_token"] == pytest.approx(rows[0]["bytes"] / rows[0]["tokens"])
    assert main([*args, "--parallel", "rust,books"]) == 0
    text = capsys.readouterr().out
    assert "bytes/token" in text and f"demo {doc['parity']['rust/books']['demo']:.3f}" in text
    assert main([*args, "--parallel", "rust,nope"]) == 2


SP_TEXT = st.text(alphabet=st.sampled_from(list("ab xy  12\n\t▁.é日🙂")), max_size=60)


@settings(max_examples=80, deadline=None)
@given(st.lists(SP_TEXT, min_size=1, max_size=4))
def test_property_sentencepiece_random_text(tokenizers_dir: Path, texts: list[str]):
    """Whitespace runs, leading spaces, literal ▁, digits: equal to sentencepiece itself."""
    path = tokenizers_dir / "sp-bpe-small" / "tokenizer.model"
    _check_equal(_loaded(path), texts, _sp_cached(path))


@cache
def _loaded(path: Path) -> LoadedTokenizer:
    return load_tokenizer(path)


@cache
def _sp_cached(path: Path) -> Encode:
    return _sentencepiece(path)


@settings(max_examples=100, deadline=None)
@given(SP_TEXT)
def test_sentencepiece_encoding_split_fast_path_equals_steps(text: str):
    from tokmix.bpe.pretokenizers import DigitsSplit, Pretokenizer, SentencePieceRunsSplit

    steps = (SentencePieceRunsSplit("always"), DigitsSplit(True))
    fast = Pretokenizer("fast", steps, byte_level=False)
    general = Pretokenizer("general", (*steps, DigitsSplit(True)), byte_level=False)
    assert fast.split(text) == general.split(text)
    assert "".join(fast.split(text)) == ("▁" + text.replace(" ", "▁") if text else "")


def _sentencepiece_as_tokenizer_json(
    model_path: Path, out: Path, *, byte_fallback: bool = True
) -> Path:
    """sp-bpe-small converted as ``transformers`` converts Llama / Mistral: every piece in the
    vocabulary, every-split merges, byte fallback, ``Prepend`` + ``Replace`` normalizers and no
    pre-tokenizer (the library encodes whole texts)."""
    from tokmix.bpe.sentencepiece_model import NORMAL, hf_style_merges, parse_model

    model = parse_model(model_path.read_bytes(), str(model_path))
    special = [p for p in model.pieces if p.kind in (2, 3)]  # UNKNOWN, CONTROL
    doc = {
        "version": "1.0",
        "added_tokens": [
            {
                "id": p.id,
                "content": p.text,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for p in special
        ],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "BPE",
            "unk_token": "<unk>",
            "fuse_unk": True,
            "byte_fallback": byte_fallback,
            "vocab": {p.text: p.id for p in model.pieces},
            "merges": [list(m) for m in hf_style_merges(model.of_kind(NORMAL))],
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False))
    return out / "tokenizer.json"


def test_sentencepiece_style_tokenizer_json(
    tmp_path: Path, tokenizers_dir: Path, corpora_dir: Path
):
    model_path = tokenizers_dir / "sp-bpe-small" / "tokenizer.model"
    path = _sentencepiece_as_tokenizer_json(model_path, tmp_path / "sp-json")
    tok = load_tokenizer(path)
    assert tok.format == "hf-json" and tok.byte_fallback and tok.encoding_pretokenizer is not None
    real = _real_text(corpora_dir)  # prose first, then code and web pages
    texts = [*real[:100], *real[-100:], "  two  spaces", " x", "12  34\n    y"]
    got = _check_equal(tok, texts, _hf(path))
    # and the same as sentencepiece encoding the same text
    assert dict(_library_counts(texts, _sentencepiece(model_path))) == _as_dict(got)


def test_tiktoken_text_with_nul_characters(tokenizers_dir: Path):
    """NUL joins a batch of words for tiktoken; words holding one take the word-by-word path."""
    path = tokenizers_dir / "gpt2" / "r50k_base.tiktoken"
    texts = ["a\x00b \x00\x00 c\x00", "plain words only", "\x00"]
    _check_equal(_loaded(path), texts, _tiktoken(path))


def test_unknown_characters_fuse_without_byte_fallback(tmp_path: Path, tokenizers_dir: Path):
    """No byte fallback: a run of unknown characters is one <unk>, so words are not cut
    between two of them."""
    model_path = tokenizers_dir / "sp-bpe-small" / "tokenizer.model"
    path = _sentencepiece_as_tokenizer_json(model_path, tmp_path / "unk", byte_fallback=False)
    tok = load_tokenizer(path)
    assert tok.fuse_unk and not tok.byte_fallback and tok.unk_id is not None
    texts = ["☃☃☃ snow ☃x☃ 🙂🙂\n\n😀 a\t\tb ☃.☃", "日本語のテキスト、です。"]
    got = _check_equal(tok, texts, _hf(path))
    assert tok.unk_id in got.token_ids.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SP_TEXT.filter(bool), st.integers(1, 5)), max_size=8))
def test_split_words_keeps_every_character_and_count(words_counts):
    from tokmix.analytics.word_split import split_words

    words = list(dict.fromkeys(w.encode() for w, _ in words_counts))
    count_of = {w.encode(): n for w, n in words_counts}
    counts = np.array([count_of[w] for w in words], dtype=np.int64)
    parts, part_counts = split_words(words, counts, word_junctions(_demo()))
    assert len(set(parts)) == len(parts) and all(parts)
    weighted = Counter()
    for w, n in zip(words, counts.tolist(), strict=True):
        for ch in w.decode():
            weighted[ch] += n
    for p, n in zip(parts, part_counts.tolist(), strict=True):
        for ch in p.decode():
            weighted[ch] -= n
    assert not +weighted and not -weighted


def test_run_stats_families_on_real_tokenizers(tmp_path: Path, tokenizers_dir: Path):
    """gpt2 (vocab.json + merges.txt) and r50k (tiktoken) share the GPT-2 word tables; the
    SentencePiece model gets the word tables of its encoder's split; every row equals the
    tokenizer's own library encoding the sampled documents."""
    from tokmix.jobs.spec import SampleOptions
    from tokmix.jobs.stats import run_stats

    paths = {
        "gpt2": (tokenizers_dir / "gpt2", _gpt2_pair(tokenizers_dir / "gpt2")),
        "r50k_base": (tokenizers_dir / "gpt2" / "r50k_base.tiktoken", None),
        "sp-bpe-small": (
            tokenizers_dir / "sp-bpe-small" / "tokenizer.model",
            _sentencepiece(tokenizers_dir / "sp-bpe-small" / "tokenizer.model"),
        ),
    }
    out = tmp_path / "out"
    rows = run_stats(
        [str(p) for p, _ in paths.values()], _demo_categories(), str(out),
        SampleOptions(max_bytes=40_000),
    ).to_pylist()  # fmt: skip
    keys = sorted(p.name.split("=")[1].rsplit("-", 1)[0] for p in (out / "word_counts").iterdir())
    assert keys == ["gpt2", "sentencepiece-digits-encode"]
    by = {(r["tokenizer"], r["category"]): r["tokens"] for r in rows}
    for category in ("books", "rust"):
        texts = sample_documents(category, 40_000)
        assert by["gpt2", category] == by["r50k_base", category]
        for name in ("gpt2", "sp-bpe-small"):
            encode = paths[name][1]
            assert encode is not None
            assert by[name, category] == sum(len(encode(t)) for t in texts)
