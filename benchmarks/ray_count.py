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
compiled counter) are outside the timings. The configurations run in rounds (``--repeat``,
default 2): each round times in-process, the control, Ray with 1 and with 2 workers once at
every size, so a neighbour's burst of work falls on all of them rather than on whichever ran
then; each figure is the best of the rounds (least wall, least CPU) of the whole count stage
(plan, map, reduce, commit).

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
import functools
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


def _timed(fn: Callable[[], object]) -> tuple[float, float, int]:
    """Wall seconds and CPU seconds (process tree) of one run, and how many processes were
    started under this one during it."""
    before = set(_tree())
    c0, t0 = _tree_cpu(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, _tree_cpu() - c0
    return wall, cpu, len(set(_tree()) - before)


def _count_half(corpora: list[list[CategorySpec]], out: str, barrier: Any, results: Any) -> None:
    """One process of the control pair: warm up, then for each corpus wait for the other and
    count; its CPU seconds per corpus."""
    run_count(corpora[0], GPT2, out, SampleOptions(), force=True)  # warm-up
    cpu = []
    for specs in corpora:
        barrier.wait()
        c0 = time.process_time()
        run_count(specs, GPT2, out, SampleOptions(), force=True)
        cpu.append(time.process_time() - c0)
    results.put(cpu)


def _halves(specs: list[CategorySpec]) -> list[list[CategorySpec]]:
    """The files in two halves of about equal bytes."""
    halves: list[list[CategorySpec]] = [[], []]
    sizes = [0, 0]
    for spec in sorted(specs, key=lambda s: -Path(s.path).stat().st_size):
        i = sizes.index(min(sizes))
        halves[i].append(spec)
        sizes[i] += Path(spec.path).stat().st_size
    return halves


def _two_at_once(corpora: list[list[CategorySpec]], root: Path) -> list[float]:
    """CPU seconds the two processes of the control took together, per corpus."""
    split = [_halves(specs) for specs in corpora]
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_count_half,
            args=([h[i] for h in split], str(root / f"pair{i}"), barrier, results),
        )
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    per_process = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return [float(a + b) for a, b in zip(*per_process, strict=True)]


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
        best: dict[str, list[Run]] = {}
        started: dict[int, list[int]] = {1: [], 2: []}
        for _ in range(args.repeat):  # rounds: every configuration shares the neighbours' load
            _keep_best(best, "local", _in_process(corpora, megabytes, root))
            cpu = _two_at_once(corpora, root)
            _keep_best(
                best,
                "pair",
                [Run(mb, float("nan"), c) for mb, c in zip(megabytes, cpu, strict=True)],
            )
            for workers in (1, 2):
                runs, new = _on_ray(workers, corpora, megabytes, root, args.shard_mb)
                _keep_best(best, f"ray{workers}", runs)
                started[workers] += new
        local, pair = best["local"], best["pair"]
        ray_runs = {w: best[f"ray{w}"] for w in (1, 2)}
    ref, control = rates(local, 1), rates(pair, 2, wall=False)
    ray_rates = {w: rates(runs, w) for w, runs in ray_runs.items()}
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
    print(f"processes started while timed (Ray workers: per run): {started}")
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


def _keep_best(best: dict[str, list[Run]], name: str, runs: list[Run]) -> None:
    """Keep, per corpus, the least wall and the least CPU seconds seen so far."""
    if name not in best:
        best[name] = runs
        return
    best[name] = [
        Run(a.mb, min(a.wall, b.wall), min(a.cpu, b.cpu))
        for a, b in zip(best[name], runs, strict=True)
    ]


def _count_alone(corpora: list[list[CategorySpec]], out: str, results: Any) -> None:
    """The in-process peer's process: warm up, then count each corpus; its wall and CPU
    seconds per corpus."""
    run_count(corpora[0], GPT2, out, SampleOptions(), force=True)  # warm-up
    times = []
    for specs in corpora:
        c0, t0 = time.process_time(), time.perf_counter()
        run_count(specs, GPT2, out, SampleOptions(), force=True)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    results.put(times)


def _in_process(corpora: list[list[CategorySpec]], megabytes: list[float], root: Path) -> list[Run]:
    """One timed in-process count of each corpus, after a warm-up (the compiled counter
    loaded), in a fresh process as the control's are: timed in this process, which also starts
    and stops Ray, the same count ran at 36 MB per CPU-second against 42-48 in fresh
    processes (``benchmarks/results/counting.md``)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_count_alone, args=(corpora, str(root / "local"), results))
    proc.start()
    times = results.get()
    proc.join()
    return [Run(mb, wall, cpu) for mb, (wall, cpu) in zip(megabytes, times, strict=True)]


def _on_ray(
    workers: int,
    corpora: list[list[CategorySpec]],
    megabytes: list[float],
    root: Path,
    shard_mb: float,
) -> tuple[list[Run], list[int]]:
    """One timed count of each corpus on a fresh embedded Ray of ``workers`` CPUs, after a
    warm-up run (workers started, the compiled counter loaded); how many processes were
    started during each timed run."""
    ray.init(num_cpus=workers, include_dashboard=False, configure_logging=False)
    out = str(root / f"ray{workers}")

    def run(specs: list[CategorySpec]) -> None:
        options = {s.name: SampleOptions() for s in specs}
        run_count_ray(specs, options, GPT2, out, shard_bytes=int(shard_mb * 1e6), force=True)

    runs, started = [], []
    try:
        run(corpora[0])
        for specs, mb in zip(corpora, megabytes, strict=True):
            wall, cpu, new = _timed(functools.partial(run, specs))
            runs.append(Run(mb, wall, cpu))
            started.append(new)
    finally:
        ray.shutdown()
    return runs, started


if __name__ == "__main__":
    main()
