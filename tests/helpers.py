"""Test helpers: shipped sample text and tokenizers trained in-test by the real BpeTrainer."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.tokenizer import LoadedTokenizer

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"


def sample_documents(name: str, max_bytes: int | None = None) -> list[str]:
    """Documents of a shipped sample (``data/samples/NAME.jsonl.gz``), in order."""
    return read_jsonl_gz(SAMPLES / f"{name}.jsonl.gz", max_bytes)


def read_jsonl_gz(path: Path, max_bytes: int | None = None, skip: int = 0) -> list[str]:
    out: list[str] = []
    used = 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            text = json.loads(line)["text"]
            size = len(text.encode())
            if max_bytes is not None and used + size > max_bytes:
                break
            out.append(text)
            used += size
    return out


def train_bytelevel_bpe(texts: Iterable[str], n_merges: int, path: Path) -> LoadedTokenizer:
    """Train a GPT-2-style byte-level BPE with the ``tokenizers`` BpeTrainer, save, load it."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + n_merges,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    return load_tokenizer(path / "tokenizer.json")
