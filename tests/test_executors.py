"""The local executor's process pool: what it returns is what the builtin ``map`` returns.

Oracle: the same function mapped in this process. The function is a closure over data (as a
bootstrap replicate's is), which the standard pickle cannot send."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tokmix.jobs.executors import LocalExecutor, pool_map


def _closure(data: np.ndarray):  # type: ignore[no-untyped-def]
    def solve(item: tuple[int, float]) -> tuple[int, float, int]:
        k, w = item
        return k, float(data[k] * w), os.getpid()

    return solve


def test_pooled_map_fn_equals_map_in_order_and_runs_elsewhere() -> None:
    data = np.random.default_rng(0).random(50)
    fn = _closure(data)
    items = [(k, 1.0 + k / 7) for k in range(12)]
    want = [r[:2] for r in map(fn, items)]
    got = list(LocalExecutor(fan_out=2).map_fn()(fn, items))
    assert [r[:2] for r in got] == want
    assert os.getpid() not in {r[2] for r in got}  # solved in the pool's processes


def test_serial_executor_maps_here_and_pooled_map_takes_argument_tuples() -> None:
    assert LocalExecutor().map_fn() is map
    calls = [(a, b) for a in range(3) for b in range(3)]
    assert LocalExecutor(2).map(divmod, [(7 + a, 1 + b) for a, b in calls]) == [
        divmod(7 + a, 1 + b) for a, b in calls
    ]


def test_a_failing_task_fails_the_map() -> None:
    with pytest.raises(ZeroDivisionError):
        list(pool_map(divmod, [(1, 1), (1, 0), (2, 1)], 2, star=True))
