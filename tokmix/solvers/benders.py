"""The mixture LP by cutting planes on α: Benders decomposition with a trust region.

The LP (:mod:`tokmix.solvers.mixture_lp`) couples its steps only through the ``n`` mixture
weights. For a fixed α what is left is a *cover* problem between steps and pairs,

    g(α) = min  Σ_t w_t v_t + Σ_p w_p v_p   s.t.  v_t + v_p >= d_tp(α),  v >= 0,
    d_tp(α) = Σ_i α_i (f_{i,t}(p) - f_{i,t}(m_t)),

whose dual is a transportation problem (``max Σ d_tp y_tp``, ``Σ_p y_tp <= w_t``,
``Σ_t y_tp <= w_p``, ``y >= 0``). Its feasible set does not depend on α, so every dual
solution ``y`` gives a linear function ``c(y)·α <= g(α)`` valid for all α, exact at the α it
was solved for: ``g`` is convex and piecewise linear, and the LP is ``min g`` over the simplex.

Here that minimum is found in ``n`` (30-150) dimensions: the master keeps the cuts ``θ >= c_k·α``
(a tiny HiGHS LP); the next α minimizes the cut model within a box around the best α so far
(a trust region: without it the cutting planes zigzag across the simplex); ``g`` is evaluated
there by the cover LP, a HiGHS network LP (two nonzeros a row, no dense α columns) whose rows
are generated lazily by a sweep (:mod:`tokmix.solvers.edges`) and whose basis stays dual
feasible when α moves (only its right-hand sides change), so it re-solves warm. The solve
stops when the best ``g`` found is within ``gap`` (relative) of the cut model's minimum over the
whole simplex, a lower bound on the optimum: the same optimum as the full LP, certified.

Rows found for one solve serve the next (:class:`WarmStart`): the noise-scaled LP starts from
the paper LP's α and rows, each bootstrap replicate from the point estimate's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np

from tokmix.errors import SolverError
from tokmix.solvers.edges import PairHistory, find_violated_edges
from tokmix.solvers.problem import MixtureProblem

Log = Callable[[str], None]


@dataclass(frozen=True)
class WarmStart:
    """Where a solve may start: an α and the rows that mattered, as ``(local step, pair
    key)`` with ``key = left << 32 | right`` (pair numbers differ between problems)."""

    alpha: np.ndarray
    step: np.ndarray
    pair_key: np.ndarray

    def rows_for(self, problem: MixtureProblem) -> tuple[np.ndarray, np.ndarray]:
        """The rows that exist in ``problem``: ``(local step, pair index)``."""
        universe = (problem.pair_left.astype(np.int64) << 32) | problem.pair_right.astype(np.int64)
        pos = np.minimum(np.searchsorted(universe, self.pair_key), max(len(universe) - 1, 0))
        ok = (len(universe) > 0) & (universe[pos] == self.pair_key) & (self.step < problem.n_steps)
        return self.step[ok], pos[ok]


def _highs(threads: int) -> highspy.Highs:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    h.setOptionValue("dual_feasibility_tolerance", 1e-9)
    return h


def _optimal(h: highspy.Highs, what: str) -> None:
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"HiGHS did not solve the {what}: {h.modelStatusToString(status)}")


class _CoverLP:
    """``min Σ w v  s.t.  v_t + v_p >= d_e(α)`` over the rows found so far (HiGHS).

    Row ``e`` holds ``coef[e] = f_t(m_t) - f_t(p)`` (scaled), so ``d_e(α) = -coef[e]·α``;
    a new α changes the right-hand sides only. Rows whose slack is basic are pruned after
    each evaluation (their dual is 0: the cuts and the optimum do not need them; a sweep brings
    back the ones a later α needs); a row pruned ``_PRUNES`` times stays, so it cannot cycle."""

    def __init__(
        self,
        n: int,
        n_steps: int,
        n_pairs: int,
        step_cost: np.ndarray,
        pair_cost: np.ndarray,
        threads: int,
    ) -> None:
        self.h = _highs(threads)
        self.n_pairs = n_pairs
        self.step_cost, self.pair_cost = step_cost, pair_cost
        self.step_col = np.full(n_steps, -1, dtype=np.int64)
        self.pair_col = np.full(n_pairs, -1, dtype=np.int64)
        self.step = np.zeros(0, dtype=np.int64)
        self.pair = np.zeros(0, dtype=np.int64)
        self.coef = np.zeros((0, n))
        self.sticky = np.zeros(0, dtype=bool)
        self.dropped = np.zeros(0, dtype=np.int64)  # sorted keys, once per prune
        self.distinct = 0
        self.pruned = 0

    def fresh(self, steps: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Mask of the rows not in the model yet (first occurrence of repeats)."""
        keys = steps * self.n_pairs + pairs
        _, first = np.unique(keys, return_index=True)
        once = np.zeros(len(keys), dtype=bool)
        once[first] = True
        return once & ~np.isin(keys, self.step * self.n_pairs + self.pair)

    def _columns(self, table: np.ndarray, keys: np.ndarray, cost: np.ndarray) -> np.ndarray:
        new = np.unique(keys[table[keys] < 0])
        if len(new):
            m = len(new)
            first = self.h.getNumCol()
            self.h.addCols(
                m,
                cost[new],
                np.zeros(m),
                np.full(m, highspy.kHighsInf),
                0,
                np.zeros(m, dtype=np.int32),
                np.zeros(0, dtype=np.int32),
                np.zeros(0),
            )
            table[new] = first + np.arange(m)
        return table[keys]

    def add(self, steps: np.ndarray, pairs: np.ndarray, coefs: np.ndarray) -> None:
        m = len(steps)
        if m == 0:
            return
        keys = steps * self.n_pairs + pairs
        times = np.searchsorted(self.dropped, keys, "right") - np.searchsorted(self.dropped, keys)
        self.distinct += int((times == 0).sum())
        index = np.empty((m, 2), dtype=np.int32)
        index[:, 0] = self._columns(self.step_col, steps, self.step_cost)
        index[:, 1] = self._columns(self.pair_col, pairs, self.pair_cost)
        self.h.addRows(
            m,
            np.zeros(m),
            np.full(m, highspy.kHighsInf),
            2 * m,
            np.arange(0, 2 * m, 2, dtype=np.int32),
            index.ravel(),
            np.ones(2 * m),
        )
        self.step = np.concatenate([self.step, steps])
        self.pair = np.concatenate([self.pair, pairs])
        self.coef = np.concatenate([self.coef, coefs])
        self.sticky = np.concatenate([self.sticky, times >= _PRUNES])

    def prune(self) -> None:
        status = self.h.getBasis().row_status
        basic = np.fromiter(map(int, status), np.int8, len(status)) == _BASIC
        drop = basic & ~self.sticky
        if not drop.any():
            return
        rows = np.flatnonzero(drop)
        self.h.deleteRows(len(rows), rows.astype(np.int32))
        keys = self.step[rows] * self.n_pairs + self.pair[rows]
        self.dropped = np.sort(np.concatenate([self.dropped, keys]), kind="stable")
        keep = ~drop
        self.step, self.pair = self.step[keep], self.pair[keep]
        self.coef, self.sticky = self.coef[keep], self.sticky[keep]
        self.pruned += len(rows)

    def solve(self, alpha: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """``g_E(α)``, ``v`` per step and per pair, and the row duals ``y``."""
        m = len(self.step)
        if m == 0:
            return 0.0, np.zeros(len(self.step_col)), np.zeros(self.n_pairs), np.zeros(0)
        rhs = -(self.coef @ alpha)
        self.h.changeRowsBounds(
            m, np.arange(m, dtype=np.int32), rhs, np.full(m, highspy.kHighsInf)
        )
        _optimal(self.h, "cover LP")
        sol = self.h.getSolution()
        x = np.asarray(sol.col_value)
        y = np.clip(np.asarray(sol.row_dual), 0.0, None)
        v_step = np.where(self.step_col >= 0, x[self.step_col], 0.0)
        v_pair = np.where(self.pair_col >= 0, x[self.pair_col], 0.0)
        return float(self.h.getInfo().objective_function_value), v_step, v_pair, y


_BASIC = int(highspy.HighsBasisStatus.kBasic)
_PRUNES = 3


class _Master:
    """``min θ  s.t.  θ >= c_k·α`` for every cut, α in the simplex (and a box), ``θ >= 0``."""

    def __init__(self, n: int, threads: int) -> None:
        self.h = _highs(threads)
        self.n = n
        self.h.addVars(n + 1, np.zeros(n + 1), np.r_[np.ones(n), highspy.kHighsInf])
        self.h.changeColCost(n, 1.0)
        self.h.addRow(1.0, 1.0, n, np.arange(n, dtype=np.int32), np.ones(n))
        self.cuts = 0

    def add_cut(self, c: np.ndarray) -> None:
        idx = np.arange(self.n + 1, dtype=np.int32)
        self.h.addRow(0.0, highspy.kHighsInf, self.n + 1, idx, np.r_[-c, 1.0])
        self.cuts += 1

    def solve(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
        idx = np.arange(self.n, dtype=np.int32)
        self.h.changeColsBounds(self.n, idx, lo, hi)
        _optimal(self.h, "master LP")
        x = np.asarray(self.h.getSolution().col_value)
        alpha = np.clip(x[: self.n], 0.0, None)
        return alpha / alpha.sum(), float(x[self.n])


@dataclass
class _Progress:
    log: Log | None
    every: float
    started: float
    last: float = 0.0

    def __post_init__(self) -> None:
        self.last = self.started
        self.lines: list[dict[str, Any]] = []

    def tick(self, force: bool = False, **figures: Any) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        entry = {"seconds": round(now - self.started, 1), **figures}
        self.lines.append(entry)
        if self.log is not None:
            self.log(
                "solve: "
                + ", ".join(
                    f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()
                )
            )


@dataclass(frozen=True)
class BendersResult:
    alpha: np.ndarray
    objective: float
    v_step: np.ndarray
    v_pair: np.ndarray
    warm: WarmStart
    diagnostics: dict[str, Any]


def solve_benders(
    problem: MixtureProblem,
    scale: np.ndarray,
    step_cost: np.ndarray,
    pair_cost: np.ndarray,
    *,
    start: WarmStart | None = None,
    per_step: int = 8,
    gap: float = 1e-7,
    tol: float = 1e-9,
    max_rounds: int = 10_000,
    threads: int = 1,
    radius: float | None = None,
    prune: bool = True,
    max_rows: int | None = 20_000,
    log: Log | None = None,
    log_every: float = 10.0,
) -> BendersResult:
    """Minimize ``g`` over the simplex (module docstring); costs per local step and per pair.

    ``gap``: stop when ``best g - lower bound <= gap * best g`` (plus ``tol`` absolute).
    ``per_step``: rows a sweep may add per step. ``radius``: the first trust region's
    half-width in α (default 0.25, or 0.05 from a warm start). ``log`` gets a progress line at
    least every ``log_every`` seconds of work."""
    started = time.perf_counter()
    n = problem.n_categories
    history = PairHistory.build(problem)
    cover = _CoverLP(n, problem.n_steps, problem.n_pairs, step_cost, pair_cost, threads)
    master = _Master(n, threads)
    limit = np.where(step_cost > 0, per_step, 0).astype(np.int64)
    progress = _Progress(log, log_every, started)
    sweep_seconds = cover_seconds = master_seconds = 0.0
    sweeps = 0
    missing = np.zeros(problem.n_steps, dtype=bool)

    def add_rows(steps: np.ndarray, pairs: np.ndarray) -> int:
        keep = (limit[steps] > 0) & (problem.merge_pair[steps] != pairs)
        steps, pairs = steps[keep], pairs[keep]
        fresh = cover.fresh(steps, pairs)
        steps, pairs = steps[fresh], pairs[fresh]
        cover.add(steps, pairs, history.coefficients(problem, steps, pairs, scale))
        return len(steps)

    def restricted(alpha: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """``g_E(α)`` over the rows found so far, and its cut (valid for ``g`` itself)."""
        nonlocal cover_seconds
        t0 = time.perf_counter()
        value, v_step, v_pair, y = cover.solve(alpha)
        if len(y):
            master.add_cut(-(y @ cover.coef))
        cover_seconds += time.perf_counter() - t0
        return value, v_step, v_pair

    def sweep(alpha: np.ndarray, v_step: np.ndarray, v_pair: np.ndarray) -> int:
        """Add the rows ``(α, v)`` violates (the ``max_rows`` most violated); how many."""
        nonlocal sweep_seconds, sweeps, missing
        t0 = time.perf_counter()
        steps, pairs, excess, missing = find_violated_edges(
            problem, alpha, v_step, v_pair, scale, per_step=limit, tol=tol
        )
        sweeps += 1
        if max_rows is not None and len(steps) > max_rows:
            top = np.argpartition(-excess, max_rows)[:max_rows]
            steps, pairs = steps[top], pairs[top]
        added = add_rows(steps, pairs)
        sweep_seconds += time.perf_counter() - t0
        return added

    if start is not None and len(start.alpha) == n:
        center = np.clip(np.asarray(start.alpha, dtype=np.float64), 0.0, None)
        center = center / center.sum() if center.sum() > 0 else np.full(n, 1.0 / n)
        add_rows(*start.rows_for(problem))
        width = 0.05 if radius is None else radius
    else:
        center = np.full(n, 1.0 / n)
        width = 0.25 if radius is None else radius
    best, v_step, v_pair = restricted(center)
    lower = 0.0
    rounds = serious = violated = 0
    inner = max(gap, 1e-3)  # the restricted problem's gap at which a sweep checks the rows
    for rounds in range(1, max_rounds + 1):
        t0 = time.perf_counter()
        _, lower = master.solve(np.zeros(n), np.ones(n))
        master_seconds += time.perf_counter() - t0
        progress.tick(
            round=rounds, objective=best, lower=lower, violated=violated, rows=len(cover.step)
        )
        if best - lower <= inner * abs(best) + tol:
            if prune:
                cover.prune()  # the center's solution stays optimal: those rows' duals are 0
            violated = sweep(center, v_step, v_pair)
            if violated:
                best, v_step, v_pair = restricted(center)  # more rows: g_E(center) grows
                continue
            if inner <= gap:
                break
            inner = gap
            continue
        t0 = time.perf_counter()
        lo, hi = np.clip(center - width, 0.0, 1.0), np.clip(center + width, 0.0, 1.0)
        trial, model = master.solve(lo, hi)
        master_seconds += time.perf_counter() - t0
        predicted = best - model
        if predicted <= gap * abs(best) + tol:
            width = min(1.0, 2 * width)  # the model is flat here: look further
            continue
        value, vs, vp = restricted(trial)
        if best - value >= 0.1 * predicted:
            serious += 1
            on_edge = np.abs(trial - center).max() >= 0.99 * width
            center, best, v_step, v_pair = trial, value, vs, vp
            if on_edge:
                width = min(1.0, 2 * width)
        else:
            width = max(width * 0.5, 1e-9)
            restricted(center)  # the center's basis again, for pruning and sweeps
    else:
        raise SolverError(f"the cutting planes did not converge in {max_rounds} rounds")
    progress.tick(force=log is not None, round=rounds, objective=best, lower=lower, done=True)
    kept = np.zeros(0, dtype=bool)
    if len(cover.step):
        _, _, _, y = cover.solve(center)
        kept = y > 0
    warm = WarmStart(
        alpha=center.copy(),
        step=cover.step[kept],
        pair_key=(problem.pair_left[cover.pair[kept]].astype(np.int64) << 32)
        | problem.pair_right[cover.pair[kept]].astype(np.int64),
    )
    missing_steps = (problem.first_step + np.flatnonzero(missing)).tolist()
    diagnostics = {
        "solver": "highs-benders",
        "rounds": rounds,
        "serious_steps": serious,
        "cuts": master.cuts,
        "sweeps": sweeps,
        "lower_bound": lower,
        "gap": gap,
        "constraints": cover.distinct,
        "constraints_pruned": cover.pruned,
        "constraints_kept": int(kept.sum()),
        "steps": problem.n_steps,
        "first_step": problem.first_step,
        "last_step": problem.last_step,
        "pairs": problem.n_pairs,
        "missing_merges": len(missing_steps),
        "missing_steps": missing_steps[:100],
        "slack_steps": int((v_step > tol).sum()),
        "slack_step_total": float(v_step.sum()),
        "slack_pair_total": float(v_pair.sum()),
        "sweep_seconds": round(sweep_seconds, 3),
        "lp_seconds": round(cover_seconds, 3),
        "master_seconds": round(master_seconds, 3),
        "progress": progress.lines,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return BendersResult(center, best, v_step, v_pair, warm, diagnostics)
