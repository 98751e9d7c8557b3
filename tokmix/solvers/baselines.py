"""Baselines the mixture LP is scored against (Hayase et al. 2024, §3.3 "Baselines").

Every function returns estimated byte shares (a point of the simplex), one per category, so
they are scored exactly like the LP's ``byte_share``:

- :func:`uniform_shares`: ``1/n`` for every category.
- :func:`random_simplex_shares`: a point drawn uniformly from the simplex (the paper's
  "random guess"; its expected error is the table's last row, ARCHITECTURE.md §8).
- :func:`token_classification_shares` (TC): each learned vocabulary token is assigned to the
  category where its normalized frequency (count / the category's token total) is highest;
  a category's share is the fraction of tokens assigned to it.
- :func:`encoding_efficiency_shares` (TEE): a category's share is proportional to how
  efficiently the tokenizer encodes its sample (bytes per token): the more a category was
  trained on, the better the tokenizer compresses it.

Pure functions of counts: the caller encodes each category's word table with the tokenizer.
"""

from __future__ import annotations

import numpy as np

from tokmix.errors import SolverError


def uniform_shares(n: int) -> np.ndarray:
    if n < 1:
        raise SolverError("no categories")
    return np.full(n, 1.0 / n)


def random_simplex_shares(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the simplex: Dirichlet(1, ..., 1)."""
    return rng.dirichlet(np.ones(n))


def token_classification_shares(token_counts: np.ndarray) -> np.ndarray:
    """TC from ``token_counts[i, v]``: how often category ``i``'s sample uses token ``v``
    (pass the learned tokens only, not the 256 base bytes every tokenizer has). Tokens no
    category uses are not assigned."""
    counts = np.asarray(token_counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise SolverError("a category's sample produced no tokens")
    freq = counts / totals
    used = counts.sum(axis=0) > 0
    if not used.any():
        raise SolverError("no token occurs in any category")
    owner = np.argmax(freq[:, used], axis=0)
    assigned = np.bincount(owner, minlength=counts.shape[0]).astype(np.float64)
    return assigned / assigned.sum()


def encoding_efficiency_shares(bytes_: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """TEE: shares proportional to bytes per token of each category's sample."""
    b = np.asarray(bytes_, dtype=np.float64)
    t = np.asarray(tokens, dtype=np.float64)
    if (t <= 0).any():
        raise SolverError("a category's sample produced no tokens")
    eff = b / t
    return eff / eff.sum()


def log10_mse(estimate: np.ndarray, truth: np.ndarray) -> float:
    """The paper's score: ``log10`` of the mean squared error over byte shares."""
    mse = float(np.mean((np.asarray(estimate) - np.asarray(truth)) ** 2))
    return float(np.log10(max(mse, 1e-300)))
