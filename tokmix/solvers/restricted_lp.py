"""The restricted master of the mixture LP: the HiGHS model that the lazy loop
(:func:`tokmix.solvers.mixture_lp.solve_mixture`) grows a round at a time and re-solves warm.

It holds the α columns, the simplex row, and what the rows found so far need: a pair-version
column ``x = Σ_i α_i f_i`` with its defining row for each count a pair is seen at, a slack
column per step and per pair, and the constraint rows ``x_{m_t} - x_p + v_t + v_p >= 0``
(four nonzeros a row). It prunes rows whose slack is basic, bounds α to the loop's box, falls
back from Devex pricing when a run cycles, and writes itself out as plain arrays and back
(:meth:`RestrictedLP.snapshot`, :meth:`RestrictedLP.restore`) so a killed solve resumes.
"""

from __future__ import annotations

import highspy
import numpy as np

from tokmix.errors import SolverError
from tokmix.solvers.edges import PairHistory

DEVEX = 1
HIGHS_CHOICE = -1
"""``simplex_dual_edge_weight_strategy`` values: Devex, and HiGHS's own choice."""
ITERATION_UNLIMITED = 2**31 - 1
"""HiGHS's default ``simplex_iteration_limit``."""


def devex_iteration_cap(h: highspy.Highs) -> int:
    """Dual simplex iterations one Devex run may take: 50 per row and column, at least
    100 000: far more than a round's warm re-solve should need, reached within seconds by a
    run that cycles."""
    return max(100_000, 50 * (h.getNumRow() + h.getNumCol()))


def cold_devex_cap(h: highspy.Highs) -> int:
    """Dual simplex iterations a model's first, cold Devex run may take: one per row and
    column, at least 5 000; five times what a cold master that does not cycle has needed
    (:meth:`RestrictedLP._solve_cold`)."""
    return max(5_000, h.getNumRow() + h.getNumCol())


class RestrictedLP:
    """The HiGHS model: the α columns, the simplex row, and lazily added pair-version columns
    (each with its defining row), v columns and constraint rows.

    Rows and columns go in as whole CSR batches, one ``addRows``/``addCols`` call per round.
    Row ``r + 1`` of the model is the constraint ``row_key[r] = local_step * n_pairs + pair``
    (a version's defining row has ``row_key = -1 - version``).
    ``dropped`` (sorted, with repeats) holds the key of a row each time it is pruned; a row
    pruned ``_PRUNES`` times comes back ``sticky`` and is never pruned again, so pruning
    cannot cycle.
    """

    def __init__(
        self,
        n_categories: int,
        n_steps: int,
        n_pairs: int,
        *,
        threads: int,
        step_cost: np.ndarray | None = None,
        pair_cost: np.ndarray | None = None,
        history: PairHistory,
        scale: np.ndarray,
        merge_pair: np.ndarray,
    ) -> None:
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("threads", threads)
        self.h.setOptionValue("primal_feasibility_tolerance", 1e-9)
        self.h.setOptionValue("dual_feasibility_tolerance", 1e-9)
        # Devex pricing: each round adds thousands of rows, whose exact steepest-edge weights
        # HiGHS would otherwise have to compute first (measured: about 10% less CPU on cl100k)
        self.h.setOptionValue("simplex_dual_edge_weight_strategy", DEVEX)
        self.pricing = DEVEX
        self.n = n_categories
        self.n_pairs = n_pairs
        self.h.addVars(n_categories, np.zeros(n_categories), np.ones(n_categories))
        idx = np.arange(n_categories, dtype=np.int32)
        self.h.addRow(1.0, 1.0, n_categories, idx, np.ones(n_categories))
        self.step_cost = np.ones(n_steps) if step_cost is None else step_cost
        self.pair_cost = np.ones(n_pairs) if pair_cost is None else pair_cost
        self.step_col = np.full(n_steps, -1, dtype=np.int64)
        self.pair_col = np.full(n_pairs, -1, dtype=np.int64)
        self.row_key = np.zeros(0, dtype=np.int64)
        self.row_sticky = np.zeros(0, dtype=bool)
        self.dropped = np.zeros(0, dtype=np.int64)
        self.distinct = 0  # distinct constraints ever added
        self.pruned = 0
        self.iterations = 0  # simplex iterations over every solve of this model
        self.warm = False  # whether HiGHS holds a basis of this model (after a solve or restore)
        self.history, self.scale, self.merge_pair = history, scale, merge_pair
        self.version_col = np.full(len(history.events), -1, dtype=np.int64)

    def _new_columns(self, cost: np.ndarray, lower: np.ndarray) -> int:
        """Empty columns ``lower <= x`` (no upper bound) in one call; the first's index."""
        m = len(cost)
        first = self.h.getNumCol()
        self.h.addCols(
            m,
            cost,
            lower,
            np.full(m, highspy.kHighsInf),
            0,
            np.zeros(m, dtype=np.int32),
            np.zeros(0, dtype=np.int32),
            np.zeros(0),
        )
        return first

    def _columns(self, table: np.ndarray, keys: np.ndarray, cost: np.ndarray) -> None:
        """Create the v columns (``v >= 0``) the keys lack, in one call."""
        new = np.unique(keys[table[keys] < 0])
        if len(new):
            table[new] = self._new_columns(cost[new], np.zeros(len(new))) + np.arange(len(new))

    def _add_rows(
        self, index: np.ndarray, value: np.ndarray, upper: float = highspy.kHighsInf
    ) -> None:
        """One row per line of the ``(m, k)`` ``index``/``value`` arrays, ``0 <= row <= upper``,
        zero coefficients left out, in one CSR batch."""
        m = len(index)
        nonzero = value != 0.0
        starts = np.zeros(m, dtype=np.int32)
        np.cumsum(nonzero.sum(axis=1)[:-1], out=starts[1:])
        self.h.addRows(
            m,
            np.zeros(m),
            np.full(m, upper),
            int(nonzero.sum()),
            starts,
            index[nonzero],
            value[nonzero],
        )

    @property
    def rows(self) -> int:
        """Constraints in the model (a pair version's defining row is not one)."""
        return int((self.row_key >= 0).sum())

    def _times_pruned(self, keys: np.ndarray) -> np.ndarray:
        right = np.searchsorted(self.dropped, keys, side="right")
        return right - np.searchsorted(self.dropped, keys, side="left")

    def _version_columns(self, version: np.ndarray) -> None:
        """Create the columns of pair versions ``x = Σ_i α_i f_i`` the model lacks (free),
        with their defining rows (``x - Σ_i f_i α_i = 0``, never pruned)."""
        new = np.unique(version[self.version_col[version] < 0])
        if len(new):
            m = len(new)
            first = self._new_columns(np.zeros(m), np.full(m, -highspy.kHighsInf))
            self.version_col[new] = first + np.arange(m)
            self._write_version_rows(new)
            self.row_key = np.concatenate([self.row_key, -1 - new])
            self.row_sticky = np.concatenate([self.row_sticky, np.ones(m, dtype=bool)])

    def _write_version_rows(self, version: np.ndarray) -> None:
        """The defining rows ``x - Σ_i f_i α_i = 0`` of versions whose columns exist."""
        m, n = len(version), self.n
        index = np.empty((m, n + 1), dtype=np.int32)
        index[:, :n] = np.arange(n, dtype=np.int32)
        index[:, n] = self.version_col[version]
        value = np.ones((m, n + 1))
        value[:, :n] = -self.history.frequencies(version, self.scale)
        self._add_rows(index, value, upper=0.0)

    def _write_constraint_rows(
        self, steps: np.ndarray, pairs: np.ndarray, *, create: bool = False
    ) -> None:
        """The rows ``x_{m_t} - x_p + v_t + v_p >= 0`` of steps and pairs; ``create`` makes
        the columns they lack first (a restored model has them all)."""
        merge_version = self.history.versions(steps, self.merge_pair[steps])
        pair_version = self.history.versions(steps, pairs)
        if create:
            self._version_columns(merge_version)
            self._version_columns(pair_version)
            self._columns(self.step_col, steps, self.step_cost)
            self._columns(self.pair_col, pairs, self.pair_cost)
        index = np.stack(
            [
                self.version_col[merge_version],
                self.version_col[pair_version],
                self.step_col[steps],
                self.pair_col[pairs],
            ],
            axis=1,
        )
        if (index < 0).any():
            raise ValueError("a row refers to a column the model lacks")
        m = len(steps)
        self._add_rows(index.astype(np.int32), np.tile(np.array([1.0, -1.0, 1.0, 1.0]), (m, 1)))

    def add(self, steps: np.ndarray, pairs: np.ndarray) -> int:
        """Add the constraints not in the model, ``x_{m_t} - x_p + v_t + v_p >= 0`` (four
        nonzeros a row); returns how many were new to it."""
        keys = steps * self.n_pairs + pairs
        fresh = ~np.isin(keys, self.row_key)
        if not fresh.any():
            return 0
        keys, steps, pairs = keys[fresh], steps[fresh], pairs[fresh]
        times = self._times_pruned(keys)
        self.distinct += int((times == 0).sum())
        m = len(keys)
        self._write_constraint_rows(steps, pairs, create=True)
        self.row_key = np.concatenate([self.row_key, keys])
        self.row_sticky = np.concatenate([self.row_sticky, times >= _PRUNES])
        return m

    def prune(self) -> int:
        """Delete the rows whose slack is basic, sticky ones excepted; returns how many.

        The current solution and basis stay optimal for what is left (those rows' duals are
        0), so the next solve starts warm; rows the optimum needs come back."""
        status = self.h.getBasis().row_status
        basic = np.fromiter(map(int, status), np.int8, len(status))[1:] == _BASIC
        drop = basic & ~self.row_sticky
        if not drop.any():
            return 0
        rows = np.flatnonzero(drop)
        self.h.deleteRows(len(rows), (rows + 1).astype(np.int32))
        self.dropped = np.sort(np.concatenate([self.dropped, self.row_key[rows]]), kind="stable")
        self.row_key = self.row_key[~drop]
        self.row_sticky = self.row_sticky[~drop]
        self.pruned += len(rows)
        return len(rows)

    def snapshot(self) -> dict[str, np.ndarray]:
        """The model as plain arrays: which column each step, pair and version has, the rows
        in order, the prune history, the basis and the pricing."""
        basis = self.h.getBasis()
        # the prune history, each key once (a count past _PRUNES changes nothing)
        dropped, times = np.unique(self.dropped, return_counts=True)
        return {
            "step_col": self.step_col.copy(),
            "pair_col": self.pair_col.copy(),
            "version_col": self.version_col.copy(),
            "row_key": self.row_key.copy(),
            "row_sticky": self.row_sticky.copy(),
            "dropped": dropped,
            "dropped_times": np.minimum(times, _PRUNES).astype(np.uint8),
            "col_status": np.fromiter(map(int, basis.col_status), np.int8, len(basis.col_status)),
            "row_status": np.fromiter(map(int, basis.row_status), np.int8, len(basis.row_status)),
            "model_counts": np.array([self.distinct, self.pruned, self.pricing], dtype=np.int64),
        }

    def restore(self, snap: dict[str, np.ndarray]) -> None:
        """Rebuild the model of :meth:`snapshot` in this fresh one (same problem), columns
        and rows in their order, and hand HiGHS the basis: the next solve starts where the
        snapshot's stopped. Raises ValueError on arrays that do not describe such a model."""
        n = self.n
        tables = {k: np.asarray(snap[k], dtype=np.int64) for k in ("step_col", "pair_col")}
        version_col = np.asarray(snap["version_col"], dtype=np.int64)
        if tables["step_col"].shape != self.step_col.shape or (
            tables["pair_col"].shape != self.pair_col.shape
            or version_col.shape != self.version_col.shape
        ):
            raise ValueError("the state's columns are of another problem")
        used = np.concatenate([t[t >= 0] for t in (*tables.values(), version_col)])
        m = len(used)
        if not np.array_equal(np.sort(used), np.arange(n, n + m)) or self.h.getNumCol() != n:
            raise ValueError("the state's columns are not one each after α")
        cost, lower = np.zeros(m), np.zeros(m)
        for table, costs in (
            (tables["step_col"], self.step_cost),
            (tables["pair_col"], self.pair_cost),
        ):
            ids = np.flatnonzero(table >= 0)
            cost[table[ids] - n] = costs[ids]
        lower[version_col[version_col >= 0] - n] = -highspy.kHighsInf
        self._new_columns(cost, lower)
        self.step_col, self.pair_col = tables["step_col"], tables["pair_col"]
        self.version_col = version_col
        row_key = np.asarray(snap["row_key"], dtype=np.int64)
        cuts = np.flatnonzero(np.diff((row_key < 0).astype(np.int8))) + 1
        for keys in np.split(row_key, cuts):
            if len(keys) and keys[0] < 0:
                self._write_version_rows(-1 - keys)
            elif len(keys):
                self._write_constraint_rows(*np.divmod(keys, self.n_pairs))
        self.row_key = row_key
        self.row_sticky = np.asarray(snap["row_sticky"], dtype=bool)
        self.dropped = np.repeat(
            np.asarray(snap["dropped"], dtype=np.int64),
            np.asarray(snap["dropped_times"], dtype=np.int64),
        )
        self.distinct, self.pruned, pricing = (int(x) for x in snap["model_counts"])
        if pricing != self.pricing:
            self.pricing = pricing
            self.h.setOptionValue("simplex_dual_edge_weight_strategy", pricing)
        basis = highspy.HighsBasis()
        status = highspy.HighsBasisStatus
        basis.col_status = [status(int(x)) for x in snap["col_status"]]
        basis.row_status = [status(int(x)) for x in snap["row_status"]]
        basis.valid = True
        if len(basis.col_status) != self.h.getNumCol() or len(row_key) != len(self.row_sticky):
            raise ValueError("the state's basis is not of its model")
        if self.h.setBasis(basis) != highspy.HighsStatus.kOk:
            raise ValueError("HiGHS refused the state's basis")
        self.warm = True

    def box(self, center: np.ndarray, radius: float) -> None:
        """Bound α to ``center ± radius`` (``radius >= 1``: the whole simplex). HiGHS keeps
        its basis across a bound change, so a re-solve starts warm."""
        lower = np.clip(center - radius, 0.0, 1.0) if radius < 1 else np.zeros(self.n)
        upper = np.clip(center + radius, 0.0, 1.0) if radius < 1 else np.ones(self.n)
        self.h.changeColsBounds(self.n, np.arange(self.n, dtype=np.int32), lower, upper)

    def solve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """α (renormalized), v per local step, v per pair, and the objective.

        The first solve is cold (:meth:`_solve_cold`). Devex pricing can cycle on a degenerate
        LP (measured: the first round of GPT-3.5 and GPT-NeoX over the 52 categories of
        ``data/released.yaml`` at 300 merges, 284 rows at objective 0, ran 575 000 dual simplex
        iterations in 60 s without an optimum; with HiGHS's own choice of pricing the whole LP,
        40 rounds, took 6 s). So each warm run is capped at :func:`devex_iteration_cap`
        iterations and, at the cap, re-run from scratch with HiGHS's own pricing, which stays
        for the LP's later rounds. From scratch: re-run from the basis it cycled at, GPT-NeoX at
        1 000 merges went on cycling under either pricing; cold, it solved the whole LP in 28 s."""
        status = self._solve_warm() if self.warm else self._solve_cold()
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverError(
                f"HiGHS did not reach an optimum: {self.h.modelStatusToString(status)}"
            )
        self.warm = True
        x = np.asarray(self.h.getSolution().col_value)
        alpha = np.clip(x[: self.n], 0.0, None)
        alpha /= alpha.sum()
        v_step = np.where(self.step_col >= 0, x[self.step_col], 0.0)
        v_pair = np.where(self.pair_col >= 0, x[self.pair_col], 0.0)
        return alpha, v_step, v_pair, float(self.h.getInfo().objective_function_value)

    def _solve_cold(self) -> highspy.HighsModelStatus:
        """The first solve of a model (no basis yet): Devex under :func:`cold_devex_cap`, and
        at the cap HiGHS's interior point method with crossover, whose basis the warm Devex
        re-solves then start from. A cold master that does not cycle takes a fifth of an
        iteration a row or less (512 iterations for 30 categories x 2 000 merges of GPT-2,
        1 666 for 60 x 10 000), so it runs as before, pivot for pivot. The first masters of
        150 categories are dual degenerate (objective 0 at the start): at 5 000 merges Devex
        cycled 362 578 iterations (75 s) to the warm cap, and at 10 000 the dual simplex stalls
        under every pricing (60 s, 170-190 k iterations, objective still 0), where the
        interior point method and crossover solve either in 0.3-0.4 s
        (``benchmarks/results/lp_scale.md``)."""
        status = self._run(cold_devex_cap(self.h))
        if status == highspy.HighsModelStatus.kIterationLimit:
            self.h.clearSolver()
            self.h.setOptionValue("solver", "ipm")
            self.h.setOptionValue("run_crossover", "on")
            status = self._run(ITERATION_UNLIMITED)  # the crossover's simplex iterations
            self.h.setOptionValue("solver", "simplex")
        return status

    def _solve_warm(self) -> highspy.HighsModelStatus:
        """A re-solve from the last basis: Devex under :func:`devex_iteration_cap`, and at
        the cap HiGHS's own pricing from scratch, kept for every later re-solve (see
        :meth:`solve`)."""
        if self.pricing != DEVEX:
            return self._run(ITERATION_UNLIMITED)
        status = self._run(devex_iteration_cap(self.h))
        if status == highspy.HighsModelStatus.kIterationLimit:
            self.pricing = HIGHS_CHOICE
            self.h.setOptionValue("simplex_dual_edge_weight_strategy", HIGHS_CHOICE)
            self.h.clearSolver()  # cold: from the basis it cycled at, it can go on cycling
            status = self._run(ITERATION_UNLIMITED)
        return status

    def _run(self, iteration_limit: int) -> highspy.HighsModelStatus:
        """One HiGHS run under ``iteration_limit``, its simplex iterations counted."""
        self.h.setOptionValue("simplex_iteration_limit", iteration_limit)
        self.h.run()
        self.iterations += self.h.getInfo().simplex_iteration_count
        return self.h.getModelStatus()


_BASIC = int(highspy.HighsBasisStatus.kBasic)
# A row pruned this many times stays when it comes back, so pruning cannot cycle. Measured
# against 1: the final model is 3-6x smaller, cl100k x 5 000 merges and 30 categories x 5 000
# merges solve 1.4-1.5x faster, other cases about even (benchmarks/README.md).
_PRUNES = 3
