"""What tokmix knows about a released tokenizer once its file is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

from tokmix.bpe.merges import MergeList
from tokmix.bpe.pretokenizers import Pretokenizer


@dataclass(frozen=True)
class LoadedTokenizer:
    """A tokenizer file reduced to what replay and analytics need.

    ``merge_list`` is the replay list (one merge per produced token, training order).
    ``encoding_merges`` is the full list the tokenizer's own encoder applies, when it differs
    (SentencePiece-converted files keep every split of a piece; encoding needs them all).
    """

    name: str
    path: str
    format: str
    """One of ``hf-json``, ``gpt2-vocab-merges``, ``tiktoken``, ``sentencepiece``."""
    sha256: str
    merge_list: MergeList
    pretokenizer: Pretokenizer
    vocab: dict[bytes, int]
    """Token bytes -> id, as the tokenizer numbers them (special tokens excluded)."""
    encoding_merges: tuple[tuple[bytes, bytes], ...] | None = None
    notes: tuple[str, ...] = field(default=())
    """What the loader did that a user should know: merges dropped, order recovered, ..."""

    @property
    def n_merges(self) -> int:
        return len(self.merge_list)
