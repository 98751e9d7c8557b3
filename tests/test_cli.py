"""The `tokmix` command on the shipped demo data: output, stages alone, re-runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import REPO
from tokmix.cli import main

DEMO_TOKENIZER = REPO / "data" / "tokenizers" / "demo"
TRUTH = json.loads((DEMO_TOKENIZER / "truth.json").read_text())["true_byte_shares"]
CATEGORY_ARGS = [
    arg
    for name in TRUTH
    for arg in ("--category", f"{name}={REPO / 'data' / 'samples' / f'{name}.jsonl.gz'}")
]


def _infer(out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:  # type: ignore[type-arg]
    assert (
        main(["infer", str(DEMO_TOKENIZER), *CATEGORY_ARGS, "--out", str(out), "--json", *extra])
        == 0
    )
    return json.loads(capsys.readouterr().out)


def test_infer_json_on_the_demo_is_close_to_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _infer(tmp_path, capsys, "--replicates", "6")  # 20 by default; each is an LP solve
    assert doc["tokenizer"] == "demo"
    shares = {c["name"]: c["byte_share"] for c in doc["categories"]}
    assert set(shares) == set(TRUTH)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert sum(c["weight"] for c in doc["categories"]) == pytest.approx(1.0)
    mse = np.mean([(shares[k] - TRUTH[k]) ** 2 for k in TRUTH])
    assert np.log10(mse) < -3  # 400 KB samples; a uniform guess scores about -1.9 here
    assert doc["diagnostics"]["last_step"] == 1500
    # the Parquet output says the same as the JSON
    table = pq.read_table(tmp_path / "mixtures" / "tokenizer=demo" / "part-00000.parquet")
    assert dict(
        zip(table["category"].to_pylist(), table["byte_share"].to_pylist(), strict=True)
    ) == (pytest.approx(shares))
    # by default every share has its bootstrap interval, around the estimate
    assert doc["diagnostics"]["interval"]["replicates"] == 6
    for row in doc["categories"]:
        assert row["byte_share_low"] < row["byte_share"] < row["byte_share_high"], row
    assert table["byte_share_low"].to_pylist() == [
        next(r["byte_share_low"] for r in doc["categories"] if r["name"] == c)
        for c in table["category"].to_pylist()
    ]


def test_stages_alone_equal_infer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _infer(tmp_path / "a", capsys, "--merges", "300")
    out = str(tmp_path / "b")
    count = ["count", str(DEMO_TOKENIZER), *CATEGORY_ARGS, "--groups", "10", "--out", out]
    assert main(count) == 0  # infer's default bootstrap groups, so the intervals agree too
    assert main(["replay", str(DEMO_TOKENIZER), "--merges", "300", "--out", out]) == 0
    capsys.readouterr()
    assert main(["solve", "--tokenizer", "demo", "--out", out, "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["categories"] == doc["categories"]


def test_merge_range_replays_only_the_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _infer(tmp_path, capsys, "--merge-range", "1000:1500", "--groups", "0")
    assert (doc["diagnostics"]["first_step"], doc["diagnostics"]["last_step"]) == (1001, 1500)
    steps = pq.read_table(tmp_path / "trajectories" / "tokenizer=demo")["step"].to_numpy()
    assert steps.min() == 1000 and steps.max() <= 1500  # snapshot at 1000, deltas 1001..1500


def test_rerun_skips_committed_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _infer(tmp_path, capsys, "--merges", "200")
    manifest = next((tmp_path / "word_counts").glob("*/_SUCCESS"))
    before = manifest.stat().st_mtime_ns
    second = _infer(tmp_path, capsys, "--merges", "200")
    assert manifest.stat().st_mtime_ns == before
    assert second["categories"] == first["categories"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--category", "nonsense"], "NAME=PATH"),
        (["--category", "x=/no/such/file.jsonl"], "/no/such/file.jsonl"),
        (
            ["--merges", "99999", "--category", f"books={REPO / 'data/samples/books.jsonl.gz'}"],
            "--merges",
        ),
    ],
)
def test_bad_arguments_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["infer", str(DEMO_TOKENIZER), *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_empty_category_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code = main(
        [
            "infer",
            str(DEMO_TOKENIZER),
            *CATEGORY_ARGS[:2],
            "--category",
            f"void={empty}",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert str(empty) in capsys.readouterr().err


def test_missing_tokenizer_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer", str(tmp_path / "nope"), *CATEGORY_ARGS[:2], "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_a_merge_stride_is_its_own_solve_not_the_committed_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--merge-stride 3`` on an output root already solved over every step: a new solve
    (not the committed mixture reused), equal to the LPs over every third step solved here
    from the committed trajectories; back to the default, the first answer again."""
    from tokmix.jobs.solve import read_trajectories
    from tokmix.solvers.noise_scaled_lp import solve_mixture_scaled
    from tokmix.solvers.problem import build_problem

    every = _infer(tmp_path, capsys, "--merges", "600", "--groups", "0")
    third = _infer(tmp_path, capsys, "--merges", "600", "--groups", "0", "--merge-stride", "3")
    assert every["diagnostics"]["merge_stride"] == 1
    assert third["diagnostics"]["merge_stride"] == 3
    problem = build_problem(*read_trajectories(str(tmp_path), "demo"))
    direct = solve_mixture_scaled(problem, merge_stride=3)
    shares = {c["name"]: c["byte_share"] for c in third["categories"]}
    assert [shares[c] for c in direct.categories] == pytest.approx(direct.byte_share, abs=1e-6)
    assert third["diagnostics"]["objective"] != pytest.approx(every["diagnostics"]["objective"])
    again = _infer(tmp_path, capsys, "--merges", "600", "--groups", "0")
    assert again["categories"] == every["categories"]
    args = ["infer", str(DEMO_TOKENIZER), *CATEGORY_ARGS, "--out", str(tmp_path / "x")]
    assert main([*args, "--merge-stride", "0"]) == 2
    assert "--merge-stride" in capsys.readouterr().err
    assert main([*args, "--merges", "300", "--estimator", "likelihood", "--merge-stride", "2"]) == 2
    err = capsys.readouterr().err
    assert "likelihood estimator uses every merge step" in err
    assert "count" not in err  # refused before any stage ran
