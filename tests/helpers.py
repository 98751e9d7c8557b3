"""Test helpers: shipped sample text and tokenizers trained in-test by the real BpeTrainer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from tokmix.bpe.training import train_bytelevel_bpe

__all__ = [
    "read_jsonl_gz",
    "sample_documents",
    "synthetic_eval_results",
    "train_bytelevel_bpe",
]

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"


def sample_documents(name: str, max_bytes: int | None = None) -> list[str]:
    """Documents of a shipped sample (``data/samples/NAME.jsonl.gz``), in order."""
    return read_jsonl_gz(SAMPLES / f"{name}.jsonl.gz", max_bytes)


def corpus_heads(corpora_dir: Path, documents: int) -> dict[str, list[str]]:
    """The first ``documents`` texts of every category of the shared corpora, by
    ``kind/name`` (at least 50 categories, or the shared data is not what the tests expect)."""
    out: dict[str, list[str]] = {}
    for path in sorted(corpora_dir.glob("*/*/docs.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out[f"{path.parent.parent.name}/{path.parent.name}"] = [
                json.loads(line)["text"] for _, line in zip(range(documents), f, strict=False)
            ]
    assert len(out) >= 50
    return out


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


def synthetic_eval_results(setting: str = "demo", category: str = "books") -> pa.Table:
    """A small ``tokmix evaluate`` results table (3 trials, every kind of variant), for the
    report's layout tests; the numbers are random, not measured."""
    from tokmix.schemas import EVAL_RESULTS

    rng = np.random.default_rng(0)
    rows = []
    for trial in range(3):
        for variant in ("base", "steps=100", "sample=50000", f"leave-out={category}"):
            for estimator in ("paper-lp", "bagged-lp", "uniform"):
                score = float(rng.normal(-3.0, 0.3))
                for cat in (category, "python", "legal"):
                    truth = float(rng.uniform(0.1, 0.5))
                    estimate = truth + float(rng.normal(0.0, 0.01))
                    lp = estimator != "uniform"
                    rows.append(
                        {
                            "setting": setting,
                            "n": 3,
                            "trial": trial,
                            "variant": variant,
                            "estimator": estimator,
                            "category": cat,
                            "truth": truth,
                            "estimate": estimate,
                            "low": estimate - 0.02 if lp else None,
                            "high": estimate + 0.02 if lp else None,
                            "log10_mse": score,
                            "train_merges": 300,
                            "steps": 100 if variant.startswith("steps") else 300,
                            "train_bytes": 200_000,
                            "sample_bytes": 50_000 if variant.startswith("sample") else 150_000,
                            "objective": 0.1,
                            "constraints": 10,
                            "missing_merges": 0,
                            "slack_steps": 2,
                            "seconds": 0.5,
                        }
                    )
    return pa.Table.from_pylist(rows, schema=EVAL_RESULTS)
