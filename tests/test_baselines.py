"""Baselines: TC and TEE against their definitions, random against the paper's figure."""

from __future__ import annotations

import numpy as np

from tokmix.solvers.baselines import (
    encoding_efficiency_shares,
    log10_mse,
    random_simplex_shares,
    token_classification_shares,
    uniform_shares,
)


def test_token_classification_matches_a_brute_force_count() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(0.5, 20, size=(4, 300))).astype(np.int64)
    counts[:, 7] = 0  # a token no category uses is nobody's
    got = token_classification_shares(counts)
    owners = [0] * 4
    totals = counts.sum(axis=1)
    for v in range(counts.shape[1]):
        if counts[:, v].sum() == 0:
            continue
        best = max(range(4), key=lambda i: (counts[i, v] / totals[i], -i))
        owners[best] += 1
    np.testing.assert_allclose(got, np.array(owners) / sum(owners))


def test_encoding_efficiency_is_proportional_to_bytes_per_token() -> None:
    got = encoding_efficiency_shares(np.array([100, 200, 300]), np.array([50, 50, 300]))
    np.testing.assert_allclose(got, np.array([2.0, 4.0, 1.0]) / 7.0)


def test_random_simplex_guess_scores_as_in_the_paper() -> None:
    # Hayase et al. Table 1, "random": -1.39 (n=5), -1.84 (n=10)
    rng = np.random.default_rng(1)
    for n, paper in ((5, -1.39), (10, -1.84)):
        scores = [
            log10_mse(random_simplex_shares(n, rng), rng.dirichlet(np.ones(n))) for _ in range(4000)
        ]
        assert abs(np.mean(scores) - paper) < 0.04


def test_uniform_and_perfect() -> None:
    np.testing.assert_allclose(uniform_shares(4), 0.25)
    assert log10_mse(np.array([0.3, 0.7]), np.array([0.3, 0.7])) < -100
