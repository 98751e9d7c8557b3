"""The likelihood estimator against a brute-force likelihood and on data drawn from its model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from tokmix.bpe.replay import PairTrajectory
from tokmix.errors import SolverError
from tokmix.solvers.likelihood import (
    race_data,
    solve_mixture_likelihood,
    step_log_likelihood,
)
from tokmix.solvers.mixture_lp import frequency_scale
from tokmix.solvers.problem import MixtureProblem, build_problem

torch = pytest.importorskip("torch", reason="the likelihood estimator needs the gpu extra")


def simulate(
    alpha: np.ndarray,
    tau: float,
    *,
    n_pairs: int,
    n_steps: int,
    seed: int,
    mean_count: float = 200.0,
) -> MixtureProblem:
    """A problem drawn from the model itself (``power = 0``): at each step the merge is drawn
    from the softmax of the mixed frequencies over the pairs present, its counts drop to 0,
    and one new pair appears with fresh counts (so the race goes on)."""
    rng = np.random.default_rng(seed)
    n = len(alpha)
    total = n_pairs + n_steps
    lam = rng.lognormal(np.log(mean_count), 1.0, size=(total, n))
    counts = np.zeros((total, n), dtype=np.int64)
    counts[:n_pairs] = rng.poisson(lam[:n_pairs])
    d = counts.sum(axis=0)
    top = (counts / d).max()
    scale = 1.0 / (d * top)  # frequency_scale of the problem built below
    rows: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]  # (step, pair, delta)
    for i in range(n):
        for p in np.flatnonzero(counts[:, i]):
            rows[i].append((0, int(p), int(counts[p, i])))
    merges = np.zeros((n_steps, 3), dtype=np.int32)
    for t in range(1, n_steps + 1):
        present = np.flatnonzero(counts.any(axis=1))
        x = counts[present] @ (alpha * scale)
        prob = np.exp((x - x.max()) / tau)
        m = int(present[rng.choice(len(present), p=prob / prob.sum())])
        merges[t - 1] = (m + 256, 1, 100_000 + t)
        new = n_pairs + t - 1
        fresh = rng.poisson(lam[new])
        for i in range(n):
            if counts[m, i]:
                rows[i].append((t, m, -int(counts[m, i])))
            if fresh[i]:
                rows[i].append((t, new, int(fresh[i])))
        counts[m] = 0
        counts[new] = fresh
    trajs = {}
    for i in range(n):
        r = np.array(rows[i], dtype=np.int64)
        order = np.lexsort((r[:, 1], r[:, 0]))
        r = r[order]
        trajs[f"c{i}"] = PairTrajectory(
            r[:, 0].astype(np.int32),
            (r[:, 1] + 256).astype(np.int32),
            np.ones(len(r), dtype=np.int32),
            r[:, 2],
            1,
            n_steps,
            int(d[i]),
        )
    problem = build_problem(trajs, merges, {f"c{i}": 1000 * (i + 1) for i in range(n)})
    np.testing.assert_allclose(frequency_scale(problem), scale)
    return problem


def brute_log_likelihood(problem: MixtureProblem, w: np.ndarray) -> float:
    """Σ_t log softmax over every pair present at step t, from dense count matrices."""
    scale = frequency_scale(problem)
    counts = np.zeros((problem.n_pairs, problem.n_categories))
    total = 0.0
    for k in range(problem.n_steps + 1):
        rows = slice(problem.step_start[k], problem.step_start[k + 1])
        np.add.at(
            counts, (problem.rows_pair[rows], problem.rows_cat[rows]), problem.rows_delta[rows]
        )
        if k == problem.n_steps:
            break
        m = problem.merge_pair[k]
        if m < 0 or not counts[m].any():
            continue
        present = counts.any(axis=1)
        z = (counts[present] * scale) @ w
        zm = (counts[m] * scale) @ w
        total += zm - (np.log(np.exp(z - z.max()).sum()) + z.max())
    return total


def module_log_likelihood(problem: MixtureProblem, w: np.ndarray) -> tuple[float, np.ndarray]:
    race = race_data(problem, w / w.sum(), top_k=problem.n_pairs)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    ll = step_log_likelihood(
        wt, torch.tensor(race.gaps, dtype=torch.float64), torch.tensor(race.mask)
    ).sum()
    ll.backward()
    assert wt.grad is not None
    return float(ll.detach()), wt.grad.numpy()


@pytest.fixture(scope="module")
def tiny() -> MixtureProblem:
    return simulate(np.array([0.6, 0.3, 0.1]), 0.2, n_pairs=12, n_steps=15, seed=3)


@pytest.mark.parametrize("w", [[1.0, 2.0, 3.0], [5.0, 0.5, 0.1], [0.2, 0.2, 9.0]])
def test_log_likelihood_and_gradient_equal_brute_force(tiny: MixtureProblem, w: list[float]):
    w_arr = np.array(w)
    value, grad = module_log_likelihood(tiny, w_arr)
    assert value == pytest.approx(brute_log_likelihood(tiny, w_arr), rel=1e-10, abs=1e-10)
    eps = 1e-6
    numeric = [
        (brute_log_likelihood(tiny, w_arr + eps * e) - brute_log_likelihood(tiny, w_arr - eps * e))
        / (2 * eps)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)


def test_fit_is_the_brute_force_maximum(tiny: MixtureProblem):
    sol = solve_mixture_likelihood(
        tiny, start_alpha=np.ones(3) / 3, top_k=tiny.n_pairs, power=0, pair_cost=None
    )
    w = sol.alpha / sol.diagnostics["temperature"]
    ref = minimize(
        lambda v: -brute_log_likelihood(tiny, v),
        np.ones(3),
        method="L-BFGS-B",
        bounds=[(0, None)] * 3,
        options={"ftol": 1e-14, "gtol": 1e-10},
    )
    assert -ref.fun <= brute_log_likelihood(tiny, w) + 1e-7
    np.testing.assert_allclose(w, ref.x, rtol=1e-3, atol=1e-3 * ref.x.max())


def test_recovers_the_mixture_and_temperature_it_was_drawn_from():
    """α from races cut to the 16 strongest competitors (about 60 pairs are present at each
    step); τ from full races (a cut race drops competitors' mass, which inflates τ)."""
    alpha = np.array([0.5, 0.3, 0.2])
    problem = simulate(alpha, 0.05, n_pairs=60, n_steps=1500, seed=11)
    start = np.ones(3) / 3
    cut = solve_mixture_likelihood(problem, start_alpha=start, top_k=16, power=0, pair_cost=None)
    np.testing.assert_allclose(cut.alpha, alpha, atol=0.03)
    lo = np.array(cut.diagnostics["byte_share_low"])
    hi = np.array(cut.diagnostics["byte_share_high"])
    assert ((lo <= cut.byte_share) & (cut.byte_share <= hi)).all()
    assert (hi - lo).max() < 0.2
    full = solve_mixture_likelihood(
        problem, start_alpha=start, top_k=problem.n_pairs, power=0, pair_cost=None
    )
    np.testing.assert_allclose(full.alpha, alpha, atol=0.03)
    assert full.diagnostics["temperature"] == pytest.approx(0.05, rel=0.1)


def test_handicaps_absorb_a_persistent_outlier_pair():
    """A pair whose count is inflated at every step (bursty in the attacker's sample, never
    merged) breaks the plain logit; with handicaps the mixture is still recovered."""
    alpha = np.array([0.5, 0.3, 0.2])
    problem = simulate(alpha, 0.05, n_pairs=60, n_steps=600, seed=5)
    # inflate pair 0's snapshot count in category 2 by a lot, and drop it from the merges
    delta = problem.rows_delta.copy()
    snap = slice(problem.step_start[0], problem.step_start[1])
    rows = np.flatnonzero((problem.rows_pair[snap] == 0) & (problem.rows_cat[snap] == 2))
    delta[rows] += 5 * delta[snap].max()
    merge_pair = np.where(problem.merge_pair == 0, -1, problem.merge_pair)
    removed = problem.rows_pair != 0  # pair 0 is never merged: it keeps its count
    removed[snap] = True
    bad = MixtureProblem(
        **{
            **{f: getattr(problem, f) for f in problem.__dataclass_fields__},
            "rows_delta": delta,
            "merge_pair": merge_pair,
        }
    )
    del removed
    start = np.ones(3) / 3
    plain = solve_mixture_likelihood(bad, start_alpha=start, top_k=16, power=0, pair_cost=None)
    robust = solve_mixture_likelihood(bad, start_alpha=start, top_k=16, power=0, pair_cost=2.0)
    assert np.abs(robust.alpha - alpha).max() < 0.08
    assert np.abs(plain.alpha - alpha).max() > 2 * np.abs(robust.alpha - alpha).max()
    assert robust.diagnostics["handicapped_pairs"] >= 1


def test_intervals_cover_the_truth_on_model_data():
    """Over independent draws, the 95 % information interval covers the true byte shares
    about 95 % of the time (the model holds here, so it should be calibrated)."""
    alpha = np.array([0.5, 0.3, 0.2])
    ratio = np.array([1000.0, 2000.0, 3000.0])
    hits = []
    for seed in range(12):
        problem = simulate(alpha, 0.05, n_pairs=40, n_steps=400, seed=100 + seed)
        truth = alpha * ratio / problem.pairs_
        truth /= truth.sum()
        sol = solve_mixture_likelihood(
            problem,
            start_alpha=np.ones(3) / 3,
            top_k=16,
            power=0,
            pair_cost=None,
            interval="information",
        )
        lo = np.array(sol.diagnostics["byte_share_low"])
        hi = np.array(sol.diagnostics["byte_share_high"])
        hits += ((lo <= truth) & (truth <= hi)).tolist()
    assert 0.8 <= np.mean(hits) <= 1.0


def test_top_k_keeps_the_strongest_competitors(tiny: MixtureProblem):
    """A race restricted to 2 competitors holds the 2 pairs with the smallest gap."""
    alpha = np.array([0.2, 0.5, 0.3])
    full = race_data(tiny, alpha, top_k=tiny.n_pairs)
    short = race_data(tiny, alpha, top_k=2)
    np.testing.assert_array_equal(full.steps, short.steps)
    gap_full = np.where(full.mask, full.gaps @ alpha, np.inf)
    gap_short = np.where(short.mask, short.gaps @ alpha, np.inf)
    np.testing.assert_allclose(np.sort(gap_full, axis=1)[:, :2], np.sort(gap_short, axis=1))


def test_cuda_gives_the_cpu_answer(tiny: MixtureProblem):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    cpu = solve_mixture_likelihood(tiny, start_alpha=np.ones(3) / 3, power=0, device="cpu")
    gpu = solve_mixture_likelihood(tiny, start_alpha=np.ones(3) / 3, power=0, device="cuda")
    np.testing.assert_allclose(gpu.byte_share, cpu.byte_share, atol=1e-6)


def test_bad_options_are_clear_errors(tiny: MixtureProblem):
    with pytest.raises(SolverError, match="top_k"):
        solve_mixture_likelihood(tiny, top_k=0)
    with pytest.raises(SolverError, match="interval method"):
        solve_mixture_likelihood(tiny, interval="bayes")
