"""Hand-inserted merges (``tokmix.bpe.hand_inserted``): found where a trainer cannot have put
them, and nowhere else.

The property that defines them is checked by brute force on small lists (a merge listed before
a merge that first makes one of its parts); the real case is Gemma 4's list (llama.cpp's
``ggml-vocab-gemma-4.gguf``), also written as a Gemma-style ``tokenizer.json`` and encoded by
``tokenizers`` as the oracle; trained tokenizers (GPT-2, Llama 2, Mistral) must show none.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from tests.released_files import write_gemma_json
from tokmix.analytics.encoders import word_encoder
from tokmix.bpe.hand_inserted import find_hand_inserted, is_whitespace_run, out_of_order
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.tokenizer import LoadedTokenizer

BASE = set("abc\n▁")


def test_a_head_listed_before_its_parts_is_hand_inserted() -> None:
    merges = [("\n\n", "\n\n"), ("\n", "\n\n"), ("\n", "\n"), ("a", "b"), ("ab", "c")]
    found = find_hand_inserted(merges, BASE)
    assert found.n_merges == 2  # up to the last merge listed before its parts
    assert found.tokens == ("\n\n", "\n\n\n", "\n\n\n\n")  # with the run they need
    assert found.out_of_order == 2


def test_a_trained_whitespace_head_is_not() -> None:
    """Starting with whitespace merges is what training on code does; only the order (a part
    made later) gives a hand-written list away."""
    merges = [("▁", "▁"), ("▁▁", "▁▁"), ("a", "b"), ("\n", "\n")]
    assert out_of_order(merges, BASE) == []
    assert find_hand_inserted(merges, BASE).n_merges == 0


def test_out_of_order_is_a_part_made_later_brute_force() -> None:
    merges = [("a", "bc"), ("b", "c"), ("ab", "c"), ("a", "b"), ("abc", "abc")]
    made: dict[str, int] = {}
    for i, (left, right) in enumerate(merges):
        made.setdefault(left + right, i)
    expected = [
        i
        for i, (left, right) in enumerate(merges)
        if any(len(p) > 1 and made[p] > i for p in (left, right))
    ]
    assert out_of_order(merges, BASE) == expected == [0, 2]
    assert find_hand_inserted(merges, BASE).n_merges == 0  # not whitespace


@pytest.mark.slow
def test_gemma4_head_is_found_replayed_first_and_encodes_like_tokenizers(
    gguf_vocab_dir: Path, tmp_path: Path, shared_data: Path
) -> None:
    gguf_path = gguf_vocab_dir / "ggml-vocab-gemma-4.gguf"
    tok = load_tokenizer(gguf_path)
    n = len(tok.hand_inserted)
    assert n == 90  # 30 runs (2..31) of each of \n, ▁, \t
    assert all(is_whitespace_run(t) for t in tok.hand_inserted)
    products = [a + b for a, b in tok.merge_list.merges]
    assert tuple(products[:n]) == tok.hand_inserted
    assert products[n] == "▁t".encode()  # the first trained merge
    assert any("first 1392 merges of the file" in note for note in tok.notes)  # of 1394 ws

    json_path = tmp_path / "tokenizer.json"
    write_gemma_json(json_path, gguf_path)
    from_json = load_tokenizer(json_path)
    assert from_json.hand_inserted == tok.hand_inserted
    assert from_json.merge_list == tok.merge_list
    reference = Tokenizer.from_file(str(json_path))
    for text in _texts(shared_data / "corpora"):
        assert _encode(from_json, text) == reference.encode(text, add_special_tokens=False).ids


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", ["gpt2", "llama-2", "mistral-7b-v0.1", "gpt-3.5"])
def test_trained_tokenizers_have_no_hand_inserted_merges(tokenizers_dir: Path, rel: str) -> None:
    assert load_tokenizer(tokenizers_dir / rel).hand_inserted == ()


def _encode(tok: LoadedTokenizer, text: str) -> list[int]:
    words = list(tok.stats_pretokenizer.words(text))
    return [int(i) for i in word_encoder(tok).encode_concat(words)]


def _texts(corpora: Path) -> list[str]:
    out = ["a  b\n\n\n   c\t\t\td    ", "  leading and trailing  "]
    for category in ("languages/en", "languages/ja", "code/python", "code/c"):
        with gzip.open(corpora / category / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
            for _, line in zip(range(3), fh, strict=False):
                out.append(json.loads(line)["text"][:2000])
    return out
