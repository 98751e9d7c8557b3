"""The cvxpy formulation: same optimum as the HiGHS path, analyst bounds honoured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import sample_documents
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.training import train_bytelevel_bpe
from tokmix.bpe.words import count_words
from tokmix.errors import SolverError
from tokmix.solvers.cvxpy_lp import solve_mixture_cvxpy
from tokmix.solvers.mixture_lp import (
    all_constraints,
    frequency_scale,
    solve_mixture,
    solve_mixture_dense,
)
from tokmix.solvers.problem import MixtureProblem, build_problem

CATS = ("books", "python", "rust")


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory) -> MixtureProblem:
    weights = {"books": 0.5, "python": 0.3, "rust": 0.2}
    train: list[str] = []
    for c in CATS:
        docs = sample_documents(c)
        used, k = 0, len(docs) - 1
        while used < weights[c] * 300_000 and k > 60:
            train.append(docs[k])
            used += len(docs[k].encode())
            k -= 1
    tok = train_bytelevel_bpe(train, 60, Path(tmp_path_factory.mktemp("tok")))
    trajs, nbytes = {}, {}
    for c in CATS:
        table = count_words(sample_documents(c, 60_000), tok.pretokenizer)
        trajs[c] = replay_merges(table.counts, tok.merge_list)
        nbytes[c] = table.bytes_
    return build_problem(trajs, tok.merge_list.merge_ids, nbytes)


def test_dense_rows_agree_with_highs_to_solver_tolerance(problem: MixtureProblem) -> None:
    rows = all_constraints(problem, frequency_scale(problem))
    ours = solve_mixture_cvxpy(problem, constraints=rows)
    dense = solve_mixture_dense(problem)
    lazy = solve_mixture(problem)
    assert ours.objective == pytest.approx(dense.objective, rel=1e-6, abs=1e-9)
    assert ours.objective == pytest.approx(lazy.objective, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(ours.byte_share, lazy.byte_share, atol=1e-5)


def test_lazy_generation_reaches_the_same_optimum(problem: MixtureProblem) -> None:
    ours = solve_mixture_cvxpy(problem)
    lazy = solve_mixture(problem)
    assert ours.objective == pytest.approx(lazy.objective, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(ours.alpha, lazy.alpha, atol=1e-5)


def test_share_bounds_and_known_shares_hold(problem: MixtureProblem) -> None:
    free = solve_mixture(problem)
    target = float(free.byte_share[2]) + 0.15  # "rust is at least 15 points more"
    bounded = solve_mixture_cvxpy(problem, share_bounds={"rust": (target, None)})
    assert bounded.byte_share[2] >= target - 1e-6
    assert bounded.objective >= free.objective - 1e-9
    known = solve_mixture_cvxpy(problem, known_shares={"books": 0.25})
    assert known.byte_share[0] == pytest.approx(0.25, abs=1e-6)
    capped = solve_mixture_cvxpy(problem, share_bounds={"books": (None, 0.1)})
    assert capped.byte_share[0] <= 0.1 + 1e-6


def test_alternative_objectives_and_bad_bounds(problem: MixtureProblem) -> None:
    for objective in ("l2", "linf"):
        sol = solve_mixture_cvxpy(problem, objective=objective)
        assert sol.byte_share.sum() == pytest.approx(1.0)
        assert (sol.alpha >= 0).all()
    with pytest.raises(SolverError, match="not a category"):
        solve_mixture_cvxpy(problem, share_bounds={"cobol": (0.1, None)})
    with pytest.raises(SolverError, match="consistent"):
        solve_mixture_cvxpy(problem, share_bounds={"books": (0.6, None), "python": (0.6, None)})
