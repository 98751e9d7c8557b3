"""Weighting sweep of the noise-aware LP against the paper LP on the same seeded trials.

Usage: python benchmarks/weighting_sweep.py SETTING N FIRST LAST TRAIN SAMPLE MERGES POWERS
(see benchmarks/results/weighting_sweep.md)."""

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
from tokmix.solvers.problem import build_problem
from tokmix.solvers.weighted_lp import solve_mixture_weighted

setting = sys.argv[1]
n = int(sys.argv[2])
t_from = int(sys.argv[3])
t_to = int(sys.argv[4])
tb = int(sys.argv[5])
sb = int(sys.argv[6])
V = int(sys.argv[7])
powers = [float(x) for x in sys.argv[8].split(",")]
corp = "/work/shared/data/corpora"
names = setting_categories(corp, setting)
for trial in range(t_from, t_to):
    rng = np.random.default_rng([7, n, trial])
    chosen = sorted(rng.choice(names, size=n, replace=False).tolist())
    w = rng.dirichlet(np.ones(n))
    samples = {}
    train = []
    tbs = []
    for c, wi in zip(chosen, w, strict=True):
        docs = _documents(f"{corp}/{setting}/{c}/docs.jsonl.gz")
        s, pool = split_documents(docs, sb, shift=False)
        t = training_text(pool, wi * tb, rng)
        samples[c] = s
        train += t
        tbs.append(sum(len(x.encode()) for x in t))
    truth = np.array(tbs) / sum(tbs)
    tok = train_bytelevel_bpe(train, V, Path(tempfile.mkdtemp()), split_digits=True)
    g = {c: _grouped_sample(samples[c], 1, tok, tok.n_merges) for c in chosen}
    prob = build_problem(
        {c: g[c].total() for c in chosen},
        tok.merge_list.merge_ids,
        {c: g[c].bytes_ for c in chosen},
    )
    sol = solve_mixture(prob)
    out = [f"{setting} n={n} trial {trial}: paper {log10_mse(sol.byte_share, truth):.2f}"]
    for pw in powers:
        ws = solve_mixture_weighted(prob, reference=sol, power=pw)
        out.append(f"p{pw:+.1f} {log10_mse(ws.byte_share, truth):.2f}")
    print("  ".join(out), flush=True)
