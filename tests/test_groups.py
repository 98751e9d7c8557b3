"""Category groups (``tokmix.analytics.groups``): intervals from per-replicate sums."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tokmix.analytics.groups import group_members, grouped_shares, parse_group
from tokmix.errors import TokmixError

CATEGORIES = ["lang-en", "lang-fr", "code-py", "code-c", "web"]


def test_group_globs_and_errors() -> None:
    groups = [parse_group("english=lang-en"), parse_group("code=code-*")]
    assert group_members(groups, CATEGORIES) == {"english": [0], "code": [2, 3]}
    with pytest.raises(TokmixError, match="matches no category"):
        group_members([("math", "math-*")], CATEGORIES)
    with pytest.raises(TokmixError, match="NAME=GLOB"):
        parse_group("code")


def test_intervals_are_percentiles_of_sums_per_draw_not_sums_of_bounds() -> None:
    rng = np.random.default_rng(0)
    # two code categories that trade share with each other: their sum is nearly fixed
    a = rng.uniform(0.1, 0.3, size=400)
    reps = np.stack([a, 0.4 - a, np.full(400, 0.2), np.full(400, 0.2), np.full(400, 0.2)], 1)
    reps[:, 0] = 0.2
    reps[:, 2], reps[:, 3] = a, 0.4 - a
    point = reps.mean(axis=0)
    members = group_members([("code", "code-*")], CATEGORIES)
    (code,) = grouped_shares(CATEGORIES, point, members, reps, level=0.9)
    sums = reps[:, 2] + reps[:, 3]
    assert code.byte_share == pytest.approx(point[2] + point[3])
    assert code.low == pytest.approx(np.quantile(sums, 0.05))
    assert code.high == pytest.approx(np.quantile(sums, 0.95))
    lows = np.quantile(reps, 0.05, axis=0)
    highs = np.quantile(reps, 0.95, axis=0)
    assert code.high - code.low < 1e-9 < (highs[2] + highs[3]) - (lows[2] + lows[3])
    (point_only,) = grouped_shares(CATEGORIES, point, members)
    assert point_only.low is None


def test_below_40_replicates_a_group_is_normal_around_its_point_share_as_a_category_is() -> None:
    """A one-category group's interval is that category's own (``bootstrap_mixture``'s normal
    interval around the point estimate), not one around the replicates' mean, which the bagged
    estimate moves away from the point."""
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    reps = rng.dirichlet(np.ones(len(CATEGORIES)) * 20, size=12)
    point = reps.mean(axis=0) + np.array([0.03, -0.03, 0.0, 0.0, 0.0])  # off the mean
    members = group_members([("english", "lang-en"), ("code", "code-*")], CATEGORIES)
    english, code = grouped_shares(CATEGORIES, point, members, reps, level=0.9)
    z = norm.ppf(0.95)
    assert english.low == pytest.approx(point[0] - z * reps[:, 0].std(ddof=1))
    assert english.high == pytest.approx(point[0] + z * reps[:, 0].std(ddof=1))
    sums = reps[:, 2] + reps[:, 3]
    assert (code.low + code.high) / 2 == pytest.approx(point[2] + point[3])
    assert code.high - code.low == pytest.approx(2 * z * sums.std(ddof=1))


def test_infer_reports_groups_in_json_parquet_and_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the shipped demo: the group share is the sum of its categories' shares, its interval
    is computed over the replicates (inside [0, 1], around the share), and the Parquet dataset
    holds the same rows."""
    from tests.test_cli import CATEGORY_ARGS, DEMO_TOKENIZER
    from tokmix.cli import main
    from tokmix.io import catalog

    names = [a.split("=", 1)[0] for a in CATEGORY_ARGS[1::2]]
    first = names[0]
    args = ["infer", str(DEMO_TOKENIZER), *CATEGORY_ARGS, "--out", str(tmp_path)]
    args += ["--group", f"first={first}", "--group", "all=*", "--replicates", "6", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    shares = {c["name"]: c["byte_share"] for c in doc["categories"]}
    groups = {g["group"]: g for g in doc["diagnostics"]["groups"]}
    assert groups["first"]["byte_share"] == pytest.approx(shares[first])
    assert groups["all"]["byte_share"] == pytest.approx(1.0)
    assert groups["all"]["byte_share_high"] - groups["all"]["byte_share_low"] < 1e-6
    low, high = groups["first"]["byte_share_low"], groups["first"]["byte_share_high"]
    assert 0.0 <= low <= high <= 1.0
    table = catalog.MIXTURE_GROUPS.read(str(tmp_path), doc["tokenizer"]).to_pylist()
    assert {r["group"]: r["byte_share"] for r in table} == {
        g: v["byte_share"] for g, v in groups.items()
    }


def test_report_shows_groups_side_by_side() -> None:
    from tokmix.analytics.report import RunData, build_report

    group = {"group": "code & <c>", "categories": ["c"], "byte_share": 0.25}
    run = RunData(source="x")
    run.solutions = {
        "tok-a": {"diagnostics": {"groups": [{**group, "byte_share_low": 0.2,
                                              "byte_share_high": 0.3}]}},
        "tok-b": {"diagnostics": {"groups": [{**group, "byte_share": 0.5,
                                              "byte_share_low": None, "byte_share_high": None}]}},
    }  # fmt: skip
    report = build_report(run)
    html = report.html
    assert "Category groups" in html and "code &amp; &lt;c&gt;" in html
    assert "25.0% (20.0%–30.0%)" in html and "50.0%" in html
    (chart,) = [f for f in report.figures if f.file_name == "groups.png"]  # the comparison chart
    assert chart.png.startswith(b"\x89PNG")
