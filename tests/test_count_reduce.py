"""The sharded count's map split and reduce give exactly the in-process word tables.

The reduce skips work it does not need (no aggregation for a category with one shard in a
partition, one aggregation without bootstrap groups) and the dataset writer slices a table
built category by category instead of filtering it once per category. The oracle is the
in-process counter's own :class:`WordTable`s (each category read as one stream), not a
dataset it wrote, so the writer under test is not its own reference. Tasks run on the local
executor: the same tasks Ray runs, without starting Ray.
"""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import REPO
from tokmix.bpe.pretokenizers import GPT2
from tokmix.bpe.word_arrays import WordArrays
from tokmix.io.datasets import _partitions, read_dataset, read_manifest
from tokmix.jobs.count import group_word_counts_name, run_count_groups, word_counts_name
from tokmix.jobs.count_ray import _split_by_partition, run_count_ray, word_partition
from tokmix.jobs.executors import LocalExecutor
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.schemas import GROUP_WORD_COUNTS, WORD_COUNTS

SAMPLES = REPO / "data" / "samples"


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> list[CategorySpec]:
    """Plain JSON lines that split into many shards, and a gzip file that is one shard."""
    root = tmp_path_factory.mktemp("corpus")
    out = []
    for name in ("books", "python", "rust"):
        path = root / f"{name}.jsonl"
        path.write_bytes(gzip.decompress((SAMPLES / f"{name}.jsonl.gz").read_bytes()))
        out.append(CategorySpec(name, str(path)))
    shutil.copy(SAMPLES / "legal.jsonl.gz", root / "legal.jsonl.gz")
    out.append(CategorySpec("legal", str(root / "legal.jsonl.gz")))
    return out


def _rows(table: pa.Table, keys: list[str]) -> list[dict[str, object]]:
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def _expected_words(tables: dict[str, object]) -> list[dict[str, object]]:
    rows = []
    for name, table in tables.items():
        words, counts = table.sorted_items()  # type: ignore[attr-defined]
        rows += [
            {"category": name, "word": w, "count": int(c)}
            for w, c in zip(words, counts, strict=True)
        ]
    return sorted(rows, key=lambda r: (r["category"], r["word"]))


def _part_files_in_order(out: str, name: str, keys: list[str]) -> None:
    """Every committed file holds its rows in the canonical order (``keys`` ascending)."""
    for entry in read_manifest(out, name)["files"]:
        table = pq.read_table(str(Path(out) / name / entry["path"]))
        assert table.num_rows
        assert table.to_pylist() == _rows(table, keys), entry["path"]


@pytest.mark.parametrize(("groups", "partitions"), [(1, 1), (1, 4), (3, 1), (3, 4)])
def test_sharded_count_equals_the_in_process_tables(
    specs: list[CategorySpec], tmp_path: Path, groups: int, partitions: int
) -> None:
    options = {s.name: SampleOptions() for s in specs}
    tables, grouped = run_count_groups(specs, GPT2, str(tmp_path / "local"), options, groups=groups)
    out = str(tmp_path / "sharded")
    totals = run_count_ray(
        specs,
        options,
        GPT2,
        out,
        shard_bytes=60_000,
        partitions=partitions,
        groups=groups,
        executor=LocalExecutor(),
    )

    words = read_dataset(out, word_counts_name(GPT2), WORD_COUNTS)
    got = _rows(words.select(["category", "word", "count"]), ["category", "word"])
    assert got == _expected_words(tables)
    assert {n: t["distinct_words"] for n, t in totals.items()} == {
        n: len(t) for n, t in tables.items()
    }
    _part_files_in_order(out, word_counts_name(GPT2), ["word"])
    if groups == 1:
        return
    assert grouped is not None
    rows = read_dataset(out, group_word_counts_name(GPT2), GROUP_WORD_COUNTS)
    expected = [
        {"category": name, "group": g, "word": w, "count": c}
        for name, by_group in grouped.items()
        for g, table in by_group.items()
        for w, c in table.counts.items()
    ]
    keys = ["category", "group", "word"]
    assert _rows(rows, keys) == sorted(expected, key=lambda r: tuple(r[k] for k in keys))
    _part_files_in_order(out, group_word_counts_name(GPT2), ["group", "word"])


def test_a_shard_splits_into_its_partitions_in_order() -> None:
    counts = {f"w{i}".encode(): i + 1 for i in range(500)}
    pieces = _split_by_partition(2, WordArrays.from_counts(counts), 7)
    part = word_partition(WordArrays.from_counts(counts), 7)
    assert part.tolist() == [zlib.crc32(w) % 7 for w in counts]  # the partitions on disk
    assert len(pieces) == 7
    for r, piece in enumerate(pieces):
        mine = [w for w, p in zip(counts, part, strict=True) if p == r]
        assert piece["word"].to_pylist() == mine
        assert piece["count"].to_pylist() == [counts[w] for w in mine]
        assert set(piece["group"].to_pylist()) <= {2}
    assert [len(p) for p in _split_by_partition(0, WordArrays.from_counts({}), 3)] == [0, 0, 0]


@pytest.mark.parametrize("shuffle", [False, True])
def test_dataset_parts_equal_a_filter_per_value(shuffle: bool) -> None:
    """Contiguous partition values are sliced, scattered ones filtered: the same parts."""
    cats = np.repeat(np.array(["b", "a", "c"]), [3, 5, 2])
    order = np.random.default_rng(0).permutation(len(cats)) if shuffle else np.arange(len(cats))
    table = pa.table({"category": cats[order], "x": np.arange(len(cats))[order]})
    parts = _partitions(table, ["category"], "t")
    assert [k for k, _ in parts] == [("a",), ("b",), ("c",)]
    for (value,), rows in parts:
        want = [
            x
            for c, x in zip(table["category"].to_pylist(), table["x"].to_pylist(), strict=True)
            if c == value
        ]
        assert rows["x"].to_pylist() == want
        assert set(rows["category"].to_pylist()) == {value}


def test_force_counts_again_instead_of_reusing_a_killed_attempts_shards(
    specs: list[CategorySpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--force`` means recompute: shards an earlier attempt left under ``OUT/_work`` (here
    made wrong on purpose) are dropped, not reused. Oracle: the in-process count."""
    import json

    import tokmix.jobs.count_ray as count_ray

    options = {s.name: SampleOptions() for s in specs}
    tables, _ = run_count_groups(specs, GPT2, str(tmp_path / "local"), options)
    out = str(tmp_path / "sharded")
    count = dict(shard_bytes=60_000, partitions=2, executor=LocalExecutor())
    with monkeypatch.context() as m:  # an attempt killed before it could clean up
        m.setattr(count_ray, "remove_tree", lambda _url: None)
        run_count_ray(specs, options, GPT2, out, **count)  # type: ignore[arg-type]
    sidecars = sorted((Path(out) / "_work").glob("count-*/*.json"))
    assert sidecars, "the attempt left its shards"
    for path in sidecars:  # stale shards: what a reuse would commit
        sidecar = json.loads(path.read_text())
        sidecar["totals"]["bytes"] += 1_000
        path.write_text(json.dumps(sidecar))

    lines: list[str] = []
    totals = run_count_ray(specs, options, GPT2, out, force=True, log=lines.append, **count)  # type: ignore[arg-type]
    assert not any("earlier attempt" in line for line in lines), lines
    assert {n: t["bytes"] for n, t in totals.items()} == {n: t.bytes_ for n, t in tables.items()}
    words = read_dataset(out, word_counts_name(GPT2), WORD_COUNTS)
    assert _rows(words.select(["category", "word", "count"]), ["category", "word"]) == (
        _expected_words(tables)
    )
    assert not (Path(out) / "_work").exists(), "the stage's working files go once it commits"
