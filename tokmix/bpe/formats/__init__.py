"""Tokenizer file formats, one module each, found through one registry (as ``tiktoken_ext``).

The registry is :data:`REGISTRY`, in priority order: when a directory holds several formats, the
earlier entry is loaded (and a note names the others); when two formats claim a file equally
strongly, the earlier one wins. Adding a format is one module here plus one entry in
:data:`REGISTRY`; nothing else in tokmix names formats.

The plugin interface (:mod:`tokmix.bpe.formats.base`). A format module defines ``FORMAT``, a
:class:`~tokmix.bpe.formats.base.TokenizerFormat` with:

- ``name``: the value of ``LoadedTokenizer.format`` (``hf-json``); unique in the registry.
- ``label``: how messages name its files (``tokenizer.json``, ``*.tiktoken``).
- ``find_in(folder) -> tuple[Source, ...]``: the candidate sources of this format in a local
  directory (``()`` if none). Several candidates of the chosen format are an error that names
  them (the user passes the one to load).
- ``detect(path, head) -> Detection | None``: whether a local file is of this format, from its
  path and its first ``HEAD_BYTES`` bytes (``head``, possibly empty). The
  :class:`~tokmix.bpe.formats.base.Evidence` says how sure: ``SIGNATURE`` (content no other
  format has; beats any name, for files whose names mislead) > ``FILE_NAME`` > ``SUFFIX`` >
  ``CONTENT`` (a hint used when no name speaks) > ``GUESS``. The strongest claim wins, ties go
  to the earlier registry entry. ``detect`` may raise ``TokenizerFormatError`` when the name
  is certain but the file cannot be used (``merges.txt`` without ``vocab.json``).
- ``load(source, pretokenizer) -> LoadedTokenizer``: read the source's local files (with
  ``base.read_file``) and reduce them to a ``LoadedTokenizer`` whose ``format`` is ``name``;
  ``pretokenizer`` is the caller's override (a family name for ``pretokenizers.named``) or
  None. Errors are ``TokenizerFormatError`` naming the file; a loader given a ``guessed``
  source that turns out not to be its format raises ``base.NotThisFormat``.
- ``word_encoder(tokenizer) -> WordEncoder``: encodes pre-tokens exactly as the format's own
  library does (``tokmix.bpe.encoders``), for token statistics.
- ``encoder_merges(tokenizer)`` (optional, default ``base.listed_merges``): every merge the
  format's encoder can apply (under-trained token analysis).

Shared building blocks: ``base`` (files, names, overrides), ``merge_lists`` (replay lists from a
vocabulary and a merge list), ``tokmix.bpe.byte_level`` (GPT-2's byte alphabet). Formats read
local files only; URLs are fetched by the caller (``tokmix.jobs.tokenizers``).
"""

from __future__ import annotations

from tokmix.bpe.formats import gpt2_files, hf_json, sentencepiece, tiktoken
from tokmix.bpe.formats.base import TokenizerFormat
from tokmix.errors import TokenizerFormatError

__all__ = ["REGISTRY", "TokenizerFormat", "format_named"]

REGISTRY: tuple[TokenizerFormat, ...] = (
    hf_json.FORMAT,
    gpt2_files.FORMAT,
    tiktoken.FORMAT,
    sentencepiece.FORMAT,
)
"""Every known format, in priority order."""


def format_named(name: str) -> TokenizerFormat:
    """The registered format whose ``name`` is ``name`` (``LoadedTokenizer.format``)."""
    for fmt in REGISTRY:
        if fmt.name == name:
            return fmt
    known = ", ".join(f.name for f in REGISTRY)
    raise TokenizerFormatError(f"unknown tokenizer format {name!r} (known: {known})")
