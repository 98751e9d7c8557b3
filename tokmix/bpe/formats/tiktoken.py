"""tiktoken rank files (``base64-token rank`` lines, ``cl100k_base.tiktoken``).

A rank file holds no merge list and no pre-tokenizer regex: the merges are recovered from the
ranks, the regex from the family the file name names (or the caller's override). tiktoken's
encoder merges any two adjacent parts whose concatenation has a rank, so its encoder is a
``tiktoken.Encoding`` over the ranks and every split of a token into two tokens is a merge it
can apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tokmix.bpe.encoders import TiktokenWordEncoder
from tokmix.bpe.formats.base import (
    Detection,
    Evidence,
    Source,
    TokenizerFormat,
    read_file,
    sha256,
    single_source,
    with_override,
)
from tokmix.bpe.formats.merge_lists import merge_list, recovery_notes
from tokmix.bpe.merges import BYTE_ALPHABET
from tokmix.bpe.pretokenizers import CL100K, GPT2, O200K, Pretokenizer
from tokmix.bpe.tiktoken_ranks import parse_tiktoken_ranks, recover_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

NAME = "tiktoken"
_TIKTOKEN_FAMILIES = (
    ("r50k", GPT2),
    ("p50k", GPT2),
    ("gpt2", GPT2),
    ("cl100k", CL100K),
    ("o200k", O200K),
)
_TIKTOKEN_LINE = re.compile(rb"[A-Za-z0-9+/]+=*[ \t]+[0-9]+")


def _find_in(folder: Path) -> tuple[Source, ...]:
    files = sorted(p for p in folder.glob("*.tiktoken") if p.is_file())
    return tuple(single_source(NAME, p) for p in files)


def _detect(path: Path, head: bytes) -> Detection | None:
    """A ``.tiktoken`` file by name; otherwise a first line ``base64 rank`` by content."""
    if path.suffix.lower() == ".tiktoken":
        return Detection(single_source(NAME, path), Evidence.SUFFIX)
    if _TIKTOKEN_LINE.fullmatch(head.split(b"\n", 1)[0].strip()):
        return Detection(single_source(NAME, path), Evidence.CONTENT)
    return None


def rank_merges(tokenizer: LoadedTokenizer) -> Iterable[tuple[bytes, bytes]]:
    """Every split of a token into two tokens: the merges tiktoken's encoder can apply."""
    vocab = tokenizer.vocab
    return (
        (token[:k], token[k:])
        for token in vocab
        for k in range(1, len(token))
        if token[:k] in vocab and token[k:] in vocab
    )


def _tiktoken_family(path: Path, override: str | None) -> Pretokenizer:
    if override is not None:
        return with_override(None, override, True, path)
    stem = path.name.lower()
    for key, family in _TIKTOKEN_FAMILIES:
        if key in stem:
            return family
    raise TokenizerFormatError(
        f"{path}: a tiktoken file carries no pre-tokenizer regex and its name names no known "
        "family (r50k, p50k, gpt2, cl100k, o200k); pass pretokenizer= (e.g. 'cl100k', 'o200k')"
    )


def _load_tiktoken(source: Source, override: str | None) -> LoadedTokenizer:
    """A tiktoken rank file; the merge list is recovered from the ranks."""
    path = source.files[0]
    data = read_file(path)
    ranks = parse_tiktoken_ranks(data, str(path))
    pretok = _tiktoken_family(path, override)
    rec = recover_merges(ranks)
    ml = merge_list(
        path, base=BYTE_ALPHABET, merges=rec.merges, alphabet="bytes", unreachable=rec.unreachable
    )
    notes = [
        *source.notes,
        f"merges recovered from ranks: {len(rec.merges)}",
        *recovery_notes(rec.non_binary, rec.unreachable),
    ]
    missing = sum(1 for b in BYTE_ALPHABET if b not in ranks)
    if missing:
        notes.append(f"{missing} single bytes have no rank (the encoder cannot encode them)")
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format=NAME,
        sha256=sha256(data),
        merge_list=ml,
        pretokenizer=pretok,
        vocab=dict(ranks),
        notes=tuple(notes),
    )


FORMAT = TokenizerFormat(
    name=NAME,
    label="*.tiktoken",
    find_in=_find_in,
    detect=_detect,
    load=_load_tiktoken,
    word_encoder=TiktokenWordEncoder,
    encoder_merges=rank_merges,
)
