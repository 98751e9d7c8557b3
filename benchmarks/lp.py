"""LP benchmark: the mixture LP's fast path vs plain constraint generation (ARCHITECTURE.md §9).

    python -m benchmarks.lp [--case demo|cl100k|many30|many30x20k ...] [--cache DIR] [--no-peer]
    python -m benchmarks.lp --case gpt2-30x30k [--replicates 20] [--peer-cap 600]
    python -m benchmarks.lp --case gpt2-30x2k --replicates 4 --no-peer --ray-workers 1 2
    python -m benchmarks.lp --case gpt2-30x2k --replicates 8 --no-peer --pool-workers 2
    python -m benchmarks.lp --case gpt2-150x5k --sweep-figure

``--sweep-figure``: one violation sweep at a fixed point (uniform α, no slack, 8 rows per
step: a solve's first full round) by the compiled heap sweep and by the torch sweep
(:mod:`tokmix.solvers.torch_sweep`) on the CPU (one thread, as the heap sweep: the torch
sweep's correctness peer there, not its fast path) and, when torch sees one, on CUDA; both
must find the same rows.

Scale cases ``<tokenizer>-<categories>x<merges>k`` (``gpt2``/``cl100k``, 30/60/150 categories,
5/10/30 k merges) read the trajectories cached by ``python -m benchmarks.scale`` and time the
solve stage as ``tokmix infer`` runs it (the paper LP, then the default noise-scaled LP, then
``--replicates`` bootstrap replicates), each figure beside its target and beside the previous
solver (no warm starts, the dense sweep) measured in the same run under a time cap
(``--peer-cap``: reported as "> cap" when it does not finish). ``--ray-workers 1 2`` times
the replicates again as Ray tasks on a local cluster of 1 and of 2 CPUs (the solve stage's
fan-out in ``tokmix run``), workers warmed up first; ``--pool-workers 2`` in a local pool of 2
spawned processes, as ``tokmix infer --workers 2`` solves them, the pool's start-up timed too
(a pool of 1 is this process: the in-process figure). After several scale cases the last
lines give the growth between cases that differ in one size (:func:`growth_lines`).

Each case builds one problem (count, replay, ``build_problem``; cached as ``.npz`` under
``--cache``, no pickle), then solves it twice in the same run: ``solve_mixture`` as shipped
(coarse phase on every 8th step, pruning of basic rows, at most 4 rows a step a round) and the
peer, plain constraint generation (``stride=1, prune=False, max_rows=None``: every step swept
from the first round, every violated row found added, every row kept).
Both must reach the same optimum; the ratio is of CPU seconds (HiGHS runs on one thread), which
stays meaningful on a machine shared with other jobs.

- ``demo``: the shipped demo tokenizer and samples, 5 categories, 1 500 merges
- ``cl100k``: cl100k_base, languages/en, languages/de, code/python, 2 MB samples, 5 000 merges
- ``many30``/``many30x20k``: a byte-level BPE trained here (BpeTrainer) on a random mixture of
  30 categories of the shared corpora, inferred from held-out halves, 5 000 / 20 000 merges
"""

from __future__ import annotations

import argparse
import functools
import itertools
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import WordTable, count_words
from tokmix.errors import SolverError
from tokmix.jobs.count import read_category
from tokmix.jobs.executors import LocalExecutor
from tokmix.solvers.mixture_lp import MixtureSolution, solve_mixture
from tokmix.solvers.problem import MixtureProblem, build_problem

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CORPORA = SHARED / "corpora"

_ARRAYS = (
    "pairs_",
    "bytes_",
    "pair_left",
    "pair_right",
    "rows_pair",
    "rows_cat",
    "rows_delta",
    "step_start",
    "merge_pair",
)


def save_problem(problem: MixtureProblem, path: Path) -> None:
    np.savez(
        path,
        categories=np.array(problem.categories),
        steps=np.array([problem.first_step, problem.last_step]),
        **{k: getattr(problem, k) for k in _ARRAYS},
    )


def load_problem(path: Path) -> MixtureProblem:
    with np.load(path, allow_pickle=False) as z:
        first, last = (int(x) for x in z["steps"])
        return MixtureProblem(
            categories=tuple(str(c) for c in z["categories"]),
            first_step=first,
            last_step=last,
            **{k: z[k] for k in _ARRAYS},
        )


def problem_from_tables(
    tokenizer: LoadedTokenizer, tables: dict[str, WordTable], merges: int
) -> MixtureProblem:
    last = min(merges, tokenizer.n_merges)
    merge_list = tokenizer.merge_list
    trajs = {
        c: replay_merges(dict(t.counts), merge_list, last_step=last) for c, t in tables.items()
    }
    bytes_ = {c: t.bytes_ for c, t in tables.items()}
    return build_problem(trajs, merge_list.merge_ids, bytes_)


def problem_from_paths(
    tokenizer: LoadedTokenizer, paths: dict[str, str], merges: int, max_bytes: int | None
) -> MixtureProblem:
    pretokenizer = tokenizer.pretokenizer
    tables = {c: read_category(p, pretokenizer, max_bytes=max_bytes) for c, p in paths.items()}
    return problem_from_tables(tokenizer, tables, merges)


def demo_problem() -> MixtureProblem:
    tok = load_tokenizer(REPO / "data" / "tokenizers" / "demo")
    names = ("books", "legal", "python", "rust", "typescript")
    paths = {n: str(REPO / "data" / "samples" / f"{n}.jsonl.gz") for n in names}
    return problem_from_paths(tok, paths, 30_000, None)


def cl100k_problem(merges: int = 5000) -> MixtureProblem:
    tok = load_tokenizer(SHARED / "tokenizers" / "gpt-3.5" / "cl100k_base.tiktoken")
    cats = ("languages/en", "languages/de", "code/python")
    paths = {c: str(CORPORA / c / "docs.jsonl.gz") for c in cats}
    return problem_from_paths(tok, paths, merges, 2_000_000)


def all_categories() -> list[str]:
    return sorted(
        f"{kind.name}/{c.name}"
        for kind in CORPORA.iterdir()
        if kind.is_dir() and kind.name != "tools"
        for c in kind.iterdir()
        if (c / "docs.jsonl.gz").exists()
    )


def many_problem(
    n_categories: int, merges: int, seed: int = 0, sample_bytes: int = 1_000_000
) -> MixtureProblem:
    """A byte-level BPE trained here on a random mixture of ``n_categories`` shared corpora
    (their first halves), inferred from the second halves."""
    from tests.helpers import read_jsonl_gz, train_bytelevel_bpe

    rng = np.random.default_rng(seed)
    cats = sorted(rng.choice(all_categories(), size=n_categories, replace=False).tolist())
    weights = rng.dirichlet(np.ones(n_categories))
    train: list[str] = []
    held: dict[str, list[str]] = {}
    for c, w in zip(cats, weights, strict=True):
        docs = read_jsonl_gz(CORPORA / c / "docs.jsonl.gz", max_bytes=2 * sample_bytes)
        half = len(docs) // 2
        budget, used = w * n_categories * sample_bytes / 2, 0
        for d in docs[:half]:
            if used > budget:
                break
            train.append(d)
            used += len(d.encode())
        held[c] = docs[half:]
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_bytelevel_bpe(train, merges, Path(tmp))
    tables = {c: count_words(d, tok.pretokenizer) for c, d in held.items()}
    return problem_from_tables(tok, tables, merges)


CASES: dict[str, Callable[[], MixtureProblem]] = {
    "demo": demo_problem,
    "cl100k": cl100k_problem,
    "many30": lambda: many_problem(30, 5000),
    "many30x20k": lambda: many_problem(30, 20000),
}


def cached(name: str, cache: Path | None) -> MixtureProblem:
    """Case ``name``'s problem, from ``cache`` when built before."""
    path = None if cache is None else cache / f"{name}.npz"
    if path is not None and path.exists():
        return load_problem(path)
    problem = CASES[name]()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_problem(problem, path)
    return problem


def _timed(problem: MixtureProblem, **options: int | bool | None) -> tuple[float, MixtureSolution]:
    cpu = time.process_time()
    sol = solve_mixture(problem, **options)  # type: ignore[arg-type]
    return time.process_time() - cpu, sol


def _describe(cpu: float, sol: MixtureSolution) -> str:
    d = sol.diagnostics
    return (
        f"{cpu:.1f} s CPU ({d['seconds']:.1f} s wall), {d['rounds']} rounds,"
        f" {d['constraints']:,} constraints, {d['constraints_kept']:,} kept"
    )


def bench_lp(name: str, problem: MixtureProblem, *, peer: bool = True) -> None:
    """Solve ``problem`` as shipped and (``peer``) by plain constraint generation."""
    solve_mixture(truncated(problem, min(problem.n_steps, 20)))  # compile outside the timing
    size = f"{problem.n_categories} categories x {problem.n_steps:,} merges"
    cpu, fast = _timed(problem)
    print(f"lp {name:10} {size}: tokmix {_describe(cpu, fast)}")
    if not peer:
        return
    cpu_plain, plain = _timed(problem, stride=1, prune=False, max_rows=None)
    gap = abs(fast.objective - plain.objective) / max(abs(plain.objective), 1e-12)
    print(
        f"lp {name:10} {size}: plain constraint generation {_describe(cpu_plain, plain)};"
        f" ratio {cpu_plain / cpu:.1f}x, objectives differ by {gap:.1e} (relative)"
    )


def truncated(problem: MixtureProblem, n_steps: int) -> MixtureProblem:
    """The same problem over its first ``n_steps`` steps."""
    end = problem.step_start[n_steps + 1]
    return MixtureProblem(
        categories=problem.categories,
        pairs_=problem.pairs_,
        bytes_=problem.bytes_,
        first_step=problem.first_step,
        last_step=problem.first_step + n_steps - 1,
        pair_left=problem.pair_left,
        pair_right=problem.pair_right,
        rows_pair=problem.rows_pair[:end],
        rows_cat=problem.rows_cat[:end],
        rows_delta=problem.rows_delta[:end],
        step_start=problem.step_start[: n_steps + 2],
        merge_pair=problem.merge_pair[:n_steps],
    )


SCALE_TARGETS = {(30, 30_000): 60.0, (150, 30_000): 300.0}


@dataclass(frozen=True)
class PointTime:
    """A scale case's point estimate: CPU seconds, or a lower bound when it hit the cap."""

    categories: int
    merges: int
    cpu: float
    finished: bool


def growth_lines(points: list[PointTime]) -> list[str]:
    """Growth exponents between cases that differ in one size only: ``time ~ size^k`` from
    consecutive sizes, ``k >= ...`` where the larger case hit the cap (its time is a lower
    bound). Issue #17 asks the benchmark to state how the solve grows in merges and in
    categories; the README quotes these lines."""
    lines = []
    for fixed, varied in (("categories", "merges"), ("merges", "categories")):
        groups: dict[int, list[PointTime]] = {}
        for p in points:
            groups.setdefault(getattr(p, fixed), []).append(p)
        for key, group in sorted(groups.items()):
            group = sorted(
                {getattr(p, varied): p for p in group}.values(), key=lambda p: getattr(p, varied)
            )
            for a, b in itertools.pairwise(group):
                if not a.finished:
                    continue  # a lower bound below gives no exponent
                k = np.log(b.cpu / a.cpu) / np.log(getattr(b, varied) / getattr(a, varied))
                lines.append(
                    f"growth at {key:,} {fixed}: {getattr(a, varied):,} -> {getattr(b, varied):,}"
                    f" {varied}, {a.cpu:.1f} -> {'' if b.finished else '> '}{b.cpu:.1f} s CPU:"
                    f" time ~ {varied}^{k:.2f}{'' if b.finished else ' or more'}"
                )
    return lines


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - t[0], time.process_time() - t[1]


def _point(
    problem: MixtureProblem,
    *,
    previous: bool,
    cap: float | None,
    log: Any = None,
    merge_stride: int = 1,
) -> Any:
    """The solve stage's point estimate: paper LP, then the noise-scaled LP (as run_solve)."""
    from tokmix.solvers.noise_scaled_lp import DEFAULT_POWER, solve_mixture_scaled

    options: dict[str, Any] = {"time_limit": cap, "log": log, "merge_stride": merge_stride}
    if previous:  # plain row generation: no box on α, no growing per-step limit
        options.update(sweep="dense", trust_region=None, per_step_max=8, max_rows=5000)
    paper = solve_mixture(problem, **options)
    start = None if previous else paper.warm
    sol = solve_mixture_scaled(
        problem, reference_alpha=paper.alpha, power=DEFAULT_POWER, start=start, **options
    )
    return paper, sol


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scale_case(name: str) -> tuple[str, int, int]:
    """``(tokenizer, categories, merges)`` of a case ``<tokenizer>-<categories>x<merges>k``."""
    tokenizer, size = name.split("-")
    n_cat, thousands = (int(x) for x in size.rstrip("k").split("x"))
    return tokenizer, n_cat, thousands * 1000


def _scale(name: str) -> MixtureProblem:
    """The problem of a scale case."""
    from benchmarks.scale import scale_problem

    return scale_problem(*_scale_case(name))


def bench_scale(
    name: str,
    *,
    replicates: int,
    cap: float,
    peer: bool,
    log: Any = None,
    ray_workers: tuple[int, ...] = (),
    pool_workers: tuple[int, ...] = (),
    merge_stride: int = 1,
) -> PointTime:
    """One scale case: point estimate (new vs previous), with ``merge_stride > 1`` the point
    estimate over every k-th step beside it, then bootstrap replicates; the point estimate's
    time for :func:`growth_lines`."""
    from benchmarks.scale import scale_groups, scale_problem

    tokenizer, n_cat, merges = _scale_case(name)
    problem = scale_problem(tokenizer, n_cat, merges)
    solve_mixture(truncated(problem, 20))  # compile outside the timing
    label = f"{name:12} {n_cat} categories x {problem.n_steps:,} merges, {problem.n_pairs:,} pairs"
    t = _clock()
    try:
        paper, sol = _point(problem, previous=False, cap=cap, log=log)
    except SolverError as exc:
        wall, cpu = _since(t)
        print(f"scale {label}: point estimate > {cap:.0f} s ({wall:.0f} s wall, {cpu:.0f} s CPU)")
        print(f"  {exc}; peak RSS {_peak_mb():,.0f} MB")
        return PointTime(n_cat, merges, cpu, finished=False)
    wall, cpu = _since(t)
    target = SCALE_TARGETS.get((n_cat, merges))
    print(
        f"scale {label}: point estimate {wall:.1f} s wall, {cpu:.1f} s CPU"
        f" (paper LP {paper.diagnostics['seconds']:.1f} s, {paper.diagnostics['rounds']} rounds;"
        f" scaled LP {sol.diagnostics['seconds']:.1f} s, {sol.diagnostics['rounds']} rounds;"
        f" HiGHS {paper.diagnostics['lp_seconds'] + sol.diagnostics['lp_seconds']:.1f} s,"
        f" sweeps {paper.diagnostics['sweep_seconds'] + sol.diagnostics['sweep_seconds']:.1f} s)"
        + (f"; target <= {target:.0f} s" if target else "")
        + f"; peak RSS {_peak_mb():,.0f} MB",
        flush=True,
    )
    if merge_stride > 1:
        t = _clock()
        _, strided = _point(problem, previous=False, cap=cap, merge_stride=merge_stride)
        wall_s, cpu_s = _since(t)
        off = np.abs(strided.byte_share - sol.byte_share) * 100
        print(
            f"scale {label}: 1 merge step in {merge_stride} (--merge-stride {merge_stride}): point"
            f" estimate {wall_s:.1f} s wall, {cpu_s:.1f} s CPU = {cpu_s / cpu:.2f}x the whole"
            f" LP's; byte shares at most {off.max():.2f} points from the whole LP's (L1"
            f" {off.sum():.2f})",
            flush=True,
        )
    if peer:
        t = _clock()
        try:
            _, old = _point(problem, previous=True, cap=cap)
        except SolverError as exc:
            wall_p, cpu_p = _since(t)
            print(
                f"scale {label}: previous solver > {cap:.0f} s"
                f" ({wall_p:.0f} s wall, {cpu_p:.0f} s CPU): {exc}"
            )
        else:
            wall_p, cpu_p = _since(t)
            gap = abs(old.objective - sol.objective) / max(abs(old.objective), 1e-12)
            print(
                f"scale {label}: previous solver {wall_p:.1f} s wall, {cpu_p:.1f} s CPU;"
                f" ratio {wall_p / wall:.1f}x wall, {cpu_p / cpu:.1f}x CPU; objectives differ by"
                f" {gap:.1e}, alpha by {np.abs(old.alpha - sol.alpha).max():.1e}",
                flush=True,
            )
    if replicates:
        from tokmix.solvers.bootstrap import bootstrap_mixture
        from tokmix.solvers.noise_scaled_lp import DEFAULT_POWER, solve_mixture_scaled

        groups, group_bytes, merge_ids = scale_groups(tokenizer, n_cat, merges)
        solve = functools.partial(
            solve_mixture_scaled, reference_alpha=paper.alpha, power=DEFAULT_POWER
        )
        warm_replicates = functools.partial(
            bootstrap_mixture,
            groups,
            group_bytes,
            merge_ids,
            replicates=replicates,
            merge_block=20,
            center=sol,
            solve=functools.partial(solve, start=sol.warm),
        )
        t = _clock()
        boot = warm_replicates()
        wall_r, cpu_r = _since(t)
        print(
            f"scale {label}: {replicates} replicates from the point solution {wall_r:.1f} s wall,"
            f" {cpu_r:.1f} s CPU = {wall_r / wall:.2f}x the point estimate (target for 20: <= 3x);"
            f" {boot.failed} failed; peak RSS {_peak_mb():,.0f} MB",
            flush=True,
        )
        for workers in ray_workers:
            wall_w = _replicates_on_ray(workers, warm_replicates)
            print(
                f"scale {label}: {replicates} replicates on Ray, {workers} worker(s):"
                f" {wall_w:.1f} s wall ({wall_r / wall_w:.2f}x in-process, target: near"
                f" {workers}x)",
                flush=True,
            )
        for workers in pool_workers:
            t = time.perf_counter()  # spawning the pool counts: tokmix infer pays it
            warm_replicates(map_fn=LocalExecutor(fan_out=workers).map_fn())
            wall_w = time.perf_counter() - t
            print(
                f"scale {label}: {replicates} replicates in a pool of {workers} process(es)"
                f" (tokmix infer --workers): {wall_w:.1f} s wall ({wall_r / wall_w:.2f}x"
                f" in-process, target: near {workers}x)",
                flush=True,
            )
        if peer:
            t = _clock()
            cold = bootstrap_mixture(
                groups,
                group_bytes,
                merge_ids,
                replicates=2,
                merge_block=20,
                center=sol,
                solve=functools.partial(solve, time_limit=cap),
            )
            wall_c, cpu_c = _since(t)
            print(
                f"scale {label}: previous (cold) replicates {wall_c / 2:.1f} s wall,"
                f" {cpu_c / 2:.1f} s CPU each (2 measured, {cold.failed} over the cap); warm"
                f" {wall_r / replicates:.1f} s each",
                flush=True,
            )
    return PointTime(n_cat, merges, cpu, finished=True)


def _warm_worker(_: int) -> int:
    """Load tokmix's solver and its compiled sweep in a Ray worker, outside the timing."""
    from tokmix.solvers.mixture_lp import solve_mixture

    solve_mixture(truncated(demo_problem(), 20))
    return 0


def _replicates_on_ray(workers: int, run: Callable[..., Any]) -> float:
    """Wall seconds of ``run(map_fn=...)`` with the replicates as tasks of a local Ray cluster
    of ``workers`` CPUs (what ``tokmix run`` does with the solve stage), workers warmed up."""
    import ray

    from tokmix.jobs.ray_executor import RayExecutor

    ray.init(num_cpus=workers, include_dashboard=False, configure_logging=False)
    try:
        map_fn = RayExecutor().map_fn()
        list(map_fn(_warm_worker, range(2 * workers)))
        t = time.perf_counter()
        run(map_fn=map_fn)
        return time.perf_counter() - t
    finally:
        ray.shutdown()


def _best_of(runs: int, fn: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> Any:
    """``(wall s, CPU s, result)`` of the fastest of ``runs`` calls."""
    best: tuple[float, float, Any] | None = None
    for _ in range(runs):
        t = _clock()
        out = fn()
        sync()
        wall, cpu = _since(t)
        if best is None or wall < best[0]:
            best = (wall, cpu, out)
    assert best is not None
    return best


def bench_sweep(name: str, problem: MixtureProblem, *, runs: int = 3) -> None:
    """One sweep at a fixed point: the compiled heap sweep against the torch sweep."""
    import torch

    from tokmix.solvers.edges import find_violated_edges
    from tokmix.solvers.mixture_lp import frequency_scale
    from tokmix.solvers.torch_sweep import TorchEdgeSweep

    scale = frequency_scale(problem)
    alpha = np.full(problem.n_categories, 1.0 / problem.n_categories)
    v_step, v_pair = np.zeros(problem.n_steps), np.zeros(problem.n_pairs)
    args = (alpha, v_step, v_pair, scale)
    label = (
        f"{name} {problem.n_categories} categories x {problem.n_steps:,} merges,"
        f" {problem.n_pairs:,} pairs, {len(problem.rows_pair):,} rows"
    )
    small = truncated(problem, min(problem.n_steps, 20))
    find_violated_edges(small, *args[:1], v_step[:20], v_pair, scale, per_step=8, tol=1e-9)
    wall, cpu, heap = _best_of(
        runs, lambda: find_violated_edges(problem, *args, per_step=8, tol=1e-9)
    )
    print(f"sweep {label}: heap sweep (numba, CPU) {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    key = set(zip(heap[0].tolist(), heap[1].tolist(), strict=True))

    def report(where: str, sweep: TorchEdgeSweep, sync: Callable[[], None]) -> None:
        sweep(*args, per_step=8, tol=1e-9)  # warm up (allocator, kernels)
        sync()
        t_wall, t_cpu, got = _best_of(runs, lambda: sweep(*args, per_step=8, tol=1e-9), sync)
        same = set(zip(got[0].tolist(), got[1].tolist(), strict=True)) == key
        print(
            f"sweep {label}: torch sweep on {where} {t_wall:.2f} s wall, {t_cpu:.2f} s CPU"
            f" = {t_wall / wall:.2f}x the heap sweep's wall; blocks of {sweep.block_steps}"
            f" steps ({len(sweep.blocks(8))} blocks); {len(got[0]):,} rows,"
            f" {'the same' if same else 'NOT the same'} as the heap sweep's",
            flush=True,
        )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report("the CPU (1 thread; the correctness peer)", TorchEdgeSweep(problem), lambda: None)
    finally:
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
        t = _clock()
        on_gpu = TorchEdgeSweep(problem, "cuda")
        torch.cuda.synchronize()
        print(f"sweep {label}: rows to {device} {_since(t)[0]:.2f} s (once per solve)")
        report(f"CUDA ({device})", on_gpu, torch.cuda.synchronize)
    else:
        print(f"sweep {label}: no CUDA device here; no GPU figure")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", action="append")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--no-peer", dest="peer", action="store_false")
    ap.add_argument("--replicates", type=int, default=0)
    ap.add_argument("--peer-cap", type=float, default=600.0)
    ap.add_argument("--log", action="store_true", help="print the solves' progress lines")
    ap.add_argument(
        "--ray-workers",
        type=int,
        nargs="*",
        default=[],
        help="also time the replicates as Ray tasks on a local cluster of this many CPUs",
    )
    ap.add_argument(
        "--pool-workers",
        type=int,
        nargs="*",
        default=[],
        help="also time the replicates in a local pool of this many processes (tokmix infer)",
    )
    ap.add_argument(
        "--merge-stride",
        type=int,
        default=1,
        help="also time the point estimate over every K-th merge step, and how far it lands",
    )
    ap.add_argument(
        "--sweep-figure",
        action="store_true",
        help="time one violation sweep (heap sweep vs torch sweep, CPU and CUDA) instead",
    )
    args = ap.parse_args()
    points = []
    for name in args.case or ["demo"]:
        if args.sweep_figure:
            bench_sweep(name, cached(name, args.cache) if name in CASES else _scale(name))
        elif name in CASES:
            bench_lp(name, cached(name, args.cache), peer=args.peer)
        elif "-" in name:
            point = bench_scale(
                name,
                replicates=args.replicates,
                cap=args.peer_cap,
                peer=args.peer,
                log=print if args.log else None,
                ray_workers=tuple(args.ray_workers),
                pool_workers=tuple(args.pool_workers),
                merge_stride=args.merge_stride,
            )
            points.append(point)
        else:
            ap.error(f"unknown case {name!r}: {sorted(CASES)} or <tokenizer>-<n>x<k>k")
    for line in growth_lines(points):
        print(line)


if __name__ == "__main__":
    main()
