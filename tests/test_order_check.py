"""The merge-order check (``tokmix.bpe.order_check``): a real GPT-2 list fits English and code
samples clearly better than a shuffled control; a shuffled GPT-2 list does not and is flagged,
whether the shuffle keeps parts before products or not (the loader then repairs the order)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.merges import MergeList
from tokmix.bpe.order_check import (
    check_merge_order,
    random_valid_order,
    replayable_order,
)
from tokmix.bpe.words import count_words

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def words(corpora_dir: Path, tokenizers_dir: Path) -> dict[bytes, int]:
    tok = load_tokenizer(tokenizers_dir / "gpt2")
    texts = []
    for category, n in (("languages/en", 150), ("code/python", 30)):
        with gzip.open(corpora_dir / category / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for _, line in zip(range(n), fh, strict=False)]
    table = count_words(texts, tok.pretokenizer)
    return dict(zip(*table.sorted_items(), strict=True))


def test_real_gpt2_order_passes_and_a_valid_shuffle_is_flagged(
    tokenizers_dir: Path, words: dict[bytes, int]
) -> None:
    real = load_tokenizer(tokenizers_dir / "gpt2").merge_list
    check = check_merge_order(words, real, n_steps=1500)
    assert check.in_training_order, check
    assert check.warning() is None
    rng = np.random.default_rng(7)
    shuffled = MergeList(real.base, tuple(random_valid_order(real.merges, set(real.base), rng)))
    flagged = check_merge_order(words, shuffled, n_steps=1500)
    assert not flagged.in_training_order, flagged
    assert f"{flagged.fit:.2f}" in (flagged.warning() or "")
    assert flagged.fit < check.fit - 0.3


def test_a_fully_shuffled_file_loads_repaired_and_is_flagged(
    tokenizers_dir: Path, tmp_path: Path, words: dict[bytes, int]
) -> None:
    """A tokenizer.json whose merges are shuffled with no care for parts (any order still
    encodes in ``tokenizers``): the loader moves merges after their parts and notes it."""
    doc = json.loads((tokenizers_dir / "gpt-neox" / "tokenizer.json").read_text())
    merges = list(doc["model"]["merges"])
    random.Random(3).shuffle(merges)
    doc["model"]["merges"] = merges
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(doc))
    tok = load_tokenizer(path)
    assert any("not in training order" in n for n in tok.notes)
    assert not check_merge_order(words, tok.merge_list, n_steps=1500).in_training_order


def test_replayable_order_is_the_identity_on_a_training_order(tokenizers_dir: Path) -> None:
    real = load_tokenizer(tokenizers_dir / "gpt2").merge_list
    assert replayable_order(real.merges, set(real.base)) == list(real.merges)
