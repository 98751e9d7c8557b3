"""Counting throughput on Ray: MB/s of corpus per core with 1 and 2 workers, against the
in-process counter (``tokmix infer``'s count stage) measured in the same run.

    python -m benchmarks.ray_count [--mb 24] [--shard-mb 2]

The corpus is plain JSON lines (so files split into byte-range shards) made from the shared
code corpora, or the shipped samples. Ray start-up and a first warm-up run (workers loading the
compiled counter) are outside the timings; each figure is the best of two runs of the whole
count stage (plan, map, reduce, commit).

Two measures: wall-clock MB/s per core, and MB per CPU-second of this process and all its
descendants (the Ray cluster ``ray.init`` starts: GCS, raylet, workers). On a machine shared
with other work the second is the one to read: it does not charge Ray for the neighbours.

A control for two workers: two in-process counts at once, in two processes, each on half the
files. Two busy cores run slower per CPU-second than one (shared caches and memory bandwidth,
and on a VM whatever the host shares), with or without Ray; the ratio against this pair is what
Ray itself costs. The benchmark also counts processes started under this one during the timed
runs: a Ray worker started there would pay its imports and the compiled counter's load inside
the timing.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from tokmix.bpe.pretokenizers import GPT2
from tokmix.jobs.count import run_count
from tokmix.jobs.count_ray import run_count_ray
from tokmix.jobs.spec import CategorySpec, SampleOptions

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "corpora" / "code"


def _corpus(root: Path, megabytes: float) -> list[CategorySpec]:
    sources = sorted(SHARED.glob("*/docs.jsonl.gz")) or sorted(
        (REPO / "data" / "samples").glob("*.jsonl.gz")
    )
    specs: list[CategorySpec] = []
    total = 0
    while total < megabytes * 1e6:
        for src in sources:
            raw = gzip.decompress(src.read_bytes())
            path = root / f"{src.parent.name}-{len(specs)}.jsonl"
            path.write_bytes(raw)
            specs.append(CategorySpec(path.stem, str(path)))
            total += len(raw)
            if total >= megabytes * 1e6:
                break
    return specs


def _tree_cpu() -> float:
    """CPU seconds of this process and every live descendant (the local Ray cluster), from
    ``/proc`` (Linux): user + system time of each, children's waited time not included."""
    ticks = _tree()
    return sum(ticks.values()) / os.sysconf("SC_CLK_TCK")


def _tree() -> dict[int, int]:
    """CPU ticks of this process and each live descendant, by pid."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    mine = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return {pid: ticks.get(pid, 0) for pid in mine}


def _best_of_two(fn: Callable[[], object]) -> tuple[float, float, int]:
    """Best wall seconds and best CPU seconds (process tree) of two runs, and how many
    processes were started under this one during them."""
    wall = cpu = float("inf")
    before = set(_tree())
    for _ in range(2):
        c0, t0 = _tree_cpu(), time.perf_counter()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, _tree_cpu() - c0)
    return wall, cpu, len(set(_tree()) - before)


def _count_half(specs: list[CategorySpec], out: str, barrier: Any, results: Any) -> None:
    """One process of the control pair: warm up, wait for the other, count (best of two)."""
    run_count(specs, GPT2, out, SampleOptions(), force=True)  # warm-up
    best = float("inf")
    for _ in range(2):
        barrier.wait()
        c0 = time.process_time()
        run_count(specs, GPT2, out, SampleOptions(), force=True)
        best = min(best, time.process_time() - c0)
    results.put(best)


def _two_at_once(specs: list[CategorySpec], root: Path) -> float:
    """CPU seconds the two processes of the control took together (each its best run)."""
    halves: list[list[CategorySpec]] = [[], []]
    sizes = [0, 0]
    for spec in sorted(specs, key=lambda s: -Path(s.path).stat().st_size):
        i = sizes.index(min(sizes))
        halves[i].append(spec)
        sizes[i] += Path(spec.path).stat().st_size
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_count_half, args=(half, str(root / f"pair{i}"), barrier, results))
        for i, half in enumerate(halves)
    ]
    for proc in procs:
        proc.start()
    cpu = sum(results.get() for _ in procs)
    for proc in procs:
        proc.join()
    return float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=24.0, help="corpus size")
    parser.add_argument("--shard-mb", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        specs = _corpus(root, args.mb)
        mb = sum(Path(s.path).stat().st_size for s in specs) / 1e6
        options = {s.name: SampleOptions() for s in specs}

        def local_run() -> None:
            run_count(specs, GPT2, str(root / "local"), SampleOptions(), force=True)

        local_run()  # warm-up: the compiled counter loaded
        local, local_cpu, _ = _best_of_two(local_run)
        print(f"corpus {mb:.1f} MB in {len(specs)} files (plain JSON lines)")
        print(
            f"in-process count, 1 core:  {mb / local:6.2f} MB/s wall, "
            f"{mb / local_cpu:6.2f} MB per CPU-second"
        )
        pair_cpu = _two_at_once(specs, root)
        print(
            f"control, two in-process counts at once (half the files each): "
            f"{mb / pair_cpu:6.2f} MB per CPU-second ({local_cpu / pair_cpu:.2f}x one alone)"
        )
        for workers in (1, 2):
            ray.init(num_cpus=workers, include_dashboard=False, configure_logging=False)

            def ray_run(w: int = workers) -> None:
                run_count_ray(
                    specs,
                    options,
                    GPT2,
                    str(root / f"ray{w}"),
                    shard_bytes=int(args.shard_mb * 1e6),
                    force=True,
                )

            try:
                ray_run()  # warm-up: workers started, the compiled counter loaded
                seconds, cpu, started = _best_of_two(ray_run)
            finally:
                ray.shutdown()
            rate = mb / seconds
            control = f", {pair_cpu / cpu:.2f}x the two-process control" if workers == 2 else ""
            print(
                f"Ray count, {workers} worker(s): {rate:6.2f} MB/s wall = {rate / workers:5.2f} "
                f"MB/s per core ({rate / workers / (mb / local):.2f}x in-process); "
                f"{mb / cpu:6.2f} MB per CPU-second ({local_cpu / cpu:.2f}x in-process{control})"
                f" [target >= 0.90x per core]; {started} process(es) started while timed"
            )


if __name__ == "__main__":
    main()
