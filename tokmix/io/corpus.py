"""Reading corpus documents: the one place tokmix touches raw text (ARCHITECTURE.md §3).

Formats, chosen by file suffix, each plain or compressed (``.gz``, ``.zst`` / ``.zstd``,
decompressed as a stream by pyarrow):

- ``.jsonl`` / ``.ndjson`` / ``.json`` — JSON lines (dolma and datatrove write ``.json.gz``
  this way): one object per line, the document in ``text_field`` (default ``"text"``).
  Blank lines are skipped.
- ``.parquet`` — the ``text_field`` column (string or binary), read by record batches.
  Parquet compresses internally, so ``.parquet.gz`` is refused.
- ``.txt`` — by ``txt_mode``:
  ``"file"`` (default) a file is one document, verbatim; right for a directory of files such
  as source code or books, and the least surprising reading of a text file.
  ``"line"`` every non-blank line is a document (its line terminator dropped), the usual
  layout of large crawled dumps. ``"paragraph"`` documents are separated by one or more blank
  lines; each keeps its inner line breaks. A line holding only whitespace counts as blank.

A sample is a deterministic selection of *whole* documents: files in sorted order (or a
seeded, location-independent shuffle of the files), documents in file order, taken until the
next document would push the sample past ``max_bytes`` of UTF-8 text. The same inputs and
options always give the same sample, and ``skip_documents=n`` starts after the first ``n``
documents, so consecutive samples are disjoint.

Text is always valid Unicode that encodes as UTF-8: malformed bytes (and lone surrogates from
JSON ``\\ud800`` escapes) become U+FFFD and the document is flagged ``invalid_utf8``, or, with
``on_invalid_utf8="error"``, a :class:`~tokmix.errors.CorpusReadError` names the file, line and
byte offset. Nothing reads a whole file into memory except ``txt_mode="file"``, whose document
*is* the file (capped at :data:`MAX_FILE_DOCUMENT_BYTES`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from tokmix.errors import CorpusReadError
from tokmix.io.fs import common_root, describe_missing, expand, filesystem_for, relative_to

TxtMode = Literal["file", "line", "paragraph"]
OnInvalidUtf8 = Literal["replace", "error"]

COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
FORMATS = "'.txt', '.jsonl' ('.ndjson', '.json'), '.parquet', optionally '.gz' or '.zst'"
MAX_FILE_DOCUMENT_BYTES = 256 * 2**20
"""Largest ``.txt`` file read whole as one document (``txt_mode="file"``); beyond it a file is
almost certainly a dump of many documents and wants ``"line"`` or ``"paragraph"``."""

_READ_CHUNK = 1 << 20
_PARQUET_BATCH_ROWS = 1024
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
BOM = b"\xef\xbb\xbf"
NEWLINE = b"\n"


@dataclass(frozen=True)
class Document:
    """One document of a corpus.

    ``index`` is the document's position in its ``source`` file (from 0), so ``(source,
    index)`` names it; ``invalid_utf8`` says its text had malformed UTF-8 replaced by U+FFFD.
    """

    text: str
    source: str
    index: int
    invalid_utf8: bool = False


def corpus_files(paths: str | Sequence[str], *, seed: int | None = None) -> list[str]:
    """The files of a corpus path spec, in the order a sample visits them.

    Each spec is a file, a directory (recursive), a glob or an ``s3://`` prefix (see
    :func:`tokmix.io.fs.expand`). Without ``seed`` the order is sorted; with one it is a shuffle
    keyed on each file's path below the files' common directory, so the same corpus copied
    elsewhere (another disk, s3) is visited in the same order, and adding a file does not
    reorder the others.
    """
    specs = [paths] if isinstance(paths, str) else list(paths)
    if not specs:
        raise CorpusReadError("no corpus paths given; name at least one file, directory or glob")
    files: set[str] = set()
    for spec in specs:
        found = expand(spec)
        if not found:
            raise CorpusReadError(f"{describe_missing(spec)}; check the corpus path spec")
        files.update(found)
    ordered = sorted(files)
    if seed is None:
        return ordered
    root = common_root(ordered)
    return sorted(ordered, key=lambda url: _shuffle_key(seed, relative_to(root, url)))


def _shuffle_key(seed: int, name: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{name}".encode()).digest()


def iter_documents(
    paths: str | Sequence[str],
    *,
    text_field: str = "text",
    txt_mode: TxtMode = "file",
    max_bytes: int | None = None,
    seed: int | None = None,
    skip_documents: int = 0,
    on_invalid_utf8: OnInvalidUtf8 = "replace",
) -> Iterator[Document]:
    """The documents of a deterministic sample of whole documents (see the module docstring).

    ``paths``: path specs (:func:`corpus_files`). ``text_field``: the JSON key or Parquet
    column holding the text. ``txt_mode``: how ``.txt`` files split into documents
    (``"file"``, ``"line"``, ``"paragraph"``). ``max_bytes``: stop before the first document
    that would take the sample's UTF-8 size past this. ``seed``: shuffle the file order.
    ``skip_documents``: leave out the first this-many documents (they use no budget), so
    ``skip_documents = documents of the previous sample`` gives the next, disjoint one.
    ``on_invalid_utf8``: ``"replace"`` (U+FFFD, flag the document) or ``"error"``.
    """
    _check_options(txt_mode, on_invalid_utf8, max_bytes, skip_documents)
    used = 0
    skipped = 0
    for url in corpus_files(paths, seed=seed):
        for doc in file_documents(url, text_field, txt_mode, on_invalid_utf8):
            if skipped < skip_documents:
                skipped += 1
                continue
            size = len(doc.text.encode("utf-8"))
            if max_bytes is not None and used + size > max_bytes:
                return
            used += size
            yield doc


def no_text_message(
    paths: str | Sequence[str], documents: int, max_bytes: int | None, skip_documents: int
) -> str:
    spec = paths if isinstance(paths, str) else ", ".join(paths)
    if documents:
        why = f"its {documents} sampled documents are all empty"
    elif max_bytes is not None:
        why = f"its first document is larger than max_bytes={max_bytes}; raise the budget"
    else:
        why = f"no documents are left after skip_documents={skip_documents}"
    return f"the category at {spec} has no text: {why}"


def _check_options(
    txt_mode: str, on_invalid_utf8: str, max_bytes: int | None, skip_documents: int
) -> None:
    if txt_mode not in ("file", "line", "paragraph"):
        raise ValueError(f"txt_mode must be 'file', 'line' or 'paragraph', not {txt_mode!r}")
    if on_invalid_utf8 not in ("replace", "error"):
        raise ValueError(f"on_invalid_utf8 must be 'replace' or 'error', not {on_invalid_utf8!r}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
    if skip_documents < 0:
        raise ValueError(f"skip_documents must be >= 0, not {skip_documents}")


# --- one file -----------------------------------------------------------------------------


def split_suffix(url: str) -> tuple[str, str | None]:
    """The format suffix of ``url`` and its compression codec (or None)."""
    name = url.rsplit("/", 1)[-1].lower()
    codec = None
    for suffix, value in COMPRESSIONS.items():
        if name.endswith(suffix):
            name, codec = name[: -len(suffix)], value
            break
    dot = name.rfind(".")
    return (name[dot:] if dot > 0 else ""), codec


def file_documents(
    url: str, text_field: str, txt_mode: TxtMode, on_invalid: OnInvalidUtf8
) -> Iterator[Document]:
    """Every document of one file, with I/O and decompression failures as CorpusReadError."""
    suffix, codec = split_suffix(url)
    if suffix == ".parquet" and codec:
        raise CorpusReadError(
            f"{url}: Parquet compresses internally; decompress the file "
            "(or rewrite it with compression='zstd') and name the plain .parquet"
        )
    if suffix not in (".txt", ".parquet", *JSON_SUFFIXES):
        raise CorpusReadError(
            f"{url}: unsupported corpus file type; tokmix reads {FORMATS}. "
            "Narrow the path spec with a glob such as '*.jsonl.gz' to leave other files out"
        )
    documents = 0
    try:
        for doc in _format_documents(url, suffix, codec, text_field, txt_mode, on_invalid):
            documents += 1
            yield doc
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise CorpusReadError(unreadable_message(url, codec, exc)) from exc
    if documents == 0:
        raise CorpusReadError(
            f"{url}: empty file (no documents); remove it or leave it out of the path spec"
        )


def _format_documents(
    url: str,
    suffix: str,
    codec: str | None,
    text_field: str,
    txt_mode: TxtMode,
    on_invalid: OnInvalidUtf8,
) -> Iterator[Document]:
    if suffix == ".parquet":
        yield from parquet_documents(url, text_field, on_invalid)
        return
    with _open_binary(url, codec) as stream:
        if suffix in JSON_SUFFIXES:
            yield from jsonl_documents(_numbered_lines(stream), url, text_field, on_invalid)
        elif txt_mode == "file":
            yield from _whole_file_document(stream, url, on_invalid)
        else:
            lines = _numbered_lines(stream)
            yield from txt_documents(lines, url, txt_mode == "paragraph", on_invalid)


def unreadable_message(url: str, codec: str | None, exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{url}: file vanished while reading; check that nothing else is changing the corpus"
    if codec:
        return (
            f"{url}: not a valid {codec} stream or truncated ({exc}); "
            f"re-download the file or check it with `{'gzip' if codec == 'gzip' else 'zstd'} -t`"
        )
    return f"{url}: cannot read the file ({exc}); check that it is complete and readable"


@contextmanager
def _open_binary(url: str, codec: str | None) -> Iterator[IO[bytes]]:
    """A buffered binary stream of ``url``'s decompressed bytes."""
    fs, path = filesystem_for(url)
    with fs.open(path, "rb") as raw:
        if codec is None:
            yield raw
            return
        with pa.CompressedInputStream(raw, codec) as decompressed:
            yield io.BufferedReader(decompressed, buffer_size=_READ_CHUNK)


def _decode(raw: bytes, on_invalid: OnInvalidUtf8, where: Callable[[int], str]) -> tuple[str, bool]:
    """``raw`` as text, and whether it had malformed UTF-8 (replaced by U+FFFD)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError as exc:
        if on_invalid == "error":
            raise CorpusReadError(
                f"{where(exc.start)}: invalid UTF-8 ({exc.reason}); fix the file or read it "
                "with on_invalid_utf8='replace' to count such documents as invalid"
            ) from None
        return raw.decode("utf-8", "replace"), True


def _byte_locator(where: str, offset: int) -> Callable[[int], str]:
    """Describes a byte position of a document that starts at ``offset`` of its stream."""
    return lambda at: f"{where}, byte {offset + at}"


def _whole_file_document(
    stream: IO[bytes], url: str, on_invalid: OnInvalidUtf8
) -> Iterator[Document]:
    raw = stream.read(MAX_FILE_DOCUMENT_BYTES + 1)
    if len(raw) > MAX_FILE_DOCUMENT_BYTES:
        raise CorpusReadError(
            f"{url}: larger than {MAX_FILE_DOCUMENT_BYTES >> 20} MiB, too large to be one "
            "document; read .txt dumps with txt_mode='line' or txt_mode='paragraph'"
        )
    if not raw:
        return
    raw = raw.removeprefix(BOM)
    text, invalid = _decode(raw, on_invalid, _byte_locator(url, 0))
    yield Document(text, url, 0, invalid)


Lines = Iterator[tuple[int | None, int, bytes]]
"""``(line number from 1 or None when unknown, byte offset, line with its terminator)``."""


def _numbered_lines(stream: IO[bytes]) -> Lines:
    """The lines of a whole stream; a leading BOM dropped."""
    offset = 0
    for number, line in enumerate(stream, start=1):
        body = line.removeprefix(BOM) if number == 1 else line
        yield number, offset + len(line) - len(body), body
        offset += len(line)


def _strip_eol(line: bytes) -> bytes:
    return line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")


def txt_documents(
    lines: Lines, url: str, paragraphs: bool, on_invalid: OnInvalidUtf8
) -> Iterator[Document]:
    """Line documents, or paragraph documents (runs of non-blank lines)."""
    index = 0
    block: list[bytes] = []
    start: tuple[int | None, int] = (0, 0)  # (line, offset) of the block's first line
    for number, offset, line in lines:
        if not line.strip():
            if block:
                yield _block_document(block, url, index, start, on_invalid)
                index += 1
                block = []
            continue
        if not block:
            start = (number, offset)
        block.append(line)
        if not paragraphs:
            yield _block_document(block, url, index, start, on_invalid)
            index += 1
            block = []
    if block:
        yield _block_document(block, url, index, start, on_invalid)


def _block_document(
    lines: list[bytes],
    url: str,
    index: int,
    start: tuple[int | None, int],
    on_invalid: OnInvalidUtf8,
) -> Document:
    raw = _strip_eol(b"".join(lines))
    line, offset = start

    def where(at: int) -> str:
        if line is None:
            return f"{url}: byte {offset + at}"
        return f"{url}: line {line + raw.count(NEWLINE, 0, at)}, byte {offset + at}"

    text, invalid = _decode(raw, on_invalid, where)
    return Document(text, url, index, invalid)


def jsonl_documents(
    lines: Lines, url: str, text_field: str, on_invalid: OnInvalidUtf8
) -> Iterator[Document]:
    index = 0
    for number, offset, line in lines:
        if not line.strip():
            continue
        where = f"{url}: line {number}" if number is not None else f"{url}: byte {offset}"
        raw_text, bad_bytes = _decode(line, on_invalid, _byte_locator(where, offset))
        text = _json_text(raw_text, text_field, where)
        bad_chars = False
        if _ESCAPED_SURROGATE.search(line):  # lone surrogates can only come from escapes
            text, bad_chars = _without_surrogates(text, on_invalid, where)
        yield Document(text, url, index, bad_bytes or bad_chars)
        index += 1


def _json_text(line: str, text_field: str, where: str) -> str:
    """The ``text_field`` string of one JSON line."""
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusReadError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
            "every non-blank line of a JSON-lines file must be one JSON object"
        ) from None
    if not isinstance(record, dict):
        raise CorpusReadError(
            f"{where}: a JSON {type(record).__name__}, not an object; "
            f"each line must be an object with a {text_field!r} field"
        )
    if text_field not in record:
        fields = ", ".join(sorted(map(str, record))[:10]) or "none"
        raise CorpusReadError(
            f"{where}: no {text_field!r} field (fields: {fields}); "
            "pass text_field= to name the field that holds the text"
        )
    text = record[text_field]
    if not isinstance(text, str):
        raise CorpusReadError(
            f"{where}: field {text_field!r} holds {type(text).__name__} {text!r:.40}, not a "
            "string; "
            "pass text_field= to name the field that holds the text"
        )
    return text


def _without_surrogates(text: str, on_invalid: OnInvalidUtf8, where: str) -> tuple[str, bool]:
    """``text`` with lone surrogates (from JSON ``\\ud800`` escapes) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        if on_invalid == "error":
            raise CorpusReadError(
                f"{where}: a lone surrogate escape in the text (not valid Unicode); fix the file "
                "or read it with on_invalid_utf8='replace'"
            ) from None
        return _SURROGATES.sub("\ufffd", text), True
    return text, False


def parquet_documents(
    url: str, text_field: str, on_invalid: OnInvalidUtf8, row_groups: range | None = None
) -> Iterator[Document]:
    """The rows of a Parquet file, or of the row groups ``row_groups`` (a shard of it)."""
    fs, path = filesystem_for(url)
    with fs.open(path, "rb") as raw:
        parquet = pq.ParquetFile(raw)
        _check_text_column(parquet.schema_arrow, url, text_field)
        meta = parquet.metadata
        groups = range(meta.num_row_groups) if row_groups is None else row_groups
        index = sum(meta.row_group(g).num_rows for g in range(groups.start))
        batches = parquet.iter_batches(
            batch_size=_PARQUET_BATCH_ROWS, columns=[text_field], row_groups=list(groups)
        )
        for batch in batches:
            column = batch.column(0)
            binary = pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
            for value in column.cast(binary).to_pylist():
                where = f"{url}: row {index}"
                if value is None:
                    raise CorpusReadError(
                        f"{where}: {text_field!r} is null; filter null texts out of the file"
                    )
                text, invalid = _decode(value, on_invalid, _byte_locator(where, 0))
                yield Document(text, url, index, invalid)
                index += 1


def _check_text_column(schema: pa.Schema, url: str, text_field: str) -> None:
    if text_field not in schema.names:
        columns = ", ".join(schema.names[:10])
        raise CorpusReadError(
            f"{url}: no column {text_field!r} (columns: {columns}); "
            "pass text_field= to name the column that holds the text"
        )
    kind = schema.field(text_field).type
    if not (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        raise CorpusReadError(
            f"{url}: column {text_field!r} is {kind}, not text; "
            "pass text_field= to name the column that holds the text"
        )
