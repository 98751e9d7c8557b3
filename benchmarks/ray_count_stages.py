"""Where a sharded count's time goes: wall and CPU seconds of each stage (plan, map, reduce,
commit), at one or more corpus sizes, on Ray or on the local executor.

    python -m benchmarks.ray_count_stages [--mb 64 256] [--shard-mb 8] [--workers 2 | --local]

The executor is wrapped so each ``map`` (the map tasks, then the reduce tasks) is timed from
the driver: wall seconds and CPU seconds of the whole process tree (driver, GCS, raylet,
workers; :func:`benchmarks.ray_count._tree`), and inside each task its own wall and
``process_time``. What the tree spent beyond the tasks is Ray's (daemons, the driver's
dispatch, the workers' own threads between tasks); what lies before the first map is the plan,
after the last the commit. The sequential ``run_count`` of the same corpus is timed beside it
(its CPU seconds) as the reference. Each size: a warm-up run, then two timed runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from benchmarks.ray_count import _corpus, _prefix, _tree
from tokmix.bpe.pretokenizers import GPT2
from tokmix.jobs.count import run_count
from tokmix.jobs.count_ray import run_count_ray
from tokmix.jobs.executors import Executor, LocalExecutor
from tokmix.jobs.spec import CategorySpec, SampleOptions

HZ = os.sysconf("SC_CLK_TCK")


def _task_timed(fn: Callable[..., Any]) -> Callable[..., tuple[Any, float, float]]:
    """``fn`` returning also its own wall and CPU seconds, measured where the task runs (a
    plain function: Ray's ``remote`` takes no ``functools.partial``)."""

    def timed(*args: Any) -> tuple[Any, float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args)
        return result, time.perf_counter() - w0, time.process_time() - c0

    timed.__name__ = fn.__name__
    return timed


@dataclass
class Stage:
    """One timed span of the run: driver wall, process-tree CPU, and the tasks' own sums."""

    name: str
    wall: float
    cpu: float
    tasks: int = 0
    task_wall: float = 0.0
    task_cpu: float = 0.0


class TimingExecutor:
    """An executor that times each ``map`` call around ``inner``'s."""

    def __init__(self, inner: Executor) -> None:
        self.inner, self.name = inner, inner.name
        self.spans: list[tuple[str, float, float, dict[int, int], dict[int, int], list[Any]]] = []

    def cpus(self) -> int:
        return self.inner.cpus()

    def share(self, value: Any) -> Any:
        return self.inner.share(value)

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], **kw: Any) -> list[Any]:
        wrapped = _task_timed(fn)
        t0, c0 = time.perf_counter(), _tree()
        out = self.inner.map(wrapped, calls, **kw)
        t1, c1 = time.perf_counter(), _tree()
        self.spans.append((fn.__name__, t0, t1, c0, c1, out))
        return [result for result, _, _ in out]

    def map_fn(self, resources: Any = None) -> Any:
        return self.inner.map_fn(resources)


def _cpu_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds the process tree spent between two snapshots (processes that ended in
    between are not counted; none do during a run)."""
    return sum(after[p] - before.get(p, 0) for p in after) / HZ


def stages(specs: list[CategorySpec], root: Path, shard_mb: float, inner: Executor) -> list[Stage]:
    """One run of the sharded count stage, as timed stages (plan, map, reduce, commit, total)."""
    timing = TimingExecutor(inner)
    options = {s.name: SampleOptions() for s in specs}
    t0, c0 = time.perf_counter(), _tree()
    run_count_ray(
        specs,
        options,
        GPT2,
        str(root / "sharded"),
        shard_bytes=int(shard_mb * 1e6),
        force=True,
        executor=timing,
    )
    t1, c1 = time.perf_counter(), _tree()
    out, last_t, last_c = [], t0, c0
    for name, s0, s1, b, a, results in timing.spans:
        out.append(Stage(f"before {name}", s0 - last_t, _cpu_between(last_c, b)))
        out.append(
            Stage(
                name,
                s1 - s0,
                _cpu_between(b, a),
                len(results),
                sum(w for _, w, _ in results),
                sum(c for _, _, c in results),
            )
        )
        last_t, last_c = s1, a
    out.append(Stage("after (commit)", t1 - last_t, _cpu_between(last_c, c1)))
    out.append(Stage("total", t1 - t0, _cpu_between(c0, c1)))
    return out


def _print(stages_: list[Stage]) -> None:
    for s in stages_:
        tasks = (
            f"  {s.tasks} tasks: their own wall {s.task_wall:6.3f} s, CPU {s.task_cpu:6.3f} s"
            if s.tasks
            else ""
        )
        print(f"  {s.name:26} wall {s.wall:6.3f} s  tree CPU {s.cpu:6.3f} s{tasks}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, nargs="+", default=[64.0, 256.0])
    parser.add_argument("--shard-mb", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs")
    parser.add_argument("--local", action="store_true", help="the local executor, no Ray")
    args = parser.parse_args()
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
    if not args.local:
        ray.init(num_cpus=args.workers, include_dashboard=False, configure_logging=False)
    inner: Executor = LocalExecutor()
    if not args.local:
        from tokmix.jobs.ray_executor import RayExecutor

        inner = RayExecutor()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            full = _corpus(root, max(args.mb))
            for mb in sorted(args.mb):
                specs = _prefix(full, mb)
                size = sum(Path(s.path).stat().st_size for s in specs) / 1e6
                stages(specs, root, args.shard_mb, inner)  # warm-up
                seq = float("inf")
                for _ in range(2):  # the first loads the compiled counter in this process
                    c0 = time.process_time()
                    run_count(specs, GPT2, str(root / "local"), SampleOptions(), force=True)
                    seq = min(seq, time.process_time() - c0)
                where = "local executor" if args.local else f"Ray, {args.workers} CPUs"
                print(f"{size:.1f} MB ({len(specs)} files), {where}; sequential {seq:.3f} CPU-s")
                for _ in range(2):
                    _print(stages(specs, root, args.shard_mb, inner))
    finally:
        if not args.local:
            ray.shutdown()
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
