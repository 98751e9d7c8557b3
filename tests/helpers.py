"""Test helpers: shipped sample text and tokenizers trained in-test by the real BpeTrainer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tokmix.bpe.training import train_bytelevel_bpe

__all__ = ["read_jsonl_gz", "sample_documents", "train_bytelevel_bpe"]

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
