"""The LP benchmark's growth lines (issue #17 item 5): exponents between cases that differ in
one size, checked against times made to grow at a known rate."""

from __future__ import annotations

import re

from benchmarks.lp import PointTime, growth_lines


def _exponents(lines: list[str]) -> dict[str, float]:
    out = {}
    for line in lines:
        m = re.search(r"growth at ([\d,]+) (\w+): ([\d,]+) -> ([\d,]+) .*\^(-?[\d.]+)", line)
        assert m, line
        out[f"{m[1]} {m[2]} {m[3]}-{m[4]}"] = float(m[5])
    return out


def test_growth_recovers_known_exponents() -> None:
    def cpu(c: int, m: int) -> float:
        return 1e-6 * c**0.5 * m**2.3

    points = [
        PointTime(c, m, cpu(c, m), True)
        for c, m in [(30, 5000), (30, 10000), (60, 5000), (150, 5000)]
    ]
    got = _exponents(growth_lines(points))
    assert got == {
        "30 categories 5,000-10,000": 2.3,
        "5,000 merges 30-60": 0.5,
        "5,000 merges 60-150": 0.5,
    }


def test_a_capped_case_gives_a_lower_bound_and_ends_its_line() -> None:
    points = [
        PointTime(30, 10000, 100.0, True),
        PointTime(30, 30000, 900.0, False),  # stopped at the cap: at least 900 s
        PointTime(30, 60000, 950.0, False),
    ]
    lines = growth_lines(points)
    assert len(lines) == 1  # nothing follows from one lower bound to another
    assert "> 900.0 s CPU" in lines[0] and lines[0].endswith("or more")
    assert _exponents(lines) == {"30 categories 10,000-30,000": 2.0}


def test_one_case_or_unrelated_cases_give_no_growth() -> None:
    assert growth_lines([PointTime(30, 5000, 10.0, True)]) == []
    assert growth_lines([PointTime(30, 5000, 10.0, True), PointTime(60, 10000, 30.0, True)]) == []
