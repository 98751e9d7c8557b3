"""The mixture LP's rows without a ``pairs x categories`` count matrix.

:mod:`tokmix.solvers.violations` replays every category's counts densely (``pairs x
categories`` integers), which at 150 categories and millions of pairs no longer fits. The lazy
LP (:mod:`tokmix.solvers.mixture_lp`) needs two things only:

- the violated ``(step, pair)`` rows of a candidate ``(α, v)``: the sweep here replays the
  *mixed* frequency ``g(p) = Σ_i α_i f_i(p)`` directly, one float per pair, adding each row's
  ``α_i scale_i delta``; a total count per pair says whether the pair is present;
- the frequencies behind the rows it keeps: :class:`PairHistory` holds each (pair,
  category)'s running count by step, so a pair's counts at step ``t`` (its *version*, the
  master's variable ``x = Σ_i α_i f_i``) are one binary search per category holding the pair.

Memory is linear in the trajectory rows; nothing grows as steps x pairs x categories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from tokmix.solvers.problem import MixtureProblem
from tokmix.solvers.violations import _heap_push, _held_buffers, _pop_violated


@nb.njit(cache=True)
def _sweep_mixed(
    rows_pair,
    rows_cat,
    rows_delta,
    step_start,
    merge_pair,
    n_pairs,
    weight,
    v_step,
    v_pair,
    limit,
    tol,
):
    g = np.zeros(n_pairs, dtype=np.float64)
    total = np.zeros(n_pairs, dtype=np.int64)
    version = np.zeros(n_pairs, dtype=np.int64)
    heap = (np.empty(1024, np.float64), np.empty(1024, np.int64), np.empty(1024, np.int64), 0)
    touched = np.zeros(n_pairs, dtype=np.int64)
    touched_mark = np.full(n_pairs, -1, dtype=np.int64)
    out = (np.empty(1024, np.int64), np.empty(1024, np.int64), np.empty(1024, np.float64), 0)
    held = _held_buffers(limit)
    n_steps = len(merge_pair)
    missing = np.zeros(n_steps, dtype=np.bool_)
    for k in range(n_steps):
        n_touched = 0
        for r in range(step_start[k], step_start[k + 1]):
            p = rows_pair[r]
            g[p] += weight[rows_cat[r]] * rows_delta[r]
            total[p] += rows_delta[r]
            if touched_mark[p] != k:
                touched_mark[p] = k
                touched[n_touched] = p
                n_touched += 1
        for j in range(n_touched):
            p = touched[j]
            if total[p] == 0:
                g[p] = 0.0  # no rounding residue on absent pairs
            version[p] += 1
            if g[p] > 0.0:
                hv, hp, hver, size = heap
                heap = _heap_push(hv, hp, hver, size, g[p] - v_pair[p], p, version[p])
        m = merge_pair[k]
        if m < 0 or total[m] == 0:
            missing[k] = True
            continue
        threshold = g[m] + v_step[k] + tol
        heap, out = _pop_violated(heap, version, held, out, k, m, threshold, limit[k], tol)
    out_step, out_pair, out_excess, n_out = out
    return out_step[:n_out], out_pair[:n_out], out_excess[:n_out], missing


def find_violated_edges(
    problem: MixtureProblem,
    alpha: np.ndarray,
    v_step: np.ndarray,
    v_pair: np.ndarray,
    scale: np.ndarray,
    *,
    per_step: int | np.ndarray,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``(local step, pair, excess)`` that ``(α, v)`` violates by more than ``tol``, at
    most ``per_step`` per step (most violated first), and the per-step flag of merges absent
    from every category; as :func:`tokmix.solvers.violations.find_violations` without the
    coefficients and without its ``pairs x categories`` count matrix."""
    return _sweep_mixed(
        problem.rows_pair,
        problem.rows_cat,
        problem.rows_delta,
        problem.step_start,
        problem.merge_pair,
        problem.n_pairs,
        np.ascontiguousarray(alpha * scale, dtype=np.float64),
        np.ascontiguousarray(v_step, dtype=np.float64),
        np.ascontiguousarray(v_pair, dtype=np.float64),
        np.broadcast_to(np.asarray(per_step, dtype=np.int64), (problem.n_steps,)).copy(),
        float(tol),
    )


@nb.njit(cache=True)
def _end_at(h_group_step, lo, hi, k):
    """One past the last history row in ``lo .. hi`` with row group ``<= k``."""
    a, b = lo, hi
    while a < b:
        mid = (a + b) // 2
        if h_group_step[mid] <= k:
            a = mid + 1
        else:
            b = mid
    return a


@nb.njit(cache=True)
def _frequencies(group_first, pair_group, h_group_step, h_cum, group_cat, pairs, steps, scale):
    n = len(scale)
    out = np.zeros((len(steps), n), dtype=np.float64)
    for e in range(len(steps)):
        k = steps[e]
        p = pairs[e]
        for gi in range(pair_group[p], pair_group[p + 1]):
            lo, hi = group_first[gi], group_first[gi + 1]
            a = _end_at(h_group_step, lo, hi, k)
            if a > lo:
                c = group_cat[gi]
                out[e, c] = h_cum[a - 1] * scale[c]
    return out


@nb.njit(cache=True)
def _merge_present(group_first, pair_group, h_group_step, h_cum, merge_pair, steps):
    out = np.zeros(len(steps), dtype=np.bool_)
    for e in range(len(steps)):
        k = steps[e]
        m = merge_pair[k]
        if m < 0:
            continue
        for gi in range(pair_group[m], pair_group[m + 1]):
            lo, hi = group_first[gi], group_first[gi + 1]
            a = _end_at(h_group_step, lo, hi, k)
            if a > lo and h_cum[a - 1] != 0:
                out[e] = True
                break
    return out


@dataclass(frozen=True)
class PairHistory:
    """Each (pair, category)'s running count by step: the rows' coefficients on demand.

    History rows are the problem's rows sorted by (pair, category, step) with their running
    sum; ``group_first`` starts each (pair, category) run, ``pair_group`` each pair's runs.
    A row's step is its group in ``step_start`` (0 = the snapshot), as the sweeps count it:
    at local step ``k`` the counts are the sums of the rows of groups ``0 .. k``."""

    group_first: np.ndarray
    pair_group: np.ndarray
    group_cat: np.ndarray
    step: np.ndarray
    cum: np.ndarray
    events: np.ndarray  # sorted ``pair * n_groups + group`` where some count of the pair changes
    n_groups: int

    @classmethod
    def build(cls, problem: MixtureProblem) -> PairHistory:
        row_step = np.repeat(
            np.arange(len(problem.step_start) - 1, dtype=np.int32), np.diff(problem.step_start)
        )
        order = np.lexsort((row_step, problem.rows_cat, problem.rows_pair))
        pair = problem.rows_pair[order]
        cat = problem.rows_cat[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (pair[1:] != pair[:-1]) | (cat[1:] != cat[:-1])
        first = np.flatnonzero(new)
        cum = np.cumsum(problem.rows_delta[order])
        before = np.r_[0, cum][first]
        cum -= np.repeat(before, np.diff(np.r_[first, len(order)]))
        pair_group = np.searchsorted(pair[first], np.arange(problem.n_pairs + 1))
        n_groups = len(problem.step_start) - 1
        events = np.unique(problem.rows_pair.astype(np.int64) * n_groups + row_step)
        return cls(
            events=events,
            n_groups=n_groups,
            group_first=np.r_[first, len(order)].astype(np.int64),
            pair_group=pair_group.astype(np.int64),
            group_cat=cat[first].astype(np.int64),
            step=row_step[order],
            cum=cum,
        )

    def versions(self, steps: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """The *version* of each pair at each local step: the index in :attr:`events` of the
        last change of its counts at or before the step. Rows that see the same version of a
        pair see the same frequencies, so the LP can share one variable for them
        (:class:`tokmix.solvers.restricted_lp.RestrictedLP`)."""
        keys = np.asarray(pairs, dtype=np.int64) * self.n_groups + np.asarray(steps, np.int64)
        return np.searchsorted(self.events, keys, side="right") - 1

    def frequencies(self, version: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """``f_i(p) * scale_i`` of each pair version, one row of ``n`` categories each."""
        key = self.events[np.asarray(version, dtype=np.int64)]
        return _frequencies(
            self.group_first,
            self.pair_group,
            self.step,
            self.cum,
            self.group_cat,
            key // self.n_groups,
            key % self.n_groups,
            np.ascontiguousarray(scale, dtype=np.float64),
        )

    def merge_present(self, problem: MixtureProblem, steps: np.ndarray) -> np.ndarray:
        """Per local step, whether its merge occurs in some category at that step: the steps
        that have rows at all (as the sweeps' ``missing`` flag, negated)."""
        return _merge_present(
            self.group_first,
            self.pair_group,
            self.step,
            self.cum,
            problem.merge_pair,
            np.asarray(steps, dtype=np.int64),
        )
