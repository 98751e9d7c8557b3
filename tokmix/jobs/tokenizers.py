"""Loading a tokenizer from wherever a run names it: a local path or an fsspec URL.

``tokmix.bpe`` reads local files only; this edge copies an ``s3://`` (any fsspec URL) file or
prefix to the local cache first, so every worker fetches it once.
"""

from __future__ import annotations

from pathlib import Path

from tokmix.bpe import loaders
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError
from tokmix.io.fs import local_copy


def load_tokenizer(path: str | Path, *, pretokenizer: str | None = None) -> LoadedTokenizer:
    """:func:`tokmix.bpe.loaders.load_tokenizer` for a local path or a URL."""
    if "://" in str(path):
        try:
            path = local_copy(str(path))
        except FileNotFoundError as exc:
            raise TokenizerFormatError(f"{exc}; check the tokenizer URL") from None
    return loaders.load_tokenizer(path, pretokenizer=pretokenizer)
