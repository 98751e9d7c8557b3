"""Ray for the jobs: connect (embedded or to a cluster) and report progress people can follow.

Every job runs the same code on a laptop and on a cluster: with ``RAY_ADDRESS`` set (or under
``ray job submit``) :func:`ray_session` joins that cluster, otherwise ``ray.init`` starts a
one-node Ray in-process and stops it afterwards.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ray

from tokmix.errors import TokmixError

Log = Callable[[str], None]

FORWARDED_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "TOKMIX_LOG_LEVEL",
)
"""Environment handed to workers: where the object store is, never credentials (workers
take those from their own environment, instance role or profile, so no secret travels in
job metadata or the dashboard)."""


def stderr_log(run_id: str) -> Log:
    def log(msg: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[tokmix {run_id} {stamp}] {msg}", file=sys.stderr, flush=True)

    return log


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


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def _human_seconds(s: float) -> str:
    s = round(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Shards done, bytes read, rate and ETA of one stage, logged at most every ``every``
    seconds (and once at the end)."""

    def __init__(
        self, stage: str, total_tasks: int, total_bytes: int, log: Log, *, every: float = 10.0
    ) -> None:
        self.stage, self.log = stage, log
        self.total_tasks, self.total_bytes = total_tasks, total_bytes
        self.every = every
        self.done = 0
        self.bytes_done = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, tasks: int = 1, nbytes: int = 0) -> None:
        self.done += tasks
        self.bytes_done += nbytes
        now = time.monotonic()
        if now - self._last >= self.every or self.done == self.total_tasks:
            self._last = now
            self.log(self.line())

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        elapsed = max(self.seconds, 1e-9)
        parts = [f"{self.stage}: {self.done}/{self.total_tasks} tasks"]
        if self.total_bytes:
            rate = self.bytes_done / elapsed
            parts.append(
                f"{_human_bytes(self.bytes_done)} of {_human_bytes(self.total_bytes)} "
                f"({_human_bytes(rate)}/s)"
            )
            fraction = self.bytes_done / self.total_bytes
        else:
            fraction = self.done / max(self.total_tasks, 1)
        if 0 < fraction < 1:
            parts.append(f"ETA {_human_seconds(elapsed * (1 - fraction) / fraction)}")
        parts.append(f"elapsed {_human_seconds(elapsed)}")
        return ", ".join(parts)


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
