"""A solve at the paper's scale runs for hours: its lines must say which LP they are about and
how many replicates are done, wherever the solve runs. Oracles: the LP's own progress lines
(one a round with ``log_every=0``), and the replicates' count."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_mixture_lp import _noisy_problem
from tests.test_solve_checkpoints import _infer_args
from tokmix.cli import main
from tokmix.jobs import solve as solve_stage
from tokmix.jobs.progress import stderr_log
from tokmix.jobs.solve import _ReplicateMemo, labelled, long_solve_note
from tokmix.jobs.solve_checkpoints import SolveCheckpoints
from tokmix.solvers.mixture_lp import solve_mixture


def _untimed(lines: list[str]) -> list[str]:
    """The lines without their clock readings, which differ between two runs of one solve."""
    return [re.sub(r"(cpu_)?seconds [0-9.]+, |, [0-9.]+ s$", "", line) for line in lines]


def test_an_lps_lines_are_named_and_a_replicates_closing_line_dropped(tmp_path: Path) -> None:
    problem = _noisy_problem(tmp_path, np.random.default_rng(3), 40)
    plain: list[str] = []
    sol = solve_mixture(problem, log=plain.append, log_every=0.0)
    named: list[str] = []
    solve_mixture(problem, log=labelled(named.append, "paper LP"), log_every=0.0)
    expected = [line.replace("solve: ", "solve paper LP: ", 1) for line in plain]
    assert _untimed(named) == _untimed(expected)
    assert len(plain) == sol.diagnostics["rounds"] + 1 and plain[-1].startswith("solve: done")

    memo = _ReplicateMemo(SolveCheckpoints(str(tmp_path / "ck")), None)
    assert "log" not in memo.options(0)
    lines: list[str] = []
    memo = _ReplicateMemo(SolveCheckpoints(str(tmp_path / "ck")), lines.append)
    solve_mixture(problem, log=memo.options(6)["log"], log_every=0.0)
    expected = [line.replace("solve: ", "solve replicate 7: ", 1) for line in plain[:-1]]
    assert _untimed(lines) == _untimed(expected)
    other = labelled(lines.append, "x")
    other("count: not an LP line")
    assert lines[-1] == "count: not an LP line"


def test_a_worker_can_take_the_runs_log() -> None:
    """A solve task in a local pool gets its arguments by plain pickle: the log must go."""
    log = pickle.loads(pickle.dumps(stderr_log("run-x")))
    assert log.run_id == "run-x"  # type: ignore[attr-defined]


def test_infer_names_each_solve_and_counts_the_replicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_infer_args(tmp_path / "out", 4)) == 0
    err = capsys.readouterr().err
    paper, estimate = err.index("solve paper LP: done"), err.index("solve estimate: done")
    replicates = err.index("solve/replicates: 4/4 tasks")
    assert paper < estimate < replicates
    assert "solve: done" not in err  # every LP's closing line is named
    # the solve verb alone, on the same root, says as much
    assert main(["solve", "--tokenizer", "demo", "--out", str(tmp_path / "out"), "-j", "1"]) == 0
    err = capsys.readouterr().err
    assert "solve paper LP: done" in err and "solve/replicates: 20/20 tasks" in err


def test_a_long_solve_says_so_before_its_lps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the first LP line, a run at the paper's scale says the LPs will take long and how
    to trade merges for time; the demo's 1 500 steps stay quiet. The demo stands in for a
    30 000-merge run by lowering the threshold to its size."""
    assert long_solve_note(30, 9_999, 20) is None
    point_only = long_solve_note(30, 30_000, 0)
    assert point_only is not None and "30000 merge steps" in point_only
    assert "replicates" not in point_only and "--merge-stride" in point_only
    assert long_solve_note(30, 30_000, 20, merge_stride=4) is None  # 7 500 steps in the LPs
    assert long_solve_note(30, 30_000, 20, merge_stride=2) is not None
    assert main(_infer_args(tmp_path / "quiet", 0)) == 0
    assert "will take long" not in capsys.readouterr().err

    monkeypatch.setattr(solve_stage, "LONG_SOLVE_STEPS", 1_500)
    assert main(_infer_args(tmp_path / "long", 3)) == 0
    err = capsys.readouterr().err
    note = err.index("solve: 5 categories x 1500 merge steps: the LPs will take long")
    assert note < err.index("solve paper LP:")
    assert "each of the 3 bootstrap replicates" in err and "--merges" in err
