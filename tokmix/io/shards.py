"""Splitting a category's corpus into shards that Ray workers read independently.

One huge file must still spread over workers, so a shard is a piece of a file:

- ``bytes``: a byte range of an uncompressed JSON-lines file (or ``.txt`` read per line). A shard
  owns the lines that *start* inside its range, so neighbours never share or drop a line.
- ``rows``: a run of row groups of a Parquet file.
- ``file``: a whole file; compressed streams (``.gz``, ``.zst``) cannot be entered mid-way, and a
  ``.txt`` file read whole or per paragraph needs its context.

Shards are listed in the order :func:`tokmix.io.corpus.iter_documents` visits documents, so
the sample of a category (whole documents up to a byte budget, after ``skip_documents``) is
the same however it is sharded: :func:`sample_plan` turns per-shard document sizes into what
each shard contributes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pyarrow.parquet as pq

from tokmix.errors import CorpusReadError
from tokmix.io.corpus import (
    BOM,
    JSON_SUFFIXES,
    Document,
    Lines,
    OnInvalidUtf8,
    TxtMode,
    corpus_files,
    file_documents,
    jsonl_documents,
    parquet_documents,
    split_suffix,
    txt_documents,
    unreadable_message,
)
from tokmix.io.fs import filesystem_for

ShardKind = Literal["file", "bytes", "rows"]
_READ_AHEAD = 1 << 20


@dataclass(frozen=True)
class Shard:
    """A piece of one file: ``[start, end)`` bytes (``bytes``) or row groups (``rows``)."""

    category: str
    number: int
    url: str
    kind: ShardKind
    start: int
    end: int
    size: int
    """Bytes of the file this shard covers (stored size): what progress and ETA count."""


def plan_shards(
    category: str,
    paths: str | Sequence[str],
    *,
    shard_bytes: int,
    txt_mode: TxtMode = "file",
    seed: int | None = None,
) -> list[Shard]:
    """The shards of a category's files, in sample order."""
    shards: list[Shard] = []
    for url in corpus_files(paths, seed=seed):
        fs, path = filesystem_for(url)
        try:
            size = int(fs.info(path)["size"])
        except FileNotFoundError:
            raise CorpusReadError(f"{url}: file vanished while planning the run") from None
        if size == 0:
            raise CorpusReadError(
                f"{url}: empty file (no documents); remove it or leave it out of the path spec"
            )
        suffix, codec = split_suffix(url)
        splittable = codec is None and (
            suffix in JSON_SUFFIXES or (suffix == ".txt" and txt_mode == "line")
        )
        if splittable and size > shard_bytes:
            for start in range(0, size, shard_bytes):
                end = min(size, start + shard_bytes)
                shards.append(Shard(category, len(shards), url, "bytes", start, end, end - start))
        elif suffix == ".parquet" and codec is None and size > shard_bytes:
            shards += _row_group_shards(category, url, shard_bytes, len(shards))
        else:
            shards.append(Shard(category, len(shards), url, "file", 0, size, size))
    return shards


def _row_group_shards(category: str, url: str, shard_bytes: int, number: int) -> list[Shard]:
    fs, path = filesystem_for(url)
    try:
        with fs.open(path, "rb") as raw:
            meta = pq.ParquetFile(raw).metadata
    except Exception as exc:  # pyarrow raises many types for a bad footer
        raise CorpusReadError(unreadable_message(url, None, exc)) from exc
    shards: list[Shard] = []
    first, size = 0, 0
    for g in range(meta.num_row_groups):
        size += meta.row_group(g).total_byte_size
        if size >= shard_bytes or g == meta.num_row_groups - 1:
            shards.append(Shard(category, number + len(shards), url, "rows", first, g + 1, size))
            first, size = g + 1, 0
    return shards or [Shard(category, number, url, "file", 0, 0, 0)]


def shard_documents(
    shard: Shard,
    *,
    text_field: str = "text",
    txt_mode: TxtMode = "file",
    on_invalid_utf8: OnInvalidUtf8 = "replace",
) -> Iterator[Document]:
    """The documents of one shard, in file order. Documents of ``bytes`` shards past the
    first have ``index == -1`` (their position in the file is unknown without reading it
    from the start); errors then name the byte offset instead of the line."""
    if shard.kind == "file":
        yield from file_documents(shard.url, text_field, txt_mode, on_invalid_utf8)
    elif shard.kind == "rows":
        rows = range(shard.start, shard.end)
        yield from parquet_documents(shard.url, text_field, on_invalid_utf8, rows)
    else:
        yield from _byte_range_documents(shard, text_field, txt_mode, on_invalid_utf8)


def _byte_range_documents(
    shard: Shard, text_field: str, txt_mode: TxtMode, on_invalid: OnInvalidUtf8
) -> Iterator[Document]:
    fs, path = filesystem_for(shard.url)
    try:
        with fs.open(path, "rb", block_size=_READ_AHEAD) as stream:
            lines = _range_lines(stream, shard.start, shard.end)
            if shard.url.lower().endswith(".txt"):
                docs = txt_documents(lines, shard.url, False, on_invalid)
            else:
                docs = jsonl_documents(lines, shard.url, text_field, on_invalid)
            for doc in docs:
                yield doc if shard.start == 0 else replace(doc, index=-1)
    except (OSError, EOFError) as exc:
        raise CorpusReadError(unreadable_message(shard.url, None, exc)) from exc


def _range_lines(stream: object, start: int, end: int) -> Lines:
    """Lines that start in ``[start, end)``; the shard holding byte 0 numbers them and drops a
    BOM, later shards know only byte offsets."""
    read = stream.readline  # type: ignore[attr-defined]
    if start == 0:
        offset, number = 0, 1
    else:
        stream.seek(start - 1)  # type: ignore[attr-defined]
        offset = start - 1 + len(read())  # the rest of the line that started before us
        number = None
    while offset < end:
        line = read()
        if not line:
            return
        body = line.removeprefix(BOM) if offset == 0 else line
        yield number, offset + len(line) - len(body), body
        offset += len(line)
        if number is not None:
            number += 1


@dataclass(frozen=True)
class ShardSample:
    """What one shard gives the sample: its documents ``skip .. skip + take`` (``take`` None:
    all after ``skip``)."""

    shard: Shard
    skip: int
    take: int | None


def sample_plan(
    shards: Sequence[Shard],
    doc_bytes: Sequence[np.ndarray] | None,
    *,
    max_bytes: int | None,
    skip_documents: int,
) -> list[ShardSample]:
    """Per-shard document ranges equal to reading the shards in order as one stream.

    ``doc_bytes[k]`` holds the UTF-8 size of every document of shard ``k`` (measured by a
    first pass, needed only with a budget or a skip). The sequential rule — leave out the
    first ``skip_documents`` documents, then stop before the first document that would take
    the sample past ``max_bytes`` — becomes a ``(skip, take)`` per shard; shards after the one
    where the budget runs out are dropped.
    """
    if max_bytes is None and skip_documents == 0:
        return [ShardSample(s, 0, None) for s in shards]
    if doc_bytes is None or len(doc_bytes) != len(shards):
        raise ValueError("a budget or a skip needs the document sizes of every shard")
    plan: list[ShardSample] = []
    to_skip, used = skip_documents, 0
    for shard, sizes in zip(shards, doc_bytes, strict=True):
        skip = min(to_skip, len(sizes))
        to_skip -= skip
        rest = np.asarray(sizes[skip:], dtype=np.int64)
        if max_bytes is None:
            if len(rest):
                plan.append(ShardSample(shard, skip, None))
            continue
        cumulative = used + np.cumsum(rest)
        take = int(np.searchsorted(cumulative, max_bytes, side="right"))
        if take:
            plan.append(ShardSample(shard, skip, take))
            used = int(cumulative[take - 1])
        if take < len(rest):
            break
    return plan
