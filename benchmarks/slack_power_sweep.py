"""Held-out check of the noise-scaled LP's power against the paper's LP.

The power of :mod:`tokmix.solvers.noise_scaled_lp` (0.5) was chosen on the seed-0 trials of
the controlled experiment. This script draws *other* trials (their own seed), trains each
tokenizer as ``tokmix evaluate`` does, and scores the paper's LP and the scaled LP at every
power on the same tokenizer and samples.

Usage: python benchmarks/slack_power_sweep.py SETTINGS N TRIALS POWERS [SEED]
e.g.   python benchmarks/slack_power_sweep.py languages,code,domains 5 4 0.25,0.5,0.75,1 7
(results: benchmarks/results/slack_power_sweep.md)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from tokmix.bpe.training import train_bytelevel_bpe
from tokmix.jobs.evaluate import (
    _documents,
    _grouped_sample,
    setting_categories,
    split_documents,
    training_text,
)
from tokmix.solvers.baselines import log10_mse
from tokmix.solvers.mixture_lp import solve_mixture
from tokmix.solvers.noise_scaled_lp import solve_mixture_scaled
from tokmix.solvers.problem import build_problem

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora"
TRAIN_BYTES, SAMPLE_BYTES, MERGES = 3_000_000, 2_000_000, 2000


def trial_scores(setting: str, n: int, trial: int, powers: list[float], seed: int) -> list[float]:
    names = setting_categories(str(CORPORA), setting)
    rng = np.random.default_rng([seed, n, trial, len(setting)])
    chosen = sorted(rng.choice(names, size=n, replace=False).tolist())
    samples, train, train_bytes = {}, [], []
    for c, w in zip(chosen, rng.dirichlet(np.ones(n)), strict=True):
        sample, pool = split_documents(
            _documents(str(CORPORA / setting / c / "docs.jsonl.gz")), SAMPLE_BYTES, shift=False
        )
        text = training_text(pool, w * TRAIN_BYTES, rng)
        samples[c] = sample
        train += text
        train_bytes.append(sum(len(t.encode()) for t in text))
    truth = np.array(train_bytes) / sum(train_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_bytelevel_bpe(train, MERGES, Path(tmp), split_digits=True)
        grouped = {c: _grouped_sample(samples[c], 1, tok, tok.n_merges) for c in chosen}
    problem = build_problem(
        {c: g.total() for c, g in grouped.items()},
        tok.merge_list.merge_ids,
        {c: g.bytes_ for c, g in grouped.items()},
    )
    paper = solve_mixture(problem)
    scores = [log10_mse(paper.byte_share, truth)]
    for power in powers:
        sol = solve_mixture_scaled(problem, reference_alpha=paper.alpha, power=power)
        scores.append(log10_mse(sol.byte_share, truth))
    return scores


def main() -> None:
    settings = sys.argv[1].split(",")
    n, trials = int(sys.argv[2]), int(sys.argv[3])
    powers = [float(p) for p in sys.argv[4].split(",")]
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 7
    header = ["setting", "n", "trial", "paper-lp", *[f"scaled {p:g}" for p in powers]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    all_scores = []
    for setting in settings:
        for trial in range(trials):
            scores = trial_scores(setting, n, trial, powers, seed)
            all_scores.append(scores)
            cells = [setting, str(n), str(trial), *[f"{s:.2f}" for s in scores]]
            print("| " + " | ".join(cells) + " |", flush=True)
    s = np.array(all_scores)
    delta = s[:, 1:] - s[:, :1]
    se = delta.std(axis=0, ddof=1) / np.sqrt(len(s))
    print(f"\nmean log10 MSE over {len(s)} trials: " + ", ".join(f"{v:.3f}" for v in s.mean(0)))
    for p, d, e, better in zip(powers, delta.mean(0), se, (delta < 0).sum(0), strict=True):
        print(f"scaled {p:g} vs paper-lp: mean Δ {d:+.3f} ± {e:.3f} (s.e.), better in {better}")


if __name__ == "__main__":
    main()
