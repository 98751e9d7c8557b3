"""Encoding pre-tokens exactly as a tokenizer's own library does (ARCHITECTURE.md §6).

Token statistics encode each distinct word of a word table once. The word is already normalized
and pre-tokenized, so what is left is the tokenizer's BPE model applied to one pre-token. That
model is the library's own, built in memory from the loaded vocabulary and merges (no file is
read here), so its semantics are the library's by construction:

- :class:`TiktokenWordEncoder`: a ``tiktoken.Encoding`` over the ranks (merge by the rank of
  the product).
- :class:`HfWordEncoder`: a ``tokenizers`` BPE model over the file's full merge list (merge by
  the rank of the pair), with its byte fallback, unknown token and ``ignore_merges``; with the
  every-split list and the ``<0xXX>`` byte pieces it is how ``transformers`` reproduces
  SentencePiece. The two rules differ on some strings, which is why each format
  (:mod:`tokmix.bpe.formats`) names the encoder of the library that defines it.

An encoder takes a batch of words and returns their token ids, concatenated: callers batch
words of equal count, so a whole word table costs a few hundred library calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tokmix.bpe.byte_level import bytes_to_unicode
from tokmix.bpe.tokenizer import LoadedTokenizer

if TYPE_CHECKING:  # imported where used: tiktoken only for tiktoken files
    import tiktoken
    import tokenizers

_SEPARATOR = "\x00"
"""Joins a batch of words for tiktoken; words holding it are encoded one by one."""


class WordEncoder(Protocol):
    def encode_concat(self, words: Sequence[bytes]) -> np.ndarray:
        """Token ids (int64) of each word encoded on its own, concatenated in order."""
        ...


def _text(word: bytes) -> str:
    return word.decode("utf-8", errors="replace")


class TiktokenWordEncoder:
    """tiktoken's BPE on pre-tokens: a pattern that only splits at the separator between
    words, so each word reaches the BPE whole."""

    def __init__(self, tokenizer: LoadedTokenizer) -> None:
        self._ranks = tokenizer.vocab
        self._name = tokenizer.name

    @cached_property
    def _joined(self) -> tiktoken.Encoding:
        import tiktoken

        return tiktoken.Encoding(
            f"{self._name}-words",
            pat_str=r"[^\x00]+",
            mergeable_ranks=self._ranks,
            special_tokens={},
        )

    @cached_property
    def _whole(self) -> tiktoken.Encoding:
        import tiktoken

        return tiktoken.Encoding(
            f"{self._name}-word",
            pat_str=r"(?s:.+)",
            mergeable_ranks=self._ranks,
            special_tokens={},
        )

    def encode_concat(self, words: Sequence[bytes]) -> np.ndarray:
        joined = _SEPARATOR.encode().join(words)
        if joined.count(_SEPARATOR.encode()) == len(words) - 1:  # no word holds the separator
            ids = self._joined.encode_ordinary(_text(joined)) if words else []
            return np.asarray(ids, dtype=np.int64)
        # rare: some word holds the separator; encode word by word
        whole = self._whole
        return np.asarray(
            [i for w in words for i in whole.encode_ordinary(_text(w))], dtype=np.int64
        )


class HfWordEncoder:
    """A ``tokenizers`` BPE model with the file's merges and options, fed pre-tokens."""

    def __init__(self, tokenizer: LoadedTokenizer) -> None:
        self._tokenizer = tokenizer

    @cached_property
    def _library(self) -> tokenizers.Tokenizer:
        from tokenizers import Tokenizer, models, pre_tokenizers

        tok = self._tokenizer
        merges = tok.encoding_merges or tok.merge_list.merges
        byte_level = tok.merge_list.alphabet == "bytes"
        show = _byte_level_text if byte_level else _text
        vocab = {show(t): i for t, i in tok.vocab.items()}
        vocab.update({f"<0x{b:02X}>": i for b, i in tok.byte_pieces.items()})
        unk = None
        if tok.unk_token is not None and tok.unk_id is not None:
            unk = _text(tok.unk_token)
            vocab[unk] = tok.unk_id
        model = models.BPE(
            vocab,
            [(show(a), show(b)) for a, b in merges],
            unk_token=unk,
            fuse_unk=tok.fuse_unk,
            byte_fallback=tok.byte_fallback,
            ignore_merges=tok.ignore_merges,
        )
        library = Tokenizer(model)
        if byte_level:
            library.pre_tokenizer = pre_tokenizers.ByteLevel(
                add_prefix_space=False, use_regex=False
            )
        return library

    def encode_concat(self, words: Sequence[bytes]) -> np.ndarray:
        if not words:
            return np.zeros(0, dtype=np.int64)
        encoding = self._library.encode(
            [_text(w) for w in words], is_pretokenized=True, add_special_tokens=False
        )
        return np.asarray(encoding.ids, dtype=np.int64)


def _byte_level_text(token: bytes) -> str:
    """A byte string in GPT-2's byte-level alphabet (``Ġ`` for the space byte)."""
    return token.decode("latin-1").translate(_BYTE_LEVEL)


_BYTE_LEVEL = dict(bytes_to_unicode())
