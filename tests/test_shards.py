"""Sharded reading equals reading the corpus as one stream (tokmix.io.shards).

The oracle is tokmix.io.corpus.iter_documents, the sequential reader of the core issue.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokmix.errors import CorpusReadError
from tokmix.io.corpus import iter_documents
from tokmix.io.shards import plan_shards, sample_plan, shard_documents

TEXTS = [
    "plain ascii",
    "naïve café — ünïcödé",
    "line\nbreaks\ninside",
    "",
    "emoji 🙂🙃",
    "x" * 300,
    "汉字かな交じり文",
    "\ufeffbom-looking text",
]


def _jsonl(path: Path, texts: list[str], *, bom: bool = False, blank_every: int = 0) -> str:
    lines = []
    for i, t in enumerate(texts):
        lines.append(json.dumps({"text": t}, ensure_ascii=i % 2 == 0))
        if blank_every and i % blank_every == 0:
            lines.append("")
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return str(path)


def _sharded_texts(paths: list[str], shard_bytes: int, **options: str) -> list[str]:
    shards = plan_shards(
        "c",
        paths,
        shard_bytes=shard_bytes,
        txt_mode=options.get("txt_mode", "file"),  # type: ignore[arg-type]
    )
    return [d.text for s in shards for d in shard_documents(s, **options)]  # type: ignore[arg-type]


@pytest.mark.parametrize("shard_bytes", [1, 7, 64, 1000, 10**9])
def test_byte_range_shards_cover_every_document_once(tmp_path: Path, shard_bytes: int) -> None:
    rng = random.Random(shard_bytes)
    texts = [rng.choice(TEXTS) + str(i) for i in range(60)]
    path = _jsonl(tmp_path / "a.jsonl", texts, bom=True, blank_every=7)
    expected = [d.text for d in iter_documents(path)]
    assert expected == texts
    assert _sharded_texts([path], shard_bytes) == expected


@pytest.mark.parametrize("shard_bytes", [1, 5, 40, 10**6])
def test_txt_line_mode_shards(tmp_path: Path, shard_bytes: int) -> None:
    body = "first line\r\n\nsecond\n   \nthird ünï\nno newline at end"
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    expected = [d.text for d in iter_documents(str(path), txt_mode="line")]
    assert expected == ["first line", "second", "third ünï", "no newline at end"]
    assert _sharded_texts([str(path)], shard_bytes, txt_mode="line") == expected


def test_parquet_row_group_shards(tmp_path: Path) -> None:
    texts = [f"document {i} " + "y" * (i % 50) for i in range(500)]
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": texts}), path, row_group_size=37)
    shards = plan_shards("c", str(path), shard_bytes=500)
    assert len(shards) > 3 and {s.kind for s in shards} == {"rows"}
    docs = [d for s in shards for d in shard_documents(s)]
    assert [d.text for d in docs] == texts
    assert [d.index for d in docs] == list(range(500))


def test_compressed_and_paragraph_files_are_whole_shards(tmp_path: Path) -> None:
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"text": "a"}\n{"text": "b"}\n' * 50))
    para = tmp_path / "c.txt"
    para.write_text("p1 line1\np1 line2\n\np2\n" * 50)
    shards = plan_shards("c", [str(gz), str(para)], shard_bytes=10, txt_mode="paragraph")
    assert [s.kind for s in shards] == ["file", "file"]
    got = _sharded_texts([str(gz), str(para)], 10, txt_mode="paragraph")
    want = [d.text for d in iter_documents([str(gz), str(para)], txt_mode="paragraph")]
    assert got == want


def test_errors_in_later_shards_name_the_byte_offset(tmp_path: Path) -> None:
    good = json.dumps({"text": "fine"}) + "\n"
    path = tmp_path / "bad.jsonl"
    path.write_text(good * 20 + "{not json\n" + good * 5)
    offset = len(good) * 20
    shards = plan_shards("c", str(path), shard_bytes=50)
    with pytest.raises(CorpusReadError, match=rf"bad.jsonl: byte {offset}: not valid JSON"):
        for s in shards:
            list(shard_documents(s))


def test_empty_file_is_refused_when_planning(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(CorpusReadError, match=r"empty\.jsonl: empty file"):
        plan_shards("c", str(tmp_path / "empty.jsonl"), shard_bytes=10)


def test_missing_path_is_refused_when_planning(tmp_path: Path) -> None:
    with pytest.raises(CorpusReadError, match="nowhere"):
        plan_shards("c", str(tmp_path / "nowhere" / "*.jsonl"), shard_bytes=10)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.lists(st.integers(0, 50), max_size=8), min_size=1, max_size=6),
    max_bytes=st.one_of(st.none(), st.integers(0, 300)),
    skip=st.integers(0, 20),
)
def test_sample_plan_equals_sequential_sampling(
    sizes: list[list[int]], max_bytes: int | None, skip: int
) -> None:
    """Brute force: walk every document in order with the sequential rule."""
    flat = [(k, j, size) for k, shard in enumerate(sizes) for j, size in enumerate(shard)]
    expected, used = [], 0
    for k, j, size in flat[skip:]:
        if max_bytes is not None and used + size > max_bytes:
            break
        used += size
        expected.append((k, j))
    shards = plan_shards_stub(len(sizes))
    doc_bytes = [np.array(s, dtype=np.int64) for s in sizes]
    plan = sample_plan(shards, doc_bytes, max_bytes=max_bytes, skip_documents=skip)
    got = []
    for p in plan:
        k = p.shard.number
        stop = len(sizes[k]) if p.take is None else p.skip + p.take
        got += [(k, j) for j in range(p.skip, stop)]
    assert got == expected


def plan_shards_stub(n: int) -> list:
    from tokmix.io.shards import Shard

    return [Shard("c", k, f"f{k}", "file", 0, 1, 1) for k in range(n)]
