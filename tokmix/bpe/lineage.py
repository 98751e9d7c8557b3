"""Lineage: one tokenizer's merge list continuing another's.

Llama 3's first 100 000 merges are cl100k's: Meta extended GPT-4's tokenizer with 28 000 merges
trained on their own data. Inferring a mixture over the whole list would mix two trainings; the
extension alone says what Meta added (Hayase et al. report 48.5 % non-English for it). Replay
lists compare exactly across formats (byte pairs, one per token, in training order), so the
test is the length of the common prefix. :func:`find_lineage` reports every pair of tokenizers
sharing a long prefix; :func:`base_of` picks, for one tokenizer, the longest known base it
extends (``--merge-range auto`` then solves merges ``base.n_merges + 1 ..`` only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokmix.bpe.merges import MergeList
from tokmix.bpe.tokenizer import LoadedTokenizer

MIN_SHARED = 1000
"""A prefix shorter than this is not lineage (small lists of any two byte-level BPEs trained
on English share their first few dozen merges)."""


def shared_prefix(a: MergeList, b: MergeList) -> int:
    """How many leading merges two replay lists have in common (0 across alphabets)."""
    if a.alphabet != b.alphabet or a.base != b.base:
        return 0
    n = 0
    for left, right in zip(a.merges, b.merges, strict=False):
        if left != right:
            break
        n += 1
    return n


@dataclass(frozen=True)
class Lineage:
    """``child``'s merge list starts with ``shared`` of ``base``'s merges."""

    base: str
    child: str
    shared: int
    base_merges: int
    child_merges: int

    @property
    def extends(self) -> bool:
        """The whole base list starts the child's: the child is the base plus an extension."""
        return self.shared == self.base_merges < self.child_merges

    @property
    def extension(self) -> tuple[int, int]:
        """The merge range ``A:B`` of what the child added (the ``--merge-range auto``)."""
        return self.shared, self.child_merges

    def describe(self) -> str:
        if self.extends:
            return (
                f"{self.child} extends {self.base}: its first {self.shared} merges are "
                f"{self.base}'s whole list; merges {self.shared + 1}..{self.child_merges} are "
                f"its own (--merge-range auto solves {self.shared}:{self.child_merges})"
            )
        if self.shared == self.base_merges == self.child_merges:
            return f"{self.child} and {self.base} have the same {self.shared} merges"
        return (
            f"{self.child} shares its first {self.shared} merges with {self.base} "
            f"({self.base_merges} merges), then diverges"
        )


def lineage_of(child: LoadedTokenizer, base: LoadedTokenizer) -> Lineage:
    shared = shared_prefix(base.merge_list, child.merge_list)
    return Lineage(base.name, child.name, shared, base.n_merges, child.n_merges)


def find_lineage(
    tokenizers: Sequence[LoadedTokenizer], min_shared: int = MIN_SHARED
) -> list[Lineage]:
    """Every ordered pair (base, child) with a common prefix of at least ``min_shared`` merges;
    the shorter list is the base (equal lists are reported once)."""
    out = []
    for i, a in enumerate(tokenizers):
        for b in tokenizers[i + 1 :]:
            base, child = (a, b) if a.n_merges <= b.n_merges else (b, a)
            found = lineage_of(child, base)
            if found.shared >= min_shared:
                out.append(found)
    return out


def base_of(
    tokenizer: LoadedTokenizer, known: Sequence[LoadedTokenizer], min_shared: int = MIN_SHARED
) -> Lineage | None:
    """The longest known tokenizer whose whole merge list starts ``tokenizer``'s, if any."""
    best = None
    for base in known:
        if base.sha256 == tokenizer.sha256:
            continue
        found = lineage_of(tokenizer, base)
        if (
            found.extends
            and found.shared >= min_shared
            and (best is None or found.shared > best.shared)
        ):
            best = found
    return best
