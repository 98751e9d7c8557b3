"""The mixture as a maximum-likelihood estimate: each merge is the winner of a noisy race.

The paper's LP (DESIGN §5) asks only that each merge beat every competitor and pays for each
miss linearly: a comfortable win and a near miss weigh alike, and the scale of the noise is
never estimated. Here merge ``m_t`` is modelled as the winner among the pairs present at its
step, a multinomial logit over the mixed frequencies ``x_t(p) = Σ_i α_i f_{i,t}(p)``::

    P(m_t) = exp(u_t(m_t)) / Σ_p exp(u_t(p)),   u_t(p) = (x_t(p) - b_p) / (τ s_t)

``τ`` is the noise scale, ``s_t = peak(m_t) ** power`` the step's own scale (a count's noise
grows with the count; ``peak`` is the merge pair's largest mixed frequency under the current
α, as in :mod:`tokmix.solvers.noise_scaled_lp`; ``power = 0``: one temperature for all
steps). ``b_p >= 0`` is a pair's *handicap*: the attacker's sample and the tokenizer's
training text are different documents, and a pair bursty in the sample (a name repeated in
one document) stays far above the winners step after step without ever being merged. Its
errors are one error, persistent, not independent per step; without ``b_p`` such a pair alone
would outweigh every other step (on real trials the fit then sends ``τ`` to infinity). The
handicaps cost ``pair_cost`` log-likelihood units per unit of ``b_p / τ`` (a Laplace prior,
the LP's pair slack ``v_p`` made soft), so a pair earns one only when it beats the winners at
more than about ``pair_cost`` steps.

With ``w = α / τ`` and ``c = b / τ`` the penalized log-likelihood is jointly concave in
``(w, c) >= 0``; ``α = w / Σ w`` and ``τ = 1 / Σ w``, so the temperature is fitted (profiled),
never hand-set. It is maximized by L-BFGS-B (scipy) on values and gradients from torch, in
float64, on CUDA when present and on the CPU otherwise, warm-started from the paper LP's α.

Only the competitors that matter enter a step's softmax: the ``top_k`` pairs with the largest
``x_t`` under the current α (found by the LP's heap sweep,
:func:`tokmix.solvers.violations.find_violations`), refreshed after each fit until α settles;
a pair far below the winner adds ``exp(-gap/τ s_t) ≈ 0``. The cost stays linear in steps.

Intervals come from the model: the observed information of ``w`` (handicaps held at their
estimate), or its merge-block sandwich ``H⁻¹ (Σ_b g_b g_bᵀ) H⁻¹`` over blocks of consecutive
steps (robust to misspecification and to dependence between nearby steps), mapped to byte
shares by the delta method.

Measured (README "Accuracy"): not better than the paper's LP. On 30 held-out controlled trials
(seed 1, n = 5, 10 per setting, benchmarks/results/accuracy/) it is +0.02 ± 0.08 log10 MSE from
the paper's LP (code −0.14 ± 0.11, domains +0.13 ± 0.15, languages +0.07 ± 0.15), and its model
intervals cover 32 % of true shares at nominal 95 %, against 85 % and 79 % for the paper and
scaled LPs' bootstraps on the same trials; power 0 and ``pair_cost`` 0.25 were chosen on seed-0
trials (benchmarks/results/likelihood_sweep.md). It stays an option, not the default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import minimize

from tokmix.errors import SolverError
from tokmix.solvers.mixture_lp import MixtureSolution, frequency_scale, solve_mixture
from tokmix.solvers.noise_scaled_lp import pair_peaks
from tokmix.solvers.problem import MixtureProblem, byte_shares
from tokmix.solvers.violations import find_violations

if TYPE_CHECKING:
    import torch

DEFAULT_TOP_K = 32
DEFAULT_POWER = 0.0
DEFAULT_PAIR_COST = 0.25
DEFAULT_BLOCK = 20
INTERVAL_METHODS = ("sandwich", "information")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # the optional extra
        raise SolverError(
            "the likelihood estimator needs torch: pip install 'tokmix[gpu]' "
            "(or choose --estimator scaled)"
        ) from exc
    return torch


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    return "cuda" if _torch().cuda.is_available() else "cpu"


@dataclass(frozen=True)
class RaceData:
    """Each step's race, restricted to its candidates. ``gaps[t, j]`` holds the coefficients
    of ``x_t(m_t) - x_t(p)`` on α (frequency units) for the ``j``-th competitor ``pair[t, j]``
    of local step ``steps[t]``; ``mask`` marks real competitors (a step may have fewer than
    ``top_k``)."""

    steps: np.ndarray  # int64 (T',): local steps whose merge is present in some category
    gaps: np.ndarray  # float64 (T', k, n)
    pair: np.ndarray  # int64 (T', k), -1 where masked
    mask: np.ndarray  # bool (T', k)


def race_data(
    problem: MixtureProblem,
    alpha: np.ndarray,
    top_k: int,
    handicap: np.ndarray | None = None,
) -> RaceData:
    """The ``top_k`` strongest competitors of every step under ``alpha``, as gap coefficients:
    the pairs with the largest ``x_t(p) - handicap[p]`` (frequency units; none by default).

    A step whose merge occurs in no category has no race (the LP gives it no rows either)."""
    if top_k < 1:
        raise SolverError(f"top_k must be >= 1, got {top_k}")
    n_steps, n = problem.n_steps, problem.n_categories
    # a step slack of -10 puts every present pair "above" the winner (mixed frequencies are
    # <= ~1 in these units), so the sweep returns each step's top_k pairs, strongest first;
    # the pair slack is the handicap
    steps, pairs, _, coef, missing = find_violations(
        problem,
        np.asarray(alpha, dtype=np.float64),
        np.full(n_steps, -10.0),
        np.zeros(problem.n_pairs) if handicap is None else np.asarray(handicap, np.float64),
        frequency_scale(problem),
        per_step=top_k,
        tol=0.0,
    )
    present = np.flatnonzero(~missing)
    slot = np.full(n_steps, -1, dtype=np.int64)
    slot[present] = np.arange(len(present))
    rank = np.zeros(len(steps), dtype=np.int64)
    if len(steps):
        starts = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
        rank = np.arange(len(steps)) - np.repeat(starts, np.diff(np.r_[starts, len(steps)]))
    gaps = np.zeros((len(present), top_k, n))
    pair = np.full((len(present), top_k), -1, dtype=np.int64)
    gaps[slot[steps], rank] = coef
    pair[slot[steps], rank] = pairs
    return RaceData(present.astype(np.int64), gaps, pair, pair >= 0)


def merge_races(old: RaceData, new: RaceData) -> RaceData:
    """Each step's competitors of both races (the same steps), each pair once.

    Candidate sets only grow across rounds: a race restricted to the pairs that were strong
    under an *old* α rewards a new α that lifts the pairs left out, so the fit would chase its
    own restriction; with the union, the fixed point holds every pair strong under the
    final α."""
    pair = np.concatenate([old.pair, new.pair], axis=1)
    gaps = np.concatenate([old.gaps, new.gaps], axis=1)
    order = np.argsort(pair, axis=1, kind="stable")
    pair = np.take_along_axis(pair, order, axis=1)
    gaps = np.take_along_axis(gaps, order[:, :, None], axis=1)
    keep = pair >= 0
    keep[:, 1:] &= pair[:, 1:] != pair[:, :-1]
    width = max(int(keep.sum(axis=1).max()) if len(keep) else 0, 1)
    # compact the kept columns to the left, then cut to the widest row
    pos = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    pair = np.take_along_axis(np.where(keep, pair, -1), pos, axis=1)
    gaps = np.take_along_axis(gaps, pos[:, :, None], axis=1)
    mask = pair >= 0
    gaps[~mask] = 0.0
    return RaceData(old.steps, gaps, pair, mask)


def step_scales(
    problem: MixtureProblem, alpha: np.ndarray, steps: np.ndarray, power: float
) -> np.ndarray:
    """``s_t = peak(m_t) ** power``, normalized to median 1 (so τ keeps frequency units)."""
    if power == 0 or len(steps) == 0:
        return np.ones(len(steps))
    peaks = pair_peaks(problem, np.asarray(alpha, dtype=np.float64))[problem.merge_pair[steps]]
    positive = peaks > 0
    floor = peaks[positive].min() if positive.any() else 1.0
    s = np.where(positive, peaks, floor) ** power
    return np.asarray(s / np.median(s))


def step_log_likelihood(
    w: torch.Tensor, gaps: torch.Tensor, mask: torch.Tensor, offset: torch.Tensor | None = None
) -> torch.Tensor:
    """Per step ``log P(m_t) = -log(1 + Σ_j exp(-gaps[t, j] · w - offset[t, j]))``: the
    winner against its masked competitors (gaps and offsets already divided by ``s_t``;
    ``offset`` is the competitors' handicap, ``c_p / s_t``)."""
    torch = _torch()
    a = -(gaps @ w)
    if offset is not None:
        a = a - offset
    a = torch.where(mask, a, torch.full_like(a, -torch.inf))
    zero = torch.zeros(a.shape[0], 1, dtype=a.dtype, device=a.device)
    return -torch.logsumexp(torch.cat([zero, a], dim=1), dim=1)


def race_derivatives(
    w: torch.Tensor, gaps: torch.Tensor, mask: torch.Tensor, offset: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-step log-likelihood, per-step score ``∂ log P(m_t) / ∂w`` and the total Hessian in
    ``w`` (offsets fixed), in closed form: with ``π_j`` the competitors' softmax weights, the
    score is ``q_t = Σ_j π_j G_j`` and the Hessian ``-Σ_t (Σ_j π_j G_j G_jᵀ - q_t q_tᵀ)``."""
    torch = _torch()
    ll = step_log_likelihood(w, gaps, mask, offset)
    a = -(gaps @ w) - (0 if offset is None else offset)
    pi = torch.where(mask, torch.exp(a + ll[:, None]), torch.zeros_like(a))
    score = torch.einsum("tk,tkn->tn", pi, gaps)
    second = torch.einsum("tk,tkn,tkm->nm", pi, gaps, gaps)
    return ll, score, -(second - score.T @ score)


@dataclass
class _Race:
    """One round's race on the device: gaps and handicap slots scaled by ``1/s_t``."""

    gaps: torch.Tensor
    mask: torch.Tensor
    slot: torch.Tensor  # (T', k): index into the handicap vector (0 where masked)
    inv_scale: torch.Tensor  # (T', 1)
    weight: torch.Tensor  # (T',): how often each step counts
    pairs: np.ndarray  # the pair of each handicap slot

    def offset(self, c: torch.Tensor) -> torch.Tensor:
        return c[self.slot] * self.inv_scale


def _race_on_device(race: RaceData, s: np.ndarray, weight: np.ndarray, device: str) -> _Race:
    torch = _torch()
    pairs, inverse = np.unique(race.pair[race.mask], return_inverse=True)
    slot = np.zeros(race.pair.shape, dtype=np.int64)
    slot[race.mask] = inverse

    def tensor(x: np.ndarray) -> Any:
        return torch.as_tensor(x, device=device)

    return _Race(
        tensor(race.gaps / s[:, None, None]),
        tensor(race.mask),
        tensor(slot),
        tensor(1.0 / s[:, None]),
        tensor(weight.astype(np.float64)),
        pairs,
    )


def _fit(
    r: _Race, w0: np.ndarray, c0: np.ndarray, pair_cost: float | None, max_iter: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Maximize the penalized log-likelihood over ``(w, c) >= 0`` (L-BFGS-B, torch gradients).
    ``pair_cost=None``: no handicaps (the plain multinomial logit)."""
    torch = _torch()
    n = len(w0)
    handicaps = pair_cost is not None
    scale = 1.0 / max(float(r.weight.sum()), 1.0)  # per-step units keep L-BFGS-B's tolerances

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        xt = torch.tensor(x, dtype=torch.float64, device=r.gaps.device, requires_grad=True)
        w, c = xt[:n], xt[n:]
        offset = r.offset(c) if handicaps else None
        ll = (r.weight * step_log_likelihood(w, r.gaps, r.mask, offset)).sum()
        loss = -ll * scale + (float(pair_cost or 0.0) * scale * c.sum() if handicaps else 0.0)
        loss.backward()
        assert xt.grad is not None
        return float(loss.detach()), xt.grad.cpu().numpy()

    x0 = np.concatenate([w0, c0 if handicaps else np.zeros(0)])
    res = minimize(
        objective,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * len(x0),
        options={"maxiter": max_iter, "ftol": 1e-13, "gtol": 1e-9, "maxcor": 30},
    )
    c = res.x[n:] if handicaps else np.zeros(len(r.pairs))
    return (
        res.x[:n],
        c,
        -(float(res.fun) - float(pair_cost or 0.0) * scale * c.sum()) / scale,
    )


def _start(
    r: _Race, alpha: np.ndarray, race: RaceData, pair_cost: float | None
) -> tuple[float, np.ndarray]:
    """A warm start: each pair's handicap just clears its worst violation under ``alpha``
    (the LP's pair slack), then the best τ on a log grid for that α (penalty included)."""
    torch = _torch()
    excess = np.where(race.mask, -(race.gaps @ alpha), 0.0)  # x_t(p) - x_t(m_t), freq units
    b = np.zeros(len(r.pairs))
    slot = r.slot.cpu().numpy()
    if pair_cost is not None:
        np.maximum.at(b, slot[race.mask], np.maximum(excess[race.mask], 0.0))
    a = torch.tensor(alpha, dtype=torch.float64, device=r.gaps.device)
    bt = torch.tensor(b, dtype=torch.float64, device=r.gaps.device)
    best = (-np.inf, 1.0)
    for log_tau in np.arange(-14.0, 2.01, 0.25):
        tau = float(np.exp(log_tau))
        ll = r.weight * step_log_likelihood(a / tau, r.gaps, r.mask, r.offset(bt / tau))
        best = max(best, (float(ll.sum()) - (pair_cost or 0.0) * float(b.sum()) / tau, tau))
    tau = best[1]
    return tau, b / tau


def _share_covariance(
    w: np.ndarray,
    r: _Race,
    offset: torch.Tensor | None,
    ratio: np.ndarray,
    steps: np.ndarray,
    method: str,
    block: int,
) -> np.ndarray:
    """Covariance of the byte shares ``β ∝ w_i · bytes_i / pairs_i`` by the delta method."""
    torch = _torch()
    wt = torch.tensor(w, dtype=torch.float64, device=r.gaps.device)
    _, score_t, _ = race_derivatives(wt, r.gaps, r.mask, offset)
    # the information in w: Σ_t weight_t (Σ_j π_j G_j G_jᵀ - q_t q_tᵀ)
    a = -(r.gaps @ wt) - (0 if offset is None else offset)
    ll = step_log_likelihood(wt, r.gaps, r.mask, offset)
    pi = torch.where(r.mask, torch.exp(a + ll[:, None]), torch.zeros_like(a))
    second = torch.einsum("tk,tkn,tkm->nm", pi * r.weight[:, None], r.gaps, r.gaps)
    info = (second - score_t.T @ (score_t * r.weight[:, None])).cpu().numpy()
    free = w > 1e-9 * w.max()  # a category pinned at 0 has no curvature: held fixed
    inv = np.linalg.pinv(info[np.ix_(free, free)], hermitian=True)
    cov_w = np.zeros((len(w), len(w)))
    if method == "sandwich":
        per_step = (score_t * r.weight[:, None]).cpu().numpy()
        _, block_of = np.unique(steps // max(block, 1), return_inverse=True)
        blocks = np.zeros((int(block_of.max()) + 1 if len(block_of) else 0, len(w)))
        np.add.at(blocks, block_of, per_step)
        meat = blocks[:, free].T @ blocks[:, free]
        cov_w[np.ix_(free, free)] = inv @ meat @ inv
    else:
        cov_w[np.ix_(free, free)] = inv
    raw = w * ratio
    beta = raw / raw.sum()
    jac = (np.diag(ratio) - np.outer(beta, ratio)) / raw.sum()  # dβ/dw
    return np.asarray(jac @ cov_w @ jac.T)


def solve_mixture_likelihood(
    problem: MixtureProblem,
    *,
    start_alpha: np.ndarray | None = None,
    top_k: int = DEFAULT_TOP_K,
    power: float = DEFAULT_POWER,
    pair_cost: float | None = DEFAULT_PAIR_COST,
    interval: str = "sandwich",
    block: int = DEFAULT_BLOCK,
    level: float = 0.95,
    rounds: int = 8,
    max_iter: int = 5000,
    device: str | None = None,
    threads: int = 1,
    step_weight: np.ndarray | None = None,
) -> MixtureSolution:
    """The maximum-likelihood mixture, its fitted temperature and model-based intervals.

    ``start_alpha``: the warm start (the paper LP's α is solved when omitted). Each round
    picks every step's ``top_k`` competitors under the current α and handicaps (added to
    those of earlier rounds) and its scale, then fits ``(w, c)``; rounds stop when α moves by
    less than 1e-5 or no step gains a competitor. ``pair_cost``: the price of a pair's
    handicap (None: no handicaps). ``step_weight`` multiplies each step's log-likelihood (a
    merge-bootstrap draw: a step drawn k times counts k times).
    ``threads``: torch's CPU threads during the fit (its tensors are small: on a shared
    2-core machine one thread measured 12x faster than two).
    ``diagnostics`` holds ``temperature``, ``log_likelihood``, ``handicapped_pairs`` and
    ``byte_share_low/high``: the ``level`` interval, ``interval`` = ``sandwich`` over blocks
    of ``block`` steps, or ``information``.
    """
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _solve(
            problem,
            start_alpha,
            top_k,
            power,
            pair_cost,
            interval,
            block,
            level,
            rounds,
            max_iter,
            device or default_device(),
            step_weight,
        )
    finally:
        torch.set_num_threads(before)


def _solve(
    problem: MixtureProblem,
    start_alpha: np.ndarray | None,
    top_k: int,
    power: float,
    pair_cost: float | None,
    interval: str,
    block: int,
    level: float,
    rounds: int,
    max_iter: int,
    device: str,
    step_weight: np.ndarray | None,
) -> MixtureSolution:
    torch = _torch()
    if interval not in INTERVAL_METHODS:
        raise SolverError(f"unknown interval method {interval!r}: use one of {INTERVAL_METHODS}")
    if pair_cost is not None and pair_cost <= 0:
        raise SolverError(f"pair_cost must be > 0 (or None for no handicaps), got {pair_cost}")
    if not 0 < level < 1:
        raise SolverError(f"level must be in (0, 1), got {level}")
    started = time.perf_counter()
    alpha = (
        solve_mixture(problem, step_weight=step_weight).alpha
        if start_alpha is None
        else np.maximum(np.asarray(start_alpha, dtype=np.float64), 0.0)
    )
    n = problem.n_categories
    alpha = alpha / alpha.sum() if alpha.sum() > 0 else np.full(n, 1.0 / n)
    all_weight = np.ones(problem.n_steps) if step_weight is None else np.asarray(step_weight)
    w: np.ndarray | None = None
    handicap: dict[int, float] = {}
    race: RaceData | None = None
    for n_rounds in range(1, rounds + 1):
        if race is None or pair_cost is None or w is None:
            fresh = race_data(problem, alpha, top_k)
        else:  # the competitors that matter are strong *after* their handicap
            b = np.zeros(problem.n_pairs)
            b[np.fromiter(handicap, np.int64)] = np.fromiter(handicap.values(), float) / w.sum()
            fresh = race_data(problem, alpha, top_k, b)
        grown = fresh.mask.sum() if race is None else 0
        if race is not None:
            before = int(race.mask.sum())
            race = merge_races(race, fresh)
            grown = int(race.mask.sum()) - before
        else:
            race = fresh
        s = step_scales(problem, alpha, race.steps, power)
        r = _race_on_device(race, s, all_weight[race.steps], device)
        if w is None:
            tau, c0 = _start(r, alpha, race, pair_cost)
            w = alpha / tau
        else:  # handicaps carry over between rounds by pair
            c0 = np.array([handicap.get(int(p), 0.0) for p in r.pairs])
        w, c, ll = _fit(r, w, c0, pair_cost, max_iter)
        handicap = dict(zip(r.pairs.tolist(), c.tolist(), strict=True))
        if w.sum() <= 0:
            raise SolverError("the likelihood fit collapsed to w = 0 (no signal in the merges)")
        moved = float(np.abs(w / w.sum() - alpha).max())
        alpha = w / w.sum()
        if moved < 1e-5 or (n_rounds > 1 and grown == 0):
            break
    assert w is not None and race is not None
    offset = r.offset(torch.as_tensor(c, device=device)) if pair_cost is not None else None
    cov = _share_covariance(
        w, r, offset, problem.bytes_ / problem.pairs_, race.steps, interval, block
    )
    beta = byte_shares(alpha, problem)
    half = NormalDist().inv_cdf(0.5 + level / 2) * np.sqrt(np.maximum(np.diag(cov), 0.0))
    tau = float(1.0 / w.sum())
    diagnostics = {
        "solver": "torch-likelihood",
        "device": device,
        "temperature": tau,
        "log_likelihood": ll,
        "first_step": problem.first_step,
        "last_step": problem.last_step,
        "races": len(race.steps),
        "constraints": int(race.mask.sum()),  # competitor entries over all races
        "handicapped_pairs": int((c > 1e-9 * max(w.max(), 1e-300)).sum()),
        "top_k": top_k,
        "power": power,
        "pair_cost": pair_cost,
        "rounds": n_rounds,
        "interval": interval,
        "level": level,
        "byte_share_low": np.clip(beta - half, 0.0, 1.0).tolist(),
        "byte_share_high": np.clip(beta + half, 0.0, 1.0).tolist(),
        "missing_merges": problem.n_steps - len(race.steps),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return MixtureSolution(problem.categories, alpha, beta, -ll, diagnostics)
