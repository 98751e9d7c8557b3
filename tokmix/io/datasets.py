"""Parquet datasets that commit atomically with a ``_SUCCESS`` manifest (ARCHITECTURE.md §7).

A stage writes ``<root>/<dataset>/``: hive-partitioned data files with deterministic names
(``category=python/part-00000.parquet``, one per input table and partition), then, last, the
``_SUCCESS`` manifest naming every file with its partition values, rows, size and sha256, plus
the schema, the input hashes, the provenance and the tokmix version. The manifest is the commit:

- readers read only the files the manifest names, so a half-written stage, a stray file from a
  killed run or a file of an older run is never read;
- a re-run first uncommits the dataset (the old manifest's file list moves to a ``_PREVIOUS``
  journal, then the manifest is deleted), overwrites files by name (nothing duplicates), writes
  the new manifest, then removes the files that an earlier manifest named and the new one does
  not. Nothing else is ever deleted: a file tokmix did not list (a user's, or a part of a killed
  attempt that never committed) stays, and is never read;
- :func:`is_committed` is true only when the manifest's input hashes are the caller's and its
  files are all there at their recorded sizes, so a re-run with the same inputs skips the
  stage and a killed run resumes from the last committed one.

This needs no rename, so it is the same on local disks and object stores (an S3 PUT is atomic;
locally the manifest is written to a temporary sibling and renamed). Partition values are
URL-quoted in paths (``category=web%2Fen``), and readers take them from the manifest, never
by parsing paths. Partition columns are not stored inside the files (the hive convention, so
pyarrow, DuckDB and Polars read a committed dataset's files directly).
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import posixpath
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeAlias
from urllib.parse import quote

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tokmix import __version__
from tokmix.errors import DatasetError
from tokmix.io.fs import ensure_parent, filesystem_for, join, to_url, write_bytes_atomic
from tokmix.schemas import (
    PROVENANCE_KEY,
    SCHEMA_KEY,
    VERSION_KEY,
    check_schema,
    provenance_of,
    with_provenance,
)

MANIFEST = "_SUCCESS"
DIGEST_KEY = b"tokmix.manifest_digest"
"""Metadata key of a read table: the digest of the manifest it was read under."""
PREVIOUS = "_PREVIOUS"
"""Files that earlier manifests of an uncommitted dataset named: what its commit may delete."""
MANIFEST_FORMAT = 1
PARQUET_COMPRESSION = "zstd"

Filters: TypeAlias = pc.Expression | list[tuple[Any, ...]] | list[list[tuple[Any, ...]]]
"""Row filters: a pyarrow expression or the DNF tuple lists of ``pyarrow.parquet``."""


# --- writing -------------------------------------------------------------------------------


def write_dataset(
    tables: pa.Table | Iterable[pa.Table],
    root_url: str,
    dataset_name: str,
    *,
    schema: pa.Schema,
    partition_cols: Sequence[str] = ("category",),
    provenance: dict[str, Any],
    input_hashes: dict[str, Any],
) -> dict[str, Any]:
    """Write and commit ``root_url/dataset_name``; returns the manifest it committed.

    Each table (cast to ``schema``) is split on ``partition_cols``; its ``i``-th table gives
    ``part-{i:05d}.parquet`` in each of its partitions, so a re-run overwrites rather than
    duplicates. ``provenance`` goes into every file's schema metadata and the manifest;
    ``input_hashes`` is what :func:`is_committed` compares on the next run.
    """
    begin_dataset(root_url, dataset_name)
    entries: list[dict[str, Any]] = []
    for number, table in enumerate([tables] if isinstance(tables, pa.Table) else tables):
        entries += write_part(
            table,
            root_url,
            dataset_name,
            number,
            schema=schema,
            partition_cols=partition_cols,
            provenance=provenance,
        )
    return commit_dataset(
        root_url,
        dataset_name,
        entries,
        schema=schema,
        partition_cols=partition_cols,
        provenance=provenance,
        input_hashes=input_hashes,
    )


def begin_dataset(root_url: str, dataset_name: str) -> None:
    """Uncommit ``root_url/dataset_name`` before its parts are (re)written.

    Distributed stages call this once in the driver, let workers :func:`write_part`, and
    commit the entries they return with :func:`commit_dataset`.
    """
    fs, base = filesystem_for(join(root_url, dataset_name))
    _uncommit(fs, base)


def write_part(
    table: pa.Table,
    root_url: str,
    dataset_name: str,
    number: int,
    *,
    schema: pa.Schema,
    partition_cols: Sequence[str],
    provenance: dict[str, Any],
) -> list[dict[str, Any]]:
    """Write part ``number`` of an uncommitted dataset (one file per partition of ``table``);
    the manifest entries of the files written. A retried part overwrites its own files."""
    _check_partition_cols(schema, partition_cols, dataset_name)
    fs, base = filesystem_for(join(root_url, dataset_name))
    file_schema = _file_schema(with_provenance(schema, provenance), partition_cols)
    entries = []
    conformed = _conform(table, schema, dataset_name)
    for values, part in _partitions(conformed, partition_cols, dataset_name):
        rel = _file_name(partition_cols, values, number)
        data = part.drop_columns(list(partition_cols)).cast(file_schema)
        entry = _write_file(fs, posixpath.join(base, rel), data)
        partition = dict(zip(partition_cols, values, strict=True))
        entries.append({"path": rel, "partition": partition, **entry})
    return entries


def commit_dataset(
    root_url: str,
    dataset_name: str,
    entries: list[dict[str, Any]],
    *,
    schema: pa.Schema,
    partition_cols: Sequence[str],
    provenance: dict[str, Any],
    input_hashes: dict[str, Any],
) -> dict[str, Any]:
    """Commit the parts named by ``entries``: write the manifest last, then delete stray
    files of earlier attempts. Returns the manifest."""
    fs, base = filesystem_for(join(root_url, dataset_name))
    file_schema = _file_schema(with_provenance(schema, provenance), partition_cols)
    entries = sorted(entries, key=lambda e: e["path"])
    manifest = _manifest(dataset_name, schema, file_schema, partition_cols, input_hashes, entries)
    payload = json.dumps(manifest, indent=1, sort_keys=True).encode()
    previous = _previous_files(fs, base)
    write_bytes_atomic(fs, posixpath.join(base, MANIFEST), payload)
    _remove_replaced(fs, base, previous - {e["path"] for e in entries})
    return manifest


def _check_partition_cols(schema: pa.Schema, cols: Sequence[str], name: str) -> None:
    missing = [c for c in cols if c not in schema.names]
    if missing:
        raise ValueError(f"{name}: partition columns {missing} are not in the schema")


def _file_schema(schema: pa.Schema, partition_cols: Sequence[str]) -> pa.Schema:
    """The schema stored in each file: ``schema`` less the partition columns (in the path)."""
    for col in partition_cols:
        schema = schema.remove(schema.get_field_index(col))
    return schema


def _conform(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, order and types."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise DatasetError(f"{name}: the table to write lacks columns {missing}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise DatasetError(f"{name}: the table to write does not fit its schema ({exc})") from exc


def _partitions(
    table: pa.Table, cols: Sequence[str], name: str
) -> list[tuple[tuple[Any, ...], pa.Table]]:
    """``(values, rows)`` per distinct value combination of ``cols``, in sorted value order."""
    if not cols:
        return [((), table)] if table.num_rows else []
    combos = table.group_by(list(cols)).aggregate([]).select(list(cols)).to_pylist()
    keys = [tuple(c[col] for col in cols) for c in combos]
    for key in keys:
        if any(v is None or v == "" for v in key):
            raise DatasetError(f"{name}: partition columns {list(cols)} hold an empty value {key}")
    spans = _spans(table, cols)
    parts = []
    for key in sorted(keys):
        if spans is not None:
            parts.append((key, table.slice(*spans[key])))
            continue
        masks = [pc.equal(table[c], pa.scalar(v)) for c, v in zip(cols, key, strict=True)]
        parts.append((key, table.filter(functools.reduce(pc.and_, masks))))
    return parts


def _spans(table: pa.Table, cols: Sequence[str]) -> dict[tuple[Any, ...], tuple[int, int]] | None:
    """``(offset, length)`` of each value combination of ``cols`` when each one's rows are
    contiguous (a table built partition by partition, as the count stage builds its word
    tables), else None. One pass over the table, where a filter per value would make a part
    with many categories cost categories x rows."""
    n = table.num_rows
    if n < 2:
        return None
    changed = functools.reduce(
        pc.or_,
        [pc.not_equal(table[c].slice(1), table[c].slice(0, n - 1)) for c in cols],
    )
    starts = [0, *(np.flatnonzero(changed.to_numpy(zero_copy_only=False)) + 1).tolist()]
    first_rows = table.select(list(cols)).take(pa.array(starts)).to_pylist()
    run_keys = [tuple(row[c] for c in cols) for row in first_rows]
    if len(set(run_keys)) < len(run_keys):
        return None
    ends = [*starts[1:], n]
    return {k: (s, e - s) for k, s, e in zip(run_keys, starts, ends, strict=True)}


def partition_dir(cols: Sequence[str], values: Sequence[Any]) -> str:
    """``col=value/...`` with each value URL-quoted, so ``/``, spaces and ``=`` stay in one
    path segment (and decode as pyarrow's hive partitioning expects)."""
    return "/".join(f"{c}={quote(str(v), safe='')}" for c, v in zip(cols, values, strict=True))


def _file_name(cols: Sequence[str], values: Sequence[Any], number: int) -> str:
    name = f"part-{number:05d}.parquet"
    return f"{partition_dir(cols, values)}/{name}" if cols else name


class _HashingWriter:
    """A write-only file that counts and hashes what passes through it, so a file's size and
    sha256 come without reading it back (one pass, also on S3)."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._sink.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def _write_file(fs: fsspec.AbstractFileSystem, path: str, table: pa.Table) -> dict[str, Any]:
    ensure_parent(fs, path)
    with fs.open(path, "wb") as sink:
        writer = _HashingWriter(sink)
        pq.write_table(table, writer, compression=PARQUET_COMPRESSION)
    return {"rows": table.num_rows, "bytes": writer.size, "sha256": writer.sha256.hexdigest()}


def _manifest(
    name: str,
    schema: pa.Schema,
    file_schema: pa.Schema,
    partition_cols: Sequence[str],
    input_hashes: dict[str, Any],
    entries: list[dict[str, Any]],
) -> dict[str, Any]:
    meta = schema.metadata or {}
    return {
        "format": MANIFEST_FORMAT,
        "dataset": name,
        "schema": meta.get(SCHEMA_KEY, b"").decode(),
        "schema_version": int(meta.get(VERSION_KEY, b"0")),
        "tokmix_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input_hashes": _jsonable(input_hashes),
        "provenance": provenance_of(file_schema),
        "partition_cols": list(partition_cols),
        "rows": sum(e["rows"] for e in entries),
        "files": entries,
    }


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as it reads back from JSON, so comparisons with a manifest are exact."""
    result: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True, default=str))
    return result


def _uncommit(fs: fsspec.AbstractFileSystem, base: str) -> None:
    """Delete the manifest, first adding the files it named to the ``_PREVIOUS`` journal, so the
    next commit knows which files are tokmix's to delete even if this run is killed first."""
    manifest = posixpath.join(base, MANIFEST)
    if not fs.exists(manifest):
        return
    write_bytes_atomic(
        fs,
        posixpath.join(base, PREVIOUS),
        json.dumps(sorted(_previous_files(fs, base))).encode(),
    )
    fs.rm_file(manifest)


def _previous_files(fs: fsspec.AbstractFileSystem, base: str) -> set[str]:
    """Files named by the current manifest or the ``_PREVIOUS`` journal (relative paths)."""
    files: set[str] = set()
    committed = _load_manifest(fs, base)
    if committed is not None:
        files.update(e["path"] for e in committed.get("files", []))
    journal = posixpath.join(base, PREVIOUS)
    try:
        listed = json.loads(fs.cat_file(journal))
    except (FileNotFoundError, ValueError):
        listed = []
    files.update(p for p in listed if isinstance(p, str))
    return {p for p in files if _safe_relative(p)}


def _safe_relative(path: str) -> bool:
    """A manifest's path that stays inside its dataset (a tampered manifest cannot make a
    commit delete files elsewhere)."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "" not in parts


def _remove_replaced(fs: fsspec.AbstractFileSystem, base: str, stale: set[str]) -> None:
    """Delete files earlier manifests named and the new one doesn't, then the journal."""
    for rel in sorted(stale):
        path = posixpath.join(base, rel)
        if fs.exists(path):
            fs.rm_file(path)
    journal = posixpath.join(base, PREVIOUS)
    if fs.exists(journal):
        fs.rm_file(journal)


# --- reading -------------------------------------------------------------------------------


def read_manifest(root_url: str, dataset_name: str) -> dict[str, Any]:
    """The committed manifest of ``root_url/dataset_name``; :class:`DatasetError` if none."""
    fs, base = filesystem_for(join(root_url, dataset_name))
    manifest = _load_manifest(fs, base)
    if manifest is None:
        raise DatasetError(
            f"{to_url(fs, base)} is not a committed dataset (no readable {MANIFEST}); "
            "run the stage that writes it, or check the output root"
        )
    return manifest


def content_digest(manifest: dict[str, Any]) -> str:
    """A hash of what a committed dataset holds (its name and every file's path and sha256,
    from the manifest): what a later stage records as its input, without reading the data."""
    h = hashlib.sha256(manifest["dataset"].encode())
    for entry in sorted(manifest["files"], key=lambda e: e["path"]):
        h.update(f"{entry['path']}\0{entry['sha256']}\0".encode())
    return h.hexdigest()


def _load_manifest(fs: fsspec.AbstractFileSystem, base: str) -> dict[str, Any] | None:
    try:
        raw = fs.cat_file(posixpath.join(base, MANIFEST))
        manifest = json.loads(raw)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    return manifest


def is_committed(
    root_url: str,
    dataset_name: str,
    input_hashes: dict[str, Any],
    *,
    schema: pa.Schema | None = None,
) -> bool:
    """Whether the dataset is committed from these inputs, so its stage can be skipped.

    True only if the manifest exists, records exactly ``input_hashes`` (and ``schema``'s name
    and version, when given), and every file it names is present at its recorded size. Any
    doubt is False: re-running a stage is safe, trusting a broken one is not.
    """
    fs, base = filesystem_for(join(root_url, dataset_name))
    manifest = _load_manifest(fs, base)
    if manifest is None or manifest.get("input_hashes") != _jsonable(input_hashes):
        return False
    if schema is not None and not _same_schema_version(manifest, schema):
        return False
    sizes = {
        path[len(base.rstrip("/")) + 1 :]: info.get("size")
        for path, info in fs.find(base, detail=True).items()
    }
    return all(sizes.get(f["path"]) == f["bytes"] for f in manifest["files"])


def _same_schema_version(manifest: dict[str, Any], schema: pa.Schema) -> bool:
    meta = schema.metadata or {}
    return (
        manifest.get("schema") == meta.get(SCHEMA_KEY, b"").decode()
        and str(manifest.get("schema_version")) == meta.get(VERSION_KEY, b"").decode()
    )


def read_dataset(
    root_url: str,
    dataset_name: str,
    schema: pa.Schema,
    filters: Filters | None = None,
) -> pa.Table:
    """The rows of a committed dataset, from the files its manifest names only.

    ``filters`` prune whole partitions from the manifest's values before any file is opened,
    then filter rows. Each file's schema is checked against ``schema``
    (:func:`tokmix.schemas.check_schema`); a corrupt or truncated file is a
    :class:`DatasetError` naming it. The result carries ``schema``'s metadata with the
    provenance the writer recorded.
    """
    manifest = read_manifest(root_url, dataset_name)
    fs, base = filesystem_for(join(root_url, dataset_name))
    where = to_url(fs, base)
    if not _same_schema_version(manifest, schema):
        check_schema(_manifest_schema(manifest), schema, where)
    expression = _expression(filters)
    dataset = _manifest_dataset(fs, base, manifest, schema)
    fragments = (
        dataset.get_fragments() if expression is None else dataset.get_fragments(filter=expression)
    )
    try:
        tables = [
            _read_fragment(fragment, schema, expression, to_url(fs, fragment.path), manifest)
            for fragment in fragments
        ]
    except DatasetError:
        _check_unchanged(fs, base, manifest, where)  # a file gone because it was recommitted
        raise
    _check_unchanged(fs, base, manifest, where)
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return table.replace_schema_metadata(_result_metadata(schema, manifest))


def _check_unchanged(
    fs: fsspec.AbstractFileSystem, base: str, manifest: dict[str, Any], where: str
) -> None:
    after = _load_manifest(fs, base)
    if after is None or content_digest(after) != content_digest(manifest):
        raise DatasetError(
            f"{where} changed while it was being read (another run is writing this output "
            "root?); re-run when that run is done"
        )


def digest_of(table: pa.Table) -> str:
    """The :func:`content_digest` of the committed dataset ``table`` was read from (by
    :func:`read_dataset`): what a later stage records as the input it actually used."""
    meta = table.schema.metadata or {}
    if DIGEST_KEY not in meta:
        raise ValueError("this table was not read by tokmix.io.datasets.read_dataset")
    return meta[DIGEST_KEY].decode()


def _manifest_schema(manifest: dict[str, Any]) -> pa.Schema:
    """A field-less schema carrying the manifest's schema name and version (for errors)."""
    return pa.schema(
        [],
        metadata={
            SCHEMA_KEY: str(manifest.get("schema") or "no tokmix schema").encode(),
            VERSION_KEY: str(manifest.get("schema_version", "?")).encode(),
        },
    )


def _expression(filters: Filters | None) -> pc.Expression | None:
    if filters is None or isinstance(filters, pc.Expression):
        return filters
    expression: pc.Expression = pq.filters_to_expression(filters)
    return expression


def _manifest_dataset(
    fs: fsspec.AbstractFileSystem, base: str, manifest: dict[str, Any], schema: pa.Schema
) -> ds.FileSystemDataset:
    """A pyarrow dataset of exactly the manifest's files, partition values from the manifest."""
    paths = [posixpath.join(base, f["path"]) for f in manifest["files"]]
    partitions = [_partition_expression(f["partition"], schema) for f in manifest["files"]]
    return ds.FileSystemDataset.from_paths(
        paths,
        schema=schema,
        format=ds.ParquetFileFormat(),
        filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(fs)),
        partitions=partitions,
    )


def _partition_expression(values: dict[str, Any], schema: pa.Schema) -> pc.Expression:
    terms = [pc.field(c) == pa.scalar(v, schema.field(c).type) for c, v in values.items()]
    return functools.reduce(operator.and_, terms) if terms else pc.scalar(True)


def _read_fragment(
    fragment: ds.Fragment,
    schema: pa.Schema,
    expression: pc.Expression | None,
    url: str,
    manifest: dict[str, Any],
) -> pa.Table:
    """One file's rows (partition columns added), its schema checked, read errors named."""
    try:
        physical = fragment.physical_schema
        for col in manifest["partition_cols"]:
            if col not in physical.names:
                physical = physical.append(schema.field(col))
        check_schema(physical, schema, url)
        return fragment.to_table(schema=schema, filter=expression)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(
            f"{url}: corrupt, truncated or unreadable Parquet ({exc}); re-run the stage that "
            f"writes {manifest['dataset']} (delete its {MANIFEST} first if the stage skips)"
        ) from exc


def _result_metadata(schema: pa.Schema, manifest: dict[str, Any]) -> dict[bytes, bytes]:
    meta = dict(schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(manifest.get("provenance", {}), sort_keys=True).encode()
    meta[DIGEST_KEY] = content_digest(manifest).encode()
    return meta
