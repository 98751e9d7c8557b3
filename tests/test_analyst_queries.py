"""Every query of README.md's "For analysts" section, run on real outputs and checked.

The queries are extracted from README.md, so the README and this test cannot drift: a query
added there without a check here fails :func:`test_every_readme_query_is_checked`. The runs:
``tokmix stats`` (the demo tokenizer and one trained here) and ``tokmix infer`` twice with
different options, on the shipped demo samples in ``data/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.compute as pc
import pytest

from tests.helpers import REPO, SAMPLES, sample_documents, train_bytelevel_bpe
from tokmix.analytics.token_stats import NEVER_PRODUCED, derived_ratios, parity, token_vocabulary
from tokmix.bpe.loaders import load_tokenizer
from tokmix.cli import main
from tokmix.io.datasets import read_dataset
from tokmix.jobs.stats import dataset_name
from tokmix.schemas import TOKEN_FREQUENCIES, TOKEN_STATS, UNDERTRAINED

README = REPO / "README.md"
DEMO = REPO / "data" / "tokenizers" / "demo"
pytestmark = pytest.mark.slow  # three CLI runs on the demo data: 3-8 s warm, ~30 s cold (numba)

_BLOCK = re.compile(r"```(sql|python)\n(?:--|#) query: ([\w-]+)\n(.*?)```", re.S)


def readme_queries() -> dict[str, tuple[str, str]]:
    """``name -> (language, code)`` of the queries in README.md's "For analysts" section."""
    text = README.read_text()
    section = text.split("## For analysts", 1)[1].split("\n## ", 1)[0]
    return {name: (lang, code) for lang, name, code in _BLOCK.findall(section)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run1/`` (stats + infer) and ``run2/`` (infer with other options) under one folder."""
    root = tmp_path_factory.mktemp("analyst")
    trained = root / "legal-bpe"
    train_bytelevel_bpe(sample_documents("legal", 150_000), 300, trained)
    cats = [f"--category={c}={SAMPLES / c}.jsonl.gz" for c in ("books", "legal", "python")]
    run1, run2 = str(root / "run1"), str(root / "run2")
    common = [*cats, "--max-bytes", "120KB"]
    assert main(["stats", str(DEMO), str(trained), *common, "--out", run1]) == 0
    assert main(["infer", str(DEMO), *common, "--merges", "400", "--out", run1]) == 0
    assert main(["infer", str(DEMO), *cats, "--max-bytes", "160KB", "--merges", "600",
                 "--out", run2]) == 0  # fmt: skip
    return root


def _run(lang: str, code: str) -> pl.DataFrame:
    if lang == "sql":
        return duckdb.sql(code).pl()
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # our own README, not user input
    result = namespace["result"]
    assert isinstance(result, pl.DataFrame)
    return result


def _stats_rows(runs: Path) -> list[dict[str, Any]]:
    rows = []
    for name in ("demo", "legal-bpe"):
        table = read_dataset(str(runs / "run1"), dataset_name("token_stats", name), TOKEN_STATS)
        rows += table.to_pylist()
    return rows


def check_best_compression(df: pl.DataFrame, runs: Path) -> None:
    want = sorted(
        (
            (r["tokenizer"], derived_ratios(r))
            for r in _stats_rows(runs)
            if r["category"] == "books"
        ),
        key=lambda tr: -(tr[1]["bytes_per_token"] or 0),
    )
    assert df["tokenizer"].to_list() == [t for t, _ in want]
    assert df["bytes_per_token"].to_list() == pytest.approx([r["bytes_per_token"] for _, r in want])
    if "fertility" in df.columns:
        assert df["fertility"].to_list() == pytest.approx([r["fertility"] for _, r in want])
    if "vocab_use" in df.columns:
        assert df["vocab_use"].to_list() == pytest.approx([r["vocab_use"] for _, r in want])


def _never_produced_oracle(runs: Path, name: str, path: Path) -> set[int]:
    """Vocabulary minus every id in the frequency tables (unreachable ones are reported as
    such; the demo and trained tokenizers have none)."""
    freq = read_dataset(
        str(runs / "run1"), dataset_name("token_frequencies", name), TOKEN_FREQUENCIES
    )
    return set(token_vocabulary(load_tokenizer(path))) - set(freq["token_id"].to_pylist())


def check_never_used_summary(df: pl.DataFrame, runs: Path) -> None:
    got = {(r["tokenizer"], r["reason"]): r["tokens"] for r in df.to_dicts()}
    demo = len(_never_produced_oracle(runs, "demo", DEMO))
    trained = len(_never_produced_oracle(runs, "legal-bpe", runs / "legal-bpe"))
    assert got == {("demo", NEVER_PRODUCED): demo, ("legal-bpe", NEVER_PRODUCED): trained}
    assert demo > 0


def check_never_used_tokens(df: pl.DataFrame, runs: Path) -> None:
    assert set(df["token_id"].to_list()) == _never_produced_oracle(runs, "demo", DEMO)
    vocab = token_vocabulary(load_tokenizer(DEMO))
    assert all(vocab[i] == t for i, t in zip(df["token_id"], df["token"], strict=True))


def check_top_tokens(df: pl.DataFrame, runs: Path) -> None:
    freq = read_dataset(
        str(runs / "run1"), dataset_name("token_frequencies", "demo"), TOKEN_FREQUENCIES
    ).to_pylist()
    books = [r for r in freq if r["category"] == "books"]
    top = sorted(books, key=lambda r: (-r["count"], r["token_id"]))[:10]
    assert list(zip(df["token_id"], df["count"], strict=True)) == [
        (r["token_id"], r["count"]) for r in top
    ]
    names = {i: t for t, i in load_tokenizer(DEMO).vocab.items()}
    assert df["text"].to_list() == [_utf8_or_none(names[r["token_id"]]) for r in top]


def _utf8_or_none(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_parity(df: pl.DataFrame, runs: Path) -> None:
    want = parity(_stats_rows(runs), "legal", "books")
    assert dict(zip(df["tokenizer"], df["parity"], strict=True)) == pytest.approx(want)


def _mixture(run: Path) -> dict[str, float]:
    doc = json.loads((run / "mixtures" / "demo.json").read_text())
    return {c["name"]: c["byte_share"] for c in doc["categories"]}


def check_mixture_change(df: pl.DataFrame, runs: Path) -> None:
    one, two = _mixture(runs / "run1"), _mixture(runs / "run2")
    change = {c: two[c] - one[c] for c in one}
    assert set(df["category"]) == set(one) and set(df["tokenizer"]) == {"demo"}
    assert dict(zip(df["category"], df["change"], strict=True)) == pytest.approx(change)
    assert df["change"].abs().to_list() == sorted(map(abs, change.values()), reverse=True)
    assert max(map(abs, change.values())) > 1e-4  # the two runs do differ


CHECKS: dict[str, Callable[[pl.DataFrame, Path], None]] = {
    "best-compression": check_best_compression,
    "best-compression-polars": check_best_compression,
    "never-used-summary": check_never_used_summary,
    "never-used-tokens": check_never_used_tokens,
    "top-tokens": check_top_tokens,
    "parity": check_parity,
    "mixture-change": check_mixture_change,
    "mixture-change-polars": check_mixture_change,
}


def test_every_readme_query_is_checked() -> None:
    assert set(readme_queries()) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_readme_query(name: str, runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lang, code = readme_queries()[name]
    monkeypatch.chdir(runs)
    CHECKS[name](_run(lang, code), runs)


def test_datasets_keep_the_contract(runs: Path) -> None:
    """The columns the report reads, by name and type, and one row per tokenizer x category."""
    run1 = str(runs / "run1")
    for schema, kind in ((TOKEN_STATS, "token_stats"), (TOKEN_FREQUENCIES, "token_frequencies"),
                         (UNDERTRAINED, "undertrained")):  # fmt: skip
        table = read_dataset(run1, dataset_name(kind, "demo"), schema)
        for field in schema:
            assert table.schema.field(field.name).type == field.type
    stats = read_dataset(run1, dataset_name("token_stats", "demo"), TOKEN_STATS)
    assert sorted(stats["category"].to_pylist()) == ["books", "legal", "python"]
    freq = read_dataset(run1, dataset_name("token_frequencies", "demo"), TOKEN_FREQUENCIES)
    for row in stats.to_pylist():
        sel = freq.filter(pc.equal(freq["category"], row["category"]))
        assert pc.sum(sel["count"]).as_py() == row["tokens"]
        assert len(sel) == row["tokens_used"]
