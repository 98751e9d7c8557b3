"""Counting throughput on one core: the compiled counter against ``regex.findall`` + ``Counter``
(the usual baseline) and against tokmix's own ``regex`` path, measured in the same run.

    python -m benchmarks.counting [--prose PATH.jsonl.gz] [--code PATH.jsonl.gz] [--repeat 3]

Each figure is the best of ``--repeat`` runs, in CPU seconds of this process
(``time.process_time``, what one core did) with wall-clock MB/s beside it: on a shared machine
wall time also measures the neighbours. Every compiled count is checked equal to the
baseline's before its figure is printed. Targets (issue #13): compiled ≥ 3× the baseline and
≥ 40 MB/s on prose and on code; moonshot 50 MB/s.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import regex

from tests.helpers import read_jsonl_gz
from tokmix.bpe import pretokenizers as P
from tokmix.bpe.fast_pretokenize import Engine
from tokmix.bpe.words import WordTable

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "data" / "corpora"
SAMPLES = REPO / "data" / "samples"
TARGET_RATIO = 3.0
TARGET_MBS = 40.0
T = TypeVar("T")

_BASELINE_PATTERNS = {
    "gpt2": P.GPT2_PATTERN,
    "cl100k": P.CL100K_PATTERN,
    "o200k": P.O200K_PATTERN,
}


def default_texts() -> dict[str, Path]:
    """Prose (books) and code (Python) from the shared corpora, else the shipped samples."""
    shared = {
        "prose": CORPORA / "domains" / "books" / "docs.jsonl.gz",
        "code": CORPORA / "code" / "python" / "docs.jsonl.gz",
    }
    if all(p.exists() for p in shared.values()):
        return shared
    return {"prose": SAMPLES / "books.jsonl.gz", "code": SAMPLES / "python.jsonl.gz"}


def best_of(n: int, fn: Callable[[], T]) -> tuple[float, float, T]:
    """Best CPU and wall seconds of ``n`` runs (at least one), and the last result."""
    cpu = wall = float("inf")
    for _ in range(max(n, 1)):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return cpu, wall, out  # at least one run: out is bound


def count_table(texts: list[str], pre: P.Pretokenizer, engine: Engine) -> Counter[bytes]:
    """What the count stage does per document (``WordTable.add_text``), whole table read."""
    table = WordTable()
    for text in texts:
        table.add_text(text, pre, engine)
    return table.counts


def findall_counter(texts: list[str], pattern: regex.Pattern[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(pattern.findall(text))
    return counts


def bench_counting(texts: dict[str, list[str]], repeat: int, families: list[str]) -> list[str]:
    """One line per (text, family); returns the lines (also printed)."""
    lines = []
    for kind, docs in texts.items():
        mb = sum(len(t.encode()) for t in docs) / 1e6
        for name in families:
            pre = P.named(name)
            count_table(docs[:2], pre, "compiled")  # compile outside the timing
            c_cpu, c_wall, ours = best_of(repeat, partial(count_table, docs, pre, "compiled"))
            r_cpu, _, ref = best_of(1, partial(count_table, docs, pre, "regex"))
            assert ours == ref, f"compiled and regex counts differ on {kind} / {name}"
            line = (
                f"counting {kind:5} {mb:4.1f} MB {name:13}: compiled {mb / c_cpu:6.1f} MB/s cpu "
                f"({mb / c_wall:5.1f} wall), tokmix regex path {mb / r_cpu:5.1f}"
            )
            pattern = _BASELINE_PATTERNS.get(name)
            if pattern is not None:
                compiled = regex.compile(pattern)
                b_cpu, _, base = best_of(repeat, partial(findall_counter, docs, compiled))
                encoded = Counter({w.encode(): n for w, n in base.items()})
                assert encoded == ours, f"findall+Counter and compiled differ on {kind} / {name}"
                ratio = b_cpu / c_cpu
                ok = ratio >= TARGET_RATIO and mb / c_cpu >= TARGET_MBS
                line += (
                    f", regex.findall+Counter {mb / b_cpu:5.1f}: {ratio:4.1f}x "
                    f"[target >= {TARGET_RATIO:.0f}x and >= {TARGET_MBS:.0f} MB/s: "
                    f"{'met' if ok else 'NOT met'}]"
                )
            print(line, flush=True)
            lines.append(line)
    return lines


def main() -> None:
    defaults = default_texts()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prose", type=Path, default=defaults["prose"])
    ap.add_argument("--code", type=Path, default=defaults["code"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--families", default="gpt2,cl100k,llama3,o200k,gpt2-digits,sentencepiece-digits"
    )
    args = ap.parse_args()
    texts = {"prose": read_jsonl_gz(args.prose), "code": read_jsonl_gz(args.code)}
    print(f"prose: {args.prose}\ncode:  {args.code}\n(1 core, CPU time; wall time beside it)")
    bench_counting(texts, args.repeat, args.families.split(","))


if __name__ == "__main__":
    main()
