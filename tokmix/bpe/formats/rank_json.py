"""What the JSON rank formats (Mistral's tekken, Anthropic's Claude JSON) share: tiktoken ranks
and a ``pat_str`` in one file, reduced as a ``.tiktoken`` file is (merges recovered from the
ranks, tiktoken's encoder), but with the regex the file carries and ids as the file numbers
them (special tokens first)."""

from __future__ import annotations

import re

from tokmix.bpe.formats.base import Source, sha256, with_override
from tokmix.bpe.formats.merge_lists import merge_list, recovery_notes
from tokmix.bpe.merges import BYTE_ALPHABET
from tokmix.bpe.pretokenizers import Normalizer, Pretokenizer, from_pattern
from tokmix.bpe.tiktoken_ranks import recover_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError


def json_keys_in_head(head: bytes, keys: tuple[bytes, ...]) -> bool:
    """Whether a JSON object's start names every one of ``keys`` (as ``"key":``)."""
    if not head.lstrip().startswith(b"{"):
        return False
    return all(re.search(rb'"' + re.escape(k) + rb'"\s*:', head) for k in keys)


def rank_tokenizer(
    source: Source,
    data: bytes,
    *,
    format_name: str,
    ranks: dict[bytes, int],
    id_offset: int,
    pattern: str,
    override: str | None,
    normalizer: Normalizer = "none",
    notes: tuple[str, ...] = (),
) -> LoadedTokenizer:
    """A :class:`LoadedTokenizer` from tiktoken ranks (``token -> rank``, dense from 0) and the
    file's regex; token ids are ``rank + id_offset`` (the special tokens come first)."""
    path = source.files[0]
    missing = [b for b in BYTE_ALPHABET if b not in ranks]
    if missing:
        raise TokenizerFormatError(
            f"{path}: {len(missing)} single bytes have no rank (e.g. {missing[0]!r}); a "
            "byte-level rank list starts with all 256 bytes"
        )
    file_pretok = from_pattern(pattern, name=f"{format_name}-regex")
    if normalizer != "none":
        file_pretok = Pretokenizer(file_pretok.name, file_pretok.steps, normalizer, byte_level=True)
    pretok = with_override(file_pretok, override, True, path)
    rec = recover_merges(ranks)
    ml = merge_list(
        path, base=BYTE_ALPHABET, merges=rec.merges, alphabet="bytes", unreachable=rec.unreachable
    )
    all_notes = [
        *source.notes,
        *notes,
        f"merges recovered from ranks: {len(rec.merges)}",
        *recovery_notes(rec.non_binary, rec.unreachable),
    ]
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format=format_name,
        sha256=sha256(data),
        merge_list=ml,
        pretokenizer=pretok,
        vocab={token: rank + id_offset for token, rank in ranks.items()},
        notes=tuple(all_notes),
    )
