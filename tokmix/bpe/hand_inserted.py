"""Merges no frequency-driven trainer makes: hand-inserted heads of merge lists.

Gemma's merge list starts with runs of ``\\n``, ``▁`` and ``\\t`` (1 394 merges in Gemma 4's
list, 1 395 in the Gemma list Hayase et al. drop), put there by hand so that whitespace runs are
single tokens. Two facts tell them from trained merges, without any data:

- **out of order**: a BPE trainer can only merge symbols that exist, so a merge's parts are
  always made before it. A hand-written list has no such constraint: Gemma lists the 31-newline
  run before the 2-newline run its parts need. :func:`out_of_order` counts merges whose part is
  first made by a *later* merge.
- **whitespace only**: the head block is made of whitespace runs.

The hand-inserted head is the leading block of whitespace-only merges up to its last out-of-order
merge (so a trained list that merely starts with ``"▁▁"`` is not flagged, and trained
whitespace merges right after an inserted block are not swallowed), with the runs its tokens
need to be made. Replay still needs these tokens (the encoder produces them), so loaders put
them first in an order replay can make (shorter runs first) and record them; the LP leaves
their merges out by default, as Hayase et al. do by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T", str, bytes)

WHITESPACE = frozenset(" \t\n\r\u2581\u3000\u00a0\f\v")
"""Characters a hand-inserted whitespace run is made of (``▁`` is SentencePiece's space)."""


def is_whitespace_run(token: str | bytes) -> bool:
    """Whether a token (text, or UTF-8 bytes) is whitespace only."""
    text = token.decode("utf-8", errors="replace") if isinstance(token, bytes) else token
    return bool(text) and all(ch in WHITESPACE for ch in text)


@dataclass(frozen=True)
class HandInserted(Generic[T]):
    """What :func:`find_hand_inserted` found in a file's merge list."""

    n_merges: int
    """How many leading merges of the file's list are hand-inserted."""
    tokens: tuple[T, ...]
    """The distinct tokens those merges make, shortest first (an order replay can make)."""
    out_of_order: int
    """Merges anywhere in the list whose part is first made by a later merge."""


def first_made(merges: Sequence[tuple[T, T]]) -> dict[T, int]:
    """Each product's first merge index."""
    out: dict[T, int] = {}
    for i, (left, right) in enumerate(merges):
        out.setdefault(left + right, i)
    return out


def out_of_order(merges: Sequence[tuple[T, T]], base: Collection[T]) -> list[int]:
    """Indices of merges with a part that is not a base symbol and is first made later."""
    made = first_made(merges)
    return [
        i
        for i, (left, right) in enumerate(merges)
        if any(part not in base and made.get(part, -1) > i for part in (left, right))
    ]


def find_hand_inserted(
    merges: Sequence[tuple[T, T]],
    base: Collection[T],
    *,
    is_run: Callable[[T], bool] = is_whitespace_run,
) -> HandInserted[T]:
    """The hand-inserted head of a merge list (see the module docstring); ``n_merges`` is 0
    when the list has none."""
    late = out_of_order(merges, base)
    runs = 0
    while runs < len(merges) and is_run(merges[runs][0] + merges[runs][1]):
        runs += 1
    late_runs = [i for i in late if i < runs]
    if not late_runs:
        return HandInserted(0, (), len(late))
    head = late_runs[-1] + 1  # trained whitespace merges may follow the inserted block
    products = list(dict.fromkeys(left + right for left, right in merges[:head]))
    vocabulary = set(first_made(merges))
    return HandInserted(head, _closed(products, base, vocabulary, is_run), len(late))


def _closed(
    tokens: list[T], base: Collection[T], vocabulary: Collection[T], is_run: Callable[[T], bool]
) -> tuple[T, ...]:
    """``tokens`` plus the runs needed to make them, shortest first, so replay can make each
    from base symbols and earlier ones. Gemma's head lists tab runs of 3..31 but makes
    ``"\t\t"`` only after its first trained merge; that run joins the head."""
    have = set(tokens)
    pending = sorted(have, key=len)
    while pending:
        token = pending.pop()
        if _makeable(token, base, have):
            continue
        for i in range(1, len(token)):
            parts = [p for p in (token[:i], token[i:]) if p not in base and p not in have]
            if all(p in vocabulary and is_run(p) for p in parts):
                have.update(parts)
                pending.extend(parts)
                break
    ordered = sorted(have, key=len)
    first = {t: i for i, t in enumerate(tokens)}
    return tuple(sorted(ordered, key=lambda t: (len(t), first.get(t, len(first)))))


def _makeable(token: T, base: Collection[T], have: Collection[T]) -> bool:
    return any(
        (token[:i] in base or token[:i] in have) and (token[i:] in base or token[i:] in have)
        for i in range(1, len(token))
    )
