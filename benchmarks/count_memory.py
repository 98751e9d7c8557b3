"""Peak memory of a count task against its input size (100 MB to 2 GB).

    python -m benchmarks.count_memory [--sizes 100,500,2000] [--tmp /tmp]

The input is one plain JSON-lines category made by cycling through every category of the
shared corpora (or the shipped samples), written under ``--tmp`` and deleted afterwards. Each
size is counted by the in-process count stage (``run_count``, GPT-2, compiled counter) in a
fresh child process; its peak resident memory comes from ``wait4``'s rusage, its CPU time
likewise. The word table itself is the task's output, so memory may grow with the number of
distinct words (printed beside it) but not with the bytes read.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "data" / "corpora"

_SHARD_CHILD = """
import sys
from tokmix.bpe.pretokenizers import GPT2
from tokmix.io.shards import ShardSample, plan_shards
from tokmix.jobs.count_ray import _count_shard
from tokmix.jobs.spec import SampleOptions
path, out = sys.argv[1], sys.argv[2]
shards = plan_shards("big", path, shard_bytes=64_000_000, txt_mode="file")
shard = [s for s in shards if s.size == max(s.size for s in shards)][-1]
_count_shard(ShardSample(shard, 0, None), GPT2, SampleOptions(), 2, 1, out)
print(shard.size)
"""

_CHILD = """
import json, sys
from tokmix.bpe.pretokenizers import GPT2
from tokmix.jobs.count import run_count, read_word_tables
from tokmix.jobs.spec import CategorySpec, SampleOptions
path, out = sys.argv[1], sys.argv[2]
run_count([CategorySpec("big", path)], GPT2, out, SampleOptions(), force=True)
print(len(read_word_tables(out, GPT2)["big"]))
"""


def write_input(path: Path, megabytes: float) -> int:
    sources = sorted(CORPORA.glob("*/*/docs.jsonl.gz")) or sorted(
        (REPO / "data" / "samples").glob("*.jsonl.gz")
    )
    blobs = [gzip.decompress(s.read_bytes()) for s in sources]
    total = 0
    with path.open("wb") as f:
        while total < megabytes * 1e6:
            for blob in blobs:
                f.write(blob)
                total += len(blob)
                if total >= megabytes * 1e6:
                    break
    return total


def measure(path: Path, out: Path, child: str) -> tuple[float, float, float, int]:
    """Peak RSS (MB), CPU seconds, wall seconds and the child's printed number (distinct
    words, or the shard's bytes) of one count."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(path), str(out)], env=env, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    distinct = int(proc.stdout.read().decode().strip() or 0)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"count child failed with status {status}")
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, wall, distinct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="100,500,2000", help="input sizes in MB")
    ap.add_argument("--tmp", default="/tmp")
    args = ap.parse_args()
    print("count tasks (GPT-2, compiled counter), 1 core each; CPU time and wall")
    for size in (float(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            path = Path(tmp) / "big.jsonl"
            nbytes = write_input(path, size)
            mb = nbytes / 1e6
            rss, cpu, wall, shard = measure(path, Path(tmp) / "work", _SHARD_CHILD)
            print(
                f"input {mb:7.1f} MB, shard task on a {shard / 1e6:4.1f} MB shard at its end: "
                f"peak RSS {rss:6.1f} MB ({cpu:.0f} s cpu, {wall:.0f} s wall)",
                flush=True,
            )
            rss, cpu, wall, distinct = measure(path, Path(tmp) / "out", _CHILD)
            print(
                f"input {mb:7.1f} MB, whole count stage: peak RSS {rss:7.1f} MB, "
                f"{distinct:,} distinct words, {mb / cpu:5.1f} MB/s cpu "
                f"({mb / wall:5.1f} wall, {cpu:.0f} s cpu)",
                flush=True,
            )


if __name__ == "__main__":
    main()
