"""The released-tokenizer comparison (``tokmix.analytics.group_comparison``): one table and one
chart of tokenizers × category groups, drawn from exactly what the solve committed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from tokmix.analytics.group_comparison import GroupCell, GroupComparison
from tokmix.io import catalog
from tokmix.jobs.executors import LocalExecutor
from tokmix.jobs.pipeline import run_pipeline
from tokmix.schemas.run_spec import BootstrapOptions, CategoryInput, RunSpec

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
DEMO_TOKENIZER = ROOT / "data" / "tokenizers" / "demo"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(
    tokenizer: str, group: str, share: float, low: float | None, high: float | None
) -> dict[str, object]:
    return {
        "tokenizer": tokenizer,
        "group": group,
        "byte_share": share,
        "byte_share_low": low,
        "byte_share_high": high,
    }


def test_grid_keeps_the_run_order_and_marks_what_is_missing() -> None:
    comparison = GroupComparison.from_rows(
        [
            _row("gpt2", "english", 0.6, 0.5, 0.7),
            _row("gpt2", "code", 0.1, 0.05, 0.2),
            _row("cl100k", "code", 0.626, None, None),  # no interval; no english row
        ],
        level=0.9,
    )
    assert comparison.tokenizers == ("gpt2", "cl100k")
    assert comparison.groups == ("english", "code")
    assert comparison.cells[("gpt2", "code")].errors == pytest.approx((0.05, 0.1))
    assert comparison.cells[("cl100k", "code")].errors is None
    title, head, gpt2, cl100k = comparison.table_lines()
    assert title == "Category groups: byte share (90% interval)"
    assert head.split() == ["tokenizer", "english", "code"]
    assert "60.0% (50.0%–70.0%)" in gpt2 and "10.0% (5.0%–20.0%)" in gpt2
    assert cl100k.split() == ["cl100k", "62.6%"]  # the missing english cell stays empty
    assert comparison.chart().startswith(PNG_MAGIC)
    assert not GroupComparison.from_solutions({"x": {"diagnostics": {}}})


def test_a_nan_bound_is_no_interval() -> None:
    assert GroupCell(0.3, float("nan"), 0.4).errors is None


def _spec(tmp_path: Path) -> RunSpec:
    """Two tokenizers (the demo one under two names: a comparison needs no second training) over
    the shipped samples, with intervals and two groups."""
    tokenizers = []
    for name in ("demo-a", "demo-b"):
        shutil.copytree(DEMO_TOKENIZER, tmp_path / name)
        tokenizers.append(str(tmp_path / name))
    return RunSpec(
        run_id="compare",
        out=str(tmp_path / "out"),
        tokenizers=tokenizers,
        categories={
            name: CategoryInput(paths=[str(SAMPLES / f"{name}.jsonl.gz")], max_bytes=60_000)
            for name in ("books", "legal", "python", "rust")
        },
        merges=150,
        groups={"prose": "[bl]*", "code": "[pr]*"},
        bootstrap=BootstrapOptions(groups=4, replicates=4, merge_block=10),
    )


def test_a_run_writes_the_chart_of_what_mixture_groups_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chart beside the run summary is the chart of the ``mixture_groups`` rows; the
    printed table and ``tokmix report``'s figure show the same values."""
    from tokmix.cli import _print_groups
    from tokmix.jobs.report import collect_run, run_report

    spec = _spec(tmp_path)
    summary = run_pipeline(spec, executor=LocalExecutor(), log=lambda _m: None)
    chart = Path(summary["groups_chart"])
    assert chart == tmp_path / "out" / "runs" / "compare-groups.png"
    assert chart.read_bytes().startswith(PNG_MAGIC)
    assert json.loads((chart.parent / "compare.json").read_text())["groups_chart"] == str(chart)

    rows = pa.concat_tables(
        catalog.MIXTURE_GROUPS.read(spec.out, name).replace_schema_metadata(None)
        for name in ("demo-a", "demo-b")
    ).to_pylist()
    from_dataset = GroupComparison.from_rows(rows, level=spec.bootstrap.level)
    from_run = GroupComparison.from_solutions(summary["tokenizers"])
    assert from_run == from_dataset
    assert from_run.tokenizers == ("demo-a", "demo-b")
    assert from_run.groups == ("prose", "code")
    assert all(cell.errors is not None for cell in from_run.cells.values())
    for name in from_run.tokenizers:
        total = sum(from_run.cells[(name, g)].byte_share for g in from_run.groups)
        assert total == pytest.approx(1.0)
    assert chart.read_bytes() == from_dataset.chart()  # drawn from the same numbers

    _print_groups(summary)
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:5] == from_dataset.table_lines()
    assert printed[-1] == f"  chart: {chart}"

    report = Path(run_report(spec.out, str(tmp_path / "report")))
    assert (report.parent / "groups.png").read_bytes() == GroupComparison.from_solutions(
        collect_run(spec.out).solutions
    ).chart()


def test_the_released_spec_is_valid_and_every_group_has_categories() -> None:
    """``data/released.yaml`` (the README's table) loads, and each group matches categories,
    so a typo there fails here rather than an hour into the run."""
    from tokmix.analytics.groups import group_members
    from tokmix.schemas.run_spec import load_run_spec

    spec = load_run_spec(ROOT / "data" / "released.yaml")
    assert [Path(t).name for t in spec.tokenizers] == [
        "gpt2",
        "gpt-3.5",
        "gpt-neox",
        "llama-2",
        "mistral-7b-v0.1",
    ]
    members = group_members(list(spec.groups.items()), list(spec.categories))
    every = sorted(i for m in members.values() for i in m)
    assert every == list(range(len(spec.categories)))  # each category in exactly one group
