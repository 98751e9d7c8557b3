"""The noise-weighted LP: at power 0 it is the paper's LP; its step weights follow σ_t."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import sample_documents
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.training import train_bytelevel_bpe
from tokmix.bpe.words import count_words
from tokmix.solvers.mixture_lp import all_constraints, frequency_scale, solve_mixture
from tokmix.solvers.problem import MixtureProblem, build_problem
from tokmix.solvers.weighted_lp import counts_at, solve_mixture_weighted, step_weights

CATS = ("books", "legal", "python")


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> MixtureProblem:
    train = [d for c in CATS for d in sample_documents(c)[-25:]]
    tok = train_bytelevel_bpe(train, 100, Path(tmp_path_factory.mktemp("tok")))
    trajs, nbytes = {}, {}
    for c in CATS:
        table = count_words(sample_documents(c, 50_000), tok.pretokenizer)
        trajs[c] = replay_merges(table.counts, tok.merge_list)
        nbytes[c] = table.bytes_
    return build_problem(trajs, tok.merge_list.merge_ids, nbytes)


def test_counts_at_matches_the_dense_constraint_rows(problem: MixtureProblem) -> None:
    scale = frequency_scale(problem)
    steps, pairs, coefs = all_constraints(problem, scale)
    merged = counts_at(problem, steps, problem.merge_pair[steps])
    competitor = counts_at(problem, steps, pairs)
    np.testing.assert_allclose((merged - competitor) * scale, coefs, rtol=0, atol=1e-12)


def test_power_zero_is_the_papers_lp(problem: MixtureProblem) -> None:
    paper = solve_mixture(problem)
    same = solve_mixture_weighted(problem, reference=paper, power=0.0)
    np.testing.assert_allclose(same.alpha, paper.alpha, atol=1e-6)
    assert same.objective == pytest.approx(paper.objective, rel=1e-6)


def test_step_weights_scale_as_the_standard_error(problem: MixtureProblem) -> None:
    alpha = np.full(problem.n_categories, 1.0 / problem.n_categories)
    z = step_weights(problem, alpha, power=-1.0)
    var = step_weights(problem, alpha, power=-2.0)
    ok = z > 0
    # σ^-2 is (σ^-1)^2 up to the median normalization
    ratio = var[ok] / z[ok] ** 2
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    sol = solve_mixture_weighted(problem, power=-1.0)
    assert sol.byte_share.sum() == pytest.approx(1.0)
