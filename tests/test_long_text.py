"""Long documents: cut where the pre-tokenizer always cuts (same pre-tokens as in one go, checked
against the uncut regex path on real and generated text), and lines past the reader's limit
refused before they are held whole."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokmix.io.corpus as corpus
from tests.helpers import REPO
from tokmix.bpe import long_text
from tokmix.bpe.pretokenizers import FAMILIES, ByteLevelSplit, Pretokenizer
from tokmix.bpe.words import WordTable
from tokmix.errors import CorpusReadError

CUTTABLE = ("gpt2", "cl100k", "llama3", "o200k", "gpt2-digits")
TRICKY = "aZ字ß \n\r\t1٣.,/'s-_é\u0301😀"


def _texts(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def _pieced(text: str, family: str, piece_chars: int) -> list[str]:
    pretok = FAMILIES[family]
    parts = list(long_text.pieces(text, pretok, piece_chars))
    assert "".join(parts) == text
    return [w for part in parts for w in pretok.split(part)]


@pytest.mark.parametrize("family", [f for f in CUTTABLE if f in FAMILIES])
def test_pieces_split_like_the_whole_on_the_shipped_samples(family: str) -> None:
    for sample in sorted((REPO / "data" / "samples").glob("*.jsonl.gz")):
        text = "\n".join(_texts(sample))
        cuts = len(list(long_text.pieces(text, FAMILIES[family], 300)))
        assert cuts > 10, (sample.name, cuts)
        assert _pieced(text, family, 300) == FAMILIES[family].split(text), sample.name


@pytest.mark.shared_data
@pytest.mark.parametrize("family", ["gpt2", "llama3", "o200k"])
def test_pieces_split_like_the_whole_on_every_shared_corpus(family: str, corpora_dir: Path) -> None:
    for path in sorted(corpora_dir.glob("*/*/docs.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            text = "\n".join(
                json.loads(line)["text"] for _, line in zip(range(40), f, strict=False)
            )
        assert _pieced(text, family, 2000) == FAMILIES[family].split(text), path


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=400), st.integers(2, 40))
def test_pieces_split_like_the_whole_on_generated_text(text: str, piece_chars: int) -> None:
    for family in CUTTABLE:
        if family in FAMILIES:
            assert _pieced(text, family, piece_chars) == FAMILIES[family].split(text), family


def test_only_known_regex_shapes_are_cut() -> None:
    text = "word\nword\n" * 100
    assert not long_text.cuttable(FAMILIES["sentencepiece"])  # a ▁ prefix per piece would differ
    prefixed = Pretokenizer("gpt2-prefix", (ByteLevelSplit(add_prefix_space=True),))
    assert not long_text.cuttable(prefixed)
    assert list(long_text.pieces(text, prefixed, 10)) == [text]
    assert long_text.cuttable(FAMILIES["gpt2"])


def test_word_table_of_a_long_document_equals_the_uncut_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "\n".join(_texts(REPO / "data" / "samples" / "books.jsonl.gz"))
    whole = WordTable()
    whole.add_text(text, FAMILIES["gpt2"])
    monkeypatch.setattr(long_text, "PIECE_CHARS", 500)
    monkeypatch.setattr(long_text.pieces, "__defaults__", (500,))
    cut = WordTable()
    cut.add_text(text, FAMILIES["gpt2"])
    assert cut.counts == whole.counts
    assert (cut.pretokens, cut.bytes_, cut.chars, cut.documents) == (
        whole.pretokens,
        whole.bytes_,
        whole.chars,
        1,
    )


def test_a_line_past_the_limit_is_refused_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"text": "short"}) + "\n" + json.dumps({"text": "x" * 5000}) + "\n")
    read: list[int] = []
    real = corpus.read_line

    def spy(readline, url, offset):  # type: ignore[no-untyped-def]
        line = real(lambda n: (read.append(n), readline(n))[1], url, offset)
        return line

    monkeypatch.setattr(corpus, "read_line", spy)
    with pytest.raises(CorpusReadError, match=r"line at byte 18 is longer than 1,000 bytes"):
        list(corpus.file_documents(str(path), "text", "line", "replace"))
    assert max(read) == 1001  # never asked for more than the limit and one byte
