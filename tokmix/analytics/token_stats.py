"""Token statistics from word tables (ARCHITECTURE.md §6).

A category's token count is ``Σ_w n(w) · len(encode(w))`` over its word table, and its token
frequency table is ``Σ_w n(w) · bincount(encode(w))``: each distinct word is encoded once and
weighted by its count. When the pre-tokenizer matches the tokenizer's, this is exactly what
encoding the whole sample gives (the tests check it against ``tokenizers``, tiktoken and
sentencepiece on real tokenizers), at a fraction of the cost.

Only raw sums are kept (:class:`TokenCounts` adds across shards); ratios such as bytes per token
are derived at read time by :func:`derived_ratios`, because ratios do not add.

Under-trained token candidates (Land & Bartolo 2024) come in two kinds:

- ``unreachable``: no sequence of the tokenizer's merges, starting from its base alphabet,
  produces the token (:func:`reachable_ids`). Llama 3 has hundreds. With ``ignore_merges`` such
  a token can still be emitted when a whole pre-token equals it.
- ``never_produced``: reachable, but produced on no category of the run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokmix.analytics.word_split import Junctions, junctions, split_words
from tokmix.bpe.encoders import WordEncoder
from tokmix.bpe.formats import format_named
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import WordTable

UNREACHABLE = "unreachable"
NEVER_PRODUCED = "never_produced"


@dataclass(frozen=True, eq=False)
class TokenCounts:
    """One category's raw token sums under one tokenizer; shards add (``a + b``)."""

    documents: int
    bytes_: int
    chars: int
    pretokens: int
    tokens: int
    token_ids: np.ndarray
    """Sorted distinct ids produced at least once (int64)."""
    token_counts: np.ndarray
    """How often each of ``token_ids`` was produced (int64)."""

    @property
    def tokens_used(self) -> int:
        return len(self.token_ids)

    def __add__(self, other: TokenCounts) -> TokenCounts:
        ids = np.concatenate([self.token_ids, other.token_ids])
        counts = np.concatenate([self.token_counts, other.token_counts])
        uniq, inverse = np.unique(ids, return_inverse=True)
        return TokenCounts(
            self.documents + other.documents,
            self.bytes_ + other.bytes_,
            self.chars + other.chars,
            self.pretokens + other.pretokens,
            self.tokens + other.tokens,
            uniq,
            np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64),
        )


def count_tokens(
    table: WordTable, encoder: WordEncoder, junctions: Junctions | None = None
) -> TokenCounts:
    """Token sums of a word table: each distinct word encoded once, weighted by its count.

    With ``junctions`` (:func:`word_junctions`), words are first cut where no merge can join
    (:mod:`tokmix.analytics.word_split`; exact, and far fewer characters to encode for
    SentencePiece). Words of equal count are encoded in one batch, so a table costs about as
    many encoder calls as it has distinct counts (hundreds), not words."""
    words: Sequence[bytes] = list(table.counts)
    counts = np.fromiter(table.counts.values(), dtype=np.int64, count=len(words))
    if junctions is not None:
        words, counts = split_words(words, counts, junctions)
    by_count: dict[int, list[bytes]] = defaultdict(list)
    for word, n in zip(words, counts.tolist(), strict=True):
        if n:
            by_count[n].append(word)
    ids_parts, weight_parts = [], []
    for n, words in by_count.items():
        ids = encoder.encode_concat(words)
        ids_parts.append(ids)
        weight_parts.append(np.full(len(ids), n, dtype=np.int64))
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int64)
    weights = np.concatenate(weight_parts) if weight_parts else np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse, weights=weights, minlength=len(uniq))
    # float64 sums of int64 weights are exact below 2**53 tokens per id
    return TokenCounts(
        documents=table.documents,
        bytes_=table.bytes_,
        chars=table.chars,
        pretokens=table.pretokens,
        tokens=int(weights.sum()),
        token_ids=uniq.astype(np.int64),
        token_counts=np.rint(counts).astype(np.int64),
    )


def word_junctions(tokenizer: LoadedTokenizer) -> Junctions | None:
    """Where ``tokenizer``'s merges can join units (None: words must stay whole)."""
    return junctions(tokenizer, list(merge_pairs(tokenizer)))


def worth_splitting(tokenizer: LoadedTokenizer) -> bool:
    """Cutting words pays for SentencePiece-style tokenizers, whose words run from space to
    space (2-4x fewer characters to encode); regex pre-tokenizers leave little to cut, and
    the cut costs more than it saves."""
    return tokenizer.merge_list.alphabet == "chars"


def token_vocabulary(tokenizer: LoadedTokenizer) -> dict[int, bytes]:
    """Id -> token bytes of every token that encoding text can produce: the vocabulary (no
    special or added tokens) plus byte-fallback pieces, written ``<0xXX>`` as the tokenizer
    names them (SentencePiece-style tokens are their UTF-8 text, ``▁`` included)."""
    vocab = {i: t for t, i in tokenizer.vocab.items()}
    vocab.update({i: f"<0x{b:02X}>".encode() for b, i in tokenizer.byte_pieces.items()})
    return vocab


def token_names(tokenizer: LoadedTokenizer) -> dict[int, bytes]:
    """Bytes of every id encoding can produce: :func:`token_vocabulary` and the unknown token
    (which is no vocabulary entry: a frequency table names it, vocabulary use does not count
    it)."""
    names = token_vocabulary(tokenizer)
    if tokenizer.unk_id is not None and tokenizer.unk_token is not None:
        names.setdefault(tokenizer.unk_id, tokenizer.unk_token)
    return names


def merge_pairs(tokenizer: LoadedTokenizer) -> Iterable[tuple[bytes, bytes]]:
    """The merges the tokenizer's encoder can apply.

    A merge-list encoder (``tokenizers``) applies exactly its file's list, redundant splits
    included; tiktoken merges any two adjacent parts whose concatenation has a rank. Each format
    says which (:attr:`TokenizerFormat.encoder_merges`)."""
    return format_named(tokenizer.format).encoder_merges(tokenizer)


def reachable_ids(tokenizer: LoadedTokenizer) -> set[int]:
    """Ids of the tokens some sequence of merges makes from the base alphabet (plus the base
    symbols and byte-fallback pieces themselves).

    A merge's parts are shorter than its product, so visiting products by length decides each
    token after all of its possible parts: one pass, no fixpoint iteration."""
    vocab = tokenizer.vocab
    if tokenizer.merge_list.alphabet == "bytes":
        reached = {t for t in vocab if len(t) == 1}
    else:
        reached = {t for t in tokenizer.merge_list.base if t in vocab}
    splits: dict[bytes, list[tuple[bytes, bytes]]] = defaultdict(list)
    for left, right in merge_pairs(tokenizer):
        product = left + right
        if product in vocab:
            splits[product].append((left, right))
    for product in sorted(splits, key=len):
        if any(a in reached and b in reached for a, b in splits[product]):
            reached.add(product)
    ids = {vocab[t] for t in reached}
    ids.update(tokenizer.byte_pieces.values())
    return ids


def undertrained(
    tokenizer: LoadedTokenizer, produced: Mapping[int, int]
) -> list[tuple[int, bytes, str, int]]:
    """``(token_id, token, reason, count)`` per under-trained candidate, by id.

    ``produced`` maps ids to how often the run produced them (all categories). A token that is
    both unreachable and never produced is reported once, as unreachable; ``count`` is nonzero
    only for unreachable tokens that ``ignore_merges`` emitted whole."""
    reachable = reachable_ids(tokenizer)
    out = []
    for token_id, token in sorted(token_vocabulary(tokenizer).items()):
        if token_id not in reachable:
            out.append((token_id, token, UNREACHABLE, int(produced.get(token_id, 0))))
        elif not produced.get(token_id):
            out.append((token_id, token, NEVER_PRODUCED, 0))
    return out


def derived_ratios(row: Mapping[str, Any]) -> dict[str, float | None]:
    """Ratios of one ``token_stats`` row (raw sums): compression and vocabulary use.

    ``fertility`` is tokens per pre-token ("word"); ``vocab_use`` the share of the vocabulary
    produced at least once. None where the denominator is 0."""

    def ratio(num: str, den: str) -> float | None:
        return row[num] / row[den] if row[den] else None

    return {
        "bytes_per_token": ratio("bytes", "tokens"),
        "chars_per_token": ratio("chars", "tokens"),
        "fertility": ratio("tokens", "pretokens"),
        "vocab_use": ratio("tokens_used", "vocab_size"),
    }


def parity(rows: Sequence[Mapping[str, Any]], a: str, b: str) -> dict[str, float | None]:
    """Tokenizer -> ``tokens_a / tokens_b`` on parallel categories ``a`` and ``b`` (the same
    text in two languages): how many times more tokens the tokenizer spends on ``a``."""
    tokens: dict[tuple[str, str], int] = {
        (r["tokenizer"], r["category"]): r["tokens"] for r in rows
    }
    out: dict[str, float | None] = {}
    for tokenizer in dict.fromkeys(r["tokenizer"] for r in rows):
        ta, tb = tokens.get((tokenizer, a)), tokens.get((tokenizer, b))
        out[tokenizer] = ta / tb if ta is not None and tb else None
    return out
