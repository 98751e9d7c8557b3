"""Compressed tokenizer files (``tokenizer.json.gz``, ``*.tiktoken.zst``), told by magic bytes.

Compression is not a format: a compressed file is any registered format inside a gzip or
Zstandard frame. :func:`open_bytes` undoes it wherever a format reads a file
(``base.read_file``, ``base.read_head``), and the dispatcher detects the format under the name
without its compression suffix (:func:`inner_path`), so ``tokenizer.json.gz`` is claimed as a
``tokenizer.json``. The magic bytes decide, not the suffix: a ``.gz`` name on plain content is
read as it is. Output is capped (:data:`MAX_BYTES`) so a decompression bomb is an error.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

from tokmix.errors import TokenizerFormatError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")
MAX_BYTES = 4 << 30
"""The most a compressed tokenizer file may expand to (4 GiB; the largest released
``tokenizer.json`` files are tens of MiB)."""


def compression_of(head: bytes) -> str | None:
    """``gzip`` or ``zstd`` when the first bytes are that format's magic number, else None."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def inner_path(path: Path) -> Path:
    """The name the compressed content had: ``tokenizer.json.gz`` -> ``tokenizer.json``."""
    if path.suffix.lower() in SUFFIXES:
        return path.with_name(path.name[: -len(path.suffix)])
    return path


def open_bytes(data: bytes, path: Path) -> bytes:
    """``data`` decompressed when it is gzip or Zstandard (by magic bytes), else as it is."""
    kind = compression_of(data)
    if kind is None:
        return data
    try:
        out = _gunzip(data, MAX_BYTES) if kind == "gzip" else _unzstd(data, MAX_BYTES)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise TokenizerFormatError(
            f"{path}: a {kind} file that does not decompress ({exc})"
        ) from None
    if len(out) > MAX_BYTES:
        raise TokenizerFormatError(
            f"{path}: decompresses to more than {MAX_BYTES >> 30} GiB; not a tokenizer file"
        )
    return out


def open_head(data: bytes, n: int) -> bytes:
    """The first ``n`` decompressed bytes of a file's start (``data``, possibly cut short);
    ``data`` itself when it is not compressed, empty when even the start is corrupt."""
    kind = compression_of(data)
    if kind is None:
        return data[:n]
    try:
        return (_gunzip(data, n) if kind == "gzip" else _unzstd(data, n))[:n]
    except (OSError, EOFError, zlib.error, ValueError):
        return b""


def _gunzip(data: bytes, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes (one more tells the caller the limit was passed); a stream
    cut short yields what it decoded so far."""
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, limit + 1)


def _unzstd(data: bytes, limit: int) -> bytes:
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    chunks, size = [], 0
    try:
        while size <= limit:
            chunk = reader.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except zstandard.ZstdError as exc:
        if not chunks:
            raise ValueError(str(exc)) from None
    return b"".join(chunks)
