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
    """The name of its format in ``tokmix.bpe.formats.REGISTRY`` (``hf-json``, ``gguf``, ...)."""
    sha256: str
    merge_list: MergeList
    pretokenizer: Pretokenizer
    vocab: dict[bytes, int]
    """Token bytes -> id, as the tokenizer numbers them (special tokens excluded)."""
    encoding_merges: tuple[tuple[bytes, bytes], ...] | None = None
    notes: tuple[str, ...] = field(default=())
    """What the loader did that a user should know: merges dropped, order recovered, ..."""
    byte_fallback: bool = False
    """SentencePiece byte fallback: a character outside the vocabulary becomes the
    ``<0xXX>`` pieces of its UTF-8 bytes (``byte_pieces``) instead of the unknown token."""
    byte_pieces: dict[int, int] = field(default_factory=dict)
    """Byte value -> id of its ``<0xXX>`` piece (left out of ``vocab``: they are not merge
    symbols, but encoding produces them)."""
    unk_token: bytes | None = None
    unk_id: int | None = None
    """The unknown token of a character-level tokenizer, for characters nothing else covers."""
    fuse_unk: bool = False
    """Consecutive unknown characters become one unknown token (SentencePiece does this)."""
    encoding_pretokenizer: Pretokenizer | None = None
    """The split the tokenizer's own encoder effectively makes, where it differs from
    ``pretokenizer`` (the training split, which replay needs): SentencePiece encodes a run of
    ``▁`` together with the word after it. Token statistics count words with this one."""
    ignore_merges: bool = False
    """Hugging Face ``ignore_merges`` (Llama 3): a pre-token that is itself a vocabulary token
    is emitted whole, before any merge applies."""

    hand_inserted: tuple[bytes, ...] = ()
    """Tokens of the first ``len(hand_inserted)`` replay merges, found hand-inserted (merges no
    frequency-driven trainer makes, :mod:`tokmix.bpe.hand_inserted`); the LP leaves them out
    by default."""

    @property
    def n_merges(self) -> int:
        return len(self.merge_list)

    @property
    def stats_pretokenizer(self) -> Pretokenizer:
        """The word split under which encoding word by word equals encoding the text."""
        return self.encoding_pretokenizer or self.pretokenizer
