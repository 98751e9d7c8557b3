"""Executors: who runs a stage's tasks. The stages declare tasks; an executor runs them.

A task is a plain function and its arguments; it reads its inputs and writes its outputs by
name (files under the run's output root), so where it runs does not change what it computes.
:class:`LocalExecutor` runs tasks in this process, one after the other (or in a process
pool); :class:`tokmix.jobs.ray_executor.RayExecutor` runs the very same tasks as Ray tasks,
with the stage's declared resources. Ray is imported only there.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    """Tasks in this process, in order (``processes=1``), or in a pool of ``processes``
    processes on this machine; :meth:`map_fn` (the bootstrap replicates) in a pool of
    ``fan_out`` processes (``tokmix infer --workers``).

    The two are apart because a pool costs each worker its imports (measured: 2-4 s a
    worker): the demo's count and replay tasks take a second in all and ran 4-8 s slower
    pooled, while its 20 replicates, a second each, ran 1.2x faster on 2 workers, and a
    replicate of 30 categories x 2 000 merges takes 8 s.

    Pool workers are *spawned*, not forked: the parent may hold HiGHS, numba or Ray threads,
    which a forked child inherits half-alive. A task's function goes to each worker once,
    pickled with cloudpickle (a bootstrap replicate's closure holds every group trajectory:
    sent with each task, it would be copied once per replicate); its arguments go per task.
    Results come back in order, so a pooled run computes exactly what a serial one does."""

    name = "local"

    def __init__(self, processes: int = 1, *, fan_out: int = 1) -> None:
        self.processes = max(1, processes)
        self.fan_out = max(1, fan_out)

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
        for i, result in enumerate(pool_map(fn, calls, self.processes, star=True)):
            results.append(result)
            if progress is not None:
                progress.advance(1, weight(i))
        return results

    def map_fn(self, resources: StageResources | None = None) -> MapFn:
        del resources
        if self.fan_out == 1:
            return map
        processes = self.fan_out

        def pooled(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
            return pool_map(fn, list(items), processes)  # results as they come, in order

        return pooled


_INSTALLED: list[Callable[..., Any]] = []  # a pool worker's task function


def _install(blob: bytes) -> None:
    """Pool initializer: unpickle the task function once per worker. The bytes are this
    run's own function, pickled by the parent a moment ago, never a file."""
    import cloudpickle

    _INSTALLED[:] = [cloudpickle.loads(blob)]


def _run_installed(item: Any, star: bool) -> Any:
    fn = _INSTALLED[0]
    return fn(*item) if star else fn(item)


def pool_map(
    fn: Callable[..., Any], items: Sequence[Any], processes: int, *, star: bool = False
) -> Iterator[Any]:
    """``fn(item)`` (``fn(*item)`` with ``star``) for each item in a pool of spawned processes,
    results in order; one item or one process runs here, without a pool."""
    if processes <= 1 or len(items) <= 1:
        for item in items:
            yield fn(*item) if star else fn(item)
        return
    import cloudpickle

    context = multiprocessing.get_context("spawn")
    workers = min(processes, len(items))
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_install, initargs=(cloudpickle.dumps(fn),)
    ) as pool:
        yield from pool.map(_run_installed, items, itertools.repeat(star))


def default_processes() -> int:
    """CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
