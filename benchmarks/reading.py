"""Reading corpus files: decompression and JSON-lines parsing, standard library against the
libraries that claim to be faster, measured on the same bytes in the same run (1 core).

    python -m benchmarks.reading [--category PATH.jsonl.gz] [--mb 60]

- gzip: ``gzip`` (stdlib zlib), pyarrow's ``CompressedInputStream`` (what tokmix uses), and,
  when installed, python-isal's ``igzip`` and ``zlib_ng``'s ``gzip_ng``;
- zstd: pyarrow against ``zstandard``;
- JSON lines: ``json.loads`` per line (what tokmix does, it needs per-line errors), pyarrow's
  ``json.read_json`` (whole file to a table), and ``orjson`` when installed.

Figures are MB of *decompressed* data per CPU second (best of 3), wall beside them.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "data" / "corpora"


def _best(fn: Callable[[], object], n: int = 3) -> tuple[float, float]:
    cpu = wall = float("inf")
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return cpu, wall


def _read_all(stream: io.RawIOBase | io.BufferedIOBase) -> int:
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(chunk)
    return total


def _arrow_stream(path: Path, codec: str) -> int:
    with pa.OSFile(str(path)) as raw, pa.CompressedInputStream(raw, codec) as s:
        return _read_all(io.BufferedReader(s, 1 << 20))  # type: ignore[arg-type]


def _stdlib_gzip(path: Path) -> int:
    with gzip.open(path, "rb") as f:
        return _read_all(f)  # type: ignore[arg-type]


def gzip_readers() -> dict[str, Callable[[Path], int]]:
    readers: dict[str, Callable[[Path], int]] = {
        "stdlib gzip": _stdlib_gzip,
        "pyarrow (tokmix today)": lambda p: _arrow_stream(p, "gzip"),
    }
    try:
        from isal import igzip

        def with_isal(path: Path) -> int:
            with igzip.open(path, "rb") as f:
                return _read_all(f)

        readers["isal igzip"] = with_isal
    except ImportError:
        pass
    try:
        from zlib_ng import gzip_ng

        def with_zlib_ng(path: Path) -> int:
            with gzip_ng.open(path, "rb") as f:
                return _read_all(f)

        readers["zlib-ng gzip_ng"] = with_zlib_ng
    except ImportError:
        pass
    return readers


def zstd_readers() -> dict[str, Callable[[Path], int]]:
    import zstandard

    def with_zstandard(path: Path) -> int:
        with path.open("rb") as f:
            return _read_all(zstandard.ZstdDecompressor().stream_reader(f))

    return {
        "pyarrow (tokmix today)": lambda p: _arrow_stream(p, "zstd"),
        "zstandard": with_zstandard,
    }


def json_parsers() -> dict[str, Callable[[bytes], int]]:
    def per_line(data: bytes) -> int:
        return sum(len(json.loads(line)["text"]) for line in data.splitlines() if line.strip())

    def arrow(data: bytes) -> int:
        table = pa_json.read_json(pa.BufferReader(data))
        return int(pc.sum(pc.utf8_length(table["text"])).as_py())

    parsers = {"json.loads per line (tokmix today)": per_line, "pyarrow read_json": arrow}
    try:
        import orjson

        parsers["orjson per line"] = lambda data: sum(
            len(orjson.loads(line)["text"]) for line in data.splitlines() if line.strip()
        )
    except ImportError:
        pass
    return parsers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--category", type=Path, default=CORPORA / "languages" / "en" / "docs.jsonl.gz")
    ap.add_argument("--mb", type=float, default=60.0)
    ap.add_argument("--tmp", type=Path, default=Path("/tmp"))
    args = ap.parse_args()
    one = gzip.decompress(args.category.read_bytes())
    data = one * max(1, round(args.mb * 1e6 / len(one)))
    mb = len(data) / 1e6
    gz = args.tmp / "tokmix-reading.jsonl.gz"
    zst = args.tmp / "tokmix-reading.jsonl.zst"
    import zstandard

    gz.write_bytes(gzip.compress(data, 6))
    zst.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    try:
        print(f"{mb:.1f} MB of JSON lines ({args.category}), MB/s decompressed, 1 core")
        for label, readers, path in (("gzip", gzip_readers(), gz), ("zstd", zstd_readers(), zst)):
            for name, reader in readers.items():
                assert reader(path) == len(data), name
                cpu, wall = _best(lambda r=reader, p=path: r(p))
                print(f"{label:5} {name:26}: {mb / cpu:7.1f} MB/s cpu ({mb / wall:7.1f} wall)")
        expected = None
        for name, parser in json_parsers().items():
            got = parser(data)
            expected = expected or got
            assert got == expected, name
            cpu, wall = _best(lambda f=parser: f(data))
            print(f"json  {name:26}: {mb / cpu:7.1f} MB/s cpu ({mb / wall:7.1f} wall)")
    finally:
        gz.unlink(missing_ok=True)
        zst.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
