"""Words and their counts as arrays: a word table without a Python object per word.

The sharded count's map task (:mod:`tokmix.jobs.count_ray`) hands each shard's words to Arrow
and splits them into reduce partitions by a hash of their bytes. Taken from a ``dict`` of
``bytes``, that costs a ``bytes`` object, a dict entry, a ``zlib.crc32`` call and an Arrow
append per distinct word, about 8 % of a map task. Here the words stay one after another in
one buffer with their offsets, which is the memory of an Arrow ``binary`` array, and the hash
is a numba loop over that buffer.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa


@dataclass(frozen=True, eq=False)
class WordArrays:
    """Distinct words and their counts: word ``i`` is ``data[offsets[i]:offsets[i + 1]]``.

    The order is the counter's (a dict's insertion order when built from one), not byte
    order: writers that need a canonical order sort."""

    data: np.ndarray
    """uint8: the words' UTF-8 bytes, one after another."""
    offsets: np.ndarray
    """int64, one more than there are words: where each word starts, then the end."""
    counts: np.ndarray
    """int64: each word's count."""

    def __len__(self) -> int:
        return len(self.counts)

    @classmethod
    def from_counts(cls, counts: Mapping[bytes, int]) -> WordArrays:
        """The words of ``counts`` in its order (the ``regex`` path and the rare cases of the
        compiled one hand their words over as a dict)."""
        words = list(counts)
        sizes = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        offsets = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return cls(
            np.frombuffer(b"".join(words), dtype=np.uint8),
            offsets,
            np.fromiter(counts.values(), dtype=np.int64, count=len(words)),
        )

    def words(self) -> list[bytes]:
        """The words as ``bytes`` (one object each: for the dict paths and for tests)."""
        data = self.data.tobytes()
        bounds = self.offsets.tolist()
        return [data[s:e] for s, e in itertools.pairwise(bounds)]

    def binary_array(self) -> pa.Array:
        """The words as an Arrow ``binary`` array over this memory (the bytes are not copied;
        the offsets are narrowed to Arrow's int32, which raises past 2 GiB of words)."""
        large = pa.Array.from_buffers(
            pa.large_binary(),
            len(self),
            [None, pa.py_buffer(self.offsets), pa.py_buffer(self.data)],
        )
        return large.cast(pa.binary())


def crc32(words: WordArrays) -> np.ndarray:
    """``zlib.crc32`` of every word (uint32), in one compiled pass over the buffer."""
    out = np.empty(len(words), dtype=np.uint32)
    _crc32_words(words.data, words.offsets, _CRC_TABLE, out)
    return out


def _crc_table() -> np.ndarray:
    """The byte table of CRC-32 (ISO-HDLC, reflected polynomial 0xEDB88320): zlib's."""
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _crc_table()


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _crc32_words(data: np.ndarray, offsets: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    for w in range(len(out)):
        c = np.uint32(0xFFFFFFFF)
        for i in range(offsets[w], offsets[w + 1]):
            c = table[(c ^ data[i]) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
        out[w] = c ^ np.uint32(0xFFFFFFFF)
