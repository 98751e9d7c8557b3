"""Counting throughput on Ray: MB/s of corpus per core with 1 and 2 workers, against the
in-process counter (``tokmix infer``'s count stage) measured in the same run.

    python -m benchmarks.ray_count [--mb 64 256] [--shard-mb 8] [--repeat 2]

Each configuration runs at every corpus size (the smaller corpus is the first files of the
larger). Two rates per configuration: the whole run's (bytes over seconds, every fixed cost
included) at each size, and the marginal one, the slope between the two sizes: what one more
megabyte costs once the run's fixed costs (Ray's task dispatch and daemons, the reduce's and
commit's per-file work, the last shard's tail) are paid. A terabyte corpus runs at the marginal
rate; a 64 MB one pays its fixed costs too. Neither replaces the other.

The corpus is plain JSON lines (so files split into byte-range shards) made from the shared
code corpora, or the shipped samples. Ray start-up and a first warm-up run (workers loading the
compiled counter) are outside the timings; each figure is the best of two runs of the whole
count stage (plan, map, reduce, commit); ``--repeat`` sets how many.

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
from dataclasses import dataclass
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


def _best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float, int]:
    """Best wall seconds and best CPU seconds (process tree) of ``repeat`` runs, and how many
    processes were started under this one during them."""
    wall = cpu = float("inf")
    before = set(_tree())
    for _ in range(repeat):
        c0, t0 = _tree_cpu(), time.perf_counter()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, _tree_cpu() - c0)
    return wall, cpu, len(set(_tree()) - before)


def _count_half(
    specs: list[CategorySpec], out: str, barrier: Any, results: Any, repeat: int
) -> None:
    """One process of the control pair: warm up, wait for the other, count (best of
    ``repeat``)."""
    run_count(specs, GPT2, out, SampleOptions(), force=True)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        barrier.wait()
        c0 = time.process_time()
        run_count(specs, GPT2, out, SampleOptions(), force=True)
        best = min(best, time.process_time() - c0)
    results.put(best)


def _two_at_once(specs: list[CategorySpec], root: Path, repeat: int) -> float:
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
        ctx.Process(
            target=_count_half, args=(half, str(root / f"pair{i}"), barrier, results, repeat)
        )
        for i, half in enumerate(halves)
    ]
    for proc in procs:
        proc.start()
    cpu = sum(results.get() for _ in procs)
    for proc in procs:
        proc.join()
    return float(cpu)


@dataclass(frozen=True)
class Run:
    """One configuration at one corpus size: megabytes, best wall and CPU seconds."""

    mb: float
    wall: float
    cpu: float


@dataclass(frozen=True)
class Rates:
    """MB per CPU-second and wall MB/s per core: whole runs (one per size) and marginal."""

    cpu: list[float]
    wall: list[float | None]
    marginal_cpu: float
    marginal_wall: float | None
    fixed_cpu: float
    """CPU-seconds of a run of no bytes: the smallest run's CPU less its bytes at the marginal
    rate (the intercept of the two-point line)."""


def rates(runs: list[Run], cores: int, wall: bool = True) -> Rates:
    """Whole-run rates of each run and the marginal rate between the smallest and largest
    (``cores``: how many the run had, for wall MB/s per core; ``wall=False`` when the wall
    time was not measured)."""
    lo, hi = runs[0], runs[-1]
    marginal_cpu = (hi.mb - lo.mb) / (hi.cpu - lo.cpu)
    return Rates(
        cpu=[r.mb / r.cpu for r in runs],
        wall=[r.mb / r.wall / cores if wall else None for r in runs],
        marginal_cpu=marginal_cpu,
        marginal_wall=(hi.mb - lo.mb) / (hi.wall - lo.wall) / cores if wall else None,
        fixed_cpu=lo.cpu - lo.mb / marginal_cpu,
    )


def _cell(value: float | None, reference: float | None = None) -> str:
    """A rate with its ratio to ``reference``, 16 characters wide."""
    if value is None:
        return f"{'-':<16}"
    ratio = f" ({value / reference:.2f}x)" if reference else ""
    return f"{f'{value:.2f}{ratio}':<16}"


def _table(title: str, megabytes: list[float], rows: list[tuple[str, list[float | None]]]) -> None:
    """A block of the report: a title line with the sizes, then each configuration's
    whole-run rates, marginal rate and ratios to the first row's (the in-process count)."""
    head = "".join(f"{f'{mb:.1f} MB':<16}" for mb in megabytes)
    print(f"\n{title:<38}{head}{'marginal':<16}")
    reference = rows[0][1]
    for name, values in rows:
        cells = [
            _cell(v, None if name == rows[0][0] else r)
            for v, r in zip(values, reference, strict=True)
        ]
        print(f"{name:<38}{''.join(cells)}")


def _load() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, nargs="+", default=[64.0, 256.0], help="sizes")
    parser.add_argument("--shard-mb", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (best kept)")
    args = parser.parse_args()
    sizes = sorted(args.mb)
    if len(sizes) < 2:
        parser.error("--mb needs two sizes or more (the marginal rate is a slope)")
    print(f"load before: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = _corpus(root, sizes[-1])
        corpora = [_prefix(corpus, mb) for mb in sizes]
        megabytes = [sum(Path(s.path).stat().st_size for s in c) / 1e6 for c in corpora]
        files = ", ".join(
            f"{mb:.1f} MB ({len(c)} files)" for mb, c in zip(megabytes, corpora, strict=True)
        )
        print(
            f"corpora: {files} of plain JSON lines, {args.shard_mb:g} MB shards, "
            f"best of {args.repeat}"
        )
        local = [
            _in_process(c, root, mb, args.repeat) for c, mb in zip(corpora, megabytes, strict=True)
        ]
        pair = [
            Run(mb, float("nan"), _two_at_once(c, root, args.repeat))
            for c, mb in zip(corpora, megabytes, strict=True)
        ]
        ray_runs = {
            w: _on_ray(w, corpora, megabytes, root, args.shard_mb, args.repeat) for w in (1, 2)
        }
    ref, control = rates(local, 1), rates(pair, 2, wall=False)
    ray_rates = {w: rates([run for run, _ in runs], w) for w, runs in ray_runs.items()}
    configs = [("in-process, 1 core", ref), ("control: 2 in-process at once", control)]
    configs += [(f"Ray, {w} worker{'s' if w > 1 else ''}", r) for w, r in ray_rates.items()]
    _table(
        "MB per CPU-second (x in-process)",
        megabytes,
        [(name, [*r.cpu, r.marginal_cpu]) for name, r in configs],
    )
    two = ray_rates[2]
    versus = [
        a / b
        for a, b in zip(
            [*two.cpu, two.marginal_cpu], [*control.cpu, control.marginal_cpu], strict=True
        )
    ]
    ratios = "".join(f"{v:.2f}x".ljust(16) for v in versus)
    print(f"{'Ray, 2 workers / control':<38}{ratios}")
    _table(
        "wall MB/s per core (x in-process)",
        megabytes,
        [(name, [*r.wall, r.marginal_wall]) for name, r in configs if r.marginal_wall is not None],
    )
    print("\nfixed CPU-seconds per run (intercept of the two-point line):")
    print("  " + ", ".join(f"{name} {r.fixed_cpu:.2f}" for name, r in configs))
    print(
        "target: Ray with 2 workers >= 0.90x the in-process rate per core "
        "(MB per CPU-second and wall MB/s per core, whole run and marginal, above)"
    )
    started = {w: [n for _, n in runs] for w, runs in ray_runs.items()}
    print(f"processes started while timed (Ray workers: per size): {started}")
    print(f"load after: {_load()}")


def _prefix(specs: list[CategorySpec], megabytes: float) -> list[CategorySpec]:
    """The first files of ``specs`` that hold ``megabytes`` (all of them at least one)."""
    out: list[CategorySpec] = []
    total = 0
    for spec in specs:
        out.append(spec)
        total += Path(spec.path).stat().st_size
        if total >= megabytes * 1e6:
            break
    return out


def _in_process(specs: list[CategorySpec], root: Path, mb: float, repeat: int) -> Run:
    def run() -> None:
        run_count(specs, GPT2, str(root / "local"), SampleOptions(), force=True)

    run()  # warm-up: the compiled counter loaded
    wall, cpu, _ = _best_of(repeat, run)
    return Run(mb, wall, cpu)


def _on_ray(
    workers: int,
    corpora: list[list[CategorySpec]],
    megabytes: list[float],
    root: Path,
    shard_mb: float,
    repeat: int,
) -> list[tuple[Run, int]]:
    """Each corpus counted on an embedded Ray of ``workers`` CPUs (one cluster for all
    sizes): the best run and how many processes were started while timed."""
    ray.init(num_cpus=workers, include_dashboard=False, configure_logging=False)
    out = []
    try:
        for specs, mb in zip(corpora, megabytes, strict=True):
            options = {s.name: SampleOptions() for s in specs}

            def run(specs: list[CategorySpec] = specs, options: Any = options) -> None:
                run_count_ray(
                    specs,
                    options,
                    GPT2,
                    str(root / f"ray{workers}"),
                    shard_bytes=int(shard_mb * 1e6),
                    force=True,
                )

            run()  # warm-up: workers started, the compiled counter loaded
            wall, cpu, started = _best_of(repeat, run)
            out.append((Run(mb, wall, cpu), started))
    finally:
        ray.shutdown()
    return out


if __name__ == "__main__":
    main()
