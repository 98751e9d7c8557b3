"""LP benchmark: the mixture LP's fast path vs plain constraint generation (ARCHITECTURE.md §9).

    python -m benchmarks.lp [--case demo|cl100k|many30|many30x20k ...] [--cache DIR] [--no-peer]

Each case builds one problem (count, replay, ``build_problem``; cached as ``.npz`` under
``--cache``, no pickle), then solves it twice in the same run: ``solve_mixture`` as shipped
(coarse phase on every 8th step, pruning of basic rows, at most 5 000 rows a round) and the
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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import WordTable, count_words
from tokmix.jobs.count import read_category
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", action="append", choices=sorted(CASES))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--no-peer", dest="peer", action="store_false")
    args = ap.parse_args()
    for name in args.case or ["demo"]:
        bench_lp(name, cached(name, args.cache), peer=args.peer)


if __name__ == "__main__":
    main()
