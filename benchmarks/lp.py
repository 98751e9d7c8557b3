"""LP benchmark: the lazy mixture LP on real tokenizers, before/after ratios (DESIGN §9).

    python -m benchmarks.lp [--case demo|cl100k|many] [--cache DIR]

Problems are built once (count, replay, build_problem) and cached as ``.npz`` (no pickle).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.io.corpus import read_category
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


def problem_from_paths(
    tokenizer: LoadedTokenizer, paths: dict[str, str], merges: int, max_bytes: int | None
) -> MixtureProblem:
    tables = {c: read_category(p, tokenizer.pretokenizer, max_bytes=max_bytes) for c, p in paths.items()}
    last = min(merges, tokenizer.n_merges)
    trajs = {c: replay_merges(dict(t.counts), tokenizer.merge_list, last_step=last) for c, t in tables.items()}
    return build_problem(trajs, tokenizer.merge_list.merge_ids, {c: t.bytes_ for c, t in tables.items()})


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


def many_problem(n_categories: int, merges: int, seed: int = 0, sample_bytes: int = 1_000_000) -> MixtureProblem:
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
    from tokmix.bpe.words import count_words

    with tempfile.TemporaryDirectory() as tmp:
        tok = train_bytelevel_bpe(train, merges, Path(tmp))
    tables = {c: count_words(d, tok.pretokenizer) for c, d in held.items()}
    trajs = {c: replay_merges(dict(t.counts), tok.merge_list) for c, t in tables.items()}
    return build_problem(trajs, tok.merge_list.merge_ids, {c: t.bytes_ for c, t in tables.items()})


CASES: dict[str, Any] = {
    "demo": demo_problem,
    "cl100k": cl100k_problem,
    "many30": lambda: many_problem(30, 5000),
}


def cached(name: str, cache: Path) -> MixtureProblem:
    path = cache / f"{name}.npz"
    if path.exists():
        return load_problem(path)
    t0 = time.perf_counter()
    problem = CASES[name]()
    print(f"built {name} in {time.perf_counter() - t0:.1f} s")
    cache.mkdir(parents=True, exist_ok=True)
    save_problem(problem, path)
    return problem


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
