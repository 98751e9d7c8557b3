"""Token statistics from a word table vs encoding the whole sample with the tokenizer's library.

    python -m benchmarks.stats [--category PATH.jsonl.gz ...]

For each tokenizer: the library encoding every document (tiktoken ``encode_ordinary``,
``tokenizers`` ``encode``, sentencepiece ``encode``; one thread) against tokmix encoding each
distinct word of the sample's word table once (``count_tokens``, the encoder's model already
built). Counting the word table is printed apart: the count stage does it once and every
tokenizer of the family (and replay) reuses it. Both sides must give the same token count.
Needs ``../shared/data`` (released tokenizers).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import read_jsonl_gz
from tokmix.analytics.encoders import word_encoder
from tokmix.analytics.token_stats import (
    TokenCounts,
    count_tokens,
    word_junctions,
    worth_splitting,
)
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.pretokenizers import CL100K_PATTERN
from tokmix.bpe.words import count_words

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TOKENIZERS = SHARED / "tokenizers"


def _library(path: Path) -> Callable[[str], list[int]]:
    """The library's own encoder of the whole text, as users call it."""
    if path.suffix == ".tiktoken":
        import tiktoken

        ranks = load_tokenizer(path).vocab
        enc = tiktoken.Encoding("cl100k", pat_str=CL100K_PATTERN, mergeable_ranks=ranks,
                                special_tokens={})  # fmt: skip
        return enc.encode_ordinary
    if path.suffix == ".model":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(path))
        return sp.encode
    from tokenizers import Tokenizer

    lib = Tokenizer.from_file(str(path))
    return lambda text: lib.encode(text, add_special_tokens=False).ids


def _seconds(fn: Callable[[], object], repeat: int = 2) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_stats(texts: list[str], label: str) -> None:
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"token statistics, {label} ({mb:.1f} MB, {len(texts)} documents)")
    for rel in (
        "gpt-3.5/cl100k_base.tiktoken",
        "gpt-3.5/tokenizer.json",
        "mistral-7b-v0.1/tokenizer.model",
    ):
        _bench_one(TOKENIZERS / rel, texts)


def _bench_one(path: Path, texts: list[str]) -> None:
    tok = load_tokenizer(path)
    t0 = time.perf_counter()
    table = count_words(texts, tok.stats_pretokenizer)
    t_count = time.perf_counter() - t0
    encoder = word_encoder(tok)
    t0 = time.perf_counter()
    encoder.encode_concat([b"warm"])  # builds the library model
    t_build = time.perf_counter() - t0
    cuts = word_junctions(tok) if worth_splitting(tok) else None
    t_ours, counts = _seconds(lambda: count_tokens(table, encoder, cuts))
    encode = _library(path)
    t_lib, total = _seconds(lambda: sum(len(encode(t)) for t in texts), 1)
    assert isinstance(counts, TokenCounts) and counts.tokens == total, (path, total)
    rel = f"{path.parent.name}/{path.name}"
    print(
        f"  {rel:<32} {len(table):>7,} words: word table {t_ours:.3f} s"
        f" (+{t_build:.2f} s model build), library {t_lib:.2f} s,"
        f" ratio {t_lib / t_ours:.1f}x ({t_lib / (t_ours + t_build):.1f}x with build);"
        f" counting the word table {t_count:.2f} s, shared"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--category", type=Path, action="append")
    args = ap.parse_args()
    paths = args.category or [SHARED / "corpora" / "code" / "python" / "docs.jsonl.gz"]
    texts = [t for p in paths for t in read_jsonl_gz(p)]
    bench_stats(texts, ", ".join(p.parent.name for p in paths))


if __name__ == "__main__":
    main()
