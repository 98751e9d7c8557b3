"""The mixture LP's data: category trajectories merged onto one pair universe (ARCHITECTURE.md §5).

Pure arrays: the solver sweeps the merged rows step by step; nothing here touches a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tokmix.bpe.replay import PairTrajectory
from tokmix.errors import SolverError


@dataclass(frozen=True)
class MixtureProblem:
    """Everything the LP needs about ``n`` categories over steps ``first_step .. last_step``.

    Pairs are renumbered ``0 .. n_pairs-1`` (``pair_left``/``pair_right`` give their symbol
    ids). ``rows_*`` hold every category's trajectory rows sorted by step; rows of step ``s``
    are ``rows_[step_start[s - first_step + 1] : step_start[s - first_step + 2]]`` (the
    snapshot rows, step ``first_step - 1``, come first). ``merge_pair[k]`` is the pair index of
    merge ``first_step + k``, or -1 when that pair occurs in no category.
    """

    categories: tuple[str, ...]
    pairs_: np.ndarray  # int64, d_i: total initial pair count per category
    bytes_: np.ndarray  # int64, sample bytes per category
    first_step: int
    last_step: int
    pair_left: np.ndarray  # int32
    pair_right: np.ndarray  # int32
    rows_pair: np.ndarray  # int64
    rows_cat: np.ndarray  # int32
    rows_delta: np.ndarray  # int64
    step_start: np.ndarray  # int64, len = n_steps + 2
    merge_pair: np.ndarray  # int64, len = n_steps

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    @property
    def n_steps(self) -> int:
        return self.last_step - self.first_step + 1

    @property
    def n_pairs(self) -> int:
        return len(self.pair_left)

    @property
    def missing_steps(self) -> np.ndarray:
        """Steps whose merge occurs in no category: they get no constraints."""
        return self.first_step + np.flatnonzero(self.merge_pair < 0)


def build_problem(
    trajectories: Mapping[str, PairTrajectory],
    merge_ids: np.ndarray,
    bytes_: Mapping[str, int],
) -> MixtureProblem:
    """Merge per-category trajectories (same step range) and the merge list's ``(M, 3)`` ids."""
    if not trajectories:
        raise SolverError("no categories to solve for")
    names = tuple(trajectories)
    first = {t.first_step for t in trajectories.values()}
    last = {t.last_step for t in trajectories.values()}
    if len(first) != 1 or len(last) != 1:
        raise SolverError(f"trajectories cover different merge ranges: {first} .. {last}")
    first_step, last_step = first.pop(), last.pop()
    if last_step > len(merge_ids):
        raise SolverError(
            f"trajectories reach step {last_step}, the merge list has {len(merge_ids)}"
        )
    for name, traj in trajectories.items():
        if traj.pairs <= 0:
            raise SolverError(f"category {name!r} has no symbol pairs: its sample is empty")

    step = np.concatenate([t.step for t in trajectories.values()])
    left = np.concatenate([t.left for t in trajectories.values()]).astype(np.int64)
    right = np.concatenate([t.right for t in trajectories.values()]).astype(np.int64)
    delta = np.concatenate([t.delta for t in trajectories.values()])
    cat = np.concatenate(
        [np.full(len(t), i, dtype=np.int32) for i, t in enumerate(trajectories.values())]
    )
    keys = (left << 32) | right
    steps_merges = merge_ids[first_step - 1 : last_step]
    merge_keys = (steps_merges[:, 0].astype(np.int64) << 32) | steps_merges[:, 1].astype(np.int64)
    universe, rows_pair = np.unique(keys, return_inverse=True)
    pos = np.searchsorted(universe, merge_keys)
    pos_clipped = np.minimum(pos, max(len(universe) - 1, 0))
    found = (len(universe) > 0) & (universe[pos_clipped] == merge_keys)
    merge_pair = np.where(found, pos_clipped, -1).astype(np.int64)

    order = np.argsort(step, kind="stable")
    local_step = step[order].astype(np.int64) - (first_step - 1)
    step_start = np.searchsorted(local_step, np.arange(last_step - first_step + 3)).astype(np.int64)
    return MixtureProblem(
        categories=names,
        pairs_=np.array([t.pairs for t in trajectories.values()], dtype=np.int64),
        bytes_=np.array([int(bytes_[n]) for n in names], dtype=np.int64),
        first_step=first_step,
        last_step=last_step,
        pair_left=(universe >> 32).astype(np.int32),
        pair_right=(universe & 0xFFFFFFFF).astype(np.int32),
        rows_pair=rows_pair.astype(np.int64)[order],
        rows_cat=cat[order],
        rows_delta=delta[order],
        step_start=step_start,
        merge_pair=merge_pair,
    )


def byte_shares(alpha: np.ndarray, problem: MixtureProblem) -> np.ndarray:
    """``beta_i ∝ alpha_i * bytes_i / pairs_i``: the share of training bytes (ARCHITECTURE.md
    §5)."""
    raw = alpha * problem.bytes_ / problem.pairs_
    total = raw.sum()
    return raw / total if total > 0 else raw
