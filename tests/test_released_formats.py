"""Tokenizer files as their publishers ship them: tekken JSON, Claude JSON, Llama 3's
``tokenizer.model`` (tiktoken ranks), compressed files, regex pre-tokenizers, Gemma-style
``tokenizer.json``.

Where no real file of a format is available offline, one is built faithfully from a real
tokenizer (``tests/released_files.py``): cl100k's ranks written as a tekken JSON and as a Claude
JSON. The oracle is always the publisher's encoder reading that file: ``mistral-common`` for
tekken, tiktoken over ``pat_str`` after NFKC for Claude (what ``@anthropic-ai/tokenizer`` runs),
tiktoken with Meta's ``pat_str`` for Llama 3, ``tokenizers`` for ``tokenizer.json``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import unicodedata
from pathlib import Path

import pytest
import tiktoken
import zstandard

from tests.released_files import (
    META_LLAMA3_PAT_STR,
    extension_ranks,
    read_ranks,
    words_of,
    write_claude_json,
    write_ranks,
    write_tekken,
)
from tokmix.analytics.encoders import word_encoder
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.pretokenizers import CL100K, CL100K_PATTERN, LLAMA3, named
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

pytestmark = pytest.mark.shared_data

QWEN_PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""Qwen's ``qwen.tiktoken`` regex (``tokenization_qwen.py``), a user's ``pat_str``."""

CATEGORIES = ("languages/en", "languages/ru", "languages/ja", "languages/el", "code/python")


def encode(tok: LoadedTokenizer, text: str) -> list[int]:
    words = list(tok.stats_pretokenizer.words(text))
    return [int(i) for i in word_encoder(tok).encode_concat(words)]


@pytest.fixture(scope="module")
def texts(corpora_dir: Path) -> list[str]:
    out = []
    for category in CATEGORIES:
        with gzip.open(corpora_dir / category / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
            for _, line in zip(range(4), fh, strict=False):
                out.append(json.loads(line)["text"][:3000])
    out.append("ﬁne ① Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ ｶﾀｶﾅ x²")  # NFKC changes these
    return out


@pytest.fixture(scope="module")
def cl100k(tokenizers_dir: Path) -> dict[bytes, int]:
    return read_ranks(tokenizers_dir / "gpt-3.5" / "cl100k_base.tiktoken")


# ------------------------------------------------------------------ tekken


def test_tekken_json_encodes_like_mistral_common(
    tmp_path: Path, cl100k: dict[bytes, int], texts: list[str]
) -> None:
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = tmp_path / "tekken.json"
    # 100 256 ranks listed, 100 000 used (default_vocab_size cuts the list), 1000 specials
    write_tekken(path, cl100k, CL100K_PATTERN, n_special=1000, vocab_size=101_000)
    tok = load_tokenizer(path)
    reference = Tekkenizer.from_file(path)
    assert tok.format == "tekken"
    assert tok.pretokenizer == CL100K
    assert len(tok.vocab) == 100_000 and min(tok.vocab.values()) == 1000
    for text in texts:
        assert encode(tok, text) == reference.encode(text, bos=False, eos=False)


def test_tekken_is_told_by_content_whatever_its_name(
    tmp_path: Path, cl100k: dict[bytes, int]
) -> None:
    small = {t: r for t, r in cl100k.items() if r < 1000}
    path = tmp_path / "tokenizer.json"  # a name that says tokenizer.json
    write_tekken(path, small, CL100K_PATTERN, n_special=10, vocab_size=1010)
    assert load_tokenizer(path).format == "tekken"
    doc = json.loads(path.read_text())
    doc["config"]["default_vocab_size"] = 5000
    path.write_text(json.dumps(doc))
    with pytest.raises(TokenizerFormatError, match="config says 5000 tokens with 10 special"):
        load_tokenizer(path)


# ------------------------------------------------------------------ Claude


def test_claude_json_encodes_like_tiktoken_on_its_ranks(
    tmp_path: Path, cl100k: dict[bytes, int], texts: list[str]
) -> None:
    path = tmp_path / "claude.json"
    write_claude_json(path, cl100k, CL100K_PATTERN, n_special=5)
    tok = load_tokenizer(path)
    assert tok.format == "claude-json"
    assert tok.pretokenizer.normalizer == "nfkc"
    reference = tiktoken.Encoding(
        "claude-like",
        pat_str=CL100K_PATTERN,
        mergeable_ranks={t: r + 5 for t, r in cl100k.items()},
        special_tokens={},
    )
    for text in texts:
        expected = reference.encode_ordinary(unicodedata.normalize("NFKC", text))
        assert encode(tok, text) == expected


def test_claude_bpe_ranks_lines_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "claude.json"
    path.write_text(json.dumps({"pat_str": r"\S+", "bpe_ranks": "! five IQ=="}))
    with pytest.raises(TokenizerFormatError, match="bpe_ranks line 1 is not"):
        load_tokenizer(path)


# ------------------------------------------------------------------ tiktoken under any name


def test_llama3_tokenizer_model_is_tiktoken_ranks(
    tmp_path: Path, cl100k: dict[bytes, int], texts: list[str]
) -> None:
    """Meta's Llama 3 download: 128 000 tiktoken ranks named ``tokenizer.model``. Built here
    from cl100k plus 28 000 tokens from frequent adjacent pairs (no Llama 3 file offline)."""
    base = tiktoken.Encoding("cl100k", pat_str=CL100K_PATTERN, mergeable_ranks=cl100k,
                             special_tokens={})  # fmt: skip
    words = words_of(texts * 3, META_LLAMA3_PAT_STR)
    ranks = extension_ranks(cl100k, (base.encode_ordinary(w) for w in words), 100_256 + 1_500)
    ranks = _pad_to(ranks, 128_000)
    folder = tmp_path / "Meta-Llama-3-8B"
    folder.mkdir()
    write_ranks(folder / "tokenizer.model", ranks)
    tok = load_tokenizer(folder / "tokenizer.model")
    assert tok.format == "tiktoken"
    assert tok.pretokenizer == LLAMA3
    assert any("Llama 3 regex" in n for n in tok.notes)
    reference = tiktoken.Encoding(
        "llama3-like", pat_str=META_LLAMA3_PAT_STR, mergeable_ranks=ranks, special_tokens={}
    )
    for text in texts:
        assert encode(tok, text) == reference.encode_ordinary(text)


def _pad_to(ranks: dict[bytes, int], n: int) -> dict[bytes, int]:
    """Fill up to ``n`` tokens with ``token + b"\\x00"`` for tokens in rank order (both parts
    exist, so each is one merge), so the count is Llama 3's without counting pairs over a
    large text; these tokens never occur in the texts encoded."""
    out = dict(ranks)
    for token in sorted(ranks, key=ranks.__getitem__):
        if len(out) >= n:
            break
        if len(token) > 1 and token + b"\x00" not in out:
            out[token + b"\x00"] = len(out)
    return out


def test_rank_file_naming_no_family_takes_a_regex(
    tmp_path: Path, cl100k: dict[bytes, int], texts: list[str]
) -> None:
    path = tmp_path / "qwen.tiktoken"
    write_ranks(path, cl100k)
    with pytest.raises(TokenizerFormatError, match=r"or the tokenizer's regex \(its pat_str\)"):
        load_tokenizer(path)
    tok = load_tokenizer(path, pretokenizer=QWEN_PAT_STR)
    assert tok.pretokenizer.name.startswith("regex-")
    reference = tiktoken.Encoding(
        "qwen-like", pat_str=QWEN_PAT_STR, mergeable_ranks=cl100k, special_tokens={}
    )
    for text in texts:
        assert encode(tok, text) == reference.encode_ordinary(text)


def test_pretokenizer_names_and_regexes() -> None:
    assert named(CL100K_PATTERN) is CL100K  # a family's own regex is that family
    with pytest.raises(TokenizerFormatError, match="does not compile"):
        named(r"(\p{L}+")
    with pytest.raises(TokenizerFormatError, match="or a regex"):
        named("gpt5")


# ------------------------------------------------------------------ compressed files


def test_compressed_files_load_as_the_plain_ones(tokenizers_dir: Path, tmp_path: Path) -> None:
    plain_json = tokenizers_dir / "gpt-neox" / "tokenizer.json"
    plain_ranks = tokenizers_dir / "gpt2" / "r50k_base.tiktoken"
    gz = tmp_path / "tokenizer.json.gz"
    gz.write_bytes(gzip.compress(plain_json.read_bytes()))
    zst = tmp_path / "r50k_base.tiktoken.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(plain_ranks.read_bytes()))
    for packed, plain in ((gz, plain_json), (zst, plain_ranks)):
        ours, reference = load_tokenizer(packed), load_tokenizer(plain)
        assert ours.format == reference.format
        assert ours.merge_list == reference.merge_list
        assert ours.sha256 == reference.sha256  # the content's hash
        assert any("decompressed" in n for n in ours.notes)
    misnamed = tmp_path / "merges.gz"  # a compression suffix on plain content
    shutil.copy(plain_ranks, misnamed)
    assert load_tokenizer(misnamed, pretokenizer="gpt2").n_merges == 50_000
    broken = tmp_path / "tokenizer.json.gz"
    broken.write_bytes(gzip.compress(plain_json.read_bytes())[:5000])
    with pytest.raises(TokenizerFormatError, match=r"not valid JSON|does not decompress"):
        load_tokenizer(broken)
