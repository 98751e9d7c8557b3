"""The tokenizer-format registry (``tokmix.bpe.formats``): one module per format, found by
detection, and nothing outside the registry naming a format.

A toy format registered here the way a new format module would be shows that loading, word
encoding and under-trained token analysis all reach a format through its registry entry alone,
and that content with a signature beats a misleading file name.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import fsspec
import numpy as np
import pytest

from tokmix.analytics.encoders import word_encoder
from tokmix.analytics.token_stats import merge_pairs
from tokmix.bpe import formats, loaders
from tokmix.bpe.formats.base import (
    Detection,
    Evidence,
    Source,
    TokenizerFormat,
    read_file,
    single_source,
)
from tokmix.bpe.merges import BYTE_ALPHABET, MergeList
from tokmix.bpe.pretokenizers import GPT2
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError
from tokmix.jobs.tokenizers import load_tokenizer as load_from_anywhere

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "tokenizers" / "demo"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_bpe_imports_nothing_above_it() -> None:
    """The core reads local files at most: no I/O layer, Ray, jobs or analytics (anywhere in a
    module, lazy imports included)."""
    above = ("tokmix.io", "tokmix.jobs", "tokmix.analytics", "tokmix.cli", "ray")
    for path in sorted((REPO / "tokmix" / "bpe").rglob("*.py")):
        bad = {m for m in _imports(path) if m.startswith(above)}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_no_format_is_named_outside_the_registry() -> None:
    """``tokenizer.format == "tiktoken"``-style checks belong to the format modules."""
    for path in sorted((REPO / "tokmix").rglob("*.py")):
        if "formats" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
                consts = [c for c in node.comparators if isinstance(c, ast.Constant)]
                assert not (node.left.attr == "format" and consts), (
                    f"{path.relative_to(REPO)}:{node.lineno} compares .format with a literal"
                )


def test_registry_names_are_unique_and_found_by_name() -> None:
    names = [f.name for f in formats.REGISTRY]
    assert names == ["hf-json", "gpt2-vocab-merges", "tiktoken", "sentencepiece"]
    assert all(formats.format_named(n).name == n for n in names)
    assert loaders.PRIORITY == "tokenizer.json, vocab.json + merges.txt, *.tiktoken, *.model"
    with pytest.raises(TokenizerFormatError, match="unknown tokenizer format 'nope'"):
        formats.format_named("nope")


# ------------------------------------------------------------------ a toy plugin

_MAGIC = b"TOYBPE\n"


class _CountingEncoder:
    """Encodes a word as one id per byte (the toy's 'library'); counts its calls."""

    calls = 0

    def __init__(self, tokenizer: LoadedTokenizer) -> None:
        self._vocab = tokenizer.vocab

    def encode_concat(self, words: Sequence[bytes]) -> np.ndarray:
        _CountingEncoder.calls += 1
        return np.asarray([self._vocab[bytes([b])] for w in words for b in w], dtype=np.int64)


def _toy_detect(path: Path, head: bytes) -> Detection | None:
    if head.startswith(_MAGIC):
        return Detection(single_source("toy", path), Evidence.SIGNATURE)
    return None


def _toy_load(source: Source, pretokenizer: str | None) -> LoadedTokenizer:
    path = source.files[0]
    lines = read_file(path)[len(_MAGIC) :].split()
    merges = tuple((a, b) for a, b in zip(lines[::2], lines[1::2], strict=True))
    vocab = {t: i for i, t in enumerate(BYTE_ALPHABET + tuple(a + b for a, b in merges))}
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format="toy",
        sha256="0" * 64,
        merge_list=MergeList(base=BYTE_ALPHABET, merges=merges),
        pretokenizer=GPT2,
        vocab=vocab,
    )


def _toy_merges(tokenizer: LoadedTokenizer) -> Iterable[tuple[bytes, bytes]]:
    return [(b"t", b"o")]


TOY = TokenizerFormat(
    name="toy",
    label="*.toy",
    find_in=lambda folder: tuple(single_source("toy", p) for p in sorted(folder.glob("*.toy"))),
    detect=_toy_detect,
    load=_toy_load,
    word_encoder=_CountingEncoder,
    encoder_merges=_toy_merges,
)


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = (*formats.REGISTRY, TOY)
    monkeypatch.setattr(formats, "REGISTRY", registry)
    monkeypatch.setattr(loaders, "REGISTRY", registry)


@pytest.mark.usefixtures("toy_registered")
def test_a_registered_format_is_loaded_encoded_and_analysed(tmp_path: Path) -> None:
    (tmp_path / "mine.toy").write_bytes(_MAGIC + b"t o\nto y\n")
    tok = loaders.load_tokenizer(tmp_path)
    assert (tok.format, tok.name) == ("toy", tmp_path.name)
    assert tok.merge_list.merges == ((b"t", b"o"), (b"to", b"y"))
    before = _CountingEncoder.calls
    ids = word_encoder(tok).encode_concat([b"ab"])
    assert ids.tolist() == [ord("a"), ord("b")] and _CountingEncoder.calls == before + 1
    assert list(merge_pairs(tok)) == [(b"t", b"o")]


@pytest.mark.usefixtures("toy_registered")
def test_a_signature_beats_a_misleading_name(tmp_path: Path) -> None:
    """``.json`` says hf-json, but the toy's magic bytes say otherwise; without the magic the
    name decides (and the file is not JSON)."""
    (tmp_path / "tokenizer.json").write_bytes(_MAGIC + b"a b\n")
    assert loaders.load_tokenizer(tmp_path / "tokenizer.json").format == "toy"
    (tmp_path / "plain.json").write_bytes(b"a b\n")
    with pytest.raises(TokenizerFormatError, match="not valid JSON"):
        loaders.load_tokenizer(tmp_path / "plain.json")


def test_directory_priority_follows_the_registry(tmp_path: Path) -> None:
    """A directory with a tokenizer.json and a .model loads the earlier registry entry and says
    that the other was there."""
    (tmp_path / "tokenizer.json").write_bytes((DEMO / "tokenizer.json").read_bytes())
    (tmp_path / "extra.model").write_bytes(b"\x00")
    tok = loaders.load_tokenizer(tmp_path)
    assert tok.format == "hf-json"
    assert any("also holds *.model" in n for n in tok.notes)


def test_urls_are_fetched_at_the_edge_not_in_the_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKMIX_CACHE", str(tmp_path))
    url = "memory://tokmix-test-formats/demo/tokenizer.json"
    fs = fsspec.filesystem("memory")
    fs.pipe(url, (DEMO / "tokenizer.json").read_bytes())
    with pytest.raises(TokenizerFormatError, match="a URL; fetch it first"):
        loaders.load_tokenizer(url)
    fetched = load_from_anywhere(url)
    local = loaders.load_tokenizer(DEMO)
    assert dataclasses.replace(fetched, path="", name="") == dataclasses.replace(
        local, path="", name="", notes=fetched.notes
    )
