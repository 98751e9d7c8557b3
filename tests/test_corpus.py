"""Corpus reading (tokmix.io.corpus, tokmix.io.fs) on real files in temporary directories."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokmix.bpe.pretokenizers import GPT2
from tokmix.bpe.words import count_words
from tokmix.errors import CorpusReadError
from tokmix.io.corpus import Document, corpus_files, iter_documents
from tokmix.io.fs import expand, join
from tokmix.jobs.count import read_category

DOCS = ["first document\nwith two lines", "second: héllo wörld ✓", "third 😀 doc"]


def compress(data: bytes, compression: str) -> bytes:
    if compression == "":
        return data
    if compression == ".gz":
        return gzip.compress(data)
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def write(path: Path, data: bytes, compression: str = "") -> Path:
    target = path.with_name(path.name + compression)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(compress(data, compression))
    return target


def jsonl(texts: list[str], field: str = "text") -> bytes:
    return "".join(json.dumps({"id": i, field: t}) + "\n" for i, t in enumerate(texts)).encode()


def texts(paths: str | list[str], **options: object) -> list[str]:
    return [d.text for d in iter_documents(paths, **options)]  # type: ignore[arg-type]


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


# --- formats and compressions -------------------------------------------------------------


@pytest.mark.parametrize("compression", ["", ".gz", ".zst"])
def test_jsonl_every_compression(tmp_path: Path, compression: str) -> None:
    path = write(tmp_path / "c.jsonl", jsonl(DOCS), compression)
    docs = list(iter_documents(str(path)))
    assert [d.text for d in docs] == DOCS
    assert [d.index for d in docs] == [0, 1, 2]
    assert {d.source for d in docs} == {str(path)}
    assert not any(d.invalid_utf8 for d in docs)


@pytest.mark.parametrize("compression", ["", ".gz", ".zst"])
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("file", ["a b\r\n\n\n  \nc d\ne\n"]),
        ("line", ["a b", "c d", "e"]),
        ("paragraph", ["a b", "c d\ne"]),
    ],
)
def test_txt_modes(tmp_path: Path, compression: str, mode: str, expected: list[str]) -> None:
    path = write(tmp_path / "c.txt", b"a b\r\n\n\n  \nc d\ne\n", compression)
    assert texts(str(path), txt_mode=mode) == expected


def test_txt_default_is_one_document_per_file(tmp_path: Path) -> None:
    for i, text in enumerate(DOCS):
        write(tmp_path / f"{i}.txt", text.encode())
    assert texts(str(tmp_path)) == DOCS


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", b"\xef\xbb\xbf" + jsonl(["x"]))
    write(tmp_path / "b.txt", b"\xef\xbb\xbfline one\nline two\n")
    assert texts(str(tmp_path), txt_mode="line") == ["x", "line one", "line two"]


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.binary()])
def test_parquet_text_column(tmp_path: Path, kind: pa.DataType) -> None:
    values = [t.encode() for t in DOCS] if pa.types.is_binary(kind) else DOCS
    path = tmp_path / "c.parquet"
    pq.write_table(
        pa.table({"id": [1, 2, 3], "body": pa.array(values, kind)}), path, row_group_size=2
    )
    assert texts(str(path), text_field="body") == DOCS


def test_custom_json_field_and_json_suffixes(tmp_path: Path) -> None:
    write(tmp_path / "a.json", jsonl(DOCS[:1], "content"), ".gz")
    write(tmp_path / "b.ndjson", jsonl(DOCS[1:], "content"))
    assert texts(str(tmp_path), text_field="content") == DOCS


def test_mixed_formats_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.jsonl", jsonl(["from jsonl"]), ".zst")
    pq.write_table(pa.table({"text": ["from parquet"]}), tmp_path / "c.parquet")
    write(tmp_path / "a" / "x.txt", b"from txt")
    assert texts(str(tmp_path)) == ["from txt", "from jsonl", "from parquet"]


# --- path specs ---------------------------------------------------------------------------


def test_expand_file_directory_glob_and_hidden_files(tmp_path: Path) -> None:
    for name in ["a.txt", "sub/b.txt", "sub/deep/c.jsonl", "_SUCCESS", ".hidden/d.txt", "e.md"]:
        write(tmp_path / name, b"x")
    root = str(tmp_path)
    assert expand(root) == [
        f"{root}/a.txt",
        f"{root}/e.md",
        f"{root}/sub/b.txt",
        f"{root}/sub/deep/c.jsonl",
    ]
    assert expand(f"{root}/**/*.txt") == [f"{root}/a.txt", f"{root}/sub/b.txt"]
    assert expand(f"{root}/su*") == [f"{root}/sub/b.txt", f"{root}/sub/deep/c.jsonl"]
    assert expand(f"{root}/_SUCCESS") == [f"{root}/_SUCCESS"]  # named explicitly: kept
    assert expand([f"{root}/a.txt", f"{root}/*.txt"]) == [f"{root}/a.txt"]
    assert expand(f"{root}/nothing*") == []


def test_join() -> None:
    assert join("s3://bucket/prefix/", "word_counts", "category=x/") == (
        "s3://bucket/prefix/word_counts/category=x"
    )
    assert join("/tmp/out", "a/b") == "/tmp/out/a/b"
    assert join("s3://bucket", "") == "s3://bucket"


# --- sampling -----------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Five files of four documents each; document ``f{i}d{j}`` has a distinct size."""
    root = tmp_path / "corpus"
    for i in range(5):
        write(root / f"part-{i}.jsonl", jsonl([f"f{i}d{j} " + "x" * (10 * j) for j in range(4)]))
    return root


def test_sample_is_deterministic_and_in_sorted_file_order(corpus: Path) -> None:
    first = list(iter_documents(str(corpus), max_bytes=200))
    assert first == list(iter_documents(str(corpus), max_bytes=200))
    assert [Path(d.source).name for d in first] == sorted(Path(d.source).name for d in first)


def test_budget_takes_whole_documents_and_stops_at_the_first_that_does_not_fit(
    tmp_path: Path,
) -> None:
    docs = ["aaaa", "é" * 3, "bbbbbbbbbb", "c"]  # 4, 6 (UTF-8 bytes), 10, 1 bytes
    path = str(write(tmp_path / "c.jsonl", jsonl(docs)))
    assert texts(path, max_bytes=10) == docs[:2]  # exactly the budget
    assert texts(path, max_bytes=19) == docs[:2]  # "c" would fit but the sample stops before
    assert texts(path, max_bytes=20) == docs[:3]
    assert texts(path, max_bytes=3) == []
    assert texts(path, max_bytes=None) == docs
    sample = list(iter_documents(path, max_bytes=15))
    assert sum(utf8_size(d.text) for d in sample) <= 15


def test_seeded_file_order_is_a_stable_location_free_shuffle(corpus: Path, tmp_path: Path) -> None:
    files = corpus_files(str(corpus))
    assert files == sorted(files)
    orders = {tuple(corpus_files(str(corpus), seed=s)) for s in range(8)}
    assert len(orders) > 1
    assert all(sorted(order) == files for order in orders)
    assert corpus_files(str(corpus), seed=3) == corpus_files(str(corpus), seed=3)
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(corpus, copy)

    def names(root: Path) -> list[str]:
        return [Path(u).name for u in corpus_files(str(root), seed=3)]

    assert names(copy) == names(corpus)
    seeded = list(iter_documents(str(corpus), seed=3))
    assert [Path(d.source).name for d in seeded][::4] == names(corpus)


def test_skip_documents_gives_the_next_disjoint_sample(corpus: Path) -> None:
    def ids(docs: list[Document]) -> list[tuple[str, int]]:
        return [(d.source, d.index) for d in docs]

    first = list(iter_documents(str(corpus), max_bytes=150, seed=1))
    second = list(iter_documents(str(corpus), max_bytes=150, seed=1, skip_documents=len(first)))
    both = list(
        iter_documents(
            str(corpus),
            max_bytes=sum(utf8_size(d.text) for d in first + second),
            seed=1,
        )
    )
    assert first and second
    assert not set(ids(first)) & set(ids(second))
    assert ids(first) + ids(second) == ids(both)


def test_reading_stops_at_the_budget_without_reading_further(tmp_path: Path) -> None:
    """A stream, not a slurp: a broken line past the budget is never reached."""
    data = jsonl(["doc"] * 1000) + b"not json\n"
    path = str(write(tmp_path / "big.jsonl", data, ".gz"))
    assert len(texts(path, max_bytes=30)) == 10
    with pytest.raises(CorpusReadError, match="line 1001"):
        texts(path)


# --- invalid UTF-8 ------------------------------------------------------------------------


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"ok line\nbad \xff\xfe line\n")
    write(
        tmp_path / "b.jsonl",
        b'{"text": "bad \xc3"}\n{"text": "lone \\ud800 and pair \\ud83d\\ude00"}\n',
    )
    docs = list(iter_documents(str(tmp_path), txt_mode="line"))
    assert [d.invalid_utf8 for d in docs] == [False, True, True, True]
    assert docs[1].text == "bad \ufffd\ufffd line"
    assert docs[3].text == "lone \ufffd and pair 😀"
    for doc in docs:
        doc.text.encode("utf-8")  # always encodable
    table = read_category(str(tmp_path), GPT2, txt_mode="line")
    assert table.invalid_utf8_documents == 3
    assert table.documents == 4


@pytest.mark.parametrize(
    ("name", "data", "where"),
    [
        ("a.txt", b"fine\nbad \xff\n", "line 2, byte 9"),
        ("a.jsonl", b'{"text": "x"}\n{"text": "\xff"}\n', "line 2, byte 24"),
        ("a.jsonl", b'{"text": "\\udc00"}\n', "line 1"),
    ],
)
def test_invalid_utf8_can_be_an_error(tmp_path: Path, name: str, data: bytes, where: str) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(CorpusReadError, match=rf"{path}: {where}"):
        texts(str(path), txt_mode="line", on_invalid_utf8="error")


def test_invalid_utf8_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ok", b"b\xffd"], pa.binary())}), path)
    docs = list(iter_documents(str(path)))
    assert [(d.text, d.invalid_utf8) for d in docs] == [("ok", False), ("b\ufffdd", True)]
    with pytest.raises(CorpusReadError, match="row 1, byte 1"):
        texts(str(path), on_invalid_utf8="error")


# --- bad inputs ---------------------------------------------------------------------------


def _parquet(columns: dict[str, pa.Array]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "bad.parquet"
        pq.write_table(pa.table(columns), path)
        return path

    return make


def empty_dir(path: Path) -> Path:
    path.mkdir()
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path | str], str]] = {
    "missing file": (lambda t: t / "nope.jsonl", "does not exist"),
    "empty txt": (lambda t: write(t / "e.txt", b""), "empty file"),
    "blank-only txt lines": (lambda t: write(t / "e.txt", b"\n \n"), "empty file"),
    "empty jsonl.gz": (lambda t: write(t / "e.jsonl", b"", ".gz"), "empty file"),
    "empty parquet": (_parquet({"text": pa.array([], pa.string())}), "empty file"),
    "empty directory": (lambda t: empty_dir(t / "d"), "holds no files"),
    "glob matching nothing": (lambda t: f"{t}/*.jsonl", "matches no files"),
    "not JSON": (
        lambda t: write(t / "b.jsonl", b'{"text": "a"}\n{oops\n'),
        "line 2: not valid JSON",
    ),
    "no text field": (
        lambda t: write(t / "b.jsonl", b'{"body": "a"}\n'),
        "line 1: no 'text' field",
    ),
    "not an object": (lambda t: write(t / "b.jsonl", b'["text"]\n'), "line 1: a JSON list"),
    "text not a string": (
        lambda t: write(t / "b.jsonl", b'{"text": 3}\n'),
        "holds int 3, not a string",
    ),
    "parquet without column": (_parquet({"body": pa.array(["a"])}), "no column 'text'"),
    "parquet non-text column": (_parquet({"text": pa.array([1])}), "not text"),
    "parquet null text": (_parquet({"text": pa.array(["a", None])}), "row 1: 'text' is null"),
    "corrupt parquet": (lambda t: write(t / "x.parquet", b"PAR1 garbage"), "cannot read"),
    "corrupt gzip": (lambda t: write(t / "b.jsonl.gz", b"\x1f\x8b\x08\x00junkjunk"), "gzip"),
    "truncated gzip": (
        lambda t: write(t / "b.jsonl.gz", gzip.compress(jsonl(["x" * 50] * 50))[:60]),
        "truncated",
    ),
    "not zstd": (lambda t: write(t / "b.txt.zst", b"plain text"), "zstd"),
    "unknown suffix": (lambda t: write(t / "notes.md", b"# hi"), "unsupported corpus file"),
    "compressed parquet": (lambda t: write(t / "c.parquet.gz", b"x"), "compresses internally"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_corpus_read_error_naming_the_path(tmp_path: Path, case: str) -> None:
    make, message = BAD_INPUTS[case]
    spec = str(make(tmp_path))
    with pytest.raises(CorpusReadError, match=message) as info:
        texts(spec, txt_mode="line")
    assert spec in str(info.value)


def test_file_documents_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tokmix.io.corpus.MAX_FILE_DOCUMENT_BYTES", 8)
    path = write(tmp_path / "big.txt", b"0123456789")
    with pytest.raises(CorpusReadError, match="txt_mode='line'"):
        texts(str(path))


# --- read_category ------------------------------------------------------------------------


def test_read_category_counts_the_sample(corpus: Path) -> None:
    docs = list(iter_documents(str(corpus), max_bytes=300, seed=7))
    table = read_category(str(corpus), GPT2, max_bytes=300, seed=7)
    expected = count_words([d.text for d in docs], GPT2)
    assert table.counts == expected.counts
    assert table.documents == len(docs) == expected.documents
    assert table.bytes_ == expected.bytes_ <= 300
    assert table.files == len({d.source for d in docs}) > 1
    assert table.invalid_utf8_documents == 0


def test_read_category_without_text_is_an_error(tmp_path: Path) -> None:
    path = str(write(tmp_path / "c.jsonl", jsonl(["", ""])))
    with pytest.raises(CorpusReadError, match=f"{path}.*all empty"):
        read_category(path, GPT2)
    big = str(write(tmp_path / "big.jsonl", jsonl(["x" * 100])))
    with pytest.raises(CorpusReadError, match="larger than max_bytes=10"):
        read_category(big, GPT2, max_bytes=10)
    with pytest.raises(CorpusReadError, match="skip_documents=5"):
        read_category(big, GPT2, skip_documents=5)


def test_bad_options_are_value_errors(tmp_path: Path) -> None:
    path = str(write(tmp_path / "c.txt", b"x"))
    for options in ({"txt_mode": "lines"}, {"on_invalid_utf8": "ignore"}, {"max_bytes": -1}):
        with pytest.raises(ValueError):
            texts(path, **options)
