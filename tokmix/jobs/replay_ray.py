"""Stage 2 on Ray: replay a tokenizer's merges over word-table shards (DESIGN §4).

Every committed ``word_counts`` file holds a disjoint set of one category's words (the Ray
count writes one file per word-hash partition), so the trajectory of a category is the sum of
its files' trajectories (linearity). One task replays one file; each worker process loads the
tokenizer once and keeps it for the next task. (Actors would pin that state to a node: when
the node is lost, work queued on its actors waits for it to come back. Tasks are rescheduled
anywhere and retried.) The driver adds up the shard trajectories and commits them as the
in-process stage does, so the result is bit for bit the same.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.merges import MergeList
from tokmix.bpe.replay import PairTrajectory, replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import DatasetError
from tokmix.io.datasets import is_committed, read_dataset, read_manifest
from tokmix.io.fs import filesystem_for, join
from tokmix.jobs.count import corpus_stats_name, word_counts_name
from tokmix.jobs.replay import commit_replay, merges_name, totals_name, trajectories_name
from tokmix.jobs.runtime import Log, Progress, wait_all
from tokmix.schemas import CORPUS_STATS
from tokmix.schemas.run_spec import StageResources


@functools.lru_cache(maxsize=4)
def _merge_list(tokenizer_path: str, pretokenizer: str | None, sha256: str) -> MergeList:
    """The tokenizer's merge list, loaded once per worker process (Ray reuses workers across
    tasks; loading cl100k takes a second, replaying a shard often less). ``sha256`` keys the
    cache on the content, so a changed file is loaded again."""
    del sha256
    return load_tokenizer(tokenizer_path, pretokenizer=pretokenizer).merge_list


def _replay_file(
    tokenizer: tuple[str, str | None, str], url: str, first: int, last: int
) -> PairTrajectory:
    """Replay one committed word-count file (a word-hash shard of one category)."""
    fs, path = filesystem_for(url)
    try:
        with fs.open(path, "rb") as f:
            table = pq.read_table(f, columns=["word", "count"])
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(
            f"{url}: unreadable word-count file ({exc}); re-run the count stage with --force"
        ) from exc
    words = table["word"].to_pylist()
    counts = table["count"].to_numpy()
    return replay_merges(
        dict(zip(words, counts.tolist(), strict=True)),
        _merge_list(*tokenizer),
        first_step=first,
        last_step=last,
    )


def replay_inputs_from_manifest(
    tokenizer: LoadedTokenizer, manifest: dict[str, Any], first: int, last: int
) -> dict[str, str]:
    """What a committed replay depends on: the tokenizer, the word-count files (by their
    sha256, recorded at commit) and the step range."""
    h = hashlib.sha256()
    for entry in sorted(manifest["files"], key=lambda e: e["path"]):
        h.update(f"{entry['path']}\0{entry['sha256']}\0".encode())
    return {
        "tokenizer": tokenizer.sha256,
        "word_counts": h.hexdigest(),
        "range": json.dumps([first, last]),
    }


def run_replay_ray(
    tokenizer: LoadedTokenizer,
    out: str,
    first: int,
    last: int,
    *,
    pretokenizer: str | None = None,
    resources: StageResources | None = None,
    force: bool = False,
    log: Log = lambda _m: None,
) -> dict[str, int]:
    """Replay on the cluster and commit; rows of trajectory per category. ``pretokenizer``:
    the family override the tokenizer was loaded with (actors load it again)."""
    words_name = word_counts_name(tokenizer.pretokenizer)
    manifest = read_manifest(out, words_name)
    inputs = replay_inputs_from_manifest(tokenizer, manifest, first, last)
    name = tokenizer.name
    if not force and all(
        is_committed(out, n(name), inputs) for n in (trajectories_name, merges_name, totals_name)
    ):
        log(f"replay {name}: already committed for these word tables; skipped")
        return {}
    task = (resources or StageResources()).ray_options()
    files = [
        (e["partition"]["category"], join(out, words_name, e["path"]), e["rows"])
        for e in manifest["files"]
    ]
    log(f"replay {name}: steps {first}..{last} over {len(files)} word-table shards")
    replay = ray.remote(_replay_file).options(**task)
    key = ray.put((tokenizer.path, pretokenizer, tokenizer.sha256))
    ordered = sorted(files, key=lambda f: -f[2])  # largest first: a shorter tail
    refs = [replay.remote(key, url, first, last) for _cat, url, _rows in ordered]
    results = wait_all(refs, Progress(f"replay {name}", len(files), 0, log))
    parts: dict[str, list[PairTrajectory]] = {}
    for (category, _url, _rows), traj in zip(ordered, results, strict=True):
        parts.setdefault(category, []).append(traj)
    stats = read_dataset(out, corpus_stats_name(tokenizer.pretokenizer), CORPUS_STATS).to_pylist()
    bytes_ = {r["category"]: int(r["bytes"]) for r in stats}  # in the run's category order
    trajs = {c: PairTrajectory.total(parts[c]) for c in bytes_}
    commit_replay(tokenizer, trajs, bytes_, out, first, last, inputs)
    return {c: len(t) for c, t in trajs.items()}
