"""A noise-aware variant of the mixture LP: constraint violations measured in standard errors.

The paper's LP (DESIGN §5) charges a violation of ``Σ_i α_i (f_{i,t}(m_t) - f_{i,t}(p)) >= 0``
by its size in frequency units. Early merges have frequencies ~1e-2, late ones ~1e-6, so an
unweighted LP lets early merges decide nearly alone, although late merges are many and also
informative; and a late violation of a few counts, pure sampling noise, costs the same as a
systematic one. Here step ``t``'s rows are divided by ``σ_t``, the sampling standard error of
the mixed frequency of its merge under the reference mixture ``α̂`` (counts ~ Poisson):

    σ_t² = Σ_i α̂_i² f_{i,t}(m_t) / d_i

so every step's violations are in z-units: the same "how surprising is this under sampling
noise" scale across the merge list. ``α̂`` is the paper LP's solution (one extra solve).

Constraints are generated lazily as in :mod:`tokmix.solvers.mixture_lp`: the compiled sweep
(:func:`tokmix.solvers.violations.find_violations`) proposes candidates with the slack scaled
conservatively (a superset of the violated rows); each is checked exactly in weighted form.
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from tokmix.errors import SolverError
from tokmix.solvers.mixture_lp import MixtureSolution, frequency_scale, solve_mixture
from tokmix.solvers.problem import MixtureProblem, byte_shares
from tokmix.solvers.violations import find_violations


def local_index(problem: MixtureProblem) -> np.ndarray:
    """Per row, its local step index ``k`` (0 = snapshot, ``k`` = step ``first_step+k-1``):
    the count of a pair before local step ``k`` sums its rows with index ``<= k``."""
    rows = np.arange(len(problem.rows_pair))
    return np.searchsorted(problem.step_start, rows, side="right") - 1


def counts_at(problem: MixtureProblem, steps: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``(q, n)`` counts of pair ``pairs[j]`` in every category just before local step
    ``steps[j]`` (the step whose merge is ``merge_pair[steps[j]]``). Vectorized prefix sums."""
    n = problem.n_categories
    idx = local_index(problem)
    span = np.int64(problem.n_steps + 2)
    out = np.zeros((len(steps), n), dtype=np.int64)
    for i in range(n):
        sel = problem.rows_cat == i
        key = problem.rows_pair[sel] * span + idx[sel]
        order = np.argsort(key, kind="stable")
        key = key[order]
        cum = np.concatenate([[0], np.cumsum(problem.rows_delta[sel][order])])
        hi = np.searchsorted(key, pairs * span + steps, side="right")
        lo = np.searchsorted(key, pairs * span, side="left")
        out[:, i] = cum[hi] - cum[lo]
    return out


def step_weights(problem: MixtureProblem, alpha: np.ndarray, power: float = -1.0) -> np.ndarray:
    """``σ_t ** power`` per local step (normalized to median 1); 0 for steps with no merge
    pair. ``power=-1`` is z-units; ``0`` the paper's LP; ``> 0`` leans on early merges."""
    k = np.arange(problem.n_steps)
    m = problem.merge_pair
    ok = m >= 0
    c = counts_at(problem, k[ok], m[ok]).astype(np.float64)
    d = problem.pairs_.astype(np.float64)
    var = (c / d**2) @ (alpha**2)  # Σ_i α_i² c_i / d_i² = Σ_i α_i² f_i / d_i
    w = np.zeros(problem.n_steps)
    pos = var > 0
    w_ok = np.zeros(ok.sum())
    w_ok[pos] = var[pos] ** (power / 2)
    if pos.any():
        w_ok /= np.median(w_ok[pos])
    w[ok] = w_ok
    return w


def solve_mixture_weighted(
    problem: MixtureProblem,
    *,
    reference: MixtureSolution | None = None,
    power: float = -1.0,
    per_step: int = 16,
    max_rounds: int = 200,
    tol: float = 1e-9,
) -> MixtureSolution:
    """The noise-aware LP; ``reference`` is the paper LP's solution (solved when omitted)."""
    started = time.perf_counter()
    ref = reference if reference is not None else solve_mixture(problem)
    w = step_weights(problem, np.maximum(ref.alpha, 1e-6), power)
    scale = frequency_scale(problem)
    n = problem.n_categories
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    h.setOptionValue("dual_feasibility_tolerance", 1e-9)
    h.addVars(n, np.zeros(n), np.ones(n))
    h.addRow(1.0, 1.0, n, np.arange(n, dtype=np.int32), np.ones(n))
    step_col: dict[int, int] = {}
    pair_col: dict[int, int] = {}
    added: set[tuple[int, int]] = set()

    def col(table: dict[int, int], key: int) -> int:
        c = table.get(key)
        if c is None:
            c = h.getNumCol()
            h.addCol(1.0, 0.0, highspy.kHighsInf, 0, np.zeros(0, np.int32), np.zeros(0))
            table[key] = c
        return c

    alpha = ref.alpha.copy()
    v_step = np.zeros(problem.n_steps)
    v_pair = np.zeros(problem.n_pairs)
    w_max = float(w.max()) if len(w) and w.max() > 0 else 1.0
    objective = 0.0
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - reported below
        safe_w = np.where(w > 0, w, 1.0)
        steps, pairs, _excess, coefs, _missing = find_violations(
            problem, alpha, v_step / safe_w, v_pair / w_max, scale, per_step=per_step, tol=tol
        )
        lhs = w[steps] * (coefs @ alpha) + v_step[steps] + v_pair[pairs]
        starts: list[int] = []
        indices: list[int] = []
        values: list[float] = []
        for k, p, row, val in zip(steps.tolist(), pairs.tolist(), coefs, lhs, strict=True):
            if val >= -tol or (k, p) in added or w[k] <= 0:
                continue
            added.add((k, p))
            starts.append(len(indices))
            nz = np.flatnonzero(row)
            indices.extend(nz.tolist())
            values.extend((row[nz] * w[k]).tolist())
            indices.extend((col(step_col, k), col(pair_col, p)))
            values.extend((1.0, 1.0))
        if not starts:
            break
        m = len(starts)
        h.addRows(
            m,
            np.zeros(m),
            np.full(m, highspy.kHighsInf),
            len(indices),
            np.array(starts, dtype=np.int32),
            np.array(indices, dtype=np.int32),
            np.array(values, dtype=np.float64),
        )
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverError(f"HiGHS (weighted LP): {h.modelStatusToString(status)}")
        x = np.asarray(h.getSolution().col_value)
        alpha = np.clip(x[:n], 0.0, None)
        alpha /= alpha.sum()
        v_step[:] = 0.0
        v_pair[:] = 0.0
        for k, c in step_col.items():
            v_step[k] = x[c]
        for p, c in pair_col.items():
            v_pair[p] = x[c]
        objective = float(h.getInfo().objective_function_value)
    else:
        raise SolverError(f"weighted LP did not converge in {max_rounds} rounds")
    diagnostics = {
        "solver": "highs-noise-weighted",
        "rounds": rounds,
        "constraints": len(added),
        "steps": problem.n_steps,
        "first_step": problem.first_step,
        "last_step": problem.last_step,
        "missing_merges": int((problem.merge_pair < 0).sum()),
        "slack_steps": int((v_step > tol).sum()),
        "reference_objective": float(ref.objective),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return MixtureSolution(
        problem.categories, alpha, byte_shares(alpha, problem), objective, diagnostics
    )
