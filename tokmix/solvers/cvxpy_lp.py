"""The mixture LP in cvxpy, where what analysts know can enter the solve.

Same variables, rows and scaling as :mod:`tokmix.solvers.mixture_lp` (so, without extra
constraints, the same optimum to solver tolerance), plus:

- **byte-share bounds and known shares.** Byte shares are ``β_i = α_i r_i / Σ_j α_j r_j`` with
  ``r_i = bytes_i / pairs_i`` (ARCHITECTURE.md §5), so ``lo <= β_i <= hi`` is linear in α:
  ``α_i r_i - lo Σ_j α_j r_j >= 0`` and ``α_i r_i - hi Σ_j α_j r_j <= 0``; a known share is
  both with ``lo = hi``. ("code is at least 10 %": ``share_bounds={"code": (0.10, None)}``.)
- **alternative objectives** on the slacks: ``"l1"`` (the paper's ``Σ v_t + Σ v_p``),
  ``"l2"`` (squared slacks: many small violations preferred to a few large ones), ``"linf"``
  (the largest violation, one slack shared by every row).

Constraints are generated lazily with the compiled sweep
(:func:`tokmix.solvers.violations.find_violations`), or given explicitly (for example
:func:`tokmix.solvers.mixture_lp.all_constraints` on small problems). cvxpy rebuilds its
problem every round, so this path is for analyst queries, not for 100-category runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

import cvxpy as cp
import numpy as np

from tokmix.errors import SolverError
from tokmix.solvers.mixture_lp import MixtureSolution, frequency_scale
from tokmix.solvers.problem import MixtureProblem, byte_shares
from tokmix.solvers.violations import find_violations

Objective = Literal["l1", "l2", "linf"]
Bounds = Mapping[str, tuple[float | None, float | None]]


def share_constraints(
    alpha: cp.Variable, problem: MixtureProblem, share_bounds: Bounds, known: Mapping[str, float]
) -> list[cp.Constraint]:
    """Byte-share bounds and known shares as linear constraints on α."""
    r = problem.bytes_.astype(np.float64) / problem.pairs_.astype(np.float64)
    r = r / r.max()  # one common factor: better conditioned, same constraints
    total = r @ alpha
    out: list[cp.Constraint] = []
    index = {name: i for i, name in enumerate(problem.categories)}
    bounds = dict(share_bounds)
    for name, value in known.items():
        bounds[name] = (value, value)
    for name, (lo, hi) in bounds.items():
        if name not in index:
            raise SolverError(
                f"share bound on {name!r}, which is not a category ({list(problem.categories)})"
            )
        i = index[name]
        for b in (lo, hi):
            if b is not None and not 0.0 <= b <= 1.0:
                raise SolverError(f"share bound {b} on {name!r} is outside [0, 1]")
        if lo is not None and lo == hi:
            out.append(alpha[i] * r[i] == lo * total)
            continue
        if lo is not None:
            out.append(alpha[i] * r[i] >= lo * total)
        if hi is not None:
            out.append(alpha[i] * r[i] <= hi * total)
    return out


def _solve_rows(
    problem: MixtureProblem,
    steps: np.ndarray,
    pairs: np.ndarray,
    coefs: np.ndarray,
    objective: Objective,
    share_bounds: Bounds,
    known: Mapping[str, float],
    solver: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n = problem.n_categories
    alpha = cp.Variable(n, nonneg=True)
    cons: list[cp.Constraint] = [cp.sum(alpha) == 1]
    cons += share_constraints(alpha, problem, share_bounds, known)
    step_ids, step_of_row = np.unique(steps, return_inverse=True)
    pair_ids, pair_of_row = np.unique(pairs, return_inverse=True)
    if objective == "linf":
        u = cp.Variable(nonneg=True)
        if len(steps):
            cons.append(coefs @ alpha + u >= 0)
        prob = cp.Problem(cp.Minimize(u), cons)
    else:
        v_t = cp.Variable(len(step_ids), nonneg=True)
        v_p = cp.Variable(len(pair_ids), nonneg=True)
        if len(steps):
            cons.append(coefs @ alpha + v_t[step_of_row] + v_p[pair_of_row] >= 0)
        cost = (
            cp.sum(v_t) + cp.sum(v_p)
            if objective == "l1"
            else cp.sum_squares(v_t) + cp.sum_squares(v_p)
        )
        prob = cp.Problem(cp.Minimize(cost), cons)
    chosen = solver or ("HIGHS" if objective != "l2" else "CLARABEL")
    # HiGHS runs one global thread scheduler per process, sized by the first solve; a later
    # solve asking for another thread count fails ("Not Set"). tokmix's HiGHS paths use 1.
    opts = {"threads": 1} if chosen == "HIGHS" else {}
    prob.solve(solver=chosen, **opts)
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise SolverError(f"cvxpy: {prob.status}; are the share bounds consistent with each other?")
    a = np.clip(np.asarray(alpha.value, dtype=np.float64), 0.0, None)
    a /= a.sum()
    vs = np.zeros(problem.n_steps)
    vp = np.zeros(problem.n_pairs)
    if objective == "linf":
        vs[:] = float(np.asarray(u.value))
    else:
        vs[step_ids] = np.asarray(v_t.value)
        vp[pair_ids] = np.asarray(v_p.value)
    return a, vs, vp, float(prob.value)


def solve_mixture_cvxpy(
    problem: MixtureProblem,
    *,
    share_bounds: Bounds | None = None,
    known_shares: Mapping[str, float] | None = None,
    objective: Objective = "l1",
    constraints: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    per_step: int = 8,
    max_rounds: int = 100,
    tol: float = 1e-9,
    solver: str | None = None,
) -> MixtureSolution:
    """Solve the mixture LP with analyst constraints; ``constraints`` = ``(local steps,
    pairs, coefficient rows)`` fixes the row set (as :func:`all_constraints` returns it, at
    :func:`frequency_scale`), otherwise rows are generated lazily until none is violated."""
    started = time.perf_counter()
    bounds = dict(share_bounds or {})
    known = dict(known_shares or {})
    scale = frequency_scale(problem)
    n = problem.n_categories
    if constraints is not None:
        steps, pairs, coefs = constraints
        alpha, vs, vp, value = _solve_rows(
            problem, steps, pairs, coefs, objective, bounds, known, solver
        )
        rounds = 1
    else:
        steps = np.zeros(0, dtype=np.int64)
        pairs = np.zeros(0, dtype=np.int64)
        coefs = np.zeros((0, n))
        alpha = np.full(n, 1.0 / n)
        vs, vp = np.zeros(problem.n_steps), np.zeros(problem.n_pairs)
        seen: set[tuple[int, int]] = set()
        value = 0.0
        for rounds in range(1, max_rounds + 1):  # noqa: B007 - reported below
            s, p, _excess, c, _missing = find_violations(
                problem, alpha, vs, vp, scale, per_step=per_step, tol=tol
            )
            new = [
                j
                for j, key in enumerate(zip(s.tolist(), p.tolist(), strict=True))
                if key not in seen
            ]
            if not new:
                break
            seen.update(zip(s[new].tolist(), p[new].tolist(), strict=True))
            steps = np.concatenate([steps, s[new]])
            pairs = np.concatenate([pairs, p[new]])
            coefs = np.concatenate([coefs, c[new]])
            alpha, vs, vp, value = _solve_rows(
                problem, steps, pairs, coefs, objective, bounds, known, solver
            )
        else:
            raise SolverError(
                f"cvxpy constraint generation did not converge in {max_rounds} rounds"
            )
    diagnostics = {
        "solver": f"cvxpy-{objective}",
        "rounds": rounds,
        "constraints": len(steps),
        "steps": problem.n_steps,
        "first_step": problem.first_step,
        "last_step": problem.last_step,
        "missing_merges": int((problem.merge_pair < 0).sum()),
        "slack_steps": int((vs > 1e-7).sum()),
        "share_bounds": {k: list(v) for k, v in bounds.items()},
        "known_shares": known,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return MixtureSolution(
        problem.categories, alpha, byte_shares(alpha, problem), value, diagnostics
    )
