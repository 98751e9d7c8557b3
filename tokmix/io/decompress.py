"""Decompressing corpus streams with the fastest well-kept library measured for each codec.

``benchmarks/reading.py`` (results in ``benchmarks/results/counting.md``): gzip through ISA-L
(python-isal's ``igzip``) decompresses about 2.6x faster than pyarrow's zlib stream and 3x
faster than the standard library, so gzip goes through ISA-L when it is installed; zstd through
pyarrow is as fast as ``zstandard``, so pyarrow keeps it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, cast

import pyarrow as pa
from isal import igzip, isal_zlib

READ_CHUNK = 1 << 20

DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    pa.ArrowException,
    cast(type[BaseException], isal_zlib.error),  # the stubs call it an instance
)
"""What a corrupt or truncated compressed stream raises, whichever library reads it."""


@contextmanager
def decompressed(raw: IO[bytes], codec: str) -> Iterator[IO[bytes]]:
    """A buffered binary stream of the decompressed bytes of ``raw`` (``gzip`` or ``zstd``)."""
    if codec == "gzip":
        with igzip.IGzipFile(fileobj=raw, mode="rb") as stream:
            yield io.BufferedReader(stream, buffer_size=READ_CHUNK)
        return
    with pa.CompressedInputStream(raw, codec) as stream:
        yield io.BufferedReader(stream, buffer_size=READ_CHUNK)
