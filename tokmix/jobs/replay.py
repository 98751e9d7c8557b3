"""Word tables -> pair-count trajectories in memory: the reference the replay stage is tested
against (ARCHITECTURE.md §4).

The replay stage (:mod:`tokmix.jobs.replay_ray`, on either executor) replays committed word-count
files one task each and sums; :func:`run_replay` replays whole in-memory tables. Both commit
through :func:`commit_replay` with the same input digest (:func:`replay_inputs`), and this
module holds the readers of committed trajectories.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tokmix.bpe.merges import MergeList
from tokmix.bpe.replay import PairTrajectory, _canonical, replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import WordTable
from tokmix.errors import DatasetError
from tokmix.io import catalog
from tokmix.io.datasets import (
    content_digest,
    is_committed,
    read_dataset,
    read_manifest,
    write_dataset,
)
from tokmix.jobs.count import GroupTables
from tokmix.schemas import GROUP_TOTALS, GROUP_TRAJECTORIES, MERGES, REPLAY_TOTALS, TRAJECTORIES


def trajectories_name(tokenizer: str) -> str:
    return catalog.TRAJECTORIES.name(tokenizer)


def merges_name(tokenizer: str) -> str:
    return catalog.MERGES.name(tokenizer)


def totals_name(tokenizer: str) -> str:
    return catalog.REPLAY_TOTALS.name(tokenizer)


def replay_inputs(
    tokenizer: LoadedTokenizer, manifest: dict[str, Any], first: int, last: int
) -> dict[str, str]:
    """What a committed replay depends on: the tokenizer, the committed word-count files (by
    the sha256 each was committed with; the grouped ones when the run has bootstrap groups) and
    the step range. One scheme for the in-process and the Ray stage, so either reuses the
    other's commit on the same inputs."""
    return {
        "tokenizer": tokenizer.sha256,
        "word_counts": content_digest(manifest),
        "range": json.dumps([first, last]),
    }


def replay_words_name(tokenizer: LoadedTokenizer, grouped: bool) -> str:
    """The word-count dataset a replay reads: the per-group one with bootstrap groups."""
    dataset = catalog.GROUP_WORD_COUNTS if grouped else catalog.WORD_COUNTS
    return dataset.name(tokenizer.pretokenizer.key)


def trajectory_table(category: str, traj: PairTrajectory) -> pa.Table:
    n = len(traj)
    return pa.table(
        {
            "category": pa.array([category] * n, pa.string()),
            "step": traj.step,
            "left": traj.left,
            "right": traj.right,
            "delta": traj.delta,
        },
        schema=TRAJECTORIES,
    )


def merges_table(merge_list: MergeList, first: int, last: int) -> pa.Table:
    ids = merge_list.merge_ids[first - 1 : last]
    pairs = merge_list.merges[first - 1 : last]
    return pa.table(
        {
            "step": np.arange(first, last + 1, dtype=np.int32),
            "left": ids[:, 0],
            "right": ids[:, 1],
            "product": ids[:, 2],
            "left_bytes": pa.array([p[0] for p in pairs], pa.binary()),
            "right_bytes": pa.array([p[1] for p in pairs], pa.binary()),
        },
        schema=MERGES,
    )


def run_replay(
    tokenizer: LoadedTokenizer,
    tables: dict[str, WordTable],
    out: str,
    first: int,
    last: int,
    *,
    group_tables: GroupTables | None = None,
    force: bool = False,
) -> dict[str, PairTrajectory]:
    """Replay the tokenizer's merges over every category; commit trajectories, the per-step
    merges and the totals (``pairs`` = d_i, ``bytes``).

    With ``group_tables`` (bootstrap groups, :func:`tokmix.jobs.count.run_count_groups`) each
    group is replayed instead and a category's trajectory is the sum of its groups' (exact, by
    linearity, as on Ray); the group trajectories are committed for the solve's bootstrap."""
    manifest = read_manifest(out, replay_words_name(tokenizer, group_tables is not None))
    inputs = replay_inputs(tokenizer, manifest, first, last)
    name = tokenizer.name
    datasets = [trajectories_name, merges_name, totals_name]
    if group_tables is not None:
        datasets += [group_trajectories_name, group_totals_name]
    if not force and all(is_committed(out, n(name), inputs) for n in datasets):
        return read_trajectories(out, name)[0]
    bytes_ = {c: t.bytes_ for c, t in tables.items()}
    if group_tables is None:
        trajs = {
            cat: replay_merges(
                dict(table.counts), tokenizer.merge_list, first_step=first, last_step=last
            )
            for cat, table in tables.items()
        }
        commit_replay(tokenizer, trajs, bytes_, out, first, last, inputs)
        return trajs
    group_trajs = {
        cat: {
            g: replay_merges(dict(t.counts), tokenizer.merge_list, first_step=first, last_step=last)
            for g, t in sorted(group_tables[cat].items())
        }
        for cat in tables
    }
    trajs = {c: PairTrajectory.total(list(group_trajs[c].values())) for c in tables}
    group_bytes = {(c, g): t.bytes_ for c, ts in group_tables.items() for g, t in ts.items()}
    commit_replay(tokenizer, trajs, bytes_, out, first, last, inputs)
    commit_group_replay(name, group_trajs, group_bytes, out, inputs)
    return trajs


def commit_replay(
    tokenizer: LoadedTokenizer,
    trajs: dict[str, PairTrajectory],
    bytes_: dict[str, int],
    out: str,
    first: int,
    last: int,
    inputs: dict[str, str],
) -> None:
    """Commit the trajectories, the per-step merges and the totals (``pairs`` = d_i, and the
    sample ``bytes``) of one tokenizer."""
    name = tokenizer.name
    provenance = {"stage": "replay", "tokenizer_name": name, **inputs}
    write_dataset(
        pa.concat_tables([trajectory_table(c, t) for c, t in trajs.items()]),
        out,
        trajectories_name(name),
        schema=TRAJECTORIES,
        partition_cols=("category",),
        provenance=provenance,
        input_hashes=inputs,
    )
    write_dataset(
        merges_table(tokenizer.merge_list, first, last),
        out,
        merges_name(name),
        schema=MERGES,
        partition_cols=(),
        provenance=provenance,
        input_hashes=inputs,
    )
    totals = pa.Table.from_pylist(
        [
            {
                "category": c,
                "pairs": t.pairs,
                "bytes": bytes_[c],
                "first_step": first,
                "last_step": last,
            }
            for c, t in trajs.items()
        ],
        schema=REPLAY_TOTALS,
    )
    write_dataset(
        totals,
        out,
        totals_name(name),
        schema=REPLAY_TOTALS,
        partition_cols=(),
        provenance=provenance,
        input_hashes=inputs,
    )


def read_trajectories(
    out: str, tokenizer: str
) -> tuple[dict[str, PairTrajectory], np.ndarray, dict[str, int]]:
    """Committed trajectories per category, the merge ids ``(M, 3)`` indexed by step - 1
    (zeros before the recorded range), and sample bytes per category."""
    deltas = read_dataset(out, trajectories_name(tokenizer), TRAJECTORIES)
    merges = read_dataset(out, merges_name(tokenizer), MERGES)
    totals = read_dataset(out, totals_name(tokenizer), REPLAY_TOTALS).to_pylist()
    trajs: dict[str, PairTrajectory] = {}
    for row in totals:
        sel = deltas.filter(pc.equal(deltas["category"], row["category"]))
        sel = sel.sort_by([("step", "ascending"), ("left", "ascending"), ("right", "ascending")])
        trajs[row["category"]] = PairTrajectory(
            sel["step"].to_numpy().astype(np.int32),
            sel["left"].to_numpy().astype(np.int32),
            sel["right"].to_numpy().astype(np.int32),
            sel["delta"].to_numpy().astype(np.int64),
            row["first_step"],
            row["last_step"],
            row["pairs"],
        )
    steps = merges["step"].to_numpy()
    merge_ids = np.zeros((int(steps.max()) if len(steps) else 0, 3), dtype=np.int32)
    merge_ids[steps - 1, 0] = merges["left"].to_numpy()
    merge_ids[steps - 1, 1] = merges["right"].to_numpy()
    merge_ids[steps - 1, 2] = merges["product"].to_numpy()
    return trajs, merge_ids, {r["category"]: r["bytes"] for r in totals}


def group_trajectories_name(tokenizer: str) -> str:
    return catalog.GROUP_TRAJECTORIES.name(tokenizer)


def group_totals_name(tokenizer: str) -> str:
    return catalog.GROUP_TOTALS.name(tokenizer)


def commit_group_replay(
    tokenizer: str,
    group_trajs: dict[str, dict[int, PairTrajectory]],
    group_bytes: dict[tuple[str, int], int],
    out: str,
    inputs: dict[str, str],
) -> None:
    """Commit the per-group trajectories and the groups' pair counts and bytes: what the
    bootstrap of the solve stage resamples."""
    provenance = {"stage": "replay", "tokenizer_name": tokenizer, **inputs}
    tables, totals = [], []
    for category, by_group in group_trajs.items():
        for g, traj in by_group.items():
            n = len(traj)
            tables.append(
                pa.table(
                    {
                        "category": pa.array([category] * n, pa.string()),
                        "group": pa.array(np.full(n, g, dtype=np.int32)),
                        "step": traj.step,
                        "left": traj.left,
                        "right": traj.right,
                        "delta": traj.delta,
                    },
                    schema=GROUP_TRAJECTORIES,
                )
            )
            totals.append(
                {
                    "category": category,
                    "group": g,
                    "pairs": traj.pairs,
                    "bytes": group_bytes[(category, g)],
                }
            )
    write_dataset(
        pa.concat_tables(tables),
        out,
        group_trajectories_name(tokenizer),
        schema=GROUP_TRAJECTORIES,
        partition_cols=("category",),
        provenance=provenance,
        input_hashes=inputs,
    )
    write_dataset(
        pa.Table.from_pylist(totals, schema=GROUP_TOTALS),
        out,
        group_totals_name(tokenizer),
        schema=GROUP_TOTALS,
        partition_cols=(),
        provenance=provenance,
        input_hashes=inputs,
    )


def read_group_trajectories(
    out: str, tokenizer: str
) -> tuple[dict[str, list[PairTrajectory]], dict[str, list[int]]] | None:
    """The committed per-group trajectories and bytes per category, or None when the run has
    no bootstrap groups (or they are stale)."""
    try:
        groups = read_manifest(out, group_trajectories_name(tokenizer))
        traj = read_manifest(out, trajectories_name(tokenizer))
    except DatasetError:
        return None
    if groups["input_hashes"] != traj["input_hashes"]:
        return None
    rows = read_dataset(out, group_trajectories_name(tokenizer), GROUP_TRAJECTORIES)
    totals = read_dataset(out, group_totals_name(tokenizer), GROUP_TOTALS).to_pylist()
    first, last = _step_range(out, tokenizer)
    # One sort by (category, group), then slices: not a scan of every row per group.
    names = rows["category"].combine_chunks().dictionary_encode()
    code = {name: i for i, name in enumerate(names.dictionary.to_pylist())}
    key = names.indices.to_numpy().astype(np.int64) * (1 << 32) + rows["group"].to_numpy()
    order = np.argsort(key, kind="stable")
    key = key[order]
    columns = {c: rows[c].to_numpy()[order] for c in ("step", "left", "right", "delta")}
    trajs: dict[str, list[PairTrajectory]] = {}
    nbytes: dict[str, list[int]] = {}
    for t in totals:
        k = code.get(t["category"], -1) * (1 << 32) + t["group"]
        lo, hi = np.searchsorted(key, k, "left"), np.searchsorted(key, k, "right")
        trajs.setdefault(t["category"], []).append(
            _canonical(
                columns["step"][lo:hi],
                columns["left"][lo:hi],
                columns["right"][lo:hi],
                columns["delta"][lo:hi],
                first,
                last,
                t["pairs"],
            )
        )
        nbytes.setdefault(t["category"], []).append(int(t["bytes"]))
    return trajs, nbytes


def _step_range(out: str, tokenizer: str) -> tuple[int, int]:
    row = read_dataset(out, totals_name(tokenizer), REPLAY_TOTALS).to_pylist()[0]
    return int(row["first_step"]), int(row["last_step"])
