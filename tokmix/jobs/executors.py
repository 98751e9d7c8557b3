"""Executors: who runs a stage's tasks. The stages declare tasks; an executor runs them.

A task is a plain function and its arguments; it reads its inputs and writes its outputs by
name (files under the run's output root), so where it runs does not change what it computes.
:class:`LocalExecutor` runs tasks in this process, one after the other (or in a process
pool); :class:`tokmix.jobs.ray_executor.RayExecutor` runs the very same tasks as Ray tasks,
with the stage's declared resources. Ray is imported only there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from tokmix.jobs.progress import Progress
from tokmix.schemas.run_spec import StageResources

MapFn = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


class Executor(Protocol):
    """Runs a stage's tasks (see the module docstring)."""

    name: str

    def cpus(self) -> int:
        """How many tasks can run at once (sizes partitions)."""
        ...

    def share(self, value: Any) -> Any:
        """A value many tasks take (a pre-tokenizer): put once, passed by reference."""
        ...

    def map(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        *,
        resources: StageResources | None = None,
        progress: Progress | None = None,
        weight: Callable[[int], int] = lambda _i: 0,
        retries: int | None = None,
    ) -> list[Any]:
        """``[fn(*call) for call in calls]``, run as tasks; results in order. ``progress``
        advances by one task (and ``weight(i)`` bytes) as each finishes."""
        ...

    def map_fn(self, resources: StageResources | None = None) -> MapFn:
        """A ``map(fn, items)`` whose calls run as tasks (bootstrap replicates)."""
        ...


class LocalExecutor:
    """Tasks in this process, in order (``processes=1``), or in a pool of processes."""

    name = "local"

    def __init__(self, processes: int = 1) -> None:
        self.processes = max(1, processes)

    def cpus(self) -> int:
        return self.processes

    def share(self, value: Any) -> Any:
        return value

    def map(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        *,
        resources: StageResources | None = None,
        progress: Progress | None = None,
        weight: Callable[[int], int] = lambda _i: 0,
        retries: int | None = None,
    ) -> list[Any]:
        del resources, retries  # one machine; a failed task fails the stage
        results: list[Any] = []
        if self.processes == 1 or len(calls) <= 1:
            for i, call in enumerate(calls):
                results.append(fn(*call))
                if progress is not None:
                    progress.advance(1, weight(i))
            return results
        with ProcessPoolExecutor(min(self.processes, len(calls))) as pool:
            futures = [pool.submit(fn, *call) for call in calls]
            for i, future in enumerate(futures):
                results.append(future.result())
                if progress is not None:
                    progress.advance(1, weight(i))
        return results

    def map_fn(self, resources: StageResources | None = None) -> MapFn:
        del resources
        return map


def default_processes() -> int:
    """CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
