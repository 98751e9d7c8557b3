"""The noise-scaled LP: its pair peaks against a brute-force recount, power 0 is the paper's
LP, and its rows (hence a noise-free mixture's exact recovery) are the paper's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import sample_documents, train_bytelevel_bpe
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.words import count_words
from tokmix.solvers.mixture_lp import frequency_scale, solve_mixture
from tokmix.solvers.noise_scaled_lp import pair_peaks, slack_weights, solve_mixture_scaled
from tokmix.solvers.problem import MixtureProblem, build_problem

CATS = ("books", "python", "rust")


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> MixtureProblem:
    train = [d for c in CATS for d in sample_documents(c, 60_000)]
    tok = train_bytelevel_bpe(train, 80, tmp_path_factory.mktemp("tok"))
    tables = {c: count_words(sample_documents(c, 150_000)[5:], tok.pretokenizer) for c in CATS}
    trajs = {c: replay_merges(dict(t.counts), tok.merge_list) for c, t in tables.items()}
    return build_problem(trajs, tok.merge_list.merge_ids, {c: t.bytes_ for c, t in tables.items()})


def _brute_force_peaks(problem: MixtureProblem, alpha: np.ndarray) -> np.ndarray:
    """Replay the counts step by step and keep every pair's largest mixed frequency."""
    scale = frequency_scale(problem)
    counts = np.zeros((problem.n_pairs, problem.n_categories))
    peaks = np.full(problem.n_pairs, -np.inf)
    for k in range(problem.n_steps + 1):
        lo, hi = problem.step_start[k], problem.step_start[k + 1]
        np.add.at(
            counts, (problem.rows_pair[lo:hi], problem.rows_cat[lo:hi]), problem.rows_delta[lo:hi]
        )
        peaks = np.maximum(peaks, counts @ (alpha * scale))
    return peaks


def test_pair_peaks_equal_a_step_by_step_recount(problem: MixtureProblem) -> None:
    rng = np.random.default_rng(0)
    for alpha in (np.full(3, 1 / 3), rng.dirichlet(np.ones(3))):
        np.testing.assert_allclose(
            pair_peaks(problem, alpha), _brute_force_peaks(problem, alpha), rtol=1e-9, atol=1e-15
        )


def test_frequent_pairs_get_cheaper_slack(problem: MixtureProblem) -> None:
    alpha = np.full(3, 1 / 3)
    steps, pairs = slack_weights(problem, alpha, power=0.5)
    peaks = pair_peaks(problem, alpha)
    seen = peaks > 0
    order = np.argsort(peaks[seen])
    assert (np.diff(pairs[seen][order]) <= 1e-12).all()  # non-increasing in the peak
    merged = problem.merge_pair >= 0
    np.testing.assert_array_equal(steps[merged], pairs[problem.merge_pair[merged]])
    flat_steps, flat_pairs = slack_weights(problem, alpha, power=0.0)
    assert (flat_steps == 1).all() and (flat_pairs == 1).all()


def test_power_zero_is_the_papers_lp(problem: MixtureProblem) -> None:
    paper = solve_mixture(problem)
    same = solve_mixture_scaled(problem, power=0.0)
    assert same.objective == pytest.approx(paper.objective, rel=1e-7)
    np.testing.assert_allclose(same.byte_share, paper.byte_share, atol=1e-6)
    scaled = solve_mixture_scaled(problem, reference_alpha=paper.alpha)
    assert scaled.diagnostics["solver"] == "highs-noise-scaled"
    assert abs(scaled.byte_share.sum() - 1) < 1e-9


def test_noise_free_mixture_is_recovered(tmp_path: Path) -> None:
    """Training text = the attacker's samples repeated k_i times: the true α satisfies every
    row with zero slack, so any slack prices must find it (the rows are the paper's)."""
    docs = {c: sample_documents(c, 40_000) for c in CATS}
    reps = {"books": 3, "python": 1, "rust": 2}
    tok = train_bytelevel_bpe([d for c in CATS for d in docs[c] * reps[c]], 60, tmp_path)
    tables = {c: count_words(docs[c], tok.pretokenizer) for c in CATS}
    trajs = {c: replay_merges(dict(t.counts), tok.merge_list) for c, t in tables.items()}
    problem = build_problem(
        trajs, tok.merge_list.merge_ids, {c: t.bytes_ for c, t in tables.items()}
    )
    truth = np.array([reps[c] * tables[c].bytes_ for c in CATS], dtype=float)
    truth /= truth.sum()
    sol = solve_mixture_scaled(problem)
    assert sol.objective == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(sol.byte_share, truth, atol=2e-3)
