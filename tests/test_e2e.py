"""End to end: train a BPE on a known mixture of real categories, infer it through the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import read_jsonl_gz, train_bytelevel_bpe
from tokmix.cli import main

# Five languages, two of them Latin-script and close (en, de). Code categories at this scale
# (3 MB of training text) score about -3.3 to -3.9 with the paper's LP: see benchmarks/.
CATEGORIES = ("languages/en", "languages/de", "languages/ru", "languages/el", "languages/ja")
TRAIN_BYTES = 3_000_000
SAMPLE_BYTES = 4_000_000


def _write_jsonl_gz(path: Path, docs: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_inferred_mixture_of_a_trained_tokenizer(
    corpora_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(len(CATEGORIES)))
    train: list[str] = []
    train_bytes = []
    args = []
    for cat, w in zip(CATEGORIES, weights, strict=True):
        docs = read_jsonl_gz(corpora_dir / cat / "docs.jsonl.gz")
        sample, used, k = [], 0, 0
        while k < len(docs) and used + len(docs[k].encode()) <= SAMPLE_BYTES:
            used += len(docs[k].encode())
            sample.append(docs[k])
            k += 1
        # training text: later documents, disjoint from the attacker's sample
        chosen, used = [], 0
        for d in docs[k:]:
            if used + len(d.encode()) > w * TRAIN_BYTES:
                continue  # skip documents that overshoot: whole documents, close to the target
            chosen.append(d)
            used += len(d.encode())
        train += chosen
        train_bytes.append(used)
        name = cat.split("/")[1]
        _write_jsonl_gz(tmp_path / f"{name}.jsonl.gz", sample)
        args += ["--category", f"{name}={tmp_path / f'{name}.jsonl.gz'}"]
    tok_dir = tmp_path / "tok"
    train_bytelevel_bpe(train, 1744, tok_dir)
    truth = np.array(train_bytes) / sum(train_bytes)

    out = str(tmp_path / "out")
    assert main(["infer", str(tok_dir), *args, "--groups", "0", "--out", out, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    shares = np.array([c["byte_share"] for c in doc["categories"]])
    names = [c["name"] for c in doc["categories"]]
    assert names == [c.split("/")[1] for c in CATEGORIES]
    mse = float(np.mean((shares - truth) ** 2))
    print(
        f"seed {seed}: truth {truth.round(4)}, estimate {shares.round(4)},"
        f" log10 MSE {np.log10(mse):.2f}"
    )
    assert np.log10(mse) < -4, (truth, shares)
    assert doc["diagnostics"]["constraints"] > 0
