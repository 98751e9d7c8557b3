"""Splitting words where no merge can join them, so that fewer, shorter words are encoded.

A merge ``(a, b)`` joins the last unit of ``a`` to the first unit of ``b`` (units: bytes for
byte-level tokenizers, characters for SentencePiece-style ones); call that pair of units the
merge's *junction*. Inside a word, two adjacent units ``x y`` that are no merge's junction are
never joined: every symbol spanning them would have been made by a merge whose junction is
``x y``. And the merges on each side happen exactly as when the sides are encoded alone: the
encoder repeatedly applies the lowest-ranked applicable merge, and no merge applies across the
cut, so each side sees the same sequence of choices. Encoding the parts therefore gives the
word's encoding, for ``tokenizers`` BPE (merge by pair rank), tiktoken (merge by product rank)
and SentencePiece alike.

Two encoder features break the argument and turn splitting off or limit it:
``ignore_merges`` (a whole word that is a vocabulary token is emitted before any merge, and a
part may be a token the whole word would not emit) disables it; ``fuse_unk`` (consecutive
unknown characters become one unknown token) forbids cuts between two characters outside the
alphabet unless byte fallback covers every byte.

This matters for SentencePiece, whose words run from one space to the next across punctuation
and newlines: on real text it halves to quarters the characters left to encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tokmix.bpe.tokenizer import LoadedTokenizer


@dataclass(frozen=True)
class Junctions:
    """The unit pairs some merge joins, as sorted int64 keys."""

    keys: np.ndarray
    byte_level: bool
    fusing_alphabet: np.ndarray | None = None
    """Sorted code points of the characters in the vocabulary, when unknown characters fuse
    (no cut between two characters outside it)."""


def junctions(tokenizer: LoadedTokenizer, pairs: Sequence[tuple[bytes, bytes]]) -> Junctions | None:
    """The junctions of ``pairs`` (every merge the tokenizer's encoder can apply), or None
    when splitting is not exact for this tokenizer."""
    if tokenizer.ignore_merges:
        return None
    byte_level = tokenizer.merge_list.alphabet == "bytes"
    if byte_level:
        keys = {(a[-1] << 8) | b[0] for a, b in pairs}
    else:
        keys = {(ord(a.decode()[-1]) << 21) | ord(b.decode()[0]) for a, b in pairs}
    fusing = None
    covered = tokenizer.byte_fallback and len(tokenizer.byte_pieces) == 256
    if tokenizer.fuse_unk and not covered and not byte_level:
        chars = (t.decode() for t in tokenizer.merge_list.base)
        fusing = np.array(sorted(ord(c) for c in chars if len(c) == 1), dtype=np.int64)
    return Junctions(np.array(sorted(keys), dtype=np.int64), byte_level, fusing)


def split_words(
    words: Sequence[bytes], counts: np.ndarray, junctions: Junctions
) -> tuple[list[bytes], np.ndarray]:
    """Words cut wherever two adjacent characters meet at no junction; the parts, distinct,
    with the summed counts of the words they came from. Cuts fall between characters only, so
    every part is valid UTF-8."""
    if not words:
        return [], np.zeros(0, dtype=np.int64)
    joined = b"".join(words)
    try:
        text = joined.decode("utf-8")
    except UnicodeDecodeError:  # word tables hold valid UTF-8; anything else stays whole
        return list(words), np.asarray(counts, dtype=np.int64)
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    lead_bytes = (np.frombuffer(joined, dtype=np.uint8) & 0xC0) != 0x80
    byte_starts = np.zeros(len(words), dtype=np.int64)
    np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words))[:-1],
              out=byte_starts[1:])  # fmt: skip
    word_chars = np.add.reduceat(lead_bytes, byte_starts, dtype=np.int64)
    word_starts = np.zeros(len(words), dtype=np.int64)
    np.cumsum(word_chars[:-1], out=word_starts[1:])
    left, right = cps[:-1], cps[1:]
    if junctions.byte_level:
        keys = (_last_byte(left) << 8) | _first_byte(right)
    else:
        keys = (left << 21) | right
    joinable = _isin_sorted(keys, junctions.keys)
    if junctions.fusing_alphabet is not None:
        outside = ~_isin_sorted(cps, junctions.fusing_alphabet)
        joinable |= outside[:-1] & outside[1:]
    opens = np.zeros(len(cps), dtype=bool)
    opens[word_starts] = True
    opens[1:] |= ~joinable
    starts = np.flatnonzero(opens)
    ends = np.append(starts[1:], len(cps))
    part_counts = np.asarray(counts, dtype=np.int64)[
        np.searchsorted(word_starts, starts, side="right") - 1
    ]
    merged: dict[str, int] = {}
    for a, b, n in zip(starts.tolist(), ends.tolist(), part_counts.tolist(), strict=True):
        part = text[a:b]
        merged[part] = merged.get(part, 0) + n
    return [p.encode("utf-8") for p in merged], np.fromiter(
        merged.values(), dtype=np.int64, count=len(merged)
    )


def _isin_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_keys, values)
    np.minimum(pos, len(sorted_keys) - 1, out=pos)
    found: np.ndarray = sorted_keys[pos] == values
    return found


def _first_byte(cp: np.ndarray) -> np.ndarray:
    """First UTF-8 byte of each code point."""
    return np.where(
        cp < 0x80,
        cp,
        np.where(
            cp < 0x800,
            0xC0 | (cp >> 6),
            np.where(cp < 0x10000, 0xE0 | (cp >> 12), 0xF0 | (cp >> 18)),
        ),
    )


def _last_byte(cp: np.ndarray) -> np.ndarray:
    """Last UTF-8 byte of each code point."""
    return np.where(cp < 0x80, cp, 0x80 | (cp & 0x3F))
