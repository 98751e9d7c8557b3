"""The merge list: what a BPE tokenizer is reduced to for replay (ARCHITECTURE.md §2).

Symbols are byte strings. Byte-level tokenizers have the 256 single bytes as base symbols;
SentencePiece-style tokenizers have Unicode characters (UTF-8 encoded, ``▁`` included).
Symbol ids are dense: base symbols first (``0 .. n_base-1``), then merge ``t`` (1-based)
produces symbol ``n_base + t - 1``. Characters outside a char alphabet map to one extra
``unk_id`` that no merge touches, as the SentencePiece trainer treats uncovered characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from tokmix.errors import TokenizerFormatError

Alphabet = Literal["bytes", "chars"]

BYTE_ALPHABET: tuple[bytes, ...] = tuple(bytes([b]) for b in range(256))


@dataclass(frozen=True)
class MergeList:
    """An ordered BPE merge list over a base alphabet, ready for replay.

    ``merges[t-1] = (left, right)`` is merge ``m_t``; ``left + right`` is the symbol it makes.
    Every merge's parts must be base symbols or products of earlier merges, and every product
    must be new: this is the one-merge-per-token list replay needs (loaders clean redundant
    lists before building one).
    """

    base: tuple[bytes, ...]
    merges: tuple[tuple[bytes, bytes], ...]
    alphabet: Alphabet = "bytes"
    unreachable: tuple[bytes, ...] = field(default=())
    """Vocabulary tokens that no single merge of earlier tokens forms (reported, not replayed)."""

    def __post_init__(self) -> None:
        if self.alphabet == "bytes" and self.base != BYTE_ALPHABET:
            raise TokenizerFormatError("a byte-level merge list needs the 256 bytes, in order")
        self.symbol_ids  # noqa: B018 - validates parts and products eagerly

    @cached_property
    def symbols(self) -> tuple[bytes, ...]:
        """All symbols by id: base symbols, then one product per merge."""
        return self.base + tuple(left + right for left, right in self.merges)

    @cached_property
    def symbol_ids(self) -> dict[bytes, int]:
        ids: dict[bytes, int] = {}
        for i, sym in enumerate(self.base):
            if sym in ids:
                raise TokenizerFormatError(f"base symbol {sym!r} appears twice in the alphabet")
            ids[sym] = i
        for t, (left, right) in enumerate(self.merges, start=1):
            for part in (left, right):
                if part not in ids:
                    raise TokenizerFormatError(
                        f"merge {t} ({left!r}, {right!r}) uses {part!r}, which is neither a base "
                        "symbol nor made by an earlier merge; the merge list is out of order"
                    )
            product = left + right
            if product in ids:
                raise TokenizerFormatError(
                    f"merge {t} ({left!r}, {right!r}) makes {product!r}, which already exists; "
                    "clean redundant merges before replay (tokmix.bpe.loaders does)"
                )
            ids[product] = len(ids)
        return ids

    @property
    def n_base(self) -> int:
        return len(self.base)

    @property
    def unk_id(self) -> int:
        """Id of characters outside a char alphabet; never part of a merge."""
        return len(self.base) + len(self.merges)

    def __len__(self) -> int:
        return len(self.merges)

    @cached_property
    def merge_ids(self) -> np.ndarray:
        """``(M, 3)`` int32 array of ``(left_id, right_id, product_id)`` per merge."""
        ids = self.symbol_ids
        out = np.empty((len(self.merges), 3), dtype=np.int32)
        for t, (left, right) in enumerate(self.merges):
            out[t] = (ids[left], ids[right], self.n_base + t)
        return out

    def truncated(self, n_merges: int) -> MergeList:
        """The first ``n_merges`` merges (a tokenizer's prefix is itself a valid merge list)."""
        return MergeList(self.base, self.merges[:n_merges], self.alphabet, self.unreachable)

    def symbol_text(self, symbol_id: int) -> bytes:
        """Bytes of a symbol id; the unknown-character symbol reads as ``b"<unk>"``."""
        if symbol_id == self.unk_id:
            return b"<unk>"
        return self.symbols[symbol_id]

    def encode_base(self, word: bytes) -> np.ndarray:
        """A word's base segmentation as symbol ids: its bytes, or its characters."""
        if self.alphabet == "bytes":
            return np.frombuffer(word, dtype=np.uint8).astype(np.int32)
        ids = self.symbol_ids
        unk = self.unk_id
        text = word.decode("utf-8", errors="surrogateescape")
        return np.fromiter(
            (ids.get(ch.encode("utf-8", errors="surrogateescape"), unk) for ch in text),
            dtype=np.int32,
            count=len(text),
        )
