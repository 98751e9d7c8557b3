"""The key-value metadata of a GGUF file (llama.cpp's model format), read without the tensors.

A GGUF file starts ``GGUF``, a version, a tensor count, a key count, then the keys: a string,
a value type (``gguf.GGUFValueType``) and a value; arrays carry an item type and a count.
``gguf.GGUFReader`` (llama.cpp's own reader) parses all of this into one numpy view per string,
which takes tens of seconds for a 262 144-token vocabulary; tokmix needs only the tokenizer
keys, so this reader walks the same layout (the package's type codes and magic) over a
memory map and returns strings as ``bytes`` and numeric arrays as numpy arrays.
``tests/test_gguf.py`` checks it against ``GGUFReader`` key by key. Only the metadata is read,
however large the file (model GGUFs hold gigabytes of tensors after it).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUF_MAGIC, GGUFValueType

from tokmix.errors import TokenizerFormatError

MAGIC = struct.pack("<I", GGUF_MAGIC)
"""``b"GGUF"``: how a GGUF file starts."""

_SCALARS: dict[int, tuple[str, int]] = {
    GGUFValueType.UINT8: ("<B", 1),
    GGUFValueType.INT8: ("<b", 1),
    GGUFValueType.UINT16: ("<H", 2),
    GGUFValueType.INT16: ("<h", 2),
    GGUFValueType.UINT32: ("<I", 4),
    GGUFValueType.INT32: ("<i", 4),
    GGUFValueType.FLOAT32: ("<f", 4),
    GGUFValueType.BOOL: ("<?", 1),
    GGUFValueType.UINT64: ("<Q", 8),
    GGUFValueType.INT64: ("<q", 8),
    GGUFValueType.FLOAT64: ("<d", 8),
}


class _Cursor:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str, size: int) -> Any:
        if self.pos + size > len(self.buf):
            raise TokenizerFormatError(f"{self.path}: the GGUF metadata is cut short")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> bytes:
        n = self.take("<Q", 8)
        end = self.pos + n
        if end > len(self.buf):
            raise TokenizerFormatError(f"{self.path}: the GGUF metadata is cut short")
        out = bytes(self.buf[self.pos : end])
        self.pos = end
        return out

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(*_SCALARS[kind])
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            item = self.take("<I", 4)
            count = self.take("<Q", 8)
            if item in _SCALARS:
                fmt, size = _SCALARS[item]
                end = self.pos + count * size
                if end > len(self.buf):
                    raise TokenizerFormatError(f"{self.path}: the GGUF metadata is cut short")
                arr = np.frombuffer(self.buf, dtype=np.dtype(fmt), count=count, offset=self.pos)
                self.pos = end
                return arr.copy()
            return [self.value(item) for _ in range(count)]
        raise TokenizerFormatError(f"{self.path}: unknown GGUF value type {kind}")


def read_gguf_metadata(path: Path) -> tuple[dict[str, Any], int]:
    """Every metadata key of a GGUF file, and the byte length of the header that holds them
    (what tokmix hashes: the tokenizer, not the weights)."""
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, path)
    except (OSError, ValueError) as exc:
        raise TokenizerFormatError(f"{path}: cannot read the GGUF file ({exc})") from None


def _parse(buf: mmap.mmap, path: Path) -> tuple[dict[str, Any], int]:
    cur = _Cursor(buf, path)
    if bytes(buf[:4]) != MAGIC:
        raise TokenizerFormatError(f"{path}: not a GGUF file (starts with {bytes(buf[:4])!r})")
    cur.pos = 4
    version = cur.take("<I", 4)
    if version not in (2, 3):
        raise TokenizerFormatError(
            f"{path}: GGUF version {version} (big-endian or pre-2023 files are not read; "
            "convert with a current llama.cpp)"
        )
    cur.take("<Q", 8)  # tensor count
    n_keys = cur.take("<Q", 8)
    out: dict[str, Any] = {}
    for _ in range(n_keys):
        key = cur.string().decode("utf-8", errors="replace")
        out[key] = cur.value(cur.take("<I", 4))
    return out, cur.pos
