"""The Ray executor: a stage's tasks as Ray tasks, with the stage's declared resources.

The tasks are the ones :class:`tokmix.jobs.executors.LocalExecutor` runs in-process; Ray adds
placement, retries of tasks whose worker or node died, and many machines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import ray

from tokmix.jobs.executors import MapFn
from tokmix.jobs.progress import Progress
from tokmix.jobs.runtime import cluster_cpus, get, wait_all
from tokmix.schemas.run_spec import StageResources


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayExecutor:
    """Tasks on the current Ray (see :func:`tokmix.jobs.runtime.ray_session`)."""

    name = "ray"

    def cpus(self) -> int:
        return cluster_cpus()

    def share(self, value: Any) -> Any:
        return ray.put(value)

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
        options = (resources or StageResources()).ray_options()
        if retries is not None:
            options["max_retries"] = retries
        task = ray.remote(fn).options(**options)
        refs = [task.remote(*call) for call in calls]
        if progress is None:
            return [get(ref) for ref in refs]
        return wait_all(refs, progress, weight)

    def map_fn(self, resources: StageResources | None = None) -> MapFn:
        options = (resources or StageResources()).ray_options()

        def mapped(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
            fn_ref = ray.put(fn)
            task = ray.remote(_apply).options(**options)
            refs = [task.remote(fn_ref, item) for item in items]  # all submitted at once
            return (get(ref) for ref in refs)  # results as they come, in order

        return mapped
