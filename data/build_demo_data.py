"""Rebuild the shipped demo data from ../shared/data (maintainers only; the demo never runs this).

Samples: the first documents of five permissively licensed categories, up to 400 KB each.
Demo tokenizer: a byte-level BPE trained by the ``tokenizers`` BpeTrainer on a known mixture of
*later* documents of the same categories (disjoint from the samples), so the demo can print
its estimate beside the truth.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "corpora"
CATEGORIES = {  # name -> (corpus dir, licence)
    "books": ("domains/books", "public domain (Austen, Shakespeare, Milton, KJV)"),
    "legal": ("domains/legal", "CC0-1.0 package; licence texts copied verbatim"),
    "python": ("code/python", "PSF-2.0 (CPython 3.11 standard library)"),
    "rust": ("code/rust", "MIT OR Apache-2.0 (Rust standard library)"),
    "typescript": ("code/typescript", "MIT (npm effect)"),
}
TRUE_BYTE_SHARES = {"books": 0.35, "legal": 0.10, "python": 0.30, "rust": 0.15, "typescript": 0.10}
SAMPLE_BYTES = 400_000
TRAIN_BYTES = 2_000_000
VOCAB_SIZE = 256 + 1500


def documents(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def take(docs: list[str], start: int, budget: int) -> tuple[list[str], int]:
    out: list[str] = []
    used = 0
    i = start
    while i < len(docs) and used + len(docs[i].encode()) <= budget:
        out.append(docs[i])
        used += len(docs[i].encode())
        i += 1
    return out, i


def main() -> None:
    if not SHARED.is_dir():
        sys.exit(f"needs the shared corpora at {SHARED}")
    (HERE / "samples").mkdir(exist_ok=True)
    training: list[str] = []
    realized: dict[str, int] = {}
    for name, (rel, _licence) in CATEGORIES.items():
        docs = documents(SHARED / rel / "docs.jsonl.gz")
        sample, end = take(docs, 0, SAMPLE_BYTES)
        with gzip.GzipFile(HERE / "samples" / f"{name}.jsonl.gz", "wb", mtime=0) as f:
            for text in sample:
                f.write((json.dumps({"text": text}, ensure_ascii=False) + "\n").encode())
        train, _ = take(docs, end, int(TRUE_BYTE_SHARES[name] * TRAIN_BYTES))
        training.extend(train)
        realized[name] = sum(len(t.encode()) for t in train)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(training, trainer)
    (HERE / "tokenizers" / "demo").mkdir(parents=True, exist_ok=True)
    tok.save(str(HERE / "tokenizers" / "demo" / "tokenizer.json"))
    total = sum(realized.values())
    truth = {
        "true_byte_shares": {k: round(v / total, 6) for k, v in realized.items()},
        "train_bytes": total,
        "vocab_size": VOCAB_SIZE,
        "pre_tokenizer": "ByteLevel(use_regex=True)",
    }
    (HERE / "tokenizers" / "demo" / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")


if __name__ == "__main__":
    main()
