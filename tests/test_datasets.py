"""Committed Parquet datasets (tokmix.io.datasets): local round trips, commit semantics, and
an end-to-end S3 run (datasets and corpus reading) against a real moto server."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokmix.bpe.pretokenizers import GPT2
from tokmix.errors import DatasetError
from tokmix.io.corpus import iter_documents
from tokmix.io.datasets import (
    MANIFEST,
    is_committed,
    read_dataset,
    read_manifest,
    write_dataset,
)
from tokmix.io.fs import expand, filesystem_for
from tokmix.jobs.count import read_category
from tokmix.schemas import CORPUS_STATS, TRAJECTORIES, WORD_COUNTS, provenance_of

HASHES = {"corpus": "abc123", "pretokenizer": "gpt2"}
PROVENANCE = {"stage": "count", "pretokenizer": "gpt2"}
CATEGORIES = ["python", "web/en", "two words", "x=y%z"]


def word_counts(categories: list[str] = CATEGORIES, words: int = 3) -> pa.Table:
    rows = [
        {"category": c, "word": f"{c}:{i}".encode(), "count": i + 1}
        for c in categories
        for i in range(words)
    ]
    return pa.Table.from_pylist(rows, schema=WORD_COUNTS)


def write_words(root: str, table: pa.Table | list[pa.Table] | None = None, **kw: object) -> dict:
    options: dict = {"schema": WORD_COUNTS, "provenance": PROVENANCE, "input_hashes": HASHES}
    options.update(kw)
    return write_dataset(word_counts() if table is None else table, root, "word_counts", **options)


def canonical(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["category"], r["word"]))


# --- local round trips --------------------------------------------------------------------


def test_round_trip_with_partitions_and_provenance(tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    manifest = write_words(root)
    table = read_dataset(root, "word_counts", WORD_COUNTS)
    assert canonical(table) == canonical(word_counts())
    assert table.schema.equals(WORD_COUNTS)
    assert provenance_of(table.schema)["stage"] == "count"
    assert "tokmix_version" in provenance_of(table.schema)
    assert [f["path"] for f in manifest["files"]] == [
        "category=python/part-00000.parquet",
        "category=two%20words/part-00000.parquet",
        "category=web%2Fen/part-00000.parquet",
        "category=x%3Dy%25z/part-00000.parquet",
    ]
    assert manifest["rows"] == 12
    assert all(f["rows"] == 3 and len(f["sha256"]) == 64 for f in manifest["files"])
    assert manifest["input_hashes"] == HASHES
    assert (manifest["schema"], manifest["schema_version"]) == ("word_counts", 1)
    on_disk = json.loads((tmp_path / "run" / "word_counts" / MANIFEST).read_text())
    assert on_disk == manifest == read_manifest(root, "word_counts")


def test_files_are_plain_hive_parquet(tmp_path: Path) -> None:
    """Other tools read the committed files directly: partition values decode from paths."""
    write_words(str(tmp_path))
    files = [
        str(tmp_path / "word_counts" / f["path"])
        for f in read_manifest(str(tmp_path), "word_counts")["files"]
    ]
    table = pq.read_table(files[2])
    assert table.column_names == ["word", "count"]
    assert table.schema.metadata[b"tokmix.schema"] == b"word_counts"
    hive = pa.dataset.dataset(
        files, partitioning="hive", partition_base_dir=str(tmp_path / "word_counts")
    )
    assert sorted(set(hive.to_table()["category"].to_pylist())) == sorted(CATEGORIES)


def test_several_tables_and_no_partitions(tmp_path: Path) -> None:
    root = str(tmp_path)
    manifest = write_words(root, [word_counts(["a", "b"]), word_counts(["b"], words=2)])
    assert [f["path"] for f in manifest["files"]] == [
        "category=a/part-00000.parquet",
        "category=b/part-00000.parquet",
        "category=b/part-00001.parquet",
    ]
    assert read_dataset(root, "word_counts", WORD_COUNTS).num_rows == 8
    stats = pa.Table.from_pylist(
        [
            {
                "category": "a",
                "pretokenizer": "gpt2",
                "documents": 1,
                "bytes": 2,
                "chars": 2,
                "pretokens": 1,
                "distinct_words": 1,
                "invalid_utf8_documents": 0,
                "files": 1,
            }
        ],
        schema=CORPUS_STATS,
    )
    manifest = write_dataset(
        stats,
        root,
        "corpus_stats/pretokenizer=gpt2",
        schema=CORPUS_STATS,
        partition_cols=(),
        provenance={},
        input_hashes={},
    )
    assert [f["path"] for f in manifest["files"]] == ["part-00000.parquet"]
    back = read_dataset(root, "corpus_stats/pretokenizer=gpt2", CORPUS_STATS)
    assert back.to_pylist() == stats.to_pylist()


def test_empty_dataset(tmp_path: Path) -> None:
    manifest = write_words(str(tmp_path), word_counts([]))
    assert manifest["files"] == []
    table = read_dataset(str(tmp_path), "word_counts", WORD_COUNTS)
    assert table.num_rows == 0 and table.schema.equals(WORD_COUNTS)
    assert is_committed(str(tmp_path), "word_counts", HASHES)


def test_filters_prune_partitions_before_opening_files(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_words(root)
    (tmp_path / "word_counts" / "category=python" / "part-00000.parquet").write_bytes(b"broken")
    table = read_dataset(root, "word_counts", WORD_COUNTS, filters=[("category", "=", "web/en")])
    assert set(table["category"].to_pylist()) == {"web/en"}
    rows = read_dataset(
        root,
        "word_counts",
        WORD_COUNTS,
        filters=[("category", "in", ["web/en", "two words"]), ("count", ">", 2)],
    )
    assert sorted(rows["category"].to_pylist()) == ["two words", "web/en"]


def test_rewrite_is_deterministic_and_removes_old_files(tmp_path: Path) -> None:
    root = str(tmp_path)
    first = write_words(root, [word_counts(["a"]), word_counts(["a"])])
    second = write_words(root, [word_counts(["a"]), word_counts(["a"])])
    assert [f["sha256"] for f in first["files"]] == [f["sha256"] for f in second["files"]]
    write_words(root, word_counts(["a"]))
    part = tmp_path / "word_counts" / "category=a"
    assert sorted(p.name for p in part.iterdir()) == ["part-00000.parquet"]
    nested = tmp_path / "word_counts" / "inner"
    write_dataset(
        word_counts(["z"]),
        str(tmp_path / "word_counts"),
        "inner",
        schema=WORD_COUNTS,
        provenance={},
        input_hashes={},
    )
    write_words(root, word_counts(["a"]))
    assert (nested / MANIFEST).exists(), "a nested dataset is not another dataset's stray"


# --- commit semantics ---------------------------------------------------------------------


def test_uncommitted_dataset_is_not_read(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_words(root)
    (tmp_path / "word_counts" / MANIFEST).unlink()
    assert not is_committed(root, "word_counts", HASHES)
    with pytest.raises(DatasetError, match="not a committed dataset"):
        read_dataset(root, "word_counts", WORD_COUNTS)
    with pytest.raises(DatasetError, match="not a committed dataset"):
        read_dataset(root, "never_written", WORD_COUNTS)


def test_files_outside_the_manifest_are_ignored(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_words(root)
    stray = tmp_path / "word_counts" / "category=python" / "part-00007.parquet"
    pq.write_table(word_counts(["python"]).drop_columns(["category"]), stray)
    (tmp_path / "word_counts" / "category=ghost").mkdir()
    pq.write_table(
        word_counts(["ghost"]), tmp_path / "word_counts" / "category=ghost" / "p.parquet"
    )
    assert canonical(read_dataset(root, "word_counts", WORD_COUNTS)) == canonical(word_counts())


def test_is_committed(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert not is_committed(root, "word_counts", HASHES)
    write_words(root)
    assert is_committed(root, "word_counts", HASHES)
    assert is_committed(root, "word_counts", dict(reversed(HASHES.items())), schema=WORD_COUNTS)
    assert not is_committed(root, "word_counts", {**HASHES, "corpus": "changed"})
    assert not is_committed(root, "word_counts", {"corpus": "abc123"})
    assert not is_committed(root, "word_counts", HASHES, schema=TRAJECTORIES)
    old = WORD_COUNTS.with_metadata({**WORD_COUNTS.metadata, b"tokmix.schema_version": b"2"})
    assert not is_committed(root, "word_counts", HASHES, schema=old)


def test_missing_or_truncated_file_uncommits(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_words(root)
    path = tmp_path / "word_counts" / "category=python" / "part-00000.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not is_committed(root, "word_counts", HASHES)
    path.unlink()
    assert not is_committed(root, "word_counts", HASHES)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_parquet_is_a_dataset_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    root = str(tmp_path)
    write_words(root)
    path = tmp_path / "word_counts" / "category=web%2Fen" / "part-00000.parquet"
    data = path.read_bytes()
    path.write_bytes(data[:-20] if damage == "truncate" else b"x" * len(data))
    with pytest.raises(DatasetError, match="re-run the stage") as info:
        read_dataset(root, "word_counts", WORD_COUNTS)
    assert str(path) in str(info.value)


def test_wrong_schema_is_a_dataset_error(tmp_path: Path) -> None:
    root = str(tmp_path)
    write_words(root)
    with pytest.raises(DatasetError, match="expected a tokmix trajectories dataset"):
        read_dataset(root, "word_counts", TRAJECTORIES)
    newer = WORD_COUNTS.with_metadata({**WORD_COUNTS.metadata, b"tokmix.schema_version": b"2"})
    with pytest.raises(DatasetError, match="schema version 1"):
        read_dataset(root, "word_counts", newer)


def test_table_must_fit_the_schema(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="lacks columns"):
        write_words(str(tmp_path), word_counts().drop_columns(["count"]))
    bad = pa.table({"category": [""], "word": [b"w"], "count": [1]})
    with pytest.raises(DatasetError, match="empty value"):
        write_words(str(tmp_path), bad)


# --- S3 (a real moto server: the moto_endpoint / s3_root fixtures of tests/conftest.py) -----


def test_s3_dataset_round_trip(s3_root: str) -> None:
    manifest = write_words(s3_root)
    assert is_committed(s3_root, "word_counts", HASHES)
    assert not is_committed(s3_root, "word_counts", {**HASHES, "corpus": "other"})
    table = read_dataset(s3_root, "word_counts", WORD_COUNTS, filters=[("category", "=", "web/en")])
    assert canonical(table) == [r for r in canonical(word_counts()) if r["category"] == "web/en"]
    fs, _ = filesystem_for(s3_root)
    stray = f"{s3_root}/word_counts/category=python/part-00009.parquet"
    fs.pipe_file(stray, b"not parquet")
    assert canonical(read_dataset(s3_root, "word_counts", WORD_COUNTS)) == canonical(word_counts())
    write_words(s3_root)  # a re-run removes the stray and commits the same files again
    assert not fs.exists(stray)
    assert read_manifest(s3_root, "word_counts")["files"] == manifest["files"]
    fs.rm_file(f"{s3_root}/word_counts/{MANIFEST}")
    assert not is_committed(s3_root, "word_counts", HASHES)


def test_s3_corrupt_file(s3_root: str) -> None:
    write_words(s3_root)
    fs, _ = filesystem_for(s3_root)
    url = f"{s3_root}/word_counts/category=two%20words/part-00000.parquet"
    fs.pipe_file(url, b"garbage")
    with pytest.raises(DatasetError, match="re-run the stage") as info:
        read_dataset(s3_root, "word_counts", WORD_COUNTS)
    assert url in str(info.value)


def test_s3_corpus_prefix_glob_and_compression(s3_root: str) -> None:
    fs, _ = filesystem_for(s3_root)
    lines = [json.dumps({"text": f"doc {i} héllo"}) for i in range(6)]
    fs.pipe_file(f"{s3_root}/corpus/a.jsonl.gz", gzip.compress("\n".join(lines[:3]).encode()))
    fs.pipe_file(f"{s3_root}/corpus/sub/b.jsonl", "\n".join(lines[3:]).encode())
    fs.pipe_file(f"{s3_root}/corpus/_SUCCESS", b"")
    fs.pipe_file(f"{s3_root}/corpus-other.txt", b"other")
    assert expand(f"{s3_root}/corpus/") == [
        f"{s3_root}/corpus/a.jsonl.gz",
        f"{s3_root}/corpus/sub/b.jsonl",
    ]
    assert expand(f"{s3_root}/corpus") == expand(f"{s3_root}/corpus/")
    assert expand(f"{s3_root}/corpus-") == [f"{s3_root}/corpus-other.txt"]
    assert expand(f"{s3_root}/**/*.jsonl") == [f"{s3_root}/corpus/sub/b.jsonl"]
    docs = list(iter_documents(f"{s3_root}/corpus/"))
    assert [d.text for d in docs] == [f"doc {i} héllo" for i in range(6)]
    assert docs[0].source == f"{s3_root}/corpus/a.jsonl.gz"
    table = read_category(f"{s3_root}/corpus", GPT2, max_bytes=40)
    assert (table.documents, table.files) == (3, 1)


def test_a_failed_rewrite_leaves_the_dataset_uncommitted(tmp_path: Path) -> None:
    """The old manifest goes before any file is overwritten, so a crash half-way through a
    re-run can never leave a manifest vouching for files that have changed."""
    root = str(tmp_path)
    write_words(root)
    broken = word_counts(["python"]).drop_columns(["count"])
    with pytest.raises(DatasetError):
        write_words(root, [word_counts(["python"], words=1), broken])
    assert not is_committed(root, "word_counts", HASHES)
    with pytest.raises(DatasetError, match="not a committed dataset"):
        read_dataset(root, "word_counts", WORD_COUNTS)
