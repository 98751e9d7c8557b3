"""Lineage (``tokmix.bpe.lineage``): a Llama-3-like file is found to extend cl100k.

No Llama 3 file is available offline, so one is built as Meta built theirs: cl100k's ranks
followed by new tokens (here from the most frequent adjacent token pairs of real multilingual
text, ``tests/released_files.py``), written as Meta ships it (tiktoken ranks named
``tokenizer.model``) and also as a tekken JSON (another format, same list)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import tiktoken

from tests.released_files import (
    META_LLAMA3_PAT_STR,
    extension_ranks,
    read_ranks,
    words_of,
    write_ranks,
)
from tokmix.bpe.lineage import base_of, find_lineage, shared_prefix
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.pretokenizers import CL100K_PATTERN

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def llama3_like(
    tokenizers_dir: Path, corpora_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    cl100k = read_ranks(tokenizers_dir / "gpt-3.5" / "cl100k_base.tiktoken")
    texts = []
    for category in ("languages/ru", "languages/ja", "languages/el", "languages/vi"):
        with gzip.open(corpora_dir / category / "docs.jsonl.gz", "rt", encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for _, line in zip(range(30), fh, strict=False)]
    enc = tiktoken.Encoding("cl100k", pat_str=CL100K_PATTERN, mergeable_ranks=cl100k,
                            special_tokens={})  # fmt: skip
    words = words_of(texts, META_LLAMA3_PAT_STR)
    ranks = extension_ranks(cl100k, (enc.encode_ordinary(w) for w in words), len(cl100k) + 2000)
    path = tmp_path_factory.mktemp("llama3") / "llama3-like.tiktoken"
    write_ranks(path, ranks)
    return path


def test_llama3_like_file_extends_cl100k(tokenizers_dir: Path, llama3_like: Path) -> None:
    cl100k = load_tokenizer(tokenizers_dir / "gpt-3.5" / "cl100k_base.tiktoken")
    gpt2 = load_tokenizer(tokenizers_dir / "gpt2")
    child = load_tokenizer(llama3_like, pretokenizer="llama3")
    assert child.n_merges > cl100k.n_merges
    assert shared_prefix(cl100k.merge_list, child.merge_list) == cl100k.n_merges
    found = base_of(child, [gpt2, cl100k])
    assert found is not None and found.base == cl100k.name
    assert found.extension == (cl100k.n_merges, child.n_merges)
    assert "extends" in found.describe()
    pairs = find_lineage([gpt2, cl100k, child])
    assert [(p.base, p.child, p.extends) for p in pairs] == [(cl100k.name, child.name, True)]


def test_unrelated_and_same_lists(tokenizers_dir: Path) -> None:
    """GPT-2's list as merges.txt and as r50k ranks is one list; GPT-2 and cl100k share only
    a few merges, which is not lineage."""
    pair = load_tokenizer(tokenizers_dir / "gpt2")
    ranks = load_tokenizer(tokenizers_dir / "gpt2" / "r50k_base.tiktoken")
    cl100k = load_tokenizer(tokenizers_dir / "gpt-3.5" / "cl100k_base.tiktoken")
    (same,) = find_lineage([pair, ranks])
    assert same.shared == pair.n_merges and not same.extends
    assert shared_prefix(pair.merge_list, cl100k.merge_list) < 1000
    assert base_of(pair, [cl100k]) is None
