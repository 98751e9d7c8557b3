"""Benchmarks of the core stages, each as a ratio against a peer measured in the same run.

    python -m benchmarks.run [--category PATH.jsonl.gz] [--merges 30000] [--lp-case demo ...]

- counting: the compiled counter vs Python ``regex.findall`` + ``Counter`` (the usual baseline)
  and tokmix's ``regex`` path, on prose and on code, 1 core (``benchmarks/counting.py``)
- replay: tokmix replay of T merges over a word table vs the ``tokenizers`` BpeTrainer learning
  T merges from the same text (training does strictly more work: it also searches for maxima)
- token statistics: from the word table vs the tokenizer library encoding the sample
  (``benchmarks/stats.py``; needs the released tokenizers in ``../shared/data``)
- lp: the mixture LP as shipped vs plain constraint generation on the same problem
  (``benchmarks/lp.py``; the demo by default, ``--lp-case cl100k`` etc. for the larger cases)

Reads ``../shared/data`` when present, else the shipped samples in ``data/``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from benchmarks import counting, stats
from benchmarks.lp import CASES, bench_lp
from tests.helpers import read_jsonl_gz
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.words import count_words

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "corpora"


def _default_category() -> Path:
    shared = SHARED / "code" / "python" / "docs.jsonl.gz"
    return shared if shared.exists() else REPO / "data" / "samples" / "python.jsonl.gz"


def _best_of(n: int, fn):  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_replay(texts: list[str], merges: int) -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=256 + merges,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    t_train, _ = _best_of(1, lambda: tok.train_from_iterator(texts, trainer))
    import tempfile

    from tests.helpers import train_bytelevel_bpe  # the same training, saved and loaded

    with tempfile.TemporaryDirectory() as tmp:
        loaded = train_bytelevel_bpe(texts, merges, Path(tmp))
    words = dict(count_words(texts, loaded.pretokenizer).counts)
    replay_merges(words, loaded.merge_list.truncated(10))  # compile outside the timing
    t_replay, traj = _best_of(2, lambda: replay_merges(words, loaded.merge_list))
    print(
        f"replay    {loaded.n_merges} merges over {len(words):,} words: tokmix {t_replay:.2f} s,"
        f" BpeTrainer {t_train:.2f} s (its 2 threads, counting included),"
        f" ratio {t_train / t_replay:.2f}x; {len(traj):,} trajectory rows"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--category", type=Path, default=_default_category())
    ap.add_argument("--merges", type=int, default=5000)
    ap.add_argument("--lp-case", action="append", choices=sorted(CASES))
    args = ap.parse_args()
    texts = read_jsonl_gz(args.category)
    print(f"data: {args.category} ({sum(len(t.encode()) for t in texts) / 1e6:.1f} MB)")
    prose = counting.default_texts()["prose"]
    counting.bench_counting(
        {"prose": read_jsonl_gz(prose), "code": texts}, 2, ["gpt2", "cl100k", "o200k"]
    )
    bench_replay(texts, args.merges)
    if stats.TOKENIZERS.is_dir():
        stats.bench_stats(texts, args.category.parent.name)
    for name in args.lp_case or ["demo"]:
        bench_lp(name, CASES[name]())


if __name__ == "__main__":
    main()
