"""Replay lists from a vocabulary and a merge list, whatever file they came from.

Replay needs one merge per produced token, in training order. A file whose list carries several
merges per token (SentencePiece conversions, Llama 3) is cleaned here, and every token no merge
can make is reported (``MergeList.unreachable`` and a note), never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokmix.bpe.byte_level import Pairs
from tokmix.bpe.merges import BYTE_ALPHABET, MergeList
from tokmix.bpe.sentencepiece_model import CharMerges, replay_merges
from tokmix.bpe.tiktoken_ranks import recover_merges
from tokmix.errors import TokenizerFormatError


def merge_list(path: Path, **kwargs: Any) -> MergeList:
    """Build a :class:`MergeList`, naming the file if the list is inconsistent."""
    try:
        return MergeList(**kwargs)
    except TokenizerFormatError as exc:
        raise TokenizerFormatError(f"{path}: {exc}") from None


def char_merge_list(cleaned: CharMerges, path: Path) -> MergeList:
    """The replay list of a SentencePiece-style vocabulary, cleaned to one merge per piece."""
    return merge_list(
        path,
        base=utf8(cleaned.base, path),
        merges=utf8_pairs(cleaned.merges, path),
        alphabet="chars",
        unreachable=utf8(cleaned.unreachable, path),
    )


def is_redundant(merges: Sequence[tuple[Any, Any]]) -> bool:
    """Several merges make the same token: the file lists splits, not the training order."""
    return len({left + right for left, right in merges}) < len(merges)


@dataclass(frozen=True)
class Lists:
    merge_list: MergeList
    encoding_merges: tuple[tuple[bytes, bytes], ...] | None
    notes: tuple[str, ...]


def byte_level_lists(vocab: Mapping[bytes, int], merges: Pairs, path: Path) -> Lists:
    """Replay list of a byte-level vocabulary and merge list (HF json or vocab.json pair).

    A one-merge-per-token list is used as is, in file order. A redundant list (Llama 3 style)
    is replaced by the order recovered from the vocabulary ids, exactly as for tiktoken ranks,
    and kept whole for encoding.
    """
    if not is_redundant(merges):
        made = {left + right for left, right in merges}
        unreachable = tuple(t for t in by_id(vocab) if len(t) >= 2 and t not in made)
        ml = merge_list(
            path,
            base=BYTE_ALPHABET,
            merges=tuple(merges),
            alphabet="bytes",
            unreachable=unreachable,
        )
        return Lists(ml, None, unreachable_notes(unreachable, "no merge in the file makes"))
    rec = recover_merges(vocab)
    ml = merge_list(
        path, base=BYTE_ALPHABET, merges=rec.merges, alphabet="bytes", unreachable=rec.unreachable
    )
    notes = [
        f"redundant merge list ({len(merges)} merges for "
        f"{len({a + b for a, b in merges})} tokens): training order recovered from vocabulary "
        f"ids ({len(rec.merges)} merges); the full list is kept in encoding_merges"
    ]
    listed = set(merges)
    outside = sum(1 for pair in rec.merges if pair not in listed)
    if outside:
        notes.append(f"{outside} recovered merges are not in the file's merge list")
    notes += recovery_notes(rec.non_binary, rec.unreachable)
    return Lists(ml, tuple(merges), tuple(notes))


def char_level_lists(vocab: Mapping[str, int], merges: list[tuple[str, str]], path: Path) -> Lists:
    """Replay list of a SentencePiece-style (character alphabet) vocabulary and merge list.

    The alphabet is the single-character tokens. A redundant list (a SentencePiece conversion)
    is cleaned as a ``.model`` is: tokens in the order their first merge appears (the file is
    sorted by piece score), each made by the split whose parts exist earliest.
    """
    base = [t for t in by_id(vocab) if len(t) == 1]
    if not is_redundant(merges):
        made = {left + right for left, right in merges}
        unreachable = [t for t in by_id(vocab) if len(t) >= 2 and t not in made]
        ml = merge_list(
            path,
            base=utf8(base, path),
            merges=utf8_pairs(merges, path),
            alphabet="chars",
            unreachable=utf8(unreachable, path),
        )
        return Lists(ml, None, unreachable_notes(unreachable, "no merge in the file makes"))
    order = list(dict.fromkeys(left + right for left, right in merges))
    in_order = set(order)
    order += [t for t in by_id(vocab) if len(t) >= 2 and t not in in_order]
    cleaned = replay_merges(order, base)
    ml = char_merge_list(cleaned, path)
    notes = [
        f"redundant merge list ({len(merges)} merges for {len(in_order)} tokens, as "
        f"SentencePiece conversions write): one merge per token kept for replay "
        f"({len(cleaned.merges)}); the full list is kept in encoding_merges",
        *unreachable_notes(cleaned.unreachable, "no merge of two earlier tokens makes"),
    ]
    return Lists(ml, utf8_pairs(merges, path), tuple(notes))


def by_id(vocab: Mapping[Any, int]) -> list[Any]:
    return sorted(vocab, key=vocab.__getitem__)


def recovery_notes(non_binary: Sequence[bytes], unreachable: Sequence[bytes]) -> list[str]:
    notes = []
    if non_binary:
        notes.append(
            f"{len(non_binary)} tokens do not BPE-encode into two parts with lower ranks; each "
            f"was given the split into earlier tokens that exist earliest (e.g. "
            f"{examples(non_binary)})"
        )
    return notes + list(unreachable_notes(unreachable, "no merge of two earlier tokens makes"))


def unreachable_notes(tokens: Sequence[bytes | str], why: str) -> tuple[str, ...]:
    if not tokens:
        return ()
    return (
        f"{len(tokens)} vocabulary tokens are unreachable ({why} them), listed in "
        f"merge_list.unreachable and not replayed (e.g. {examples(tokens)})",
    )


def examples(tokens: Sequence[bytes | str], n: int = 5) -> str:
    return ", ".join(repr(t) for t in tokens[:n])


def utf8(tokens: Iterable[str], path: Path) -> tuple[bytes, ...]:
    try:
        return tuple(t.encode("utf-8") for t in tokens)
    except UnicodeEncodeError as exc:
        raise TokenizerFormatError(f"{path}: a token is not valid Unicode ({exc})") from None


def utf8_pairs(pairs: Iterable[tuple[str, str]], path: Path) -> tuple[tuple[bytes, bytes], ...]:
    try:
        return tuple((a.encode("utf-8"), b.encode("utf-8")) for a, b in pairs)
    except UnicodeEncodeError as exc:
        raise TokenizerFormatError(f"{path}: a merge is not valid Unicode ({exc})") from None
