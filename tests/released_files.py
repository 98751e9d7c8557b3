"""Tokenizer files as publishers ship them, built faithfully from real tokenizers where no real
file of the format is available offline (no network but PyPI).

- :func:`write_tekken`: ranks as Mistral's ``tekken.json`` (config, vocab list, special tokens
  first), the layout ``mistral-common`` reads;
- :func:`write_claude_json`: ranks as Anthropic's Claude JSON (js-tiktoken's ``bpe_ranks``
  string, ``pat_str``, ``special_tokens``);
- :func:`extension_ranks`: a Llama-3-like vocabulary: a base's ranks (cl100k) followed by new
  tokens, each the concatenation of the most frequent adjacent pair of tokens in real text,
  as a continued BPE run appends merges (one counting pass, not re-counted per merge);
- :func:`write_gemma_json`: a Gemma-style ``tokenizer.json`` (Replace(" " -> "▁") normalizer,
  Split(" ", MergedWithPrevious), byte fallback) from Gemma 4's GGUF vocabulary and merges.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import regex

META_LLAMA3_PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""``pat_str`` of Meta's ``llama/tokenizer.py`` (Llama 3), written out as the oracle."""


def read_ranks(path: Path) -> dict[bytes, int]:
    out = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            out[base64.b64decode(token)] = int(rank)
    return out


def write_ranks(path: Path, ranks: dict[bytes, int]) -> None:
    lines = (f"{base64.b64encode(t).decode()} {r}" for t, r in sorted(ranks.items(), key=_rank))
    path.write_text("\n".join(lines) + "\n")


def _rank(item: tuple[bytes, int]) -> int:
    return item[1]


def write_tekken(
    path: Path, ranks: dict[bytes, int], pattern: str, *, n_special: int, vocab_size: int
) -> None:
    """Tekken lists the 256 bytes first, byte ``i`` at rank ``i`` (``mistral-common`` checks);
    a single byte's rank never decides a merge, so the other tokens keep their order."""
    ordered = [bytes([b]) for b in range(256)]
    ordered += [t for t, _ in sorted(ranks.items(), key=_rank) if len(t) > 1]
    vocab = [
        {
            "rank": r,
            "token_bytes": base64.b64encode(t).decode(),
            "token_str": t.decode("utf-8", errors="replace"),
        }
        for r, t in enumerate(ordered)
    ]
    specials = [
        {"rank": i, "token_str": f"<SPECIAL_{i}>", "is_control": True} for i in range(n_special)
    ]
    doc = {
        "config": {
            "pattern": pattern,
            "num_vocab_tokens": len(vocab),
            "default_vocab_size": vocab_size,
            "default_num_special_tokens": n_special,
            "version": "v7",
        },
        "vocab": vocab,
        "special_tokens": specials,
    }
    path.write_text(json.dumps(doc))


def write_claude_json(
    path: Path, ranks: dict[bytes, int], pat_str: str, *, n_special: int, per_line: int = 1000
) -> None:
    """js-tiktoken's compact format: lines ``<label> <offset> <base64>...``."""
    tokens = [t for t, _ in sorted(ranks.items(), key=_rank)]
    lines = []
    for start in range(0, len(tokens), per_line):
        chunk = tokens[start : start + per_line]
        label = base64.b64encode(chunk[0]).decode()[:4] or "!"
        b64 = " ".join(base64.b64encode(t).decode() for t in chunk)
        lines.append(f"{label} {start + n_special} {b64}")
    doc = {
        "explicit_n_vocab": len(tokens) + n_special,
        "pat_str": pat_str,
        "special_tokens": {f"<S{i}>": i for i in range(n_special)},
        "bpe_ranks": "\n".join(lines),
    }
    path.write_text(json.dumps(doc))


def extension_ranks(
    base: dict[bytes, int], encode_words: Iterable[list[int]], n_total: int
) -> dict[bytes, int]:
    """``base`` followed by ``n_total - len(base)`` new tokens: adjacent token pairs of the
    encoded words, by count (ties by first appearance), products not already tokens."""
    by_rank = {r: t for t, r in base.items()}
    pairs: Counter[tuple[int, int]] = Counter()
    for ids in encode_words:
        pairs.update(itertools.pairwise(ids))
    out = dict(base)
    for (a, b), _ in pairs.most_common():
        if len(out) >= n_total:
            break
        product = by_rank[a] + by_rank[b]
        if product not in out:
            out[product] = len(out)
    if len(out) < n_total:
        raise ValueError(f"only {len(out)} tokens; give more text")
    return out


def words_of(texts: Iterable[str], pattern: str) -> Iterable[str]:
    compiled = regex.compile(pattern)
    for text in texts:
        yield from compiled.findall(text)


def write_gemma_json(path: Path, gguf_path: Path) -> None:
    """A Gemma-3-style ``tokenizer.json`` from a Gemma GGUF vocabulary: the same vocabulary
    and merges, with the pipeline Gemma's ``tokenizer.json`` declares."""
    from tokmix.bpe.formats.gguf_metadata import read_gguf_metadata

    meta, _ = read_gguf_metadata(gguf_path)
    tokens = [t.decode("utf-8") for t in meta["tokenizer.ggml.tokens"]]
    types = meta["tokenizer.ggml.token_type"]
    merges = [m.decode("utf-8").split(" ") for m in meta["tokenizer.ggml.merges"]]
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(tokens) if types[i] in (3, 4)
    ]  # fmt: skip
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"String": " "},
            "behavior": "MergedWithPrevious",
            "invert": False,
        },
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
