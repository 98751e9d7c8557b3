"""The mixture LP of Hayase et al. (ARCHITECTURE.md §5), solved by HiGHS with lazy constraints.

    minimize  Σ_t v_t + Σ_p v_p
    s.t.      Σ_i α_i (f_{i,t}(m_t) - f_{i,t}(p)) + v_t + v_p >= 0   for every step t, pair p != m_t
              α in the simplex, v >= 0

There are up to T x (pairs) constraints, so they are generated: solve with the constraints found
so far, sweep the α-weighted counts for violated ones (``tokmix.solvers.violations``), add them,
re-solve warm-started (HiGHS keeps its basis when rows and columns are added), until a sweep
finds none. What keeps it fast on real tokenizers (``benchmarks/README.md``): rows go in as CSR
batches; a coarse phase on every 8th step settles α before all steps are swept; a round adds at
most the most violated 4 rows a step (:func:`round_rows`); rows whose slack is basic are pruned
after each solve, so HiGHS re-solves a model of the rows that matter rather than of every row
ever found (the model itself: :mod:`tokmix.solvers.restricted_lp`). A :class:`Checkpoint`
of the loop resumes it after a kill. :func:`solve_mixture_dense` writes every constraint out
and hands the LP to ``scipy.optimize.linprog``: the reference for small instances.

At scale (``benchmarks/README.md``): the sweep replays α-mixed frequencies, one float per
pair (:mod:`tokmix.solvers.edges`), so memory stays linear in the trajectory rows at 150
categories; a solve hands its α and kept rows on (:class:`WarmStart`) to the noise-scaled LP
and to the bootstrap replicates; progress lines come at least every 10 s of rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tokmix.errors import SolverError
from tokmix.solvers.edges import PairHistory
from tokmix.solvers.problem import MixtureProblem, byte_shares
from tokmix.solvers.restricted_lp import RestrictedLP
from tokmix.solvers.sweeps import SWEEPS, edge_sweep
from tokmix.solvers.torch_sweep import resolve_device
from tokmix.solvers.violations import find_violations

Log = Callable[[str], None]


@dataclass(frozen=True)
class WarmStart:
    """Where a solve of a related problem may start: its α and the rows it kept, as ``(local
    step, pair key)`` with ``key = left << 32 | right`` (pair numbers differ between
    problems). The paper LP's start serves the noise-scaled LP (same rows, other costs); the
    point estimate's serves each bootstrap replicate (same steps, resampled counts). A start
    changes where the search begins, never the optimum: the loop still ends only when a sweep
    over every step finds no violated row."""

    alpha: np.ndarray
    step: np.ndarray
    pair_key: np.ndarray

    def rows_for(self, problem: MixtureProblem) -> tuple[np.ndarray, np.ndarray]:
        """The start's rows that exist in ``problem``: ``(local step, pair index)``."""
        universe = (problem.pair_left.astype(np.int64) << 32) | problem.pair_right.astype(np.int64)
        pos = np.minimum(np.searchsorted(universe, self.pair_key), max(len(universe) - 1, 0))
        ok = (len(universe) > 0) & (universe[pos] == self.pair_key)
        ok &= (self.step >= 0) & (self.step < problem.n_steps)
        return self.step[ok], pos[ok]


@dataclass(frozen=True)
class LoopState:
    """Where the lazy loop stood after a round, to go on there in the same problem: the HiGHS
    model (its columns and rows in order, their basis), the box on α, the per-step limits and
    the phase. Plain arrays (a checkpoint file holds them); :meth:`fits` refuses a state of
    another problem, and a state that does not restore leaves the solve to its start."""

    arrays: dict[str, np.ndarray]

    def fits(self, problem: MixtureProblem, n_versions: int) -> bool:
        shape = self.arrays.get("shape")
        want = [problem.n_categories, problem.n_steps, problem.n_pairs, n_versions]
        return shape is not None and shape.tolist() == want


@dataclass(frozen=True)
class Checkpoint:
    """What a solve hands its ``checkpoint`` callback: its state for a resume of the same
    problem, and its α and rows for any related one."""

    warm: WarmStart
    state: LoopState


@dataclass(frozen=True)
class MixtureSolution:
    """α (pair units), β (byte shares) and how the solve went."""

    categories: tuple[str, ...]
    alpha: np.ndarray
    byte_share: np.ndarray
    objective: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    warm: WarmStart | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "categories": [
                {"name": n, "weight": float(a), "byte_share": float(b)}
                for n, a, b in zip(self.categories, self.alpha, self.byte_share, strict=True)
            ],
            "diagnostics": {"objective": self.objective, **self.diagnostics},
        }


def frequency_scale(problem: MixtureProblem) -> np.ndarray:
    """Per-category factor from counts to normalized frequencies ``f = c / d_i``, times one
    global constant that puts the largest initial frequency near 1 (HiGHS' tolerances are
    absolute; raw frequencies of late merges are ~1e-7). The constant rescales the objective
    only, never α."""
    snap = slice(problem.step_start[0], problem.step_start[1])
    freq = problem.rows_delta[snap] / problem.pairs_[problem.rows_cat[snap]]
    top = float(freq.max()) if len(freq) else 1.0
    return 1.0 / (problem.pairs_.astype(np.float64) * top)


class _TrustRegion:
    """A box on α around the best point found so far: the stabilization of the cutting planes.

    Plain row generation lets α jump to wherever the rows found so far are cheapest; the next
    sweep then finds rows of that α, most of them useless at the optimum (measured on GPT-2,
    30 categories x 2 000 merges: α's repaired objective swings between 0.9 and 175 from one
    round to the next). Here α stays within ``radius`` of the *center*, the α with the best
    feasible objective seen (a proximal bundle method's serious step): every sweep gives one,
    the master's objective plus the slack that would repair each step's worst violation. A
    step that improves on the center by a tenth of what the master predicted moves the center
    (and doubles the radius if the box held α back); one that does not shrinks the box.
    The box never changes the optimum: the loop ends only when a sweep finds no violated row
    at an α the box does not hold back.
    """

    def __init__(self, center: np.ndarray, radius: float, serious: int = 0) -> None:
        self.center = center.copy()
        self.value = np.inf
        self.radius = radius
        self.serious = serious
        self.applied = (self.center, 1.0)  # the box of the model's last solve

    def boxed(self, alpha: np.ndarray) -> bool:
        """Whether the box last applied (:meth:`apply`) holds ``alpha`` back: some coordinate
        on a side that is not 0 or 1."""
        center, radius = self.applied
        if radius >= 1:
            return False
        lower, upper = center - radius, center + radius
        tight = 1e-9
        return bool(
            np.any((alpha <= lower + tight) & (lower > 0))
            or np.any((alpha >= upper - tight) & (upper < 1))
        )

    def apply(self, lp: RestrictedLP) -> None:
        """Bound the model's α to the box."""
        self.applied = (self.center.copy(), self.radius)
        lp.box(*self.applied)

    def update(self, alpha: np.ndarray, feasible: float, model: float) -> None:
        """Serious or null step for the master's ``alpha``, whose repaired objective is
        ``feasible`` and whose master objective is ``model``."""
        if self.radius >= 1:
            return
        improved = feasible < self.value - 0.1 * max(self.value - model, 0.0)
        if improved or not np.isfinite(self.value):
            if self.boxed(alpha):
                self.radius = min(2 * self.radius, 1.0)
            self.center, self.value = alpha.copy(), feasible
            self.serious += 1
            if feasible - model <= _RELEASE * abs(feasible):
                self.radius = 1.0  # the rows are nearly all there: a box would only creep
        else:
            self.radius = max(0.7 * self.radius, _MIN_RADIUS)

    def widen(self, alpha: np.ndarray) -> None:
        """The sweep found nothing but the box held α back: recenter there, double the box."""
        self.center = alpha.copy()
        self.radius = min(2 * self.radius, 1.0)


def round_rows(n_steps: int) -> int:
    """The default cap on rows a round adds: 4 per merge step, at least 5 000.

    A fixed cap makes the rounds grow with the merges: at 30 000 merges a sweep finds about a
    million violated rows and 5 000 a round leaves most steps without any. Measured on GPT-2,
    30 categories (CPU seconds, paper LP; per-step limit up to 16 instead of 64 with it):
    5 000 merges 49.6 s / 263 rounds at 5 000 rows against 33.1 s / 147 rounds at 20 000;
    10 000 merges 214 s / 557 rounds against 142 s / 218 rounds at 40 000. More rows a round
    cost HiGHS more than the rounds they save (uncapped at 5 000 merges: 61 rounds, 126 s)."""
    return max(5000, 4 * n_steps)


_MIN_RADIUS = 1e-4
# Once a point's repaired objective is this close to the master's, the box goes for good: the
# rows found settle α, and a box near the optimum only makes α creep towards it (measured on
# GPT-2, 30 x 5 000: the last 0.1 % of the objective took the box 100 rounds).
_RELEASE = 1e-3


def solve_mixture(
    problem: MixtureProblem,
    *,
    per_step: int = 8,
    per_step_max: int = 16,
    max_rounds: int = 10_000,
    tol: float = 1e-9,
    threads: int = 1,
    stride: int = 8,
    merge_stride: int = 1,
    prune: bool = True,
    max_rows: int | Literal["auto"] | None = "auto",
    trust_region: float | None = 0.05,
    step_weight: np.ndarray | None = None,
    pair_weight: np.ndarray | None = None,
    start: WarmStart | None = None,
    log: Log | None = None,
    log_every: float = 10.0,
    time_limit: float | None = None,
    sweep: str = "mixed",
    device: str = "cpu",
    checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: float = 60.0,
    resume: LoopState | None = None,
) -> MixtureSolution:
    """Solve the mixture LP with lazily generated constraints; α, β and diagnostics.

    Each round adds at most ``per_step`` violated constraints per step and ``max_rows`` in all
    (``None``: no cap; ``"auto"``: :func:`round_rows`), the most violated first: a smaller model
    re-solves faster than the extra rounds cost. A step violated again may add twice as many as the
    round before, up to ``per_step_max``: a merge that trails many competitors needs them all in
    view, and peeling them ``per_step`` a round costs a round each (measured on GPT-2, 30 categories
    x 2 000 merges: 93 rounds against 158; with the larger round cap, 16 beats 64: 33 s against 46 s
    at 5 000 merges). ``stride > 1`` first generates constraints at every ``stride``-th step only,
    until none is violated there, which settles α cheaply; then at every step. ``prune`` deletes
    rows whose slack is basic after each solve, which keeps the model small (their dual is 0; the
    ones that matter again come back). ``trust_region`` (the half-width of a box on α around the
    best α so far, :class:`_TrustRegion`; ``None``: no box) keeps α from jumping between rounds.
    None of these changes the optimum: the loop ends only when a sweep over every step finds no
    violated constraint at an α no box holds back.

    ``merge_stride > 1`` solves the LP of every ``merge_stride``-th merge step of the range
    (the first, then every k-th after it; the other steps have no rows): an approximation of
    the LP over all of them that costs about what a range ``merge_stride`` times shorter does,
    and keeps the late merges a shorter range would drop. Measured on GPT-2, 30 categories x
    30 000 merges, against the whole LP's byte shares (1 775 s of CPU): every 16th step 23 s,
    at most 1.9 points off; the first 10 000 merges, 130 s, 4.8 points off. At 5 000-10 000
    merges a prefix of as many steps does as well (``benchmarks/results/lp_scale.md``). It
    composes with ``step_weight``.

    ``step_weight`` (one per local step, >= 0) solves the LP of a multiset of merge steps:
    step ``t`` counted ``w_t`` times, i.e. its slack costs ``w_t`` (copies of a step's rows
    share their optimal slack) and a step drawn 0 times has no rows. This is what a
    bootstrap over merges resamples (:mod:`tokmix.solvers.bootstrap`). ``pair_weight`` (one
    per pair, > 0) prices each pair's slack; with both, the slack costs of the noise-scaled
    LP (:mod:`tokmix.solvers.noise_scaled_lp`). ``None``: every slack costs 1, the paper's LP.

    ``start`` (a related solve's :attr:`MixtureSolution.warm`) begins at its α with its rows
    already in the model and skips the coarse phase; its box starts at a fifth of
    ``trust_region``. ``log`` gets a progress line (round, objective, best feasible objective,
    violated rows, rows kept, seconds) at least every ``log_every`` seconds of rounds; the
    lines are kept in the diagnostics (``progress``). ``time_limit`` (seconds): stop with a
    :class:`SolverError` once a round ends past it (benchmarks cap slow peers).
    ``checkpoint`` gets a :class:`Checkpoint` after a round's re-solve, at most every
    ``checkpoint_every`` seconds and 20 times as long as the last took to take and store (0:
    every round; the caller stores it: :mod:`tokmix.jobs.solve_checkpoints`).
    ``resume`` (its :class:`LoopState`, same problem and options) goes on from that round: the
    model, its basis, the box and the limits rebuilt as they were, so a killed solve loses
    only the rounds since. A state that does not fit the problem or restore is ignored (the
    solve begins at ``start``). Either way the loop ends only at the optimum.
    ``sweep="mixed"`` replays the α-mixed frequencies (:mod:`tokmix.solvers.edges`): memory
    linear in the trajectory rows, whatever the number of categories; ``"dense"`` is the
    previous sweep (:mod:`tokmix.solvers.violations`, a ``pairs x categories`` count matrix),
    kept as the benchmarks' peer; ``"torch"`` is the mixed sweep in bulk with torch
    (:mod:`tokmix.solvers.torch_sweep`). ``device``: ``cpu`` (default), ``cuda`` (the torch
    sweep on the GPU, whatever ``sweep`` says but ``dense``) or ``auto`` (cuda when torch sees
    one). All find the same rows. The model (:mod:`tokmix.solvers.restricted_lp`) writes each
    row as ``x_{m_t} - x_p + v_t + v_p >= 0`` over pair-version variables ``x = Σ_i α_i f_i``:
    four nonzeros a row, and rows that see a pair at the same counts share its variable.
    """
    if sweep not in SWEEPS:
        raise SolverError(f"sweep must be one of {', '.join(SWEEPS)}, not {sweep!r}")
    if max_rows == "auto":
        max_rows = round_rows(problem.n_steps)
    if per_step < 1 or stride < 1 or (max_rows is not None and max_rows < 1):
        raise SolverError(
            f"per_step, stride and max_rows must be >= 1, got {per_step}, {stride}, {max_rows}"
        )
    if merge_stride < 1:
        raise SolverError(f"merge_stride must be >= 1, got {merge_stride}")
    if per_step_max < per_step:
        raise SolverError(f"per_step_max ({per_step_max}) must be >= per_step ({per_step})")
    if trust_region is not None and not trust_region > 0:
        raise SolverError(f"trust_region must be > 0 or None, got {trust_region}")
    started = time.perf_counter()
    started_cpu = time.process_time()
    if sweep == "dense":
        if resolve_device(device) != "cpu":
            raise SolverError("the dense sweep runs on the CPU only: use device cpu")
        sweep_name = "dense"
    else:
        edges, sweep_name = edge_sweep(problem, sweep, device)
    scale = frequency_scale(problem)
    n = problem.n_categories
    if step_weight is not None and (
        len(step_weight) != problem.n_steps or (np.asarray(step_weight) < 0).any()
    ):
        raise SolverError(f"step_weight needs {problem.n_steps} non-negative weights")
    if pair_weight is not None and (
        len(pair_weight) != problem.n_pairs or (np.asarray(pair_weight) <= 0).any()
    ):
        raise SolverError(f"pair_weight needs {problem.n_pairs} positive weights")
    cost = None if step_weight is None else np.asarray(step_weight, dtype=np.float64)
    if merge_stride > 1:
        kept = (np.arange(problem.n_steps) % merge_stride == 0).astype(np.float64)
        cost = kept if cost is None else cost * kept
    pair_cost = None if pair_weight is None else np.asarray(pair_weight, dtype=np.float64)
    unused = np.zeros(problem.n_steps, dtype=bool) if cost is None else cost == 0
    slack_cost = np.ones(problem.n_steps) if cost is None else cost
    history = PairHistory.build(problem)

    def new_lp() -> RestrictedLP:
        return RestrictedLP(
            n,
            problem.n_steps,
            problem.n_pairs,
            threads=threads,
            step_cost=cost,
            pair_cost=pair_cost,
            history=history,
            scale=scale,
            merge_pair=problem.merge_pair,
        )

    lp = new_lp()
    alpha = np.full(n, 1.0 / n)
    v_step = np.zeros(problem.n_steps)
    v_pair = np.zeros(problem.n_pairs)
    objective = 0.0
    sweep_seconds = lp_seconds = 0.0
    rounds = coarse_rounds = 0
    missing = np.zeros(problem.n_steps, dtype=bool)
    coarse = np.arange(problem.n_steps) % stride != 0
    warm_start = start is not None and len(start.alpha) == n and np.sum(start.alpha) > 0
    radius = 1.0 if trust_region is None else trust_region
    restored = _restored(resume, problem, len(history.events), new_lp)
    first_round = 1
    if restored is not None:  # go on where the state stopped
        lp, (region, base, limit, coarse, done, coarse_rounds) = restored
        region.apply(lp)
        alpha, v_step, v_pair, objective = lp.solve()  # its basis is optimal: no pivots
        first_round, warm_start = done + 1, True
    elif start is not None and warm_start:
        alpha = np.clip(np.asarray(start.alpha, dtype=np.float64), 0.0, None)
        alpha /= alpha.sum()
        if trust_region is not None:
            radius = trust_region / 5  # a related solve's α: trust it more
        region = _TrustRegion(alpha, radius)
        steps, pairs = start.rows_for(problem)
        keep = ~unused[steps] & (problem.merge_pair[steps] != pairs)
        steps, pairs = steps[keep], pairs[keep]
        if len(steps):
            # a step whose merge this problem lacks has no rows (a replicate may lack one)
            keep = history.merge_present(problem, steps)
            steps, pairs = steps[keep], pairs[keep]
        if len(steps):
            lp.add(steps, pairs)
            region.apply(lp)
            alpha, v_step, v_pair, objective = lp.solve()
        coarse[:] = False  # a warm α needs no coarse phase
    else:
        region = _TrustRegion(alpha, radius)
    if restored is None:
        base = np.where(coarse | unused, 0, per_step).astype(np.int64)
        limit = base.copy()
    violated = 0
    progress: list[dict[str, Any]] = []
    last_log = started
    next_checkpoint = started + checkpoint_every
    for rounds in range(first_round, max_rounds + 1):
        t0 = time.perf_counter()
        if sweep == "dense":
            steps, pairs, excess, _, missing = find_violations(
                problem, alpha, v_step, v_pair, scale, per_step=limit, tol=tol
            )
        else:
            steps, pairs, excess, missing = edges(
                alpha, v_step, v_pair, scale, per_step=limit, tol=tol
            )
        violated = len(steps)
        worst = np.zeros(problem.n_steps)
        np.maximum.at(worst, steps, excess)
        feasible = objective + float(slack_cost @ worst)  # this α with each step repaired
        hit = worst > 0
        limit = np.where(hit & (base > 0), np.minimum(2 * limit, per_step_max), base)
        if max_rows is not None and len(steps) > max_rows:
            top = np.argpartition(-excess, max_rows)[:max_rows]
            steps, pairs = steps[top], pairs[top]
        sweep_seconds += time.perf_counter() - t0
        if t0 - last_log >= log_every:
            last_log = t0
            entry = {
                "seconds": round(t0 - started, 1),
                "cpu_seconds": round(time.process_time() - started_cpu, 1),
                "round": rounds,
                "objective": objective,
                "best_feasible": min(region.value, feasible),
                "violated": violated,
                "rows": lp.rows,
                "phase": "coarse" if coarse.any() and not coarse_rounds else "full",
            }
            progress.append(entry)
            if log is not None:
                log("solve: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
        if time_limit is not None and t0 - started > time_limit:
            raise SolverError(
                f"the LP was not solved within {time_limit:g} s ({rounds} rounds, objective"
                f" {objective:.6g}, {violated} violated rows left)"
            )
        if rounds > 1:
            region.update(alpha, feasible, objective)
        if lp.add(steps, pairs) == 0:
            if region.boxed(alpha):  # optimal within the box only: widen it and go on
                region.widen(alpha)
            elif coarse_rounds or not coarse.any():
                break
            else:
                coarse_rounds = rounds  # the coarse steps are satisfied: now every step
                base = np.where(unused, 0, per_step).astype(np.int64)
                limit = base.copy()
                # its values were the coarse LP's, and it may have let go of α
                region = _TrustRegion(alpha, radius, serious=region.serious)
                continue
        t0 = time.perf_counter()
        region.apply(lp)
        alpha, v_step, v_pair, objective = lp.solve()
        if prune:
            lp.prune()
        lp_seconds += time.perf_counter() - t0
        if checkpoint is not None and time.perf_counter() >= next_checkpoint:
            t0 = time.perf_counter()
            arrays = {
                **lp.snapshot(),
                **_loop_arrays(region, base, limit, coarse, rounds, coarse_rounds),
                "shape": np.array([n, problem.n_steps, problem.n_pairs, len(history.events)]),
            }
            checkpoint(Checkpoint(_warm_start(problem, lp, alpha), LoopState(arrays)))
            # a state that is slow to write (the prune history grows with the rows seen)
            # is written less often: checkpoints cost at most 5 % of the solve (0: every round)
            took = time.perf_counter() - t0
            next_checkpoint = t0 + took + (checkpoint_every and max(checkpoint_every, 20 * took))
    else:
        raise SolverError(
            f"constraint generation did not converge in {max_rounds} rounds; raise max_rounds"
        )
    if log is not None:
        log(
            f"solve: done, {rounds} rounds, objective {objective:.9g}, {lp.distinct} rows seen,"
            f" {lp.rows} kept, {time.perf_counter() - started:.1f} s"
        )
    missing_steps = (problem.first_step + np.flatnonzero(missing)).tolist()
    diagnostics = {
        "solver": "highs",
        "rounds": rounds,
        "coarse_rounds": coarse_rounds,
        "stride": stride,
        "merge_stride": merge_stride,
        "max_rows": max_rows,
        "constraints": lp.distinct,
        "constraints_kept": lp.rows,
        "pair_versions": int((lp.row_key < 0).sum()),
        "constraints_pruned": lp.pruned,
        "simplex_iterations": lp.iterations,
        "steps": problem.n_steps,
        "first_step": problem.first_step,
        "last_step": problem.last_step,
        "pairs": problem.n_pairs,
        "missing_merges": len(missing_steps),
        "missing_steps": missing_steps[:100],
        "slack_steps": int((v_step > tol).sum()),
        "slack_step_total": float(v_step.sum()),
        "slack_pair_total": float(v_pair.sum()),
        "objective_scale": float(1.0 / (scale[0] * problem.pairs_[0])),
        "sweep": sweep_name,
        "sweep_seconds": round(sweep_seconds, 3),
        "lp_seconds": round(lp_seconds, 3),
        "warm_start": bool(warm_start),
        "resumed_at_round": first_round - 1,
        "trust_region": trust_region,
        "serious_steps": region.serious,
        "progress": progress,
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - started_cpu, 3),
    }
    return MixtureSolution(
        problem.categories,
        alpha,
        byte_shares(alpha, problem),
        objective,
        diagnostics,
        _warm_start(problem, lp, alpha),
    )


def _restored(
    resume: LoopState | None,
    problem: MixtureProblem,
    n_versions: int,
    new_lp: Callable[[], RestrictedLP],
) -> tuple[RestrictedLP, tuple[_TrustRegion, np.ndarray, np.ndarray, np.ndarray, int, int]] | None:
    """The model and loop state ``resume`` describes, or None when it is of another problem
    or does not restore (the solve then begins as if it had none)."""
    if resume is None or not resume.fits(problem, n_versions):
        return None
    lp = new_lp()
    try:
        lp.restore(resume.arrays)
        return lp, _restore_loop(resume.arrays, problem.n_categories, problem.n_steps)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _loop_arrays(
    region: _TrustRegion,
    base: np.ndarray,
    limit: np.ndarray,
    coarse: np.ndarray,
    rounds: int,
    coarse_rounds: int,
) -> dict[str, np.ndarray]:
    """The loop's own state after round ``rounds`` (:class:`LoopState`)."""
    return {
        "region": np.r_[region.center, region.radius, region.value, region.serious],
        "base": base.copy(),
        "limit": limit.copy(),
        "coarse": coarse.copy(),
        "loop_counts": np.array([rounds, coarse_rounds], dtype=np.int64),
    }


def _restore_loop(
    arrays: dict[str, np.ndarray], n: int, n_steps: int
) -> tuple[_TrustRegion, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """:func:`_loop_arrays` read back and checked; ValueError when they do not fit."""
    region_arr = np.asarray(arrays["region"], dtype=np.float64)
    base = np.asarray(arrays["base"], dtype=np.int64)
    limit = np.asarray(arrays["limit"], dtype=np.int64)
    coarse = np.asarray(arrays["coarse"], dtype=bool)
    rounds, coarse_rounds = (int(x) for x in arrays["loop_counts"])
    if region_arr.shape != (n + 3,) or {base.shape, limit.shape, coarse.shape} != {(n_steps,)}:
        raise ValueError("the loop state is of another problem")
    center, radius = region_arr[:n], region_arr[n]
    if not (np.isfinite(center).all() and (center >= 0).all() and 0 < radius <= 1):
        raise ValueError("the loop state's box is not a box")
    if (base < 0).any() or (limit < 0).any():
        raise ValueError("the loop state's limits are negative")
    region = _TrustRegion(region_arr[:n], float(region_arr[n]), serious=int(region_arr[n + 2]))
    region.value = float(region_arr[n + 1])
    return region, base, limit, coarse, rounds, coarse_rounds


def _warm_start(problem: MixtureProblem, lp: RestrictedLP, alpha: np.ndarray) -> WarmStart:
    """α and the model's constraint rows, keyed so that a related problem finds them."""
    key = (problem.pair_left.astype(np.int64) << 32) | problem.pair_right.astype(np.int64)
    row_step, row_pair = np.divmod(lp.row_key[lp.row_key >= 0], problem.n_pairs)
    return WarmStart(alpha.copy(), row_step, key[row_pair])


def all_constraints(
    problem: MixtureProblem, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ``(local step, pair)`` constraint, pairs present at a step but the merge, with
    its coefficient row on alpha. Plain numpy, independent of the compiled sweep."""
    counts = np.zeros((problem.n_pairs, problem.n_categories), dtype=np.int64)
    steps: list[int] = []
    pairs: list[int] = []
    coefs: list[np.ndarray] = []
    for k in range(problem.n_steps):
        lo, hi = problem.step_start[k], problem.step_start[k + 1]
        np.add.at(
            counts, (problem.rows_pair[lo:hi], problem.rows_cat[lo:hi]), problem.rows_delta[lo:hi]
        )
        m = problem.merge_pair[k]
        if m < 0 or not counts[m].any():
            continue
        present = np.flatnonzero(counts.any(axis=1))
        present = present[present != m]
        steps.extend([k] * len(present))
        pairs.extend(present.tolist())
        coefs.append((counts[m][None, :] - counts[present]) * scale[None, :])
    rows = np.concatenate(coefs) if coefs else np.zeros((0, problem.n_categories))
    return np.array(steps, dtype=np.int64), np.array(pairs, dtype=np.int64), rows


def solve_mixture_dense(problem: MixtureProblem) -> MixtureSolution:
    """Reference: the full LP, every constraint written out, solved by ``scipy.optimize.linprog``.

    Only for small instances (constraints = steps x pairs)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, hstack

    scale = frequency_scale(problem)
    steps, pairs, coefs = all_constraints(problem, scale)
    m, n = len(steps), problem.n_categories
    rows = np.arange(m)
    v_t = coo_matrix((np.ones(m), (rows, steps)), shape=(m, problem.n_steps))
    v_p = coo_matrix((np.ones(m), (rows, pairs)), shape=(m, problem.n_pairs))
    a_ub = -hstack([coo_matrix(coefs), v_t, v_p]).tocsr()
    cost = np.concatenate([np.zeros(n), np.ones(problem.n_steps + problem.n_pairs)])
    a_eq = np.concatenate([np.ones(n), np.zeros(problem.n_steps + problem.n_pairs)])[None, :]
    bounds = [(0, 1)] * n + [(0, None)] * (problem.n_steps + problem.n_pairs)
    res = linprog(
        cost, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs"
    )
    if res.status != 0:
        raise SolverError(f"linprog failed: {res.message}")
    alpha = np.clip(res.x[:n], 0, None)
    alpha /= alpha.sum()
    return MixtureSolution(
        problem.categories,
        alpha,
        byte_shares(alpha, problem),
        float(res.fun),
        {"solver": "scipy-linprog", "constraints": m},
    )
