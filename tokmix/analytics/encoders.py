"""The word encoder of a loaded tokenizer: the one its format names.

Encoders themselves live in :mod:`tokmix.bpe.encoders`; which one a tokenizer gets is its
format's choice (:mod:`tokmix.bpe.formats`), so a new format brings its encoder along.
"""

from __future__ import annotations

from tokmix.bpe.encoders import HfWordEncoder, TiktokenWordEncoder, WordEncoder
from tokmix.bpe.formats import format_named
from tokmix.bpe.tokenizer import LoadedTokenizer

__all__ = ["HfWordEncoder", "TiktokenWordEncoder", "WordEncoder", "word_encoder"]


def word_encoder(tokenizer: LoadedTokenizer) -> WordEncoder:
    """The encoder of ``tokenizer``'s format, encoding pre-tokens as its own library does."""
    return format_named(tokenizer.format).word_encoder(tokenizer)
