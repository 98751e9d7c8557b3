"""The torch sweep (the GPU path, run here on torch's CPU) against the compiled heap sweep and
against every constraint written out by plain numpy; solves with it against the dense LP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import sample_documents
from tests.test_mixture_lp import CATS, _noisy_problem, _problem
from tests.test_warm_start import _resampled
from tokmix.errors import SolverError
from tokmix.solvers.edges import find_violated_edges
from tokmix.solvers.mixture_lp import (
    all_constraints,
    frequency_scale,
    solve_mixture,
    solve_mixture_dense,
)
from tokmix.solvers.problem import MixtureProblem
from tokmix.solvers.torch_sweep import (
    TorchEdgeSweep,
    cuda_available,
    find_violated_edges_torch,
    resolve_device,
)

pytest.importorskip("torch")

Sweep = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> MixtureProblem:
    docs = {c: sample_documents(c, 60_000) for c in CATS}
    train = [d for c in CATS for d in docs[c]]
    return _problem(tmp_path_factory.mktemp("small"), docs, train, 60)


def _point(problem: MixtureProblem, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random ``(α, v_step, v_pair)``: positive slacks on about half the pairs, and on the
    first seed a category with weight 0 (its pairs count, but mix to nothing)."""
    rng = np.random.default_rng(seed)
    alpha = rng.dirichlet(np.ones(problem.n_categories))
    if seed == 0:
        alpha[0] = 0.0
        alpha /= alpha.sum()
    v_step = rng.exponential(0.002, problem.n_steps)
    v_pair = rng.exponential(0.002, problem.n_pairs) * (rng.random(problem.n_pairs) < 0.5)
    return alpha, v_step, v_pair


def _by_row(found: Sweep) -> Sweep:
    order = np.lexsort((found[1], found[0]))
    return found[0][order], found[1][order], found[2][order], found[3]


def _assert_same(got: Sweep, want: Sweep, magnitude: float) -> None:
    """The same rows and flags; excesses to 1e-12 of the frequencies they are differences of
    (the torch sweep sums the same terms in another order)."""
    g, w = _by_row(got), _by_row(want)
    np.testing.assert_array_equal(g[0], w[0])
    np.testing.assert_array_equal(g[1], w[1])
    np.testing.assert_allclose(g[2], w[2], rtol=1e-12, atol=1e-12 * magnitude)
    np.testing.assert_array_equal(g[3], w[3])


def _untouched(problem: MixtureProblem, found: Sweep, block_steps: int) -> int:
    """How many rows found are of pairs their block's rows do not touch (the standing
    values' path of the torch sweep)."""
    n = 0
    for s in range(0, problem.n_steps, block_steps):
        e = min(s + block_steps, problem.n_steps)
        lo, hi = problem.step_start[s + 1], problem.step_start[e]
        touched = np.union1d(problem.rows_pair[lo:hi], problem.merge_pair[s:e])
        at = (found[0] >= s) & (found[0] < e)
        n += int((~np.isin(found[1][at], touched)).sum())
    return n


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block_steps", [None, 1, 5, 10_000])
def test_torch_sweep_finds_the_heap_sweeps_rows(
    small: MixtureProblem, seed: int, block_steps: int | None
) -> None:
    """Every violated row (no binding limit) against the rows written out by numpy, and
    against the compiled sweep; then per-step limits 0..3, which bind at most steps: each
    step's most violated rows, the same as the compiled sweep's. Block lengths 1 and 5 put
    block boundaries at every step and mid-trajectory; 10 000 makes one block."""
    problem = small
    scale = frequency_scale(problem)
    alpha, v_step, v_pair = _point(problem, seed)
    steps, pairs, coefs = all_constraints(problem, scale)
    excess = -(coefs @ alpha + v_step[steps] + v_pair[pairs])
    violated = excess > 1e-9
    assert 10 < violated.sum() < len(violated)
    magnitude = float(np.abs(coefs).max())

    got = find_violated_edges_torch(
        problem, alpha, v_step, v_pair, scale, per_step=10**6, tol=1e-9, block_steps=block_steps
    )
    assert [x.dtype for x in got] == [np.int64, np.int64, np.float64, np.bool_]
    s, p, e, _ = _by_row(got)
    want = np.lexsort((pairs[violated], steps[violated]))
    np.testing.assert_array_equal(s, steps[violated][want])
    np.testing.assert_array_equal(p, pairs[violated][want])
    np.testing.assert_allclose(e, excess[violated][want], rtol=1e-9, atol=1e-12 * magnitude)
    heap = find_violated_edges(problem, alpha, v_step, v_pair, scale, per_step=10**6, tol=1e-9)
    _assert_same(got, heap, magnitude)
    if block_steps == 5:  # both paths are held: rows of pairs the block touches, and not
        assert 0 < _untouched(problem, got, block_steps) < len(got[0])

    limit = np.random.default_rng(seed).integers(0, 4, problem.n_steps)
    got = find_violated_edges_torch(
        problem, alpha, v_step, v_pair, scale, per_step=limit, tol=1e-9, block_steps=block_steps
    )
    heap = find_violated_edges(problem, alpha, v_step, v_pair, scale, per_step=limit, tol=1e-9)
    binding = 0
    for k in range(problem.n_steps):
        at_k = np.sort(excess[violated & (steps == k)])[::-1]
        binding += len(at_k) > limit[k]
        # the top limit[k] are one set where the value after them differs (random α: always)
        assert len(at_k) <= limit[k] or limit[k] == 0 or at_k[limit[k] - 1] - at_k[limit[k]] > 1e-12
    assert binding > problem.n_steps // 4
    _assert_same(got, heap, magnitude)
    # in step order, the most violated first within a step
    assert (np.diff(got[0]) >= 0).all()
    same_step = np.diff(got[0]) == 0
    assert (np.diff(got[2])[same_step] <= 0).all()


def test_missing_merges_are_flagged_as_by_the_heap_sweep(small: MixtureProblem) -> None:
    """Two categories only: some merges occur in neither; their steps are flagged, get no
    rows, and match the count written out step by step."""
    problem = _resampled(small, only=set(small.categories[:2]))
    assert len(problem.missing_steps) > 0
    scale = frequency_scale(problem)
    alpha, v_step, v_pair = _point(problem, 1)
    got = find_violated_edges_torch(
        problem, alpha, v_step, v_pair, scale, per_step=10**6, tol=1e-9, block_steps=3
    )
    heap = find_violated_edges(problem, alpha, v_step, v_pair, scale, per_step=10**6, tol=1e-9)
    _assert_same(got, heap, 10.0)
    counts = np.zeros((problem.n_pairs, problem.n_categories), dtype=np.int64)
    oracle = np.zeros(problem.n_steps, dtype=bool)
    for k in range(problem.n_steps):
        lo, hi = problem.step_start[k], problem.step_start[k + 1]
        np.add.at(
            counts, (problem.rows_pair[lo:hi], problem.rows_cat[lo:hi]), problem.rows_delta[lo:hi]
        )
        m = problem.merge_pair[k]
        oracle[k] = m < 0 or not counts[m].any()
    assert oracle.any()
    np.testing.assert_array_equal(got[3], oracle)
    assert not np.isin(got[0], np.flatnonzero(oracle)).any()


def test_a_small_memory_budget_only_shortens_the_blocks(small: MixtureProblem) -> None:
    """The budget caps each block's matrices (a block of one step may pass it: there is no
    shorter one); the rows found do not change."""
    scale = frequency_scale(small)
    alpha, v_step, v_pair = _point(small, 2)
    roomy = TorchEdgeSweep(small, block_steps=64)
    tight = TorchEdgeSweep(small, block_steps=64, memory_bytes=64 * 2000)
    for blocks, sweep in ((roomy.blocks(8), roomy), (tight.blocks(8), tight)):
        assert [b[0] for b in blocks[1:]] == [b[1] for b in blocks[:-1]]
        assert blocks[0][0] == 0 and blocks[-1][1] == small.n_steps
        for s, e in blocks:
            width = min(int(small.step_start[e] - small.step_start[s + 1]) + e - s, small.n_pairs)
            assert e - s == 1 or (e - s) * (width + 8) <= sweep.budget_cells
    assert len(tight.blocks(8)) > 2 * len(roomy.blocks(8))
    found = [sweep(alpha, v_step, v_pair, scale, per_step=8, tol=1e-9) for sweep in (roomy, tight)]
    _assert_same(found[0], found[1], 10.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_solve_with_the_torch_sweep_reaches_the_same_optimum(tmp_path: Path, seed: int) -> None:
    """The whole row generation with the torch sweep: the compiled sweep's optimum and the
    dense LP's, and the diagnostics say which sweep ran."""
    problem = _noisy_problem(tmp_path, np.random.default_rng(seed), 60)
    dense = solve_mixture_dense(problem)
    compiled = solve_mixture(problem)
    torch_cpu = solve_mixture(problem, sweep="torch")
    assert torch_cpu.diagnostics["sweep"] == "torch-cpu"
    assert compiled.diagnostics["sweep"] == "numba"
    assert torch_cpu.objective == pytest.approx(dense.objective, rel=1e-6, abs=1e-9)
    assert torch_cpu.objective == pytest.approx(compiled.objective, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(torch_cpu.byte_share, compiled.byte_share, atol=1e-6)


def test_devices_are_named_and_cuda_is_checked(
    small: MixtureProblem, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``auto`` follows torch; ``cuda`` without a device is a clear error, before any sweep."""
    with pytest.raises(SolverError, match="device must be one of auto, cpu, cuda"):
        resolve_device("gpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if cuda_available() else "cpu")
    monkeypatch.setattr("tokmix.solvers.torch_sweep.cuda_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(SolverError, match=r"torch sees no CUDA device.*num_gpus"):
        resolve_device("cuda")
    with pytest.raises(SolverError, match="torch sees no CUDA device"):
        solve_mixture(small, device="cuda")
    with pytest.raises(SolverError, match="sweep must be one of mixed, dense, torch"):
        solve_mixture(small, sweep="gpu")


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device (the CI image has none)")
def test_the_cuda_sweep_finds_the_same_rows_and_optimum(tmp_path: Path) -> None:
    """Where torch sees a GPU: the sweep on CUDA against the compiled one, and a solve with
    ``device="cuda"`` (``auto`` there) against the CPU solve."""
    problem = _noisy_problem(tmp_path, np.random.default_rng(0), 60)
    scale = frequency_scale(problem)
    alpha, v_step, v_pair = _point(problem, 1)
    for limit in (10**6, 3):
        got = find_violated_edges_torch(
            problem, alpha, v_step, v_pair, scale, per_step=limit, tol=1e-9, device="cuda"
        )
        heap = find_violated_edges(problem, alpha, v_step, v_pair, scale, per_step=limit, tol=1e-9)
        _assert_same(got, heap, 10.0)
    on_cuda = solve_mixture(problem, device="auto")
    assert on_cuda.diagnostics["sweep"] == "torch-cuda"
    assert on_cuda.objective == pytest.approx(solve_mixture(problem).objective, rel=1e-9)
