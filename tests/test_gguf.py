"""GGUF tokenizers (``tokmix.bpe.formats.gguf_vocab``) against llama.cpp's own test vectors.

The oracle is llama.cpp: for each of its ``ggml-vocab-*.gguf`` files, ``*.gguf.inp`` holds
texts and ``*.gguf.out`` the token ids llama.cpp's tokenizer gives them (``tests/gguf_vocab.py``
says where the files come from). tokmix loads the GGUF, splits each text with its pre-tokenizer
and encodes the words with its encoder; the ids must be llama.cpp's. A GGUF is also checked
against the ``tokenizer.json`` of the same tokenizer (GPT-NeoX, Llama 2) encoded by
``tokenizers``, and the metadata reader against ``gguf.GGUFReader``.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from pathlib import Path

import gguf
import numpy as np
import pytest
from tokenizers import Tokenizer

from tokmix.analytics.encoders import word_encoder
from tokmix.bpe.formats.gguf_metadata import read_gguf_metadata
from tokmix.bpe.formats.gguf_vocab import PRE_TOKENIZERS
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

SEPARATOR = "\n__ggml_vocab_test__\n"


def encode(tok: LoadedTokenizer, text: str) -> list[int]:
    """tokmix's encoding of a whole text: its encoding split, then its word encoder."""
    ids: list[int] = word_encoder(tok).encode_concat(list(tok.stats_pretokenizer.words(text)))
    return [int(i) for i in ids]


def vectors(path: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's test vectors: texts separated by a marker line, one id line per text."""
    inp = path.with_name(path.name + ".inp").read_text(encoding="utf-8")
    out = path.with_name(path.name + ".out").read_text(encoding="utf-8")
    texts = inp.split(SEPARATOR)
    if texts[-1] == "":
        texts.pop()
    ids = [[int(x) for x in line.split()] for line in out.split("\n")[: len(texts)]]
    assert len(ids) == len(texts)
    return list(zip(texts, ids, strict=True))


def added_token_ids(path: Path) -> set[int]:
    """Ids of control / user-defined tokens: llama.cpp matches user-defined ones in the text
    before BPE (as ``tokenizers`` matches added tokens); tokmix leaves them out by design."""
    meta, _ = read_gguf_metadata(path)
    types = meta["tokenizer.ggml.token_type"]
    return {int(i) for i in np.flatnonzero((types == 3) | (types == 4))}


# llama.cpp vocab files whose tokenizer tokmix reproduces, with how many of their test texts
# llama.cpp encodes with an added (user-defined) token: those are left out of the comparison.
VOCABS = [
    ("gpt-2", 0), ("llama-bpe", 0), ("deepseek-llm", 0), ("deepseek-coder", 0), ("falcon", 0),
    ("mpt", 7), ("starcoder", 0), ("qwen2", 0), ("qwen35", 0), ("command-r", 0), ("refact", 0),
    ("llama-spm", 0), ("phi-3", 0),
    pytest.param("gemma-4", 0, marks=pytest.mark.slow),
]  # fmt: skip


@pytest.mark.parametrize(("name", "n_added"), VOCABS)
def test_gguf_encodes_like_llama_cpp(gguf_vocab_dir: Path, name: str, n_added: int) -> None:
    path = gguf_vocab_dir / f"ggml-vocab-{name}.gguf"
    tok = load_tokenizer(path)
    assert tok.format == "gguf"
    added = added_token_ids(path)
    cases = vectors(path)
    compared = [(t, ids) for t, ids in cases if not added & set(ids)]
    assert len(cases) - len(compared) == n_added
    wrong = [(t, encode(tok, t), ids) for t, ids in compared if encode(tok, t) != ids]
    assert not wrong, f"{len(wrong)} of {len(compared)} texts differ, first: {wrong[0]!r:.300}"


def test_every_bpe_vocab_with_a_known_pre_is_covered(gguf_vocab_dir: Path) -> None:
    """No llama.cpp BPE vocab file with a reproduced ``pre`` escapes the vector test."""
    tested = {v[0] if isinstance(v, tuple) else v.values[0] for v in VOCABS}
    for path in sorted(gguf_vocab_dir.glob("ggml-vocab-*.gguf")):
        meta, _ = read_gguf_metadata(path)
        pre = meta.get("tokenizer.ggml.pre", b"").decode()
        has_vectors = path.with_name(path.name + ".out").is_file()
        if meta["tokenizer.ggml.model"] == b"gpt2" and pre in PRE_TOKENIZERS and has_vectors:
            assert path.name.removeprefix("ggml-vocab-").removesuffix(".gguf") in tested


@pytest.mark.parametrize(
    ("name", "model"), [("bert-bge", "'bert' (WordPiece)"), ("nomic-bert-moe", "'t5' (Unigram)")]
)
def test_non_bpe_gguf_is_refused_naming_the_model(
    gguf_vocab_dir: Path, name: str, model: str
) -> None:
    with pytest.raises(TokenizerFormatError, match=re.escape(f"tokenizer is {model}, not BPE")):
        load_tokenizer(gguf_vocab_dir / f"ggml-vocab-{name}.gguf")


def test_metadata_reader_agrees_with_gguf_reader(gguf_vocab_dir: Path) -> None:
    """The fast header reader against llama.cpp's own ``GGUFReader``, key by key."""
    path = gguf_vocab_dir / "ggml-vocab-gpt-2.gguf"
    ours, _ = read_gguf_metadata(path)
    reader = gguf.GGUFReader(path)
    keys = [k for k in reader.fields if not k.startswith("GGUF.")]
    assert sorted(ours) == sorted(keys)
    for key in keys:
        field = reader.fields[key]
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            theirs = [field.parts[i] for i in field.data]
            if field.types[-1] == gguf.GGUFValueType.STRING:
                assert ours[key] == [bytes(p) for p in theirs], key
            else:
                assert ours[key].tolist() == [p[0] for p in theirs], key
        elif field.types[0] == gguf.GGUFValueType.STRING:
            assert ours[key] == bytes(field.parts[field.data[0]]), key
        else:
            assert ours[key] == field.parts[field.data[0]][0], key


def _write_gguf(path: Path, pre: str | None, merges: list[str]) -> None:
    """A small byte-level GGUF written with the ``gguf`` package's own writer."""
    from tokmix.bpe.byte_level import bytes_to_unicode

    alphabet = bytes_to_unicode()
    tokens = [alphabet[b] for b in range(256)] + [m.replace(" ", "") for m in merges]
    writer = gguf.GGUFWriter(path, arch="gpt2")
    writer.add_tokenizer_model("gpt2")
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * len(tokens))
    writer.add_token_merges(merges)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def test_written_gguf_loads_and_pre_names_are_checked(tmp_path: Path) -> None:
    merges = ["t h", "th e", "Ġ the"]
    good = tmp_path / "toy.gguf"
    _write_gguf(good, "gpt-2", merges)
    tok = load_tokenizer(good)
    assert tok.merge_list.merges == ((b"t", b"h"), (b"th", b"e"), (b" ", b"the"))
    assert tok.pretokenizer.name == "gpt2"
    assert encode(tok, "the the") == [256 + 1, 256 + 2]

    unknown = tmp_path / "odd.gguf"
    _write_gguf(unknown, "made-up-pre", merges)
    with pytest.raises(TokenizerFormatError, match="'made-up-pre', which tokmix does not"):
        load_tokenizer(unknown)
    assert load_tokenizer(unknown, pretokenizer="gpt2").n_merges == 3
    # the magic decides, not the name
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(good.read_bytes())
    assert load_tokenizer(renamed).format == "gguf"


# ------------------------------------------------------------------ GGUF vs tokenizer.json


def _real_texts(corpora_dir: Path) -> list[str]:
    out = []
    for category in ("languages/en", "languages/ru", "languages/zh", "code/python", "domains/web"):
        with gzip.open(corpora_dir / category / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
            for _, line in zip(range(3), fh, strict=False):
                out.append(json.loads(line)["text"][:2000])
    return out


@pytest.mark.shared_data
def test_gpt_neox_gguf_equals_its_tokenizer_json(tokenizers_dir: Path, corpora_dir: Path) -> None:
    folder = tokenizers_dir / "gpt-neox"
    with pytest.raises(TokenizerFormatError, match=r"no tokenizer\.ggml\.pre"):
        load_tokenizer(folder / "ggml-vocab-gpt-neox.gguf")
    ours = load_tokenizer(folder / "ggml-vocab-gpt-neox.gguf", pretokenizer="gpt2")
    theirs = load_tokenizer(folder / "tokenizer.json")
    assert ours.merge_list == theirs.merge_list
    assert ours.vocab == theirs.vocab
    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))
    added = {t["id"] for t in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]}
    compared = 0
    for text in _real_texts(corpora_dir):
        # the json normalizes NFC first; a GGUF records no normalizer (llama.cpp applies none)
        text = unicodedata.normalize("NFC", text)
        expected = reference.encode(text, add_special_tokens=False).ids
        if added & set(expected):
            continue  # GPT-NeoX's added space-run tokens, matched before BPE; left out by design
        compared += 1
        assert encode(ours, text) == expected
    assert compared >= 10


@pytest.mark.shared_data
def test_llama2_gguf_encodes_like_its_tokenizer_json(
    tokenizers_dir: Path, corpora_dir: Path
) -> None:
    folder = tokenizers_dir / "llama-2"
    ours = load_tokenizer(folder / "ggml-vocab-llama-spm.gguf")
    theirs = load_tokenizer(folder / "tokenizer.json")
    assert ours.vocab == theirs.vocab
    assert ours.byte_pieces == theirs.byte_pieces
    reference = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in _real_texts(corpora_dir):
        assert encode(ours, text) == reference.encode(text, add_special_tokens=False).ids
