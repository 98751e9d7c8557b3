"""Merge lists recovered from token ranks (ARCHITECTURE.md §2).

tiktoken files carry no merge list, only ``token -> rank``; some ``tokenizer.json`` files carry
every split of every token instead of the training order (Llama 3, gpt-oss). Both reduce to the
same problem: given the vocabulary in training order, find for each token the one merge that
made it. The rule is tiktoken's own: BPE-encode the token's bytes with the lower-ranked tokens
only; the two parts left are the merge. :func:`earliest_split` is the fallback when that does not
give two parts, and the whole rule for SentencePiece pieces (which have no byte-level ranks).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import AnyStr

from tokmix.bpe.merges import BYTE_ALPHABET
from tokmix.errors import TokenizerFormatError

_BASE_BYTES = frozenset(BYTE_ALPHABET)


def parse_tiktoken_ranks(data: bytes, path: str) -> dict[bytes, int]:
    """``token -> rank`` from a tiktoken file (``base64-token rank`` per line).

    Strict: a wrong line, a repeated token or a repeated rank names the line, because a
    silently skipped token would shift every later merge.
    """
    ranks: dict[bytes, int] = {}
    seen_ranks: set[int] = set()
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        token, rank = _parse_rank_line(line, lineno, path)
        if token in ranks:
            raise TokenizerFormatError(f"{path}: line {lineno}: token {token!r} appears twice")
        if rank in seen_ranks:
            raise TokenizerFormatError(f"{path}: line {lineno}: rank {rank} appears twice")
        ranks[token] = rank
        seen_ranks.add(rank)
    if not ranks:
        raise TokenizerFormatError(f"{path}: no 'base64-token rank' lines found")
    return ranks


def _parse_rank_line(line: bytes, lineno: int, path: str) -> tuple[bytes, int]:
    fields = line.split()
    problem = f"{path}: line {lineno} is not a tiktoken 'base64-token rank' line: {line[:80]!r}"
    if len(fields) != 2:
        raise TokenizerFormatError(problem)
    try:
        token = base64.b64decode(fields[0], validate=True)
        rank = int(fields[1])
    except (binascii.Error, ValueError) as exc:
        raise TokenizerFormatError(f"{problem} ({exc})") from None
    if not token or rank < 0:
        raise TokenizerFormatError(f"{problem} (empty token or negative rank)")
    return token, rank


def bpe_parts(token: bytes, ranks: Mapping[bytes, int], below: int) -> list[bytes]:
    """tiktoken's BPE of ``token`` using only tokens ranked below ``below``.

    Repeatedly merges the adjacent pair whose concatenation has the lowest rank, leftmost on
    ties (as tiktoken does). Simple O(L^2) per token: tokens are short and this runs once per
    load. Stops at two parts, since merging those would make ``token`` itself.
    """
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best_rank = below
        best = -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_rank = rank
                best = i
        if best < 0:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return parts


def earliest_split(
    token: AnyStr, positions: Mapping[AnyStr, int], base: Container[AnyStr]
) -> tuple[AnyStr, AnyStr] | None:
    """The split of ``token`` into two existing symbols that all exist earliest.

    ``positions`` maps each product made so far to its merge index; ``base`` symbols exist from
    the start. Minimizes the later part's position, then the earlier part's, then the left
    part's length, so the choice is deterministic. ``None`` when no split has both parts.
    """
    best: tuple[AnyStr, AnyStr] | None = None
    best_key: tuple[int, int, int] | None = None
    for i in range(1, len(token)):
        left, right = token[:i], token[i:]
        pl = -1 if left in base else positions.get(left)
        pr = -1 if right in base else positions.get(right)
        if pl is None or pr is None:
            continue
        key = (max(pl, pr), min(pl, pr), i)
        if best_key is None or key < best_key:
            best, best_key = (left, right), key
    return best


@dataclass(frozen=True)
class RecoveredMerges:
    """One merge per token, in rank order, and what could not be recovered cleanly."""

    merges: tuple[tuple[bytes, bytes], ...]
    unreachable: tuple[bytes, ...]
    """Tokens that no single merge of two earlier tokens forms (left out of ``merges``)."""
    non_binary: tuple[bytes, ...]
    """Tokens whose BPE with lower ranks did not end in two earlier tokens; their merge is
    :func:`earliest_split`'s (they are in ``merges``)."""


def recover_merges(ranks: Mapping[bytes, int]) -> RecoveredMerges:
    """The merge list of a byte-level vocabulary whose ranks are its training order.

    Every token of two or more bytes, by rank, gets the two parts its own BPE leaves. When that
    is not two tokens already made (the greedy encoding can take another path than training
    did), the earliest split into existing tokens stands in, and the token is reported; with no
    such split at all the token is unreachable.
    """
    positions: dict[bytes, int] = {}
    merges: list[tuple[bytes, bytes]] = []
    unreachable: list[bytes] = []
    non_binary: list[bytes] = []
    multi = sorted((rank, token) for token, rank in ranks.items() if len(token) >= 2)
    for rank, token in multi:
        parts = bpe_parts(token, ranks, rank)
        pair: tuple[bytes, bytes] | None
        if len(parts) == 2 and all(p in _BASE_BYTES or p in positions for p in parts):
            pair = (parts[0], parts[1])
        else:
            pair = earliest_split(token, positions, _BASE_BYTES)
            if pair is None:
                unreachable.append(token)
                continue
            non_binary.append(token)
        positions[token] = len(merges)
        merges.append(pair)
    return RecoveredMerges(tuple(merges), tuple(unreachable), tuple(non_binary))
