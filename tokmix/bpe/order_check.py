"""Is a merge list in training order? A data check against a shuffled control.

A defence against mixture inference ("Train It and Forget It", EMNLP 2025) ships merge lists
that are not in training order (shuffled, sorted, truncated); the LP then fits noise and prints
a confident mixture. BPE training applies, at each step, the most frequent pair of its data, so
on text like its training data the count of the applied pair at application time,
``c_t(m_t)``, falls as ``t`` grows. :func:`check_merge_order` measures that trend as a rank
correlation (``fit`` = minus Spearman's rho of ``t`` and ``c_t(m_t)``: near 1 for a training
order, near 0 for an arbitrary one) over the first merges, on the samples, for the file's order
and for random valid orders of the same merges (the control). A file order that does not fit
clearly better than its control is flagged.

Also here: :func:`replayable_order` (the file's order with each merge moved after the merges
that make its parts, so any listed order can be replayed) and :func:`random_valid_order`.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy.stats import spearmanr

from tokmix.bpe.merges import MergeList
from tokmix.bpe.replay import PairTrajectory, replay_merges

T = TypeVar("T", str, bytes)

MIN_FIT = 0.5
"""Below this fit the order is flagged whatever the control says."""
MIN_MARGIN = 0.15
"""The file's fit must beat the shuffled control's by this much."""


def _dependencies(merges: Sequence[tuple[T, T]], base: Collection[T]) -> list[list[int]]:
    """For each merge, the indices of the merges that first make its non-base parts."""
    made: dict[T, int] = {}
    for i, (left, right) in enumerate(merges):
        made.setdefault(left + right, i)
    return [
        [made[p] for p in (left, right) if p not in base and p in made and made[p] != i]
        for i, (left, right) in enumerate(merges)
    ]


def _topological(
    merges: Sequence[tuple[T, T]], base: Collection[T], keys: Sequence[float]
) -> list[int]:
    """Kahn's order of the merges, the smallest key first among those whose parts exist."""
    deps = _dependencies(merges, base)
    waiting = [len(set(d)) for d in deps]
    users: list[list[int]] = [[] for _ in merges]
    for i, d in enumerate(deps):
        for j in set(d):
            users[j].append(i)
    ready = [(keys[i], i) for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (keys[u], u))
    return order  # merges whose parts are never made are left out


def replayable_order(merges: Sequence[tuple[T, T]], base: Collection[T]) -> list[tuple[T, T]]:
    """The listed order, with each merge delayed until the merges making its parts are in (the
    identity for a list in training order)."""
    return [merges[i] for i in _topological(merges, base, range(len(merges)))]


def random_valid_order(
    merges: Sequence[tuple[T, T]], base: Collection[T], rng: np.random.Generator
) -> list[tuple[T, T]]:
    """A uniformly random priority order of the merges that replay can still make."""
    return [merges[i] for i in _topological(merges, base, rng.random(len(merges)).tolist())]


def applied_pair_counts(trajectory: PairTrajectory, merge_list: MergeList) -> np.ndarray:
    """``c_t(m_t)`` for ``t = first_step .. last_step``: the applied pair's count when applied."""
    first, last = trajectory.first_step, trajectory.last_step
    ids = merge_list.merge_ids[first - 1 : last].astype(np.int64)
    merge_keys = (ids[:, 0] << 32) | ids[:, 1]
    row_keys = (trajectory.left.astype(np.int64) << 32) | trajectory.right.astype(np.int64)
    keep = np.isin(row_keys, merge_keys)
    by_key: dict[int, list[tuple[int, int]]] = {}
    for key, step, delta in zip(
        row_keys[keep], trajectory.step[keep], trajectory.delta[keep], strict=True
    ):
        by_key.setdefault(int(key), []).append((int(step), int(delta)))
    out = np.zeros(len(merge_keys), dtype=np.int64)
    for n, key in enumerate(merge_keys.tolist()):
        t = first + n
        out[n] = sum(d for s, d in by_key.get(key, ()) if s < t)
    return out


def order_fit(words: Mapping[bytes, int], merge_list: MergeList, n_steps: int) -> float:
    """``-rho(t, c_t(m_t))`` over the first ``n_steps`` merges replayed on ``words``."""
    steps = min(n_steps, len(merge_list))
    if steps < 3:
        return float("nan")
    trajectory = replay_merges(words, merge_list, first_step=1, last_step=steps)
    counts = applied_pair_counts(trajectory, merge_list)
    if np.all(counts == counts[0]):
        return 0.0
    rho = spearmanr(np.arange(steps), counts).statistic
    return float(-rho)


@dataclass(frozen=True)
class OrderCheck:
    """The merge-order diagnostic: the file's fit, its shuffled controls', the verdict."""

    n_steps: int
    fit: float
    control_fit: float
    """Mean fit of random valid orders of the same merges."""

    @property
    def in_training_order(self) -> bool:
        return self.fit >= MIN_FIT and self.fit - self.control_fit >= MIN_MARGIN

    def warning(self) -> str | None:
        if self.in_training_order:
            return None
        return (
            f"the merge list does not look like a training order: over its first "
            f"{self.n_steps} merges the applied pair's count falls with a fit of {self.fit:.2f} "
            f"(a shuffled control of the same merges: {self.control_fit:.2f}; training orders "
            f"fit >= {MIN_FIT}); the mixture below is not trustworthy"
        )

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "n_steps": self.n_steps,
            "fit": self.fit,
            "control_fit": self.control_fit,
            "in_training_order": self.in_training_order,
        }


def check_merge_order(
    words: Mapping[bytes, int],
    merge_list: MergeList,
    *,
    n_steps: int = 2000,
    n_controls: int = 2,
    seed: int = 0,
) -> OrderCheck:
    """Fit of the file's first ``n_steps`` merges on ``words`` against random valid orders of
    the same merges (see the module docstring)."""
    steps = min(n_steps, len(merge_list))
    head = merge_list.truncated(steps)
    fit = order_fit(words, head, steps)
    rng = np.random.default_rng(seed)
    controls = []
    for _ in range(n_controls):
        shuffled = random_valid_order(head.merges, set(head.base), rng)
        control = MergeList(head.base, tuple(shuffled), head.alphabet)
        controls.append(order_fit(words, control, steps))
    return OrderCheck(steps, fit, float(np.mean(controls)))
