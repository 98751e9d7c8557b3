"""Stage 2, sharded: replay a tokenizer's merges over word-table shards (ARCHITECTURE.md §4).

The tasks run on an executor (:mod:`tokmix.jobs.executors`): Ray for ``tokmix run``, this
process for ``tokmix infer`` and ``tokmix replay``.

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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokmix.bpe.merges import MergeList
from tokmix.bpe.replay import PairTrajectory, replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import DatasetError
from tokmix.io import catalog
from tokmix.io.datasets import is_committed, read_manifest
from tokmix.io.fs import filesystem_for, join
from tokmix.jobs.count import group_word_counts_current
from tokmix.jobs.executors import Executor
from tokmix.jobs.progress import Log, Progress
from tokmix.jobs.replay import (
    commit_group_replay,
    commit_replay,
    group_totals_name,
    group_trajectories_name,
    merges_name,
    replay_inputs,
    replay_words_name,
    totals_name,
    trajectories_name,
)
from tokmix.jobs.stage import RunContext, Stage
from tokmix.jobs.tokenizers import load_tokenizer
from tokmix.schemas.run_spec import StageResources


@functools.lru_cache(maxsize=4)
def _merge_list(tokenizer_path: str, pretokenizer: str | None, sha256: str) -> MergeList:
    """The tokenizer's merge list, loaded once per worker process (Ray reuses workers across
    tasks; loading cl100k takes a second, replaying a shard often less). ``sha256`` keys the
    cache on the content, so a changed file is loaded again."""
    del sha256
    return load_tokenizer(tokenizer_path, pretokenizer=pretokenizer).merge_list


def _read_words(url: str, columns: list[str]) -> pa.Table:
    fs, path = filesystem_for(url)
    try:
        with fs.open(path, "rb") as f:
            return pq.read_table(f, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(
            f"{url}: unreadable word-count file ({exc}); re-run the count stage with --force"
        ) from exc


def _replay_file(
    tokenizer: tuple[str, str | None, str], url: str, first: int, last: int, grouped: bool
) -> dict[int, PairTrajectory]:
    """Replay one committed word-count file (a word-hash shard of one category), per
    bootstrap group when it is a ``group_word_counts`` file: ``{group: trajectory}``."""
    table = _read_words(url, ["group", "word", "count"] if grouped else ["word", "count"])
    merge_list = _merge_list(*tokenizer)
    if not grouped:
        parts = {0: table}
    else:
        group = table["group"].to_numpy()
        parts = {int(g): table.filter(pa.array(group == g)) for g in np.unique(group)}
    return {
        g: replay_merges(
            dict(zip(t["word"].to_pylist(), t["count"].to_numpy().tolist(), strict=True)),
            merge_list,
            first_step=first,
            last_step=last,
        )
        for g, t in parts.items()
    }


GroupBytes = dict[tuple[str, int], int]


def _replay_source(out: str, tokenizer: LoadedTokenizer) -> tuple[str, GroupBytes | None]:
    """The word counts to replay: the per-group ones when the count stage committed them
    with the same inputs as ``word_counts`` (then also ``(category, group) -> bytes``)."""
    pretok = tokenizer.pretokenizer
    if not group_word_counts_current(out, pretok):
        return replay_words_name(tokenizer, grouped=False), None
    rows = catalog.SAMPLE_GROUPS.read(out, pretok.key).to_pylist()
    groups = {(r["category"], r["group"]): r["bytes"] for r in rows}
    return replay_words_name(tokenizer, grouped=True), groups


def _ray_executor() -> Executor:
    from tokmix.jobs.ray_executor import RayExecutor

    return RayExecutor()


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
    executor: Executor | None = None,
) -> dict[str, int]:
    """Replay with ``executor``'s tasks (default: on the Ray cluster) and commit; rows of
    trajectory per category. ``pretokenizer``: the family override the tokenizer was loaded
    with (tasks load it again)."""
    words_name, groups = _replay_source(out, tokenizer)
    manifest = read_manifest(out, words_name)
    inputs = replay_inputs(tokenizer, manifest, first, last)
    name = tokenizer.name
    datasets = [trajectories_name, merges_name, totals_name]
    if groups is not None:
        datasets += [group_trajectories_name, group_totals_name]
    if not force and all(is_committed(out, n(name), inputs) for n in datasets):
        log(f"replay {name}: already committed for these word tables; skipped")
        return {}
    files = [
        (e["partition"]["category"], join(out, words_name, e["path"]), e["rows"])
        for e in manifest["files"]
    ]
    what = f"{len(files)} word-table shards" + (" per bootstrap group" if groups else "")
    log(f"replay {name}: steps {first}..{last} over {what}")
    executor = executor or _ray_executor()
    key = (tokenizer.path, pretokenizer, tokenizer.sha256)
    ordered = sorted(files, key=lambda f: -f[2])  # largest first: a shorter tail
    grouped = groups is not None
    results = executor.map(
        _replay_file,
        [(key, url, first, last, grouped) for _cat, url, _rows in ordered],
        resources=resources,
        progress=Progress(f"replay {name}", len(files), 0, log),
    )
    parts: dict[str, dict[int, list[PairTrajectory]]] = {}
    for (category, _url, _rows), by_group in zip(ordered, results, strict=True):
        for g, traj in by_group.items():
            parts.setdefault(category, {}).setdefault(g, []).append(traj)
    stats = catalog.CORPUS_STATS.read(out, tokenizer.pretokenizer.key).to_pylist()
    bytes_ = {r["category"]: int(r["bytes"]) for r in stats}  # in the run's category order
    group_trajs = {
        c: {g: PairTrajectory.total(ts) for g, ts in sorted(parts[c].items())} for c in bytes_
    }
    trajs = {c: PairTrajectory.total(list(group_trajs[c].values())) for c in bytes_}
    commit_replay(tokenizer, trajs, bytes_, out, first, last, inputs)
    if groups is not None:
        commit_group_replay(tokenizer.name, group_trajs, groups, out, inputs)
    return {c: len(t) for c, t in trajs.items()}


def _run_replay_stage(ctx: RunContext) -> None:
    for tok in ctx.tokenizers:
        first, last = ctx.steps[tok.name]
        run_replay_ray(
            tok,
            ctx.spec.out,
            first,
            last,
            pretokenizer=ctx.spec.pretokenizer,
            resources=ctx.spec.resources_for("replay"),
            force=ctx.force,
            log=ctx.log,
            executor=ctx.executor,
        )


REPLAY = Stage("replay", tuple(catalog.of_stage("replay")), _run_replay_stage)
