"""Category groups (``tokmix.analytics.groups``): intervals from per-replicate sums."""

from __future__ import annotations

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
