"""Bootstrap intervals for inferred mixtures, cheap through the linearity of trajectories.

A category's sample is split into ``K`` document groups; each group's word table is replayed
once, giving one :class:`PairTrajectory` per (category, group). Trajectories are linear in the
word counts (ARCHITECTURE.md §4), so the trajectory of any multiset of groups is a weighted sum of
the group trajectories: a bootstrap replicate (groups drawn with replacement, i.e. integer
multinomial weights ``w_g`` summing to ``K``) costs one weighted sum and one LP solve, never a
replay. Bytes are weighted alike, so byte shares stay consistent with the resampled text.

Resampling whole document groups (not words) keeps the dependence between the words of one
document, which is where most of the sampling variance of pair counts comes from.

The solver is a parameter (default :func:`tokmix.solvers.mixture_lp.solve_mixture`) so the
same replicates serve any estimator that maps a :class:`MixtureProblem` to a solution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tokmix.bpe.replay import PairTrajectory, _canonical
from tokmix.bpe.words import document_group
from tokmix.errors import SolverError
from tokmix.solvers.mixture_lp import MixtureSolution, solve_mixture
from tokmix.solvers.problem import build_problem

Solver = Callable[..., MixtureSolution]  # (problem[, step_weight=...]) -> solution
MapFn = Callable[..., Iterable[Any]]


class ReplicateMemo(Protocol):
    """Where finished replicates are kept, so that a run killed half-way solves only the
    replicates it lacks when it runs again (the solve stage keeps them on disk).
    ``recall`` says whether replicate ``index`` was kept and its solution (``None``: its
    solve failed); ``record`` keeps one; ``options`` are extra options for its solve (an LP's
    checkpoint callback, the state to go on from). Called where the replicate is solved."""

    def options(self, index: int) -> dict[str, Any]: ...

    def recall(self, index: int) -> tuple[bool, MixtureSolution | None]: ...

    def record(self, index: int, solution: MixtureSolution | None) -> None: ...


def document_groups(keys: Sequence[str | bytes], n_groups: int) -> np.ndarray:
    """Group index in ``0 .. n_groups-1`` per document, from a hash of its key (its source
    path, or its index as text): deterministic, independent of reading order and of the
    other documents, so a category's groups are the same in every run."""
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    out = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        out[i] = document_group(key.encode() if isinstance(key, str) else key, n_groups)
    return out


def weighted_trajectory(parts: Sequence[PairTrajectory], weights: np.ndarray) -> PairTrajectory:
    """``Σ_g w_g · parts[g]`` for integer weights: the trajectory of the resampled word table
    (a word table with every count of group ``g`` multiplied by ``w_g``)."""
    if len(parts) != len(weights):
        raise ValueError(f"{len(parts)} trajectories but {len(weights)} weights")
    used = [(p, int(w)) for p, w in zip(parts, weights, strict=True) if w != 0]
    if not used:
        raise SolverError("a bootstrap replicate drew no group of a category")
    first = {(p.first_step, p.last_step) for p in parts}
    if len(first) != 1:
        raise SolverError(f"group trajectories cover different merge ranges: {sorted(first)}")
    first_step, last_step = first.pop()
    return _canonical(
        np.concatenate([p.step for p, _ in used]),
        np.concatenate([p.left for p, _ in used]),
        np.concatenate([p.right for p, _ in used]),
        np.concatenate([p.delta * w for p, w in used]),
        first_step,
        last_step,
        sum(p.pairs * w for p, w in used),
    )


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile intervals of byte shares (and α) per category, and every replicate.

    ``byte_share_low/high[i]`` bound category ``i``'s byte share at ``level``;
    ``replicate_byte_shares`` is ``(replicates, n)``. Replicates whose solve failed are
    dropped and counted in ``failed``; ``reused`` counts those a memo held (a re-run)."""

    categories: tuple[str, ...]
    level: float
    byte_share_low: np.ndarray
    byte_share_high: np.ndarray
    weight_low: np.ndarray
    weight_high: np.ndarray
    replicate_byte_shares: np.ndarray
    replicate_weights: np.ndarray
    failed: int
    reused: int = 0

    @property
    def mean_byte_share(self) -> np.ndarray:
        """The bagged estimate: the mean of the replicates' byte shares."""
        return self.replicate_byte_shares.mean(axis=0)

    def covers(self, truth: np.ndarray) -> np.ndarray:
        """Per category, whether the interval holds ``truth`` (coverage measurement)."""
        return (self.byte_share_low <= truth) & (truth <= self.byte_share_high)


def _draw(parts: Sequence[PairTrajectory], rng: np.random.Generator) -> np.ndarray:
    """Multinomial group weights of one replicate (total = number of groups)."""
    k = len(parts)
    w = rng.multinomial(k, np.full(k, 1.0 / k))
    if not w[np.asarray([p.pairs > 0 for p in parts])].any():
        w = np.ones(k, dtype=np.int64)  # an all-empty draw: keep the sample as is
    return w


def _draw_merges(n_steps: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Step weights of one merge-block draw: blocks drawn with replacement (as many as there
    are), each drawn block's steps weighted by how often it was drawn."""
    n_blocks = -(-n_steps // block)
    counts = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks))
    return np.repeat(counts, block)[:n_steps].astype(np.float64)


def bootstrap_mixture(
    group_trajectories: Mapping[str, Sequence[PairTrajectory]],
    group_bytes: Mapping[str, Sequence[int]],
    merge_ids: np.ndarray,
    *,
    replicates: int = 50,
    level: float = 0.95,
    seed: int = 0,
    solve: Solver = solve_mixture,
    center: MixtureSolution | None = None,
    method: str = "auto",
    map_fn: MapFn = map,
    merge_block: int = 0,
    memo: ReplicateMemo | None = None,
    on_done: Callable[[int, bool], None] | None = None,
) -> BootstrapResult:
    """Document-group (and merge-block) bootstrap of the mixture estimate.

    ``group_trajectories[c]`` are category ``c``'s per-group trajectories (same step range;
    they add up to the category's trajectory), ``group_bytes[c]`` the groups' sample bytes,
    ``merge_ids`` the merge list's ``(M, 3)`` ids (``MergeList.merge_ids``). Each replicate
    draws, per category independently, multinomial weights over its groups (total = number
    of groups), solves the weighted problem with ``solve``, and records α and β.

    ``method="percentile"``: the ``(1-level)/2`` and ``(1+level)/2`` percentiles of the
    replicates (needs a few dozen replicates to mean anything at 95 %). ``"normal"``: the
    estimate (``center``, the point solution, else the replicates' mean) ± z · the replicates'
    standard deviation, usable with a handful of replicates when each costs an LP solve.
    ``"auto"``: percentile from 40 replicates, normal below.

    ``merge_block > 0`` also resamples the merge list: the steps fall into consecutive
    blocks of that many merges, each replicate draws blocks with replacement, and ``solve``
    gets the draw as ``step_weight`` (:func:`tokmix.solvers.mixture_lp.solve_mixture`).
    Document groups measure the attacker's sampling noise only; which merges the tokenizer
    made, and by what margins, carries the noise of its own training text, and how much the
    estimate depends on the particular merges is what resampling them measures. Blocks keep
    the runs of merges that build one word together.

    ``map_fn`` maps the replicate solve over the draws (the builtin ``map`` by default; a
    Ray job passes one that solves replicates in parallel tasks). The draws are made first,
    from ``seed`` alone, so the result does not depend on how replicates are scheduled, nor
    on which of them ``memo`` already held: a re-run after a kill gives the same intervals.
    Nor on the order the categories are listed in: they are drawn in name order (a listing in
    another order once gave python 20.2-39.2 % on the demo and 23.7-35.8 % reversed).
    ``on_done(index, reused)`` is called here as each replicate's result comes back (a
    replicate at the paper's scale takes an hour: the caller reports progress with it).
    """
    if replicates < 2:
        raise ValueError(f"need at least 2 replicates, got {replicates}")
    names = tuple(group_trajectories)
    for name in names:
        k = len(group_trajectories[name])
        if k == 0 or len(group_bytes[name]) != k:
            raise SolverError(
                f"category {name!r}: {k} group trajectories, {len(group_bytes[name])} byte counts"
            )
    if merge_block < 0:
        raise ValueError(f"merge_block must be >= 0, got {merge_block}")
    rng = np.random.default_rng(seed)
    first = group_trajectories[names[0]][0]
    n_steps = first.last_step - first.first_step + 1
    # one generator serves every category: drawn in name order, a category gets the same
    # weights whatever order the spec or the command line lists the categories in
    by_name = sorted(names)
    draws = []
    for _ in range(replicates):
        drawn = {name: _draw(group_trajectories[name], rng) for name in by_name}
        steps = _draw_merges(n_steps, merge_block, rng) if merge_block else None
        draws.append(({name: drawn[name] for name in names}, steps))

    def one(
        item: tuple[int, tuple[dict[str, np.ndarray], np.ndarray | None]],
    ) -> tuple[MixtureSolution | None, bool]:
        """A replicate's solution, and whether ``memo`` held it."""
        index, (groups, steps) = item
        if memo is not None:
            kept, solution = memo.recall(index)
            if kept:
                return solution, True
        solution = solve_draw(groups, steps, {} if memo is None else memo.options(index))
        if memo is not None:
            memo.record(index, solution)
        return solution, False

    def solve_draw(
        groups: dict[str, np.ndarray], steps: np.ndarray | None, options: dict[str, Any]
    ) -> MixtureSolution | None:
        trajs = {n: weighted_trajectory(group_trajectories[n], w) for n, w in groups.items()}
        nbytes = {
            n: int(np.dot(w, np.asarray(group_bytes[n], dtype=np.int64))) for n, w in groups.items()
        }
        try:
            problem = build_problem(trajs, merge_ids, nbytes)
            if steps is not None:
                options = {**options, "step_weight": steps}
            return solve(problem, **options)
        except SolverError:
            return None

    results = []
    for index, result in enumerate(map_fn(one, list(enumerate(draws)))):
        results.append(result)
        if on_done is not None:
            on_done(index, result[1])
    solved = [sol for sol, _ in results if sol is not None]
    failed = replicates - len(solved)
    reused = sum(kept for _, kept in results)
    shares = [sol.byte_share for sol in solved]
    weights = [sol.alpha for sol in solved]
    if len(shares) < 2:
        raise SolverError(f"only {len(shares)} of {replicates} bootstrap replicates solved")
    s = np.array(shares)
    a = np.array(weights)
    if method == "auto":
        method = "percentile" if len(s) >= 40 else "normal"
    if method == "percentile":
        q = [50 * (1 - level), 50 * (1 + level)]
        s_lo, s_hi = np.percentile(s, q, axis=0)
        a_lo, a_hi = np.percentile(a, q, axis=0)
    elif method == "normal":
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
        s_mid = center.byte_share if center is not None else s.mean(axis=0)
        a_mid = center.alpha if center is not None else a.mean(axis=0)
        s_sd, a_sd = s.std(axis=0, ddof=1), a.std(axis=0, ddof=1)
        s_lo, s_hi = np.clip(s_mid - z * s_sd, 0, 1), np.clip(s_mid + z * s_sd, 0, 1)
        a_lo, a_hi = np.clip(a_mid - z * a_sd, 0, 1), np.clip(a_mid + z * a_sd, 0, 1)
    else:
        raise ValueError(f"method must be percentile, normal or auto, not {method!r}")
    return BootstrapResult(names, level, s_lo, s_hi, a_lo, a_hi, s, a, failed, reused)


def widen_for_training_noise(
    estimate: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    sample_bytes: np.ndarray | float,
    train_bytes: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Intervals that also hold the tokenizer's *training* sample noise, given its size.

    The bootstrap resamples the attacker's text only. The training text of category ``i``
    (about ``β_i · train_bytes`` bytes) is a finite sample of the same kind, and the estimate
    compares the two, so its variance is about the bootstrap's times
    ``1 + sample_bytes_i / (β_i · train_bytes)``. Each side of the interval is stretched
    around the estimate by the square root of that factor (clipped to [0, 1]). With the
    paper's 10 GB of training text the factor is ~1; with megabytes it dominates for small
    shares. ``train_bytes`` is an assumption an analyst supplies; the experiment knows it."""
    est = np.asarray(estimate, dtype=np.float64)
    share = np.maximum(est, 1e-6)
    factor = np.sqrt(1.0 + np.asarray(sample_bytes, dtype=np.float64) / (share * train_bytes))
    lo = np.clip(est - (est - np.asarray(low)) * factor, 0.0, 1.0)
    hi = np.clip(est + (np.asarray(high) - est) * factor, 0.0, 1.0)
    return np.minimum(lo, est), np.maximum(hi, est)
