"""A merge list that does not fit its vocabulary is loaded, and says so."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import REPO
from tokmix.bpe.loaders import load_tokenizer

DEMO = REPO / "data" / "tokenizers" / "demo" / "tokenizer.json"


def test_a_merge_whose_token_is_missing_from_the_vocabulary_is_noted(tmp_path: Path) -> None:
    doc = json.loads(DEMO.read_text())
    merges = doc["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else m for m in merges]
    dropped = [pairs[10][0] + pairs[10][1], pairs[20][0] + pairs[20][1]]
    for token in dropped:
        del doc["model"]["vocab"][token]
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc))
    tok = load_tokenizer(tmp_path / "tokenizer.json")
    note = next(n for n in tok.notes if "not in the vocabulary" in n)
    assert note.startswith("2 merge(s) make a token")
    assert tok.n_merges == len(merges)
    assert not any("not in the vocabulary" in n for n in load_tokenizer(DEMO).notes)
