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
    """The HiGHS model with the α columns, the simplex row and lazily added v's and rows."""

    def __init__(self, n_categories: int, *, threads: int = 1) -> None:
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("threads", threads)
        self.h.setOptionValue("primal_feasibility_tolerance", 1e-9)
        self.h.setOptionValue("dual_feasibility_tolerance", 1e-9)
        self.n = n_categories
        self.h.addVars(n_categories, np.zeros(n_categories), np.ones(n_categories))
        idx = np.arange(n_categories, dtype=np.int32)
        self.h.addRow(1.0, 1.0, n_categories, idx, np.ones(n_categories))
        self.step_col: dict[int, int] = {}
        self.pair_col: dict[int, int] = {}
        self.added: set[tuple[int, int]] = set()

    def _col(self, table: dict[int, int], key: int) -> int:
        col = table.get(key)
        if col is None:
            col = self.h.getNumCol()
            self.h.addCol(1.0, 0.0, highspy.kHighsInf, 0, np.zeros(0, np.int32), np.zeros(0))
            table[key] = col
        return col

    def add(self, steps: np.ndarray, pairs: np.ndarray, coefs: np.ndarray) -> int:
        """Add constraints not yet in the model; returns how many were new."""
        starts, indices, values = [], [], []
        nnz = 0
        for k, p, row in zip(steps.tolist(), pairs.tolist(), coefs, strict=True):
            if (k, p) in self.added:
                continue
            self.added.add((k, p))
            starts.append(nnz)
            nz = np.flatnonzero(row)
            indices.extend(nz.tolist())
            values.extend(row[nz].tolist())
            indices.extend((self._col(self.step_col, k), self._col(self.pair_col, p)))
            values.extend((1.0, 1.0))
            nnz += len(nz) + 2
        if not starts:
            return 0
        m = len(starts)
        self.h.addRows(
            m,
            np.zeros(m),
            np.full(m, highspy.kHighsInf),
            nnz,
            np.array(starts, dtype=np.int32),
            np.array(indices, dtype=np.int32),
            np.array(values, dtype=np.float64),
        )
        return m

    def solve(self) -> tuple[np.ndarray, dict[int, float], dict[int, float], float]:
        self.h.run()
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverError(
                f"HiGHS did not reach an optimum: {self.h.modelStatusToString(status)}"
            )
        x = np.asarray(self.h.getSolution().col_value)
        alpha = np.clip(x[: self.n], 0.0, None)
        alpha /= alpha.sum()
        v_step = {k: x[c] for k, c in self.step_col.items()}
        v_pair = {p: x[c] for p, c in self.pair_col.items()}
        return alpha, v_step, v_pair, float(self.h.getInfo().objective_function_value)


def solve_mixture(
    problem: MixtureProblem,
    *,
    per_step: int = 8,
    max_rounds: int = 100,
    tol: float = 1e-9,
    threads: int = 1,
) -> MixtureSolution:
    """Solve the mixture LP with lazily generated constraints; α, β and diagnostics."""
    started = time.perf_counter()
    scale = frequency_scale(problem)
    n = problem.n_categories
    lp = _LazyLP(n, threads=threads)
    alpha = np.full(n, 1.0 / n)
    v_step = np.zeros(problem.n_steps)
    v_pair = np.zeros(problem.n_pairs)
    objective = 0.0
    sweep_seconds = lp_seconds = 0.0
    rounds = 0
    missing = np.zeros(problem.n_steps, dtype=bool)
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - reported below
        t0 = time.perf_counter()
        steps, pairs, _excess, coefs, missing = find_violations(
            problem, alpha, v_step, v_pair, scale, per_step=per_step, tol=tol
        )
        sweep_seconds += time.perf_counter() - t0
        if lp.add(steps, pairs, coefs) == 0:
            break
        t0 = time.perf_counter()
        alpha, vs, vp, objective = lp.solve()
        lp_seconds += time.perf_counter() - t0
        v_step[:] = 0.0
        v_pair[:] = 0.0
        v_step[list(vs)] = list(vs.values())
        v_pair[list(vp)] = list(vp.values())
    else:
        raise SolverError(
            f"constraint generation did not converge in {max_rounds} rounds; raise max_rounds"
        )
    missing_steps = (problem.first_step + np.flatnonzero(missing)).tolist()
    diagnostics = {
        "solver": "highs",
        "rounds": rounds,
        "constraints": len(lp.added),
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
