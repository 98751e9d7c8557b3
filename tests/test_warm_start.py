"""The solver's scale changes: the mixed-frequency sweep and pair histories against every
constraint written out, warm starts against cold solves and the dense LP, progress lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import sample_documents
from tests.test_mixture_lp import CATS, _noisy_problem, _problem
from tokmix.bpe.replay import PairTrajectory
from tokmix.errors import SolverError
from tokmix.solvers.edges import PairHistory, find_violated_edges
from tokmix.solvers.mixture_lp import (
    WarmStart,
    all_constraints,
    frequency_scale,
    solve_mixture,
    solve_mixture_dense,
)
from tokmix.solvers.noise_scaled_lp import slack_weights, solve_mixture_scaled
from tokmix.solvers.problem import MixtureProblem, build_problem


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> MixtureProblem:
    docs = {c: sample_documents(c, 60_000) for c in CATS}
    train = [d for c in CATS for d in docs[c]]
    return _problem(tmp_path_factory.mktemp("small"), docs, train, 40)


def test_mixed_sweep_finds_exactly_the_violated_constraints(small: MixtureProblem) -> None:
    """Every (step, pair) row written out by plain numpy is the oracle: the sweep lists each
    violated one once (no count matrix), the pair versions' frequencies give its coefficients,
    and a per-step limit keeps the most violated of each step."""
    problem = small
    scale = frequency_scale(problem)
    steps, pairs, coefs = all_constraints(problem, scale)
    rng = np.random.default_rng(1)
    alpha = rng.dirichlet(np.ones(problem.n_categories))
    v_step = rng.exponential(0.002, problem.n_steps)
    v_pair = rng.exponential(0.002, problem.n_pairs) * (rng.random(problem.n_pairs) < 0.5)
    excess = -(coefs @ alpha + v_step[steps] + v_pair[pairs])
    violated = excess > 1e-9
    assert 10 < violated.sum() < len(violated)

    got_s, got_p, got_e, _ = find_violated_edges(
        problem, alpha, v_step, v_pair, scale, per_step=10**6, tol=1e-9
    )
    order = np.lexsort((got_p, got_s))
    want = np.lexsort((pairs[violated], steps[violated]))
    np.testing.assert_array_equal(got_s[order], steps[violated][want])
    np.testing.assert_array_equal(got_p[order], pairs[violated][want])
    np.testing.assert_allclose(got_e[order], excess[violated][want], rtol=1e-9, atol=1e-12)

    # the master's row is x_{m_t} - x_p over pair versions: their frequencies give the row
    history = PairHistory.build(problem)
    merged = history.frequencies(history.versions(steps, problem.merge_pair[steps]), scale)
    competitor = history.frequencies(history.versions(steps, pairs), scale)
    np.testing.assert_allclose(merged - competitor, coefs, rtol=1e-12, atol=1e-15)

    limit = rng.integers(0, 3, problem.n_steps)
    got_s, _, got_e, _ = find_violated_edges(
        problem, alpha, v_step, v_pair, scale, per_step=limit, tol=1e-9
    )
    for k in range(problem.n_steps):
        at_k = np.sort(excess[violated & (steps == k)])[::-1][: limit[k]]
        np.testing.assert_allclose(np.sort(got_e[got_s == k])[::-1], at_k, rtol=1e-9)


def _resampled(problem: MixtureProblem, only: set[str] | None = None) -> MixtureProblem:
    """Other counts over the same merges, as a bootstrap replicate's: category ``i``'s word
    table plus category ``i+1``'s (trajectories add up, DESIGN §4); ``only``: just these
    categories, unchanged (some merges are then absent)."""
    step = np.repeat(np.arange(len(problem.step_start) - 1), np.diff(problem.step_start))
    parts = []
    for i in range(problem.n_categories):
        rows = problem.rows_cat == i
        parts.append(
            PairTrajectory(
                (step[rows] + problem.first_step - 1).astype(np.int32),
                problem.pair_left[problem.rows_pair[rows]],
                problem.pair_right[problem.rows_pair[rows]],
                problem.rows_delta[rows],
                problem.first_step,
                problem.last_step,
                int(problem.pairs_[i]),
            )
        )
    n = problem.n_categories
    trajs = {c: parts[i] + parts[(i + 1) % n] for i, c in enumerate(problem.categories)}
    bytes_ = {
        c: int(problem.bytes_[i] + problem.bytes_[(i + 1) % n])
        for i, c in enumerate(problem.categories)
    }
    if only is not None:
        trajs = {c: parts[i] for i, c in enumerate(problem.categories) if c in only}
        bytes_ = {c: int(problem.bytes_[i]) for i, c in enumerate(problem.categories) if c in only}
    merge_ids = np.zeros((problem.last_step, 3), dtype=np.int64)
    merged = problem.merge_pair >= 0
    ids = np.stack([problem.pair_left, problem.pair_right], axis=1)
    merge_ids[problem.first_step - 1 :, :2][merged] = ids[problem.merge_pair[merged]]
    merge_ids[problem.first_step - 1 :, :2][~merged] = -7  # a pair no category has
    return build_problem(trajs, merge_ids, bytes_)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_warm_start_never_changes_the_optimum(tmp_path: Path, seed: int) -> None:
    """Started from a related problem's solution (the replicate case), from the exact
    solution, and from a bad α with random rows: always the dense LP's optimum."""
    rng = np.random.default_rng(seed)
    problem = _noisy_problem(tmp_path, rng, 60)
    dense = solve_mixture_dense(problem)
    cold = solve_mixture(problem)
    other = solve_mixture(_resampled(problem))
    n = problem.n_categories
    keys = (problem.pair_left.astype(np.int64) << 32) | problem.pair_right.astype(np.int64)
    junk_rows = rng.integers(0, problem.n_pairs, 300)
    junk = WarmStart(np.eye(n)[0], rng.integers(-5, problem.n_steps + 5, 300), keys[junk_rows])
    for start in (other.warm, cold.warm, junk):
        warm = solve_mixture(problem, start=start)
        assert warm.objective == pytest.approx(dense.objective, rel=1e-7, abs=1e-10)
        assert warm.diagnostics["warm_start"]
    assert other.objective != pytest.approx(dense.objective, rel=1e-3)  # a different problem
    assert cold.warm is not None and len(cold.warm.step) > 0
    np.testing.assert_allclose(solve_mixture(problem, start=cold.warm).alpha, cold.alpha, atol=1e-7)


def test_a_start_with_rows_at_steps_whose_merge_this_problem_lacks(tmp_path: Path) -> None:
    """A replicate may lack a merge the point estimate had: the start's rows at that step
    must not enter (a step without its merge has no rows), else they force slack."""
    rng = np.random.default_rng(4)
    problem = _noisy_problem(tmp_path, rng, 60)
    trajs = _resampled(problem, only=set(problem.categories[:2]))
    assert len(trajs.missing_steps) > 0
    point = solve_mixture(problem)
    assert point.warm is not None
    steps = np.repeat(np.arange(problem.n_steps), 5)
    keys = (problem.pair_left.astype(np.int64) << 32) | problem.pair_right.astype(np.int64)
    start = WarmStart(
        point.alpha[:2],
        np.r_[point.warm.step, steps],
        np.r_[point.warm.pair_key, keys[rng.integers(0, problem.n_pairs, len(steps))]],
    )
    warm = solve_mixture(trajs, start=start)
    assert warm.diagnostics["warm_start"]
    assert warm.objective == pytest.approx(
        solve_mixture_dense(trajs).objective, rel=1e-7, abs=1e-10
    )


def test_scaled_lp_from_the_paper_lp_rows(tmp_path: Path) -> None:
    """The default estimator starts from the paper LP's rows and α: same optimum as a cold
    solve and as the dense LP with the same slack prices."""
    rng = np.random.default_rng(3)
    problem = _noisy_problem(tmp_path, rng, 60)
    paper = solve_mixture(problem)
    warm = solve_mixture_scaled(problem, reference_alpha=paper.alpha, start=paper.warm)
    cold = solve_mixture_scaled(problem, reference_alpha=paper.alpha)
    assert warm.objective == pytest.approx(cold.objective, rel=1e-7)
    np.testing.assert_allclose(warm.alpha, cold.alpha, atol=1e-6)
    auto = solve_mixture_scaled(problem)  # solves the paper LP itself and starts from it
    assert auto.objective == pytest.approx(cold.objective, rel=1e-7)
    assert auto.diagnostics["warm_start"] and not cold.diagnostics["warm_start"]
    steps, pairs = slack_weights(problem, paper.alpha)
    dense_rows = solve_mixture(problem, step_weight=steps, pair_weight=pairs, sweep="dense")
    assert warm.objective == pytest.approx(dense_rows.objective, rel=1e-7)


def test_dense_and_mixed_sweeps_solve_alike(small: MixtureProblem) -> None:
    mixed = solve_mixture(small)
    dense = solve_mixture(small, sweep="dense")
    assert mixed.objective == pytest.approx(dense.objective, rel=1e-9)
    assert mixed.diagnostics["rounds"] == dense.diagnostics["rounds"]
    with pytest.raises(SolverError, match="sweep"):
        solve_mixture(small, sweep="gpu")


def test_progress_lines_and_time_limit(small: MixtureProblem) -> None:
    lines: list[str] = []
    sol = solve_mixture(small, log=lines.append, log_every=0.0)
    rounds = sol.diagnostics["rounds"]
    assert len(lines) == rounds + 1  # one per round, and the closing line
    assert all("round" in x and "violated" in x and "objective" in x for x in lines[:-1])
    assert lines[-1].startswith("solve: done")
    assert [p["round"] for p in sol.diagnostics["progress"]] == list(range(1, rounds + 1))
    with pytest.raises(SolverError, match="within"):
        solve_mixture(small, time_limit=0.0)
