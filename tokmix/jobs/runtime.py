"""Ray for the jobs: connect (embedded or to a cluster) and report progress people can follow.

Every job runs the same code on a laptop and on a cluster: with ``RAY_ADDRESS`` set (or under
``ray job submit``) :func:`ray_session` joins that cluster, otherwise ``ray.init`` starts a
one-node Ray in-process and stops it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ray

from tokmix.errors import TokmixError
from tokmix.jobs.progress import Log, Progress, stderr_log

__all__ = ["Log", "Progress", "cluster_cpus", "get", "ray_session", "stderr_log", "wait_all"]

FORWARDED_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "TOKMIX_LOG_LEVEL",
    "TOKMIX_SOLVE_CHECKPOINT_SECONDS",
)
"""Environment handed to workers: where the object store is and tokmix's own settings (a
cluster's workers were started with ``ray start``'s environment, not the job's), never
credentials (workers take those from their own environment, instance role or profile, so no
secret travels in job metadata or the dashboard)."""


@contextmanager
def ray_session(*, num_cpus: int | None = None, log: Log = lambda _m: None) -> Iterator[None]:
    """Ray for the duration of a job: the running one, the cluster at ``RAY_ADDRESS``, or a
    fresh embedded one (stopped on exit)."""
    if ray.is_initialized():
        yield
        return
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    runtime_env = {"env_vars": env} if env else None
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        log(f"joined the Ray cluster at {address}: {_describe_cluster()}")
    else:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            runtime_env=runtime_env,
            configure_logging=False,
            log_to_driver=True,
        )
        log(f"started an embedded Ray: {_describe_cluster()}")
    try:
        yield
    finally:
        if not address:
            ray.shutdown()


def _describe_cluster() -> str:
    res = ray.cluster_resources()
    nodes = len([n for n in ray.nodes() if n.get("Alive")])
    gpus = f", {res['GPU']:g} GPUs" if res.get("GPU") else ""
    return f"{nodes} node(s), {res.get('CPU', 0):g} CPUs{gpus}"


def cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def get(ref: Any) -> Any:
    """``ray.get`` that raises a task's tokmix error as itself: the user reads "python.jsonl:
    line 7: not valid JSON", not a remote traceback."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, TokmixError):
            raise exc.cause from None
        raise


def wait_all(
    refs: Sequence[ray.ObjectRef],
    progress: Progress,
    weight: Callable[[int], int] = lambda _i: 0,
) -> list[Any]:
    """Results of ``refs`` in order, advancing ``progress`` as each finishes (``weight(i)``:
    bytes that task ``i`` stands for). A failed task raises its error here."""
    index = {ref: i for i, ref in enumerate(refs)}
    pending = list(refs)
    results: list[Any] = [None] * len(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=progress.every)
        for ref in ready:
            i = index[ref]
            results[i] = get(ref)
            progress.advance(1, weight(i))
        if not ready:
            progress.log(progress.line())
    return results
