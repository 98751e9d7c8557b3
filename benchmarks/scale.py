"""The paper-scale instance: up to 150 categories x 30 000 merges of real tokenizers.

    python -m benchmarks.scale [--tokenizer gpt2|cl100k ...] [--categories 150] [--groups 10]

Categories are carved from the 55 shared corpora (``../shared/data/corpora``) as consecutive,
disjoint slices of whole documents of at most ``SLICE_BYTES`` each (tokmix's own sampler:
``skip_documents`` = the documents of the slices before), ordered so that the first 30 are the
issue's case (21 natural languages and 9 programming languages, first slice each), the next 25
the other first slices (so 55 = one per corpus), then second slices, third slices, ...
Each slice is counted (``read_category_groups``) and replayed over the tokenizer's first
30 000 merges (``replay_merges``): the same functions ``tokmix infer`` runs. The trajectories
are cached per category under ``benchmarks/.cache/<tokenizer>/`` (gitignored, ``.npz``, no
pickle), with the per-group trajectories of the first ``--group-categories`` categories for
the bootstrap figures; :func:`scale_problem` then builds any prefix of categories x merges
without counting or replaying again, so ``benchmarks.lp`` times the solve alone.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import PairTrajectory, replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.io.corpus import iter_documents
from tokmix.jobs.count import read_category_groups
from tokmix.solvers.problem import MixtureProblem, build_problem

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CORPORA = SHARED / "corpora"
CACHE = REPO / "benchmarks" / ".cache"
TOKENIZERS = {
    "gpt2": SHARED / "tokenizers" / "gpt2",
    "cl100k": SHARED / "tokenizers" / "gpt-3.5" / "cl100k_base.tiktoken",
}
SLICE_BYTES = 1_000_000
MERGES = 30_000
GROUPS = 10
LANGUAGES_30 = 21  # the 30-category case: 21 natural languages, 9 programming ones
CODE_30 = 9


def _corpora(kind: str) -> list[str]:
    root = CORPORA / kind
    return sorted(c.name for c in root.iterdir() if (c / "docs.jsonl.gz").exists())


def _slices(corpus: str) -> list[tuple[int, int]]:
    """``(documents skipped before, bytes)`` of each slice of ``corpus`` holding at least
    half of ``SLICE_BYTES``: consecutive documents cut as ``iter_documents`` cuts a sample."""
    out: list[tuple[int, int]] = []
    skip = used = docs = 0
    for doc in iter_documents(str(CORPORA / corpus / "docs.jsonl.gz")):
        size = len(doc.text.encode("utf-8"))
        if used + size > SLICE_BYTES:
            out.append((skip, used))
            skip, used, docs = skip + docs, 0, 0
        used += size
        docs += 1
    out.append((skip, used))
    return [s for s in out if s[1] >= SLICE_BYTES // 2]


@functools.cache
def _all_slices() -> dict[str, list[tuple[int, int]]]:
    kinds = ("languages", "code", "domains")
    return {f"{k}/{c}": _slices(f"{k}/{c}") for k in kinds for c in _corpora(k)}


def category_plan(n: int) -> list[tuple[str, str, int]]:
    """``(name, corpus, documents to skip)`` of the first ``n`` categories (module docstring)."""
    slices = _all_slices()
    langs = [c for c in slices if c.startswith("languages/")]
    code = [c for c in slices if c.startswith("code/")]
    first = langs[:LANGUAGES_30] + code[:CODE_30]
    order = first + [c for c in slices if c not in first]
    plan: list[tuple[str, str, int]] = []
    for k in range(max(len(s) for s in slices.values())):
        for corpus in order:
            if len(plan) == n:
                return plan
            if k < len(slices[corpus]):
                plan.append((f"{corpus.replace('/', '-')}-{k}", corpus, slices[corpus][k][0]))
    if len(plan) < n:
        raise ValueError(f"the corpora give {len(plan)} slices, not {n}")
    return plan


def _save(path: Path, traj: PairTrajectory, nbytes: int) -> None:
    np.savez(
        path,
        step=traj.step,
        left=traj.left,
        right=traj.right,
        delta=traj.delta,
        meta=np.array([traj.first_step, traj.last_step, traj.pairs, nbytes], dtype=np.int64),
    )


def _load(path: Path) -> tuple[PairTrajectory, int]:
    with np.load(path, allow_pickle=False) as z:
        first, last, pairs, nbytes = (int(x) for x in z["meta"])
        traj = PairTrajectory(z["step"], z["left"], z["right"], z["delta"], first, last, pairs)
    return traj, nbytes


def build_cache(
    tokenizer: str, n_categories: int, *, group_categories: int = 30, groups: int = GROUPS
) -> None:
    """Count and replay every missing category (and its groups) into the cache."""
    tok: LoadedTokenizer = load_tokenizer(TOKENIZERS[tokenizer])
    root = CACHE / tokenizer
    root.mkdir(parents=True, exist_ok=True)
    for index, (name, corpus, skip) in enumerate(category_plan(n_categories)):
        path = root / f"{name}.npz"
        want_groups = index < group_categories
        group_paths = [root / "groups" / f"{name}.{g}.npz" for g in range(groups)]
        if path.exists() and (not want_groups or all(p.exists() for p in group_paths)):
            continue
        t0 = time.perf_counter()
        table, parts = read_category_groups(
            str(CORPORA / corpus / "docs.jsonl.gz"),
            tok.pretokenizer,
            groups,
            max_bytes=SLICE_BYTES,
            skip_documents=skip,
        )
        last = min(MERGES, tok.n_merges)
        traj = replay_merges(dict(table.counts), tok.merge_list, last_step=last)
        _save(path, traj, table.bytes_)
        if want_groups:
            (root / "groups").mkdir(exist_ok=True)
            for part, gpath in zip(parts, group_paths, strict=True):
                gtraj = replay_merges(dict(part.counts), tok.merge_list, last_step=last)
                _save(gpath, gtraj, part.bytes_)
        print(
            f"{tokenizer} {index + 1}/{n_categories} {name}: {table.bytes_ / 1e6:.2f} MB,"
            f" {len(traj):,} rows, {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    np.save(root / "merge_ids.npy", tok.merge_list.merge_ids)


def _restrict(traj: PairTrajectory, merges: int) -> PairTrajectory:
    if merges >= traj.last_step:
        return traj
    keep = traj.step <= merges
    return PairTrajectory(
        traj.step[keep],
        traj.left[keep],
        traj.right[keep],
        traj.delta[keep],
        traj.first_step,
        merges,
        traj.pairs,
    )


def scale_problem(tokenizer: str, n_categories: int, merges: int = MERGES) -> MixtureProblem:
    """The first ``n_categories`` categories over the first ``merges`` merges, from the cache."""
    root = CACHE / tokenizer
    trajs: dict[str, PairTrajectory] = {}
    nbytes: dict[str, int] = {}
    for name, _, _ in category_plan(n_categories):
        path = root / f"{name}.npz"
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is not built: run python -m benchmarks.scale --tokenizer {tokenizer}"
                f" --categories {n_categories}"
            )
        traj, nbytes[name] = _load(path)
        trajs[name] = _restrict(traj, merges)
    return build_problem(trajs, np.load(root / "merge_ids.npy"), nbytes)


def scale_groups(
    tokenizer: str, n_categories: int, merges: int = MERGES, groups: int = GROUPS
) -> tuple[dict[str, list[PairTrajectory]], dict[str, list[int]], np.ndarray]:
    """Per-group trajectories and bytes of the first ``n_categories``, and the merge ids."""
    root = CACHE / tokenizer
    trajs: dict[str, list[PairTrajectory]] = {}
    nbytes: dict[str, list[int]] = {}
    for name, _, _ in category_plan(n_categories):
        loaded = [_load(root / "groups" / f"{name}.{g}.npz") for g in range(groups)]
        trajs[name] = [_restrict(t, merges) for t, _ in loaded]
        nbytes[name] = [b for _, b in loaded]
    return trajs, nbytes, np.load(root / "merge_ids.npy")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", action="append", choices=sorted(TOKENIZERS))
    ap.add_argument("--categories", type=int, default=150)
    ap.add_argument("--group-categories", type=int, default=30)
    args = ap.parse_args()
    for tok in args.tokenizer or ["gpt2"]:
        build_cache(tok, args.categories, group_categories=args.group_categories)


if __name__ == "__main__":
    main()
