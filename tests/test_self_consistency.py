"""ARCHITECTURE.md §4 self-consistency: replaying a tokenizer over its own training words finds, at
every step, that its merge is a most frequent pair. This holds only if pre-tokenization, pair
counting and merge application all match the ``tokenizers`` BpeTrainer exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.helpers import read_jsonl_gz, sample_documents, train_bytelevel_bpe
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import count_words
from tokmix.solvers.problem import build_problem


def _steps_not_at_max(tok: LoadedTokenizer, texts: list[str]) -> list[int]:
    table = count_words(texts, tok.pretokenizer)
    traj = replay_merges(dict(table.counts), tok.merge_list)
    problem = build_problem({"train": traj}, tok.merge_list.merge_ids, {"train": table.bytes_})
    counts = np.zeros(problem.n_pairs, dtype=np.int64)
    bad = []
    for k in range(problem.n_steps):
        lo, hi = problem.step_start[k], problem.step_start[k + 1]
        np.add.at(counts, problem.rows_pair[lo:hi], problem.rows_delta[lo:hi])
        m = problem.merge_pair[k]
        if m < 0 or counts[m] != counts.max() or counts[m] == 0:
            bad.append(problem.first_step + k)
    return bad


def test_tokenizer_trained_here_is_self_consistent(tmp_path: Path) -> None:
    texts = sample_documents("books", 250_000) + sample_documents("python", 250_000)
    tok = train_bytelevel_bpe(texts, 600, tmp_path)
    assert tok.n_merges == 600
    assert _steps_not_at_max(tok, texts) == []


def test_shipped_fixture_is_self_consistent(tokenizers_dir: Path) -> None:
    folder = tokenizers_dir / "hf-bpe-small"
    tok = load_tokenizer(folder / "tokenizer.json")
    texts = read_jsonl_gz(folder / "train-corpus.jsonl.gz")
    assert tok.n_merges == 1744
    assert _steps_not_at_max(tok, texts) == []


def test_other_words_are_not_self_consistent(tmp_path: Path) -> None:
    """The check has teeth: the same merges over different text fail it at many steps."""
    tok = train_bytelevel_bpe(sample_documents("books", 250_000), 300, tmp_path)
    assert len(_steps_not_at_max(tok, sample_documents("rust", 250_000))) > 30
