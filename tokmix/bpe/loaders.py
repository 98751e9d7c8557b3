"""Tokenizer loading: a local file or directory reduced to a :class:`LoadedTokenizer`.

This module only dispatches: it asks the registered formats (:mod:`tokmix.bpe.formats`, one
module each) which one a file or directory holds and lets that format load it. Whatever the
format, ``merge_list`` is the replay list: one merge per produced token, in training order.
Lists that carry several merges per token (SentencePiece conversions, Llama 3, gpt-oss) are
cleaned for replay and kept whole in ``encoding_merges``, because the tokenizer's own encoder
needs every one of them. Tokens no merge of earlier tokens can make are reported in
``MergeList.unreachable`` and in the notes, never dropped silently.

Only local paths are read here; ``tokmix.jobs.tokenizers.load_tokenizer`` fetches URLs first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tokmix.bpe.byte_level import bytes_to_unicode
from tokmix.bpe.formats import REGISTRY
from tokmix.bpe.formats.base import NotThisFormat, Source, read_head
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

__all__ = ["PRIORITY", "bytes_to_unicode", "load_tokenizer"]

PRIORITY = ", ".join(fmt.label for fmt in REGISTRY)
"""The formats a directory is searched for, in the order the first one found wins."""


def load_tokenizer(path: str | Path, *, pretokenizer: str | None = None) -> LoadedTokenizer:
    """Load a BPE tokenizer from a local file, or from a local directory holding one.

    In a directory the first format found wins, in registry order (:data:`PRIORITY`; the notes
    say when others were there). A file's format is told by its name, or by its content where
    the name is silent or misleading. ``pretokenizer`` names a known family (``gpt2``,
    ``cl100k``, ``o200k``, ...) to use instead of the file's; tiktoken files whose name does
    not reveal their regex need it. Raises :class:`TokenizerFormatError` for a missing, empty,
    unreadable or non-BPE file.
    """
    if "://" in str(path):
        raise TokenizerFormatError(
            f"{path}: a URL; fetch it first (tokmix.jobs.tokenizers.load_tokenizer does)"
        )
    path = Path(path)
    if not path.exists():
        raise TokenizerFormatError(f"{path}: no such file or directory")
    if path.is_dir():
        return _load(_resolve_dir(path), pretokenizer)
    head = read_head(path)
    try:
        return _load(_resolve_file(path, head), pretokenizer)
    except NotThisFormat:
        raise TokenizerFormatError(
            f"{path}: not a tokenizer file tokmix knows ({PRIORITY}); starts with {head[:40]!r}"
        ) from None


def _load(source: Source, pretokenizer: str | None) -> LoadedTokenizer:
    if not source.name.isprintable():
        raise TokenizerFormatError(
            f"tokenizer name {source.name!r} (from the file or folder name) holds control "
            "characters or line breaks; rename it"
        )
    fmt = next(f for f in REGISTRY if f.name == source.format)
    return fmt.load(source, pretokenizer)


def _resolve_dir(folder: Path) -> Source:
    """Pick the tokenizer file of a directory by format priority (see :func:`load_tokenizer`)."""
    found = [(fmt, sources) for fmt in REGISTRY if (sources := fmt.find_in(folder))]
    if not found:
        listing = ", ".join(sorted(p.name for p in folder.iterdir())[:20]) or "nothing"
        raise TokenizerFormatError(
            f"{folder}: no tokenizer file found (looked for {PRIORITY}); it holds: {listing}"
        )
    fmt, sources = found[0]
    if len(sources) > 1:
        names = ", ".join(f.name for s in sources for f in s.files)
        raise TokenizerFormatError(
            f"{folder}: several {fmt.label} files ({names}); pass the path of the one to load"
        )
    notes: tuple[str, ...] = ()
    if len(found) > 1:
        others = ", ".join(other.label for other, _ in found[1:])
        notes = (f"{folder} also holds {others}; loaded {fmt.label} (priority: {PRIORITY})",)
    return dataclasses.replace(sources[0], name=folder.resolve().name, notes=notes)


def _resolve_file(path: Path, head: bytes) -> Source:
    """The strongest claim of the registered formats on a file; ties go to the earlier one."""
    best = None
    for fmt in REGISTRY:
        claim = fmt.detect(path, head)
        if claim is not None and (best is None or claim.evidence > best.evidence):
            best = claim
    if best is None:
        raise TokenizerFormatError(
            f"{path}: not a tokenizer file tokmix knows ({PRIORITY}); starts with {head[:40]!r}"
        )
    return best.source
