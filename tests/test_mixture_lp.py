"""The mixture LP: lazy HiGHS solve vs the full LP in scipy, the speed-ups (coarse phase,
pruning, per-step limits) vs plain constraint generation, and exact recovery without noise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import sample_documents, train_bytelevel_bpe
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.words import count_words
from tokmix.errors import SolverError
from tokmix.solvers.mixture_lp import (
    all_constraints,
    frequency_scale,
    solve_mixture,
    solve_mixture_dense,
)
from tokmix.solvers.problem import MixtureProblem, build_problem
from tokmix.solvers.violations import find_violations

CATS = ("books", "python", "rust")


def _problem(
    tmp_path: Path, texts: dict[str, list[str]], train: list[str], n_merges: int
) -> MixtureProblem:
    tok = train_bytelevel_bpe(train, n_merges, tmp_path / "tok")
    tables = {c: count_words(t, tok.pretokenizer) for c, t in texts.items()}
    trajs = {c: replay_merges(dict(tables[c].counts), tok.merge_list) for c in texts}
    return build_problem(trajs, tok.merge_list.merge_ids, {c: t.bytes_ for c, t in tables.items()})


# plain constraint generation, and the fast path's options at small sizes; a box on α so
# small that the loop must widen it many times before it may stop
OPTIONS: list[dict[str, Any]] = [
    {
        "per_step": 3,
        "per_step_max": 3,
        "stride": 1,
        "prune": False,
        "max_rows": None,
        "trust_region": None,
    },
    {"per_step": 3, "stride": 4, "prune": True},
    {"per_step": 1, "stride": 8, "prune": True, "max_rows": 10},
    {"per_step": 2, "stride": 1, "trust_region": 1e-3},
]


def _noisy_problem(tmp_path: Path, rng: np.random.Generator, n_merges: int) -> MixtureProblem:
    """A tokenizer trained on a random mixture, attacker samples overlapping it in part."""
    docs = {c: sample_documents(c, 120_000) for c in CATS}
    weights = rng.dirichlet(np.ones(len(CATS)))
    train: list[str] = []
    for c, w in zip(CATS, weights, strict=True):
        train += docs[c][: max(1, int(w * len(docs[c])))]
    attacker = {c: sample_documents(c, 200_000)[len(docs[c]) // 2 :] for c in CATS}
    return _problem(tmp_path, attacker, train, n_merges)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_constraints_reach_the_full_lp_optimum(tmp_path: Path, seed: int) -> None:
    problem = _noisy_problem(tmp_path, np.random.default_rng(seed), 60)
    dense = solve_mixture_dense(problem)
    for options in OPTIONS:
        lazy = solve_mixture(problem, **options)
        assert lazy.objective == pytest.approx(dense.objective, rel=1e-6, abs=1e-9), options
        assert lazy.diagnostics["constraints"] < dense.diagnostics["constraints"]


def test_a_capped_devex_run_falls_back_to_highs_pricing_and_the_same_optimum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Devex pricing can cycle on a degenerate round (README "Released tokenizers"); at the
    iteration cap the LP is re-run with HiGHS's own pricing, which then stays. With a cap of
    one iteration every solve takes that path: same optimum as the dense LP, and the cap is
    asked for once (later rounds no longer use Devex)."""
    from tokmix.solvers import restricted_lp

    problem = _noisy_problem(tmp_path, np.random.default_rng(0), 60)
    dense = solve_mixture_dense(problem)
    caps: list[int] = []

    def one_iteration(h: Any) -> int:
        caps.append(1)
        return 1

    monkeypatch.setattr(restricted_lp, "devex_iteration_cap", one_iteration)
    capped = solve_mixture(problem, **OPTIONS[0])
    assert capped.objective == pytest.approx(dense.objective, rel=1e-6, abs=1e-9)
    assert capped.diagnostics["rounds"] > 1 and caps == [1]


def test_a_cold_devex_run_that_cycles_falls_back_to_the_interior_point_method_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model's first solve has no basis: Devex under a small cap (a cold master that does
    not cycle needs a fifth of an iteration a row), and at the cap HiGHS's interior point
    method with crossover for that solve only (the first masters of 150 categories of GPT-2
    are dual degenerate: Devex cycled for 362 k iterations at 5 000 merges, and at 10 000 the
    dual simplex stalls under every pricing). As shipped the cold run is capped below the
    warm runs' cap; with a cap of one iteration it falls back, and every warm re-solve after
    it is the dual simplex with Devex again, from the crossover's basis. Same optimum as the
    dense LP both ways."""
    import highspy

    from tokmix.solvers import restricted_lp as rlp

    problem = _noisy_problem(tmp_path, np.random.default_rng(1), 60)
    dense = solve_mixture_dense(problem)
    runs: list[tuple[str, int, int]] = []
    run = highspy.Highs.run

    def recorded(h: Any) -> Any:
        _, solver = h.getOptionValue("solver")
        _, pricing = h.getOptionValue("simplex_dual_edge_weight_strategy")
        _, cap = h.getOptionValue("simplex_iteration_limit")
        runs.append((solver, pricing, cap))
        return run(h)

    monkeypatch.setattr(highspy.Highs, "run", recorded)
    shipped = solve_mixture(problem, **OPTIONS[1])
    assert shipped.objective == pytest.approx(dense.objective, rel=1e-6, abs=1e-9)
    assert len(runs) > 2 and all(r[:2] == ("choose", rlp.DEVEX) for r in runs)
    assert runs[0][2] == 5_000 < min(cap for _, _, cap in runs[1:])

    runs.clear()
    monkeypatch.setattr(rlp, "cold_devex_cap", lambda h: 1)
    cycled = solve_mixture(problem, **OPTIONS[1])
    assert cycled.objective == pytest.approx(dense.objective, rel=1e-6, abs=1e-9)
    assert runs[:2] == [("choose", rlp.DEVEX, 1), ("ipm", rlp.DEVEX, rlp.ITERATION_UNLIMITED)]
    assert len(runs) > 3 and all(r[:2] == ("simplex", rlp.DEVEX) for r in runs[2:])


def _demo_problem(n_merges: int) -> MixtureProblem:
    repo = Path(__file__).resolve().parents[1]
    tok = load_tokenizer(repo / "data" / "tokenizers" / "demo")
    names = ("books", "legal", "python", "rust", "typescript")
    tables = {c: count_words(sample_documents(c, 200_000), tok.pretokenizer) for c in names}
    trajs = {
        c: replay_merges(dict(t.counts), tok.merge_list, last_step=n_merges)
        for c, t in tables.items()
    }
    return build_problem(trajs, tok.merge_list.merge_ids, {c: t.bytes_ for c, t in tables.items()})


def test_fast_path_reaches_the_plain_optimum_on_a_mid_size_lp() -> None:
    """Too many constraints for the dense reference (steps x pairs in the millions): the coarse
    phase and pruning must end at plain constraint generation's optimum, with a model that
    keeps only a fraction of the rows it ever saw."""
    problem = _demo_problem(800)
    plain = solve_mixture(problem, stride=1, prune=False, max_rows=None)
    fast = solve_mixture(problem, max_rows=2000)
    assert fast.objective == pytest.approx(plain.objective, rel=1e-7)
    np.testing.assert_allclose(fast.byte_share, plain.byte_share, atol=1e-6)
    assert fast.diagnostics["coarse_rounds"] > 0
    assert fast.diagnostics["constraints_kept"] < fast.diagnostics["constraints"] / 2
    assert plain.diagnostics["constraints_kept"] == plain.diagnostics["constraints"]


def test_sweep_finds_exactly_the_violated_constraints(tmp_path: Path) -> None:
    """The compiled sweep against every constraint written out: with a large limit it lists
    each violated (step, pair) once, with its coefficients; a per-step limit keeps the most
    violated ones of each step, and a 0 limit skips the step."""
    docs = {c: sample_documents(c, 60_000) for c in CATS}
    problem = _problem(tmp_path, docs, [d for c in CATS for d in docs[c]], 40)
    scale = frequency_scale(problem)
    steps, pairs, coefs = all_constraints(problem, scale)
    rng = np.random.default_rng(0)
    alpha = rng.dirichlet(np.ones(problem.n_categories))
    v_step = rng.exponential(0.002, problem.n_steps)
    v_pair = rng.exponential(0.002, problem.n_pairs) * (rng.random(problem.n_pairs) < 0.5)
    excess = -(coefs @ alpha + v_step[steps] + v_pair[pairs])
    violated = excess > 1e-9
    assert 10 < violated.sum() < len(violated)

    got = find_violations(problem, alpha, v_step, v_pair, scale, per_step=10**6, tol=1e-9)
    order = np.lexsort((got[1], got[0]))
    want = np.lexsort((pairs[violated], steps[violated]))
    np.testing.assert_array_equal(got[0][order], steps[violated][want])
    np.testing.assert_array_equal(got[1][order], pairs[violated][want])
    np.testing.assert_allclose(got[2][order], excess[violated][want], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[3][order], coefs[violated][want], rtol=1e-12)

    limit = rng.integers(0, 3, problem.n_steps)
    got_steps, _, got_excess, _, _ = find_violations(
        problem, alpha, v_step, v_pair, scale, per_step=limit, tol=1e-9
    )
    for k in range(problem.n_steps):
        at_k = np.sort(excess[violated & (steps == k)])[::-1][: limit[k]]
        np.testing.assert_allclose(np.sort(got_excess[got_steps == k])[::-1], at_k, rtol=1e-9)


def test_noise_free_mixture_is_recovered_exactly(tmp_path: Path) -> None:
    """Train on category texts repeated k_i times and infer from those same texts: the true
    mixture satisfies every constraint with zero slack, so the LP must find it."""
    docs = {c: sample_documents(c, 150_000) for c in CATS}
    repeats = {"books": 1, "python": 3, "rust": 2}
    train = [d for c in CATS for _ in range(repeats[c]) for d in docs[c]]
    problem = _problem(tmp_path, docs, train, 400)
    sol = solve_mixture(problem)
    truth_bytes = np.array([repeats[c] * sum(len(d.encode()) for d in docs[c]) for c in CATS])
    truth = truth_bytes / truth_bytes.sum()
    assert sol.objective == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(sol.byte_share, truth, atol=2e-3)


def test_a_category_without_pairs_is_rejected(tmp_path: Path) -> None:
    docs = {"books": sample_documents("books", 50_000), "empty": ["a"]}
    with pytest.raises(SolverError, match="empty"):
        _problem(tmp_path, docs, docs["books"], 20)


def _dense_multiset_objective(problem: MixtureProblem, weight: np.ndarray) -> float:
    """The LP of a multiset of steps written out literally: step ``k``'s rows repeated
    ``weight[k]`` times, each copy with its own slack column."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, hstack

    steps, pairs, coefs = all_constraints(problem, frequency_scale(problem))
    copies = weight[steps].astype(np.int64)
    rows = np.repeat(np.arange(len(steps)), copies)
    copy_of = np.concatenate([np.arange(c) for c in copies]) if len(rows) else rows
    # one slack column per (step, copy)
    first = np.concatenate([[0], np.cumsum(weight.astype(np.int64))])
    step_cols = first[steps[rows]] + copy_of
    m, n = len(rows), problem.n_categories
    n_step_cols, n_pairs = int(first[-1]), problem.n_pairs
    v_t = coo_matrix((np.ones(m), (np.arange(m), step_cols)), shape=(m, n_step_cols))
    v_p = coo_matrix((np.ones(m), (np.arange(m), pairs[rows])), shape=(m, n_pairs))
    a_ub = -hstack([coo_matrix(coefs[rows]), v_t, v_p]).tocsr()
    cost = np.concatenate([np.zeros(n), np.ones(n_step_cols + n_pairs)])
    a_eq = np.concatenate([np.ones(n), np.zeros(n_step_cols + n_pairs)])[None, :]
    bounds = [(0, 1)] * n + [(0, None)] * (n_step_cols + n_pairs)
    res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0], bounds=bounds)
    assert res.status == 0, res.message
    return float(res.fun)


@pytest.mark.parametrize("seed", [0, 1])
def test_step_weights_solve_the_lp_of_a_multiset_of_steps(tmp_path: Path, seed: int) -> None:
    """A bootstrap over merges draws steps with repeats; the weighted LP must equal the LP
    with every drawn step's rows written out once per draw (and undrawn steps absent)."""
    rng = np.random.default_rng(seed)
    problem = _noisy_problem(tmp_path, rng, 50)
    draw = rng.multinomial(problem.n_steps, np.ones(problem.n_steps) / problem.n_steps)
    expected = _dense_multiset_objective(problem, draw)
    for options in OPTIONS:
        got = solve_mixture(problem, step_weight=draw.astype(float), **options)
        assert got.objective == pytest.approx(expected, rel=1e-6, abs=1e-9), options
    ones = solve_mixture(problem, step_weight=np.ones(problem.n_steps))
    assert ones.objective == pytest.approx(solve_mixture(problem).objective, rel=1e-9)
    with pytest.raises(SolverError, match="step_weight"):
        solve_mixture(problem, step_weight=-np.ones(problem.n_steps))


def test_slack_prices_match_the_dense_lp_with_those_costs(tmp_path: Path) -> None:
    """``step_weight`` and ``pair_weight`` price the slack columns (the noise-scaled LP's
    objective): the lazy solve must equal the dense LP written with the same costs."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, hstack

    rng = np.random.default_rng(3)
    problem = _noisy_problem(tmp_path, rng, 50)
    step_cost = rng.uniform(0.2, 5.0, problem.n_steps)
    pair_cost = rng.uniform(0.2, 5.0, problem.n_pairs)
    steps, pairs, coefs = all_constraints(problem, frequency_scale(problem))
    m, n = len(steps), problem.n_categories
    v_t = coo_matrix((np.ones(m), (np.arange(m), steps)), shape=(m, problem.n_steps))
    v_p = coo_matrix((np.ones(m), (np.arange(m), pairs)), shape=(m, problem.n_pairs))
    a_ub = -hstack([coo_matrix(coefs), v_t, v_p]).tocsr()
    cost = np.concatenate([np.zeros(n), step_cost, pair_cost])
    a_eq = np.concatenate([np.ones(n), np.zeros(problem.n_steps + problem.n_pairs)])[None, :]
    bounds = [(0, 1)] * n + [(0, None)] * (problem.n_steps + problem.n_pairs)
    dense = linprog(cost, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0], bounds=bounds)
    assert dense.status == 0, dense.message
    for options in OPTIONS:
        got = solve_mixture(problem, step_weight=step_cost, pair_weight=pair_cost, **options)
        assert got.objective == pytest.approx(dense.fun, rel=1e-6, abs=1e-9), options
    with pytest.raises(SolverError, match="pair_weight"):
        solve_mixture(problem, pair_weight=np.zeros(problem.n_pairs))


@pytest.mark.parametrize("merge_stride", [2, 5])
def test_a_merge_stride_solves_the_lp_of_every_kth_step(tmp_path: Path, merge_stride: int) -> None:
    """``merge_stride=k``: the LP written out with the rows of steps 0, k, 2k... only (the
    others absent), for every loop option; with a bootstrap draw, the draw on those steps."""
    rng = np.random.default_rng(5)
    problem = _noisy_problem(tmp_path, rng, 50)
    kept = (np.arange(problem.n_steps) % merge_stride == 0).astype(float)
    expected = _dense_multiset_objective(problem, kept)
    assert expected < solve_mixture_dense(problem).objective  # the other steps' rows matter here
    for options in OPTIONS:
        got = solve_mixture(problem, merge_stride=merge_stride, **options)
        assert got.objective == pytest.approx(expected, rel=1e-6, abs=1e-9), options
        assert got.diagnostics["merge_stride"] == merge_stride
    draw = rng.multinomial(problem.n_steps, np.ones(problem.n_steps) / problem.n_steps)
    both = solve_mixture(problem, merge_stride=merge_stride, step_weight=draw.astype(float))
    expected_draw = _dense_multiset_objective(problem, draw * kept)
    assert both.objective == pytest.approx(expected_draw, rel=1e-6, abs=1e-9)
    with pytest.raises(SolverError, match="merge_stride"):
        solve_mixture(problem, merge_stride=0)
