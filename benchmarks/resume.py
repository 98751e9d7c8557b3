"""What a kill costs a solve: an LP killed part-way and resumed, against the same LP unkilled.

    python -m benchmarks.resume [--case gpt2-30x2k] [--case gpt2-30x5k] [--at 0.5 0.9]

A scale case (``benchmarks.scale``'s cache: ``python -m benchmarks.scale``) is solved as the
solve stage does, the paper LP then the noise-scaled LP from its rows, keeping every
checkpoint (:class:`tokmix.solvers.mixture_lp.Checkpoint`, as the stage writes them). For each
``--at`` fraction of an LP's CPU time, the checkpoint taken nearest to it stands for a run
killed there, and the LP is solved again three ways, each figure as a ratio of the whole
(killed run's CPU seconds up to the checkpoint, plus the re-run) to the unkilled LP:

- *state*: the resume the solve stage does (``resume=``: model, basis, box and limits);
- *rows*: from the checkpoint's α and rows only (``start=``; what a related problem gets);
- *over*: from nothing (the solve stage before checkpoints).

Every re-run must reach the unkilled LP's objective; the byte shares may differ in the last
digits where the optimal face holds more than one α.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.lp import _scale, truncated
from tokmix.solvers.mixture_lp import Checkpoint, MixtureSolution, solve_mixture
from tokmix.solvers.noise_scaled_lp import solve_mixture_scaled


def _cpu(fn: Callable[[], MixtureSolution]) -> tuple[float, MixtureSolution]:
    t = time.process_time()
    sol = fn()
    return time.process_time() - t, sol


def bench_resume(name: str, at: list[float], every: float) -> None:
    problem = _scale(name)
    solve_mixture(truncated(problem, 20))  # compile outside the timing
    paper: MixtureSolution | None = None
    for lp in ("paper", "scaled"):
        kept: list[tuple[float, Checkpoint]] = []
        t0 = time.process_time()

        def keep(c: Checkpoint, t0: float = t0, kept: list[Any] = kept) -> None:
            kept.append((time.process_time() - t0, c))

        def solve(paper: MixtureSolution | None = paper, **kw: Any) -> MixtureSolution:
            if paper is None:
                return solve_mixture(problem, **kw)
            kw.setdefault("start", paper.warm)
            return solve_mixture_scaled(problem, reference_alpha=paper.alpha, **kw)

        whole_cpu, whole = _cpu(lambda: solve(checkpoint=keep, checkpoint_every=every))
        if paper is None:
            paper = whole
        d = whole.diagnostics
        print(
            f"resume {name:12} {lp:6} LP unkilled: {whole_cpu:.1f} s CPU, {d['rounds']} rounds, "
            f"{len(kept)} checkpoints, objective {whole.objective:.10f}",
            flush=True,
        )
        for fraction in at:
            killed, c = min(kept, key=lambda k: abs(k[0] - fraction * whole_cpu))
            done = int(c.state.arrays["loop_counts"][0])
            figures = []
            for how, kw in (
                ("state", {"start": c.warm, "resume": c.state}),
                ("rows", {"start": c.warm}),
                ("over", {}),
            ):
                cpu, again = _cpu(lambda kw=kw: solve(**kw))
                rel = abs(again.objective - whole.objective) / abs(whole.objective)
                if rel > 1e-7:
                    raise AssertionError(f"{how}: objective {again.objective} != {whole.objective}")
                share = float(np.abs(again.byte_share - whole.byte_share).max())
                figures.append(
                    f"{how} {(killed + cpu) / whole_cpu:.2f}x ({cpu:.1f} s, "
                    f"{again.diagnostics['rounds']} rounds, shares within {share:.0e})"
                )
            print(
                f"resume {name:12} {lp:6} LP killed at {killed:.1f} s ({killed / whole_cpu:.0%}, "
                f"round {done}): " + "; ".join(figures),
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", action="append")
    ap.add_argument("--at", type=float, nargs="+", default=[0.5, 0.9])
    ap.add_argument("--every", type=float, default=1.0, help="seconds between checkpoints")
    args = ap.parse_args()
    for name in args.case or ["gpt2-30x2k", "gpt2-30x5k"]:
        bench_resume(name, args.at, args.every)


if __name__ == "__main__":
    main()
