"""infer's merge checks (``tokmix.jobs.merge_checks``): the hand-inserted head left out of the
LP, ``--merge-range auto`` from lineage, the order warning in the output."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import REPO
from tokmix.bpe.byte_level import bytes_to_unicode
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.words import WordTable
from tokmix.cli import main
from tokmix.errors import TokmixError
from tokmix.jobs.merge_checks import indistinguishable, merge_steps

pytestmark = pytest.mark.shared_data
TAB = bytes_to_unicode()[9]  # "ĉ": the tab byte in GPT-2's alphabet


def _with_head(source: Path, out: Path) -> Path:
    """``source``'s tokenizer.json with tab runs of 2..8 prepended longest first, as Gemma's
    list starts (a hand-written head: each run listed before the runs it is made of)."""
    doc = json.loads(source.read_text())
    model = doc["model"]
    runs = [TAB * n for n in range(8, 1, -1)]
    assert not any(r in model["vocab"] for r in runs)
    head = [f"{TAB * (n // 2)} {TAB * (n - n // 2)}" for n in range(8, 1, -1)]
    model["merges"] = head + list(model["merges"])
    start = max(model["vocab"].values()) + 1
    model["vocab"].update({r: start + i for i, r in enumerate(runs)})
    out.write_text(json.dumps(doc))
    return out


def test_hand_inserted_head_is_left_out_by_default(tokenizers_dir: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(_with_head(tokenizers_dir / "hf-bpe-small" / "tokenizer.json",
                                    tmp_path / "tokenizer.json"))  # fmt: skip
    assert len(tok.hand_inserted) == 7
    steps = merge_steps(tok, None, None)
    assert (steps.first, steps.last) == (8, tok.n_merges)
    assert steps.diagnostics["hand_inserted"]["merges_left_out"] == 7
    assert merge_steps(tok, "0:100", None).first == 1  # an explicit range keeps them
    with pytest.raises(TokmixError, match="hand-inserted"):
        merge_steps(tok, None, 5)


def test_merge_range_auto_solves_the_extension(tokenizers_dir: Path, tmp_path: Path) -> None:
    gpt2 = load_tokenizer(tokenizers_dir / "gpt2")
    cl100k = load_tokenizer(tokenizers_dir / "gpt-3.5" / "cl100k_base.tiktoken")
    short = tmp_path / "gpt2-40k.tiktoken"
    lines = (tokenizers_dir / "gpt2" / "r50k_base.tiktoken").read_text().splitlines()
    short.write_text("\n".join(lines[: 256 + 40_000]) + "\n")
    base = load_tokenizer(short)
    steps = merge_steps(gpt2, "auto", None, [cl100k, base])
    assert (steps.first, steps.last) == (40_001, 50_000)
    assert steps.diagnostics["lineage"]["base"] == "gpt2-40k"
    with pytest.raises(TokmixError, match="extends none of the known tokenizers"):
        merge_steps(gpt2, "auto", None, [cl100k])


@pytest.mark.slow
def test_infer_warns_on_a_shuffled_list_and_not_on_the_real_one(
    tokenizers_dir: Path, corpora_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads((tokenizers_dir / "gpt-neox" / "tokenizer.json").read_text())
    merges = list(doc["model"]["merges"])
    random.Random(5).shuffle(merges)
    doc["model"]["merges"] = merges
    shuffled = tmp_path / "shuffled" / "tokenizer.json"
    shuffled.parent.mkdir()
    shuffled.write_text(json.dumps(doc))
    cats = [
        "--category", f"en={corpora_dir / 'languages' / 'en'}",
        "--category", f"py={corpora_dir / 'code' / 'python'}",
        "--max-bytes", "400KB", "--merges", "2000", "--groups", "0",
    ]  # fmt: skip
    results = {}
    for name, path in (("real", tokenizers_dir / "gpt-neox"), ("shuffled", shuffled)):
        out = tmp_path / "out" / name  # not the tokenizer's folder: that one is not tokmix's
        assert main(["infer", str(path), *cats, "--out", str(out)]) == 0
        results[name] = capsys.readouterr().out
    assert "WARNING: the merge list does not look like a training order" in results["shuffled"]
    assert "WARNING" not in results["real"]
    # the solve document the report reads carries the figure and the warning
    recorded = json.loads(
        (tmp_path / "out" / "shuffled" / "mixtures" / "shuffled.json").read_text()
    )
    assert recorded["diagnostics"]["order_check"]["in_training_order"] is False
    assert "fit of" in recorded["diagnostics"]["order_warning"]


@settings(max_examples=200, deadline=None)
@given(
    bases=st.lists(
        st.dictionaries(st.sampled_from([b"a", b"b", b"c", b"d"]), st.integers(1, 4), max_size=4),
        min_size=1,
        max_size=3,
    ),
    picks=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=6),
)
def test_categories_alike_are_those_of_the_same_word_frequencies(
    bases: list[dict[bytes, int]], picks: list[tuple[int, int]]
) -> None:
    """Oracle: word frequencies as exact fractions, compared whole."""
    tables = {
        f"c{i}": WordTable(Counter({w: n * k for w, n in bases[b % len(bases)].items()}))
        for i, (b, k) in enumerate(picks)
    }
    groups: dict[frozenset[tuple[bytes, Fraction]], list[str]] = {}
    for name, table in tables.items():
        total = sum(table.counts.values())
        if total:
            key = frozenset((w, Fraction(n, total)) for w, n in table.counts.items())
            groups.setdefault(key, []).append(name)
    want = sorted(g for g in groups.values() if len(g) > 1)
    assert sorted(indistinguishable(tables)) == want


def test_infer_warns_when_two_categories_are_the_same_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = REPO / "data" / "samples"
    twice = tmp_path / "books-twice.jsonl"  # the same documents twice over: same frequencies
    text = gzip.decompress((samples / "books.jsonl.gz").read_bytes())
    twice.write_bytes(text + text)
    cats = [
        "--category", f"a={samples / 'books.jsonl.gz'}",
        "--category", f"b={twice}",
        "--category", f"rust={samples / 'rust.jsonl.gz'}",
        "--merges", "600", "--groups", "0",
    ]  # fmt: skip
    demo = str(REPO / "data" / "tokenizers" / "demo")
    assert main(["infer", demo, *cats, "--out", str(tmp_path / "same")]) == 0
    out = capsys.readouterr().out
    assert "WARNING: categories a and b have the same word frequencies" in out
    recorded = json.loads((tmp_path / "same" / "mixtures" / "demo.json").read_text())
    assert "a and b" in recorded["diagnostics"]["sample_warning"]
    cats[3] = f"b={samples / 'python.jsonl.gz'}"
    assert main(["infer", demo, *cats, "--out", str(tmp_path / "apart")]) == 0
    assert "same word frequencies" not in capsys.readouterr().out
