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
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

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
    specs, total = [], 0
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
    return sum(ticks.get(pid, 0) for pid in mine) / os.sysconf("SC_CLK_TCK")


def _best_of_two(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Best wall seconds and best CPU seconds (process tree) of two runs."""
    wall = cpu = float("inf")
    for _ in range(2):
        c0, t0 = _tree_cpu(), time.perf_counter()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, _tree_cpu() - c0)
    return wall, cpu


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
        local, local_cpu = _best_of_two(local_run)
        print(f"corpus {mb:.1f} MB in {len(specs)} files (plain JSON lines)")
        print(
            f"in-process count, 1 core:  {mb / local:6.2f} MB/s wall, "
            f"{mb / local_cpu:6.2f} MB per CPU-second"
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
                seconds, cpu = _best_of_two(ray_run)
            finally:
                ray.shutdown()
            rate = mb / seconds
            print(
                f"Ray count, {workers} worker(s): {rate:6.2f} MB/s wall = {rate / workers:5.2f} "
                f"MB/s per core ({rate / workers / (mb / local):.2f}x in-process); "
                f"{mb / cpu:6.2f} MB per CPU-second ({local_cpu / cpu:.2f}x in-process)"
                f" [target >= 0.90x per core]"
            )


if __name__ == "__main__":
    main()
