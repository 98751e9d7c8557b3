"""The mixture LP: lazy HiGHS solve vs the full LP in scipy, and exact recovery without noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import sample_documents, train_bytelevel_bpe
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.words import count_words
from tokmix.errors import SolverError
from tokmix.solvers.mixture_lp import solve_mixture, solve_mixture_dense
from tokmix.solvers.problem import build_problem

CATS = ("books", "python", "rust")


def _problem(tmp_path: Path, texts: dict[str, list[str]], train: list[str], n_merges: int):  # type: ignore[no-untyped-def]
    tok = train_bytelevel_bpe(train, n_merges, tmp_path / "tok")
    tables = {c: count_words(t, tok.pretokenizer) for c, t in texts.items()}
    trajs = {c: replay_merges(dict(tables[c].counts), tok.merge_list) for c in texts}
    return build_problem(trajs, tok.merge_list.merge_ids, {c: t.bytes_ for c, t in tables.items()})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_constraints_reach_the_full_lp_optimum(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    docs = {c: sample_documents(c, 120_000) for c in CATS}
    weights = rng.dirichlet(np.ones(len(CATS)))
    train: list[str] = []
    for c, w in zip(CATS, weights, strict=True):
        train += docs[c][: max(1, int(w * len(docs[c])))]
    attacker = {c: sample_documents(c, 200_000)[len(docs[c]) // 2 :] for c in CATS}
    problem = _problem(tmp_path, attacker, train, 60)
    lazy = solve_mixture(problem, per_step=3)
    dense = solve_mixture_dense(problem)
    assert lazy.objective == pytest.approx(dense.objective, rel=1e-6, abs=1e-9)
    assert lazy.diagnostics["constraints"] < dense.diagnostics["constraints"]


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
