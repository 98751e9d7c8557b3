"""The violation sweep of :mod:`tokmix.solvers.edges` in bulk with torch: a GPU path.

:func:`tokmix.solvers.edges.find_violated_edges` walks the steps one by one with a lazily
invalidated heap: cheap per step, but sequential, which a GPU cannot use. Here a *block* of
consecutive steps is one dense matrix: rows are the block's steps, columns the pairs its
trajectory rows touch (plus its merges). The block's deltas are scattered into the matrix and
summed down the steps (a cumulative sum from the running state before the block), so row
``j`` holds every touched pair's α-mixed frequency ``g_k(p)`` at step ``k = first + j``. A
pair the block does not touch keeps its value through the block: those are one vector, and
only its top ``limit`` values above the block's lowest threshold join the matrix. Each row's
violators are then its ``limit[k]`` largest values above the row's threshold (``torch.topk``).

The rows it returns are the heap sweep's, with the same dtypes and the same ``missing`` flags;
excesses agree to rounding (the sums are taken in another order). On a CPU it is the heap
sweep's correctness peer (slower, ``benchmarks/lp.py --sweep-figure``); on CUDA it is the
fast path of :func:`tokmix.solvers.mixture_lp.solve_mixture` (``device="cuda"``).

Block size: the work is ``steps x (touched pairs per block)`` plus a pass over every pair per
block, so blocks of about ``sqrt(pairs / rows per step)`` steps cost least (on CUDA a block's
launches and host syncs count as more pairs); a memory budget (default a quarter of the free
GPU memory, 256 MiB on a CPU) caps a block's matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tokmix.errors import SolverError
from tokmix.solvers.problem import MixtureProblem

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
"""What ``solver.device`` / ``--device`` accept: ``auto`` is CUDA when torch sees a GPU."""

_CELL_BYTES = 64  # a block matrix cell's share of the memory: ~6 float64/int64 matrices
_CPU_BUDGET = 256 * 2**20
_MAX_BLOCK = 4096
# A block's fixed cost on a GPU (some 30 kernel launches and 5 host syncs, ~0.4 ms) in matrix
# cells it could have filled meanwhile: an estimate, not measured here (no GPU on the machine
# that wrote this), so longer blocks on CUDA than on a CPU.
_CUDA_BLOCK_CELLS = 4 * 2**20


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # the optional extra
        raise SolverError(
            "the torch sweep (device cuda) needs torch: pip install 'tokmix[gpu]' "
            "(or use device cpu)"
        ) from exc
    return torch


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a CUDA device is
    an error that says what to do (on Ray: give the solve stage GPUs)."""
    if device not in DEVICES:
        raise SolverError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise SolverError(
            "solver device is cuda but torch sees no CUDA device here (no GPU, a CPU build of "
            "torch, or a Ray task without GPUs: set resources.solve.num_gpus); use device "
            "auto or cpu"
        )
    return device


@dataclass
class _State:
    """The running sums after some group of rows: ``g`` (α-mixed frequency) and ``total``
    (count) per pair, and ``value`` = ``g - v_pair`` where the pair is present (``g > 0``,
    as the heap sweep holds it), ``-inf`` elsewhere: what a pair no block row touches offers
    every step of the block. ``in_block`` is scratch (the block's pairs, marked)."""

    g: torch.Tensor
    total: torch.Tensor
    value: torch.Tensor
    v_pair: torch.Tensor
    weight: torch.Tensor
    in_block: torch.Tensor

    def restate(self, pair: torch.Tensor) -> None:
        """Recompute ``value`` at ``pair`` after its sums changed."""
        g = self.g[pair]
        self.value[pair] = (g - self.v_pair[pair]).masked_fill(~(g > 0.0), -math.inf)


class TorchEdgeSweep:
    """The problem's rows on a torch device, swept for violated rows as often as asked.

    Built once per solve (the rows cross to the device once); each call is one sweep with
    :func:`tokmix.solvers.edges.find_violated_edges`' arguments and outputs.
    ``memory_bytes`` caps a block's matrices; ``block_steps`` fixes the block length (tests
    use it to put block boundaries everywhere)."""

    def __init__(
        self,
        problem: MixtureProblem,
        device: str = "cpu",
        *,
        memory_bytes: int | None = None,
        block_steps: int | None = None,
    ) -> None:
        torch = _torch()
        self.problem = problem
        self.device = torch.device(device)
        if memory_bytes is None:
            if self.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.device)
                memory_bytes = free // 4
            else:
                memory_bytes = _CPU_BUDGET
        self.budget_cells = max(int(memory_bytes) // _CELL_BYTES, 1)
        if block_steps is None:
            per_step = max(len(problem.rows_pair) / max(problem.n_steps, 1), 1.0)
            per_block = problem.n_pairs + (_CUDA_BLOCK_CELLS if self.device.type == "cuda" else 0)
            block_steps = round(math.sqrt(max(per_block, 1) / per_step))
        self.block_steps = int(min(max(block_steps, 1), _MAX_BLOCK))

        def put(x: np.ndarray) -> Any:  # a torch.Tensor
            return torch.as_tensor(np.ascontiguousarray(x, dtype=np.int64), device=self.device)

        self.rows_pair = put(problem.rows_pair)
        self.rows_cat = put(problem.rows_cat)
        self.rows_delta = put(problem.rows_delta)
        self.merge_pair = put(problem.merge_pair)
        self.rows_group = put(
            np.repeat(np.arange(len(problem.step_start) - 1), np.diff(problem.step_start))
        )

    def blocks(self, most: int) -> list[tuple[int, int]]:
        """Consecutive ``[first, end)`` step ranges: ``block_steps`` long, shorter where the
        matrices (steps x (rows + merges + ``most`` untouched pairs)) would pass the budget."""
        start = self.problem.step_start
        n_steps, n_pairs = self.problem.n_steps, self.problem.n_pairs
        out = []
        s = 0
        while s < n_steps:
            e = min(s + self.block_steps, n_steps)
            while e > s + 1:
                width = min(int(start[e] - start[s + 1]) + (e - s), n_pairs) + most
                if (e - s) * width <= self.budget_cells:
                    break
                e = s + (e - s) // 2
            out.append((s, e))
            s = e
        return out

    def __call__(
        self,
        alpha: np.ndarray,
        v_step: np.ndarray,
        v_pair: np.ndarray,
        scale: np.ndarray,
        *,
        per_step: int | np.ndarray,
        tol: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :func:`tokmix.solvers.edges.find_violated_edges`: ``(local step, pair,
        excess)`` of every row violated by more than ``tol``, at most ``per_step`` per step
        (the most violated; in step order, most violated first), and the per-step flag of
        merges absent from every category."""
        torch = _torch()
        p, dev = self.problem, self.device
        f64 = torch.float64
        n_steps, n_pairs = p.n_steps, p.n_pairs
        limit_np = np.broadcast_to(np.asarray(per_step, dtype=np.int64), (n_steps,)).copy()
        if (limit_np < 0).any():
            raise SolverError("per_step limits must be >= 0")
        weight = torch.as_tensor(np.asarray(alpha * scale, dtype=np.float64), device=dev)
        vs = torch.as_tensor(np.asarray(v_step, dtype=np.float64), device=dev)
        vp = torch.as_tensor(np.asarray(v_pair, dtype=np.float64), device=dev)
        limit = torch.as_tensor(limit_np, device=dev)
        start = p.step_start
        state = _State(
            g=torch.zeros(n_pairs, dtype=f64, device=dev),
            total=torch.zeros(n_pairs, dtype=torch.int64, device=dev),
            value=torch.full((n_pairs,), -math.inf, dtype=f64, device=dev),
            v_pair=vp,
            weight=weight,
            in_block=torch.zeros(n_pairs, dtype=torch.bool, device=dev),
        )
        self._apply(state, int(start[0]), int(start[1]))  # the snapshot, group 0
        most = int(min(limit_np.max(initial=0), n_pairs))
        out_step, out_pair, out_excess, out_missing = [], [], [], []
        blocks = self.blocks(most)
        for b, (s, e) in enumerate(blocks):
            most_here = int(limit_np[s:e].max())
            found = self._block(state, vs, limit, s, e, float(tol), most_here)
            out_missing.append(found[3])
            if len(found[0]):
                out_step.append(found[0])
                out_pair.append(found[1])
                out_excess.append(found[2])
            if b + 1 < len(blocks):  # the next block starts after group e
                self._apply(state, int(start[e]), int(start[e + 1]))
        if not out_step:
            empty = torch.zeros(0, dtype=torch.int64)
            out_step, out_pair, out_excess = [empty], [empty], [empty.to(f64)]
        missing = torch.cat(out_missing) if out_missing else torch.zeros(0, dtype=torch.bool)
        return (
            torch.cat([x.cpu() for x in out_step]).numpy().astype(np.int64, copy=False),
            torch.cat([x.cpu() for x in out_pair]).numpy().astype(np.int64, copy=False),
            torch.cat([x.cpu() for x in out_excess]).numpy().astype(np.float64, copy=False),
            missing.cpu().numpy().astype(np.bool_, copy=False),
        )

    def _apply(self, state: _State, lo: int, hi: int) -> None:
        """Add rows ``lo:hi`` to the running state; an absent pair's value is exactly 0."""
        if hi <= lo:
            return
        pair = self.rows_pair[lo:hi]
        delta = self.rows_delta[lo:hi]
        state.g.index_add_(0, pair, state.weight[self.rows_cat[lo:hi]] * delta.to(state.g.dtype))
        state.total.index_add_(0, pair, delta)
        state.g[pair] = state.g[pair].masked_fill(state.total[pair] == 0, 0.0)
        state.restate(pair)

    def _block(
        self,
        state: _State,
        vs: torch.Tensor,
        limit: torch.Tensor,
        s: int,
        e: int,
        tol: float,
        most: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps ``s .. e-1`` from the state after group ``s``; leaves the state after group
        ``e - 1``. ``most``: the block's largest limit. Few host syncs (a GPU waits at
        each): the unique columns, the lowest threshold, the standing candidates, the rows
        taken."""
        torch = _torch()
        g, total, weight, vp = state.g, state.total, state.weight, state.v_pair
        dev = self.device
        n_block = e - s
        lo, hi = int(self.problem.step_start[s + 1]), int(self.problem.step_start[e])
        merge = self.merge_pair[s:e]
        has_merge = merge >= 0
        # a missing merge stands in as pair 0: one more column, computed like any other
        cols, inverse = torch.unique(
            torch.cat([self.rows_pair[lo:hi], merge.clamp(min=0)]), return_inverse=True
        )
        row_col = inverse[: hi - lo]
        merge_col = inverse[hi - lo :]
        # row j of the block: the state after group s + j; group s + j's rows go to row j
        row_of = self.rows_group[lo:hi] - s
        delta = self.rows_delta[lo:hi]
        mixed = torch.zeros(n_block, len(cols), dtype=torch.float64, device=dev)
        mixed[0] = g[cols]
        mixed.index_put_(
            (row_of, row_col), weight[self.rows_cat[lo:hi]] * delta.to(mixed.dtype), accumulate=True
        )
        present = torch.zeros(n_block, len(cols), dtype=torch.int64, device=dev)
        present[0] = total[cols]
        present.index_put_((row_of, row_col), delta, accumulate=True)
        mixed.cumsum_(0)
        present.cumsum_(0)
        mixed.masked_fill_(present == 0, 0.0)
        g[cols] = mixed[-1]  # the state after group e - 1
        total[cols] = present[-1]
        state.restate(cols)

        rows = torch.arange(n_block, device=dev)
        g_merge = mixed[rows, merge_col]
        missing = ~has_merge | (present[rows, merge_col] == 0)
        threshold = g_merge + vs[s:e] + tol
        bar = threshold.masked_fill(missing, math.inf)  # a missing merge has no rows
        value = (mixed - vp[cols]).masked_fill(~(mixed > 0.0), -math.inf)
        value.scatter_(1, merge_col[:, None], -math.inf)  # the merge is no competitor
        block_limit = limit[s:e]

        # pairs the block does not touch hold their value through it: their best few join
        lowest = float(bar.min())
        candidates, candidate_pair = value, cols
        if math.isfinite(lowest):
            state.in_block[cols] = True
            still = torch.nonzero(state.value > lowest).squeeze(1)
            still = still[~state.in_block[still]]
            state.in_block[cols] = False
            k_still = min(len(still), most)
            if k_still:
                top, at = torch.topk(state.value[still], k_still)
                candidates = torch.cat([value, top.expand(n_block, k_still)], dim=1)
                candidate_pair = torch.cat([cols, still[at]])
        violated = (candidates > bar[:, None]).sum(dim=1)
        take = torch.minimum(violated, block_limit)
        k = int(take.max()) if n_block else 0
        if k == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=dev)
            return empty, empty, empty.to(torch.float64), missing
        best, where = torch.topk(candidates, k, dim=1)  # sorted, largest first
        keep = torch.arange(k, device=dev)[None, :] < take[:, None]
        step = (rows + s)[:, None].expand(n_block, k)[keep]
        excess = (best - threshold[:, None] + tol)[keep]
        return step, candidate_pair[where[keep]], excess, missing


def find_violated_edges_torch(
    problem: MixtureProblem,
    alpha: np.ndarray,
    v_step: np.ndarray,
    v_pair: np.ndarray,
    scale: np.ndarray,
    *,
    per_step: int | np.ndarray,
    tol: float,
    device: str = "cpu",
    memory_bytes: int | None = None,
    block_steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One sweep on ``device``: :class:`TorchEdgeSweep` built and called once (a solve keeps
    the object, so the rows cross to the device once)."""
    sweep = TorchEdgeSweep(problem, device, memory_bytes=memory_bytes, block_steps=block_steps)
    return sweep(alpha, v_step, v_pair, scale, per_step=per_step, tol=tol)
