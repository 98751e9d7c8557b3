"""The mixture LP of Hayase et al. (DESIGN §5), solved by HiGHS with lazy constraints.

    minimize  Σ_t v_t + Σ_p v_p
    s.t.      Σ_i α_i (f_{i,t}(m_t) - f_{i,t}(p)) + v_t + v_p >= 0   for every step t, pair p != m_t
              α in the simplex, v >= 0

There are up to T x (pairs) constraints, so they are generated: solve with the constraints
found so far, sweep the α-weighted counts for violated ones (``tokmix.solvers.violations``),
add them, re-solve warm-started (HiGHS keeps its basis when rows and columns are added), until
a sweep finds none. :func:`solve_mixture_dense` writes every constraint out and hands the LP to
``scipy.optimize.linprog``: the reference for small instances.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from tokmix.errors import SolverError
from tokmix.solvers.problem import MixtureProblem, byte_shares
from tokmix.solvers.violations import find_violations


@dataclass(frozen=True)
class MixtureSolution:
    """α (pair units), β (byte shares) and how the solve went."""

    categories: tuple[str, ...]
    alpha: np.ndarray
    byte_share: np.ndarray
    objective: float
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "categories": [
                {"name": n, "weight": float(a), "byte_share": float(b)}
                for n, a, b in zip(self.categories, self.alpha, self.byte_share, strict=True)
            ],
            "diagnostics": {"objective": self.objective, **self.diagnostics},
        }


def frequency_scale(problem: MixtureProblem) -> np.ndarray:
    """Per-category factor from counts to normalized frequencies ``f = c / d_i``, times one
    global constant that puts the largest initial frequency near 1 (HiGHS' tolerances are
    absolute; raw frequencies of late merges are ~1e-7). The constant rescales the objective
    only, never α."""
    snap = slice(problem.step_start[0], problem.step_start[1])
    freq = problem.rows_delta[snap] / problem.pairs_[problem.rows_cat[snap]]
    top = float(freq.max()) if len(freq) else 1.0
    return 1.0 / (problem.pairs_.astype(np.float64) * top)


class _LazyLP:
    """The HiGHS model: the α columns, the simplex row, and lazily added v columns and rows.

    Rows and columns go in as whole CSR batches (one ``addRows``/``addCols`` call per round).
    Row ``r + 1`` of the model is the constraint ``row_key[r] = local_step * n_pairs + pair``;
    ``dropped`` holds the keys of rows that were pruned once: a row pruned and needed again
    stays for good, so pruning cannot cycle.
    """

    def __init__(
        self, n_categories: int, n_steps: int, n_pairs: int, *, threads: int, options: dict
    ) -> None:
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        for key, val in options.items():
            self.h.setOptionValue(key, val)
        self.h.setOptionValue("threads", threads)
        self.h.setOptionValue("primal_feasibility_tolerance", 1e-9)
        self.h.setOptionValue("dual_feasibility_tolerance", 1e-9)
        self.n = n_categories
        self.n_pairs = n_pairs
        self.h.addVars(n_categories, np.zeros(n_categories), np.ones(n_categories))
        idx = np.arange(n_categories, dtype=np.int32)
        self.h.addRow(1.0, 1.0, n_categories, idx, np.ones(n_categories))
        self.step_col = np.full(n_steps, -1, dtype=np.int64)
        self.pair_col = np.full(n_pairs, -1, dtype=np.int64)
        self.row_key = np.zeros(0, dtype=np.int64)
        self.row_sticky = np.zeros(0, dtype=bool)
        self.dropped = np.zeros(0, dtype=np.int64)  # sorted
        self.distinct = 0  # distinct constraints ever added

    def _columns(self, table: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """The v column of each key, creating the missing ones (cost 1, v >= 0) in one call."""
        new = np.unique(keys[table[keys] < 0])
        if len(new):
            first = self.h.getNumCol()
            m = len(new)
            self.h.addCols(
                m,
                np.ones(m),
                np.zeros(m),
                np.full(m, highspy.kHighsInf),
                0,
                np.zeros(m, dtype=np.int32),
                np.zeros(0, dtype=np.int32),
                np.zeros(0),
            )
            table[new] = first + np.arange(m)
        return table[keys]

    def add(self, steps: np.ndarray, pairs: np.ndarray, coefs: np.ndarray) -> int:
        """Add the constraints not in the model; returns how many were new."""
        keys = steps * self.n_pairs + pairs
        fresh = ~np.isin(keys, self.row_key)
        if not fresh.any():
            return 0
        keys, steps, pairs, coefs = keys[fresh], steps[fresh], pairs[fresh], coefs[fresh]
        again = np.isin(keys, self.dropped, assume_unique=True)
        self.distinct += int((~again).sum())
        m, n = coefs.shape
        index = np.empty((m, n + 2), dtype=np.int32)
        index[:, :n] = np.arange(n, dtype=np.int32)
        index[:, n] = self._columns(self.step_col, steps)
        index[:, n + 1] = self._columns(self.pair_col, pairs)
        value = np.ones((m, n + 2))
        value[:, :n] = coefs
        nonzero = value != 0.0
        starts = np.zeros(m, dtype=np.int32)
        np.cumsum(nonzero.sum(axis=1)[:-1], out=starts[1:])
        self.h.addRows(
            m,
            np.zeros(m),
            np.full(m, highspy.kHighsInf),
            int(nonzero.sum()),
            starts,
            index[nonzero],
            value[nonzero],
        )
        self.row_key = np.concatenate([self.row_key, keys])
        self.row_sticky = np.concatenate([self.row_sticky, again])
        return m

    def prune(self, slack: float) -> int:
        """Delete rows whose slack is basic (the basis stays valid and optimal) and that were
        never pruned before; ``slack < 0``: every basic row, else only rows with activity above
        ``slack``. Returns how many."""
        if slack < 0:
            status = self.h.getBasis().row_status
            basic = np.fromiter(map(int, status), np.int8, len(status))[1:] == 1
        else:
            basic = np.asarray(self.h.getSolution().row_value)[1:] > slack
        drop = basic & ~self.row_sticky
        if not drop.any():
            return 0
        rows = np.flatnonzero(drop)
        self.h.deleteRows(len(rows), (rows + 1).astype(np.int32))
        self.dropped = np.union1d(self.dropped, self.row_key[rows])
        self.row_key = self.row_key[~drop]
        self.row_sticky = self.row_sticky[~drop]
        return len(rows)

    def solve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        self.h.run()
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverError(
                f"HiGHS did not reach an optimum: {self.h.modelStatusToString(status)}"
            )
        x = np.asarray(self.h.getSolution().col_value)
        alpha = np.clip(x[: self.n], 0.0, None)
        alpha /= alpha.sum()
        v_step = np.where(self.step_col >= 0, x[self.step_col], 0.0)
        v_pair = np.where(self.pair_col >= 0, x[self.pair_col], 0.0)
        return alpha, v_step, v_pair, float(self.h.getInfo().objective_function_value)


def solve_mixture(
    problem: MixtureProblem,
    *,
    per_step: int = 8,
    max_rounds: int = 100,
    tol: float = 1e-9,
    threads: int = 1,
    prune_slack: float | None = None,
    first_per_step: int | None = None,
    stride: int = 1,
    grow: int = 1,
    max_per_step: int = 256,
    verbose: bool = False,
    highs_options: dict | None = None,
) -> MixtureSolution:
    """Solve the mixture LP with lazily generated constraints; α, β and diagnostics."""
    started = time.perf_counter()
    scale = frequency_scale(problem)
    n = problem.n_categories
    lp = _LazyLP(n, problem.n_steps, problem.n_pairs, threads=threads, options=highs_options or {})
    alpha = np.full(n, 1.0 / n)
    v_step = np.zeros(problem.n_steps)
    v_pair = np.zeros(problem.n_pairs)
    objective = 0.0
    sweep_seconds = lp_seconds = 0.0
    rounds = pruned = 0
    missing = np.zeros(problem.n_steps, dtype=bool)
    limit = np.full(problem.n_steps, first_per_step or per_step, dtype=np.int64)
    coarse = stride > 1
    if coarse:
        limit[np.arange(problem.n_steps) % stride != 0] = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - reported below
        t0 = time.perf_counter()
        steps, pairs, _excess, coefs, missing = find_violations(
            problem, alpha, v_step, v_pair, scale, per_step=limit, tol=tol
        )
        sweep_seconds += time.perf_counter() - t0
        t1 = time.perf_counter()
        added = lp.add(steps, pairs, coefs)
        if added == 0:
            if not coarse:
                break
            coarse = False
            limit[limit == 0] = per_step
            continue
        if grow > 1:
            found = np.bincount(steps, minlength=problem.n_steps)
            full = found >= limit
            limit[full] = np.minimum(limit[full] * grow, max_per_step)
            if not coarse:
                limit[~full] = np.maximum(per_step, limit[~full])
        t2 = time.perf_counter()
        alpha, v_step, v_pair, objective = lp.solve()
        t3 = time.perf_counter()
        lp_seconds += t3 - t2
        iters = lp.h.getInfo().simplex_iteration_count
        if prune_slack is not None:
            pruned += lp.prune(prune_slack)
        if verbose:
            print(f"cpu {time.process_time():.2f}", end=" ")
            print(
                f"round {rounds}: found {len(steps)} added {added} rows {len(lp.row_key)} "
                f"sweep {t1 - t0:.2f}s add {t2 - t1:.2f}s lp {t3 - t2:.2f}s "
                f"prune {time.perf_counter() - t3:.2f}s "
                f"iters {iters} obj {objective:.6g}",
                flush=True,
            )
    else:
        raise SolverError(
            f"constraint generation did not converge in {max_rounds} rounds; raise max_rounds"
        )
    missing_steps = (problem.first_step + np.flatnonzero(missing)).tolist()
    diagnostics = {
        "solver": "highs",
        "rounds": rounds,
        "constraints": lp.distinct,
        "constraints_kept": len(lp.row_key),
        "steps": problem.n_steps,
        "first_step": problem.first_step,
        "last_step": problem.last_step,
        "pairs": problem.n_pairs,
        "missing_merges": len(missing_steps),
        "missing_steps": missing_steps[:100],
        "slack_steps": int((v_step > tol).sum()),
        "slack_step_total": float(v_step.sum()),
        "slack_pair_total": float(v_pair.sum()),
        "objective_scale": float(1.0 / (scale[0] * problem.pairs_[0])),
        "sweep_seconds": round(sweep_seconds, 3),
        "lp_seconds": round(lp_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return MixtureSolution(
        problem.categories, alpha, byte_shares(alpha, problem), objective, diagnostics
    )


def all_constraints(
    problem: MixtureProblem, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ``(local step, pair)`` constraint, pairs present at a step but the merge, with
    its coefficient row on alpha. Plain numpy, independent of the compiled sweep."""
    counts = np.zeros((problem.n_pairs, problem.n_categories), dtype=np.int64)
    steps: list[int] = []
    pairs: list[int] = []
    coefs: list[np.ndarray] = []
    for k in range(problem.n_steps):
        lo, hi = problem.step_start[k], problem.step_start[k + 1]
        np.add.at(
            counts, (problem.rows_pair[lo:hi], problem.rows_cat[lo:hi]), problem.rows_delta[lo:hi]
        )
        m = problem.merge_pair[k]
        if m < 0 or not counts[m].any():
            continue
        present = np.flatnonzero(counts.any(axis=1))
        present = present[present != m]
        steps.extend([k] * len(present))
        pairs.extend(present.tolist())
        coefs.append((counts[m][None, :] - counts[present]) * scale[None, :])
    rows = np.concatenate(coefs) if coefs else np.zeros((0, problem.n_categories))
    return np.array(steps, dtype=np.int64), np.array(pairs, dtype=np.int64), rows


def solve_mixture_dense(problem: MixtureProblem) -> MixtureSolution:
    """Reference: the full LP, every constraint written out, solved by ``scipy.optimize.linprog``.

    Only for small instances (constraints = steps x pairs)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, hstack

    scale = frequency_scale(problem)
    steps, pairs, coefs = all_constraints(problem, scale)
    m, n = len(steps), problem.n_categories
    rows = np.arange(m)
    v_t = coo_matrix((np.ones(m), (rows, steps)), shape=(m, problem.n_steps))
    v_p = coo_matrix((np.ones(m), (rows, pairs)), shape=(m, problem.n_pairs))
    a_ub = -hstack([coo_matrix(coefs), v_t, v_p]).tocsr()
    cost = np.concatenate([np.zeros(n), np.ones(problem.n_steps + problem.n_pairs)])
    a_eq = np.concatenate([np.ones(n), np.zeros(problem.n_steps + problem.n_pairs)])[None, :]
    bounds = [(0, 1)] * n + [(0, None)] * (problem.n_steps + problem.n_pairs)
    res = linprog(
        cost, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs"
    )
    if res.status != 0:
        raise SolverError(f"linprog failed: {res.message}")
    alpha = np.clip(res.x[:n], 0, None)
    alpha /= alpha.sum()
    return MixtureSolution(
        problem.categories,
        alpha,
        byte_shares(alpha, problem),
        float(res.fun),
        {"solver": "scipy-linprog", "constraints": m},
    )
