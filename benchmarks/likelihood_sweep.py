"""Paired sweep of the likelihood estimator against the LPs on cached controlled trials.

Drawing a trial (training a BPE tokenizer, counting and replaying the attacker samples) costs
tens of seconds; solving it costs about one. ``cache`` draws the trials exactly as
``tokmix evaluate`` does for the same seed (the same categories, weights, training text and
tokenizer; one document group, which gives the same total trajectories) and stores each
trial's :class:`MixtureProblem` and true shares as ``.npz``; ``sweep`` then scores the
estimators on every cached trial, paired, so any of the likelihood's choices can be made on
seed-0 trials before the committed evaluation scores it on seed 1.

Usage:
  python benchmarks/likelihood_sweep.py cache CACHE_DIR SETTINGS N TRIALS SEED
  python benchmarks/likelihood_sweep.py sweep CACHE_DIR TOP_K:POWER:COST[,...] [TRIALS]
(results: benchmarks/results/likelihood_sweep.md)."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from tokmix.bpe.training import train_bytelevel_bpe
from tokmix.jobs.evaluate import (
    SETTINGS,
    _documents,
    _grouped_sample,
    setting_categories,
    split_documents,
    training_text,
)
from tokmix.solvers.baselines import log10_mse
from tokmix.solvers.mixture_lp import solve_mixture
from tokmix.solvers.noise_scaled_lp import solve_mixture_scaled
from tokmix.solvers.problem import MixtureProblem, build_problem

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora"
TRAIN_BYTES, SAMPLE_BYTES, MERGES = 3_000_000, 2_000_000, 2000


def draw_trial(setting: str, n: int, trial: int, seed: int) -> tuple[MixtureProblem, np.ndarray]:
    """The base variant of ``tokmix evaluate``'s trial (same rng draws), as a problem."""
    names = setting_categories(str(CORPORA), setting)
    rng = np.random.default_rng([seed, SETTINGS.index(setting), n, trial])
    chosen = sorted(rng.choice(names, size=n, replace=False).tolist())
    weights = rng.dirichlet(np.ones(n))
    samples, train, train_bytes = {}, [], []
    for c, w in zip(chosen, weights, strict=True):
        docs = _documents(str(CORPORA / setting / c / "docs.jsonl.gz"))
        sample, pool = split_documents(docs, SAMPLE_BYTES, shift=False)
        text = training_text(pool, w * TRAIN_BYTES, rng)
        samples[c] = sample
        train += text
        train_bytes.append(sum(len(t.encode()) for t in text))
    truth = np.array(train_bytes) / sum(train_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        order = np.random.default_rng(trial).permutation(len(train))
        tok = train_bytelevel_bpe([train[i] for i in order], MERGES, Path(tmp), split_digits=True)
        grouped = {c: _grouped_sample(samples[c], 1, tok, tok.n_merges) for c in chosen}
    problem = build_problem(
        {c: g.total() for c, g in grouped.items()},
        tok.merge_list.merge_ids,
        {c: g.bytes_ for c, g in grouped.items()},
    )
    return problem, truth


def save_trial(path: Path, problem: MixtureProblem, truth: np.ndarray) -> None:
    arrays = {f.name: np.asarray(getattr(problem, f.name)) for f in fields(problem)}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, truth=truth, **arrays)
    tmp.rename(path)


def load_trial(path: Path) -> tuple[MixtureProblem, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        kw = {f.name: z[f.name] for f in fields(MixtureProblem)}
        truth = z["truth"]
    kw["categories"] = tuple(str(c) for c in kw["categories"])
    kw["first_step"] = int(kw["first_step"])
    kw["last_step"] = int(kw["last_step"])
    return MixtureProblem(**kw), truth


def cache(root: Path, settings: list[str], n: int, trials: int, seed: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for trial in range(trials):
        for setting in settings:
            path = root / f"seed={seed}_{setting}_n={n}_trial={trial}.npz"
            if path.exists():
                continue
            t0 = time.perf_counter()
            problem, truth = draw_trial(setting, n, trial, seed)
            save_trial(path, problem, truth)
            print(f"{path.name}: {time.perf_counter() - t0:.1f} s", flush=True)


def sweep(root: Path, configs: list[tuple[int, float, float]], limit: int) -> None:
    """Score the paper LP, the scaled LP and the likelihood at each ``(top_k, power,
    pair_cost)`` on the first ``limit`` cached trials (trial 0 of every setting first)."""
    from tokmix.solvers.likelihood import solve_mixture_likelihood

    names = [f"k={k} power={p:g} cost={c:g}" for k, p, c in configs]
    header = ["trial", "paper-lp", "scaled-lp", *names]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    paths = sorted(root.glob("*.npz"), key=lambda q: (int(q.stem.split("trial=")[1]), q.stem))
    scores, covers, cpu = [], [], np.zeros(2 + len(configs))
    for path in paths[:limit]:
        problem, truth = load_trial(path)
        c0 = time.process_time()
        paper = solve_mixture(problem)
        c1 = time.process_time()
        scaled = solve_mixture_scaled(problem, reference_alpha=paper.alpha)
        cpu[:2] += [c1 - c0, time.process_time() - c1]
        row = [log10_mse(paper.byte_share, truth), log10_mse(scaled.byte_share, truth)]
        cover = []
        for j, (k, p, c) in enumerate(configs):
            t = time.process_time()
            lik = solve_mixture_likelihood(
                problem, start_alpha=paper.alpha, top_k=k, power=p, pair_cost=c
            )
            cpu[2 + j] += time.process_time() - t
            row.append(log10_mse(lik.byte_share, truth))
            lo = np.asarray(lik.diagnostics["byte_share_low"])
            hi = np.asarray(lik.diagnostics["byte_share_high"])
            cover.append(((lo <= truth) & (truth <= hi)).mean())
        scores.append(row)
        covers.append(cover)
        print("| " + " | ".join([path.stem, *[f"{v:.2f}" for v in row]]) + " |", flush=True)
    s = np.array(scores)
    delta = s[:, 1:] - s[:, :1]
    se = delta.std(axis=0, ddof=1) / np.sqrt(len(s))
    print(f"\nmean log10 MSE over {len(s)} trials: " + ", ".join(f"{v:.3f}" for v in s.mean(0)))
    for name, d, e, better in zip(header[2:], delta.mean(0), se, (delta < 0).sum(0), strict=True):
        print(f"{name} vs paper-lp: mean Δ {d:+.3f} ± {e:.3f} (s.e.), better in {better}")
    for name, cov in zip(names, np.mean(covers, axis=0), strict=True):
        print(f"{name}: model-interval coverage {cov:.2f} (nominal 0.95)")
    print(
        "CPU s per trial: "
        + ", ".join(f"{h} {t / len(s):.2f}" for h, t in zip(header[1:], cpu, strict=True))
    )


def main() -> None:
    if sys.argv[1] == "cache":
        settings = sys.argv[3].split(",")
        cache(Path(sys.argv[2]), settings, int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        configs = [
            (int(k), float(p), float(c))
            for k, p, c in (spec.split(":") for spec in sys.argv[3].split(","))
        ]
        sweep(Path(sys.argv[2]), configs, int(sys.argv[4]) if len(sys.argv) > 4 else 10**9)


if __name__ == "__main__":
    main()
