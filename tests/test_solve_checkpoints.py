"""A solve killed half-way loses little: checkpoints of finished solves and of an LP's state.

Oracles: an uninterrupted run (a resumed run must give its shares and intervals bit for bit,
the reused solves being exact copies), the dense LP (an LP resumed from any of its own
states reaches its optimum), and numpy's own refusal to unpickle (a checkpoint is data only).
The kill is real: ``tokmix infer`` in a child process, SIGKILLed once it has kept replicates.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO
from tests.test_cli import CATEGORY_ARGS, DEMO_TOKENIZER
from tests.test_mixture_lp import _noisy_problem
from tokmix.cli import main
from tokmix.errors import TokmixError
from tokmix.jobs.solve_checkpoints import (
    ENV_SECONDS,
    SolveCheckpoints,
    checkpoint_key,
    checkpoint_seconds,
    code_digest,
    remove_checkpoints,
    tokenizer_root,
)
from tokmix.solvers.mixture_lp import (
    Checkpoint,
    LoopState,
    solve_mixture,
    solve_mixture_dense,
)
from tokmix.solvers.problem import MixtureProblem


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> MixtureProblem:
    return _noisy_problem(tmp_path_factory.mktemp("noisy"), np.random.default_rng(5), 80)


def test_an_lp_resumed_from_any_of_its_states_reaches_the_optimum(
    tmp_path: Path, noisy: MixtureProblem
) -> None:
    states: list[Checkpoint] = []
    cold = solve_mixture(noisy, checkpoint=states.append, checkpoint_every=0.0)
    rounds = cold.diagnostics["rounds"]
    # one a re-solve: not the last round (it only sweeps) nor the one that ends the coarse phase
    assert len(states) == rounds - 1 - (cold.diagnostics["coarse_rounds"] > 0)
    dense = solve_mixture_dense(noisy).objective
    assert cold.objective == pytest.approx(dense, rel=1e-7, abs=1e-10)
    for c in (states[0], states[len(states) // 2], states[-1]):
        done = int(c.state.arrays["loop_counts"][0])
        from_rows = solve_mixture(noisy, start=c.warm)
        assert from_rows.objective == pytest.approx(dense, rel=1e-7, abs=1e-10)
        going_on = solve_mixture(noisy, start=c.warm, resume=c.state)
        assert going_on.objective == pytest.approx(dense, rel=1e-7, abs=1e-10)
        assert going_on.diagnostics["rounds"] > done  # it counts on from the state's round
    # the last state is the final model and basis: no pivot, one sweep, nothing violated
    last = solve_mixture(noisy, resume=states[-1].state)
    assert last.diagnostics["rounds"] == rounds
    assert last.diagnostics["resumed_at_round"] == rounds - 1
    assert last.diagnostics["simplex_iterations"] == 0 < cold.diagnostics["simplex_iterations"]
    np.testing.assert_allclose(last.alpha, cold.alpha, rtol=0, atol=1e-12)
    # a state of another problem, or a damaged one, is not taken: the solve begins afresh
    other = _noisy_problem(tmp_path, np.random.default_rng(6), 70)
    fresh = solve_mixture(other, resume=states[-1].state)
    assert fresh.objective == pytest.approx(solve_mixture_dense(other).objective, rel=1e-7)
    assert fresh.diagnostics["rounds"] == solve_mixture(other).diagnostics["rounds"]
    arrays = states[-1].state.arrays
    pair_col = arrays["pair_col"].copy()
    pair_col[np.flatnonzero(pair_col >= 0)[0]] = arrays["step_col"].max()  # two on one column
    region = arrays["region"].copy()
    region[0] = np.nan
    for damage in (
        {"row_key": arrays["row_key"][:-5]},
        {"row_key": arrays["row_key"] + noisy.n_steps * noisy.n_pairs},  # steps past the end
        {"pair_col": pair_col},
        {"region": region},
    ):
        again = solve_mixture(noisy, resume=LoopState({**arrays, **damage}))
        assert again.diagnostics["rounds"] == rounds, damage.keys()
        assert not again.diagnostics["warm_start"], damage.keys()
    # a basis that is not one (every column basic) costs HiGHS pivots, never the optimum
    bad_basis = {**arrays, "col_status": np.full_like(arrays["col_status"], 1)}
    again = solve_mixture(noisy, resume=LoopState(bad_basis))
    assert again.objective == pytest.approx(dense, rel=1e-7, abs=1e-10)


def test_checkpoints_round_trip_bit_for_bit(tmp_path: Path, noisy: MixtureProblem) -> None:
    sol = solve_mixture(noisy)
    store = SolveCheckpoints.of(str(tmp_path), "tok", {"trajectories": "a", "options": "{}"}, 0.0)
    assert store.solution("paper") is None and store.state("paper") is None
    store.keep_solution("paper", sol)
    back = store.solution("paper")
    assert back is not None and back.warm is not None and sol.warm is not None
    assert back.categories == sol.categories and back.objective == sol.objective
    assert back.alpha.tobytes() == sol.alpha.tobytes()
    assert back.byte_share.tobytes() == sol.byte_share.tobytes()
    assert back.diagnostics == json.loads(json.dumps(sol.diagnostics))
    assert (back.warm.step == sol.warm.step).all() and (
        back.warm.pair_key == sol.warm.pair_key
    ).all()
    states: list[Checkpoint] = []
    solve_mixture(noisy, checkpoint=states.append, checkpoint_every=0.0)
    store.keeper("estimate")(states[2])
    state = store.state("estimate")
    assert state is not None and (state.warm.alpha == states[2].warm.alpha).all()
    assert state.state.arrays.keys() == states[2].state.arrays.keys()
    for k, v in states[2].state.arrays.items():
        assert state.state.arrays[k].tobytes() == v.tobytes(), k
    # a replicate's LP keeps its state and goes on from it; without states, no options
    options = store.options(7)
    assert set(options) == {"checkpoint", "checkpoint_every"}
    options["checkpoint"](states[3])
    options = store.options(7)
    row_key = states[3].state.arrays["row_key"]
    assert options["resume"].arrays["row_key"].tobytes() == row_key.tobytes()
    assert (options["start"].step == states[3].warm.step).all()
    assert SolveCheckpoints(store.root).options(7) == {}
    # other inputs, other checkpoints
    other = SolveCheckpoints.of(str(tmp_path), "tok", {"trajectories": "b", "options": "{}"}, 0.0)
    assert other.solution("paper") is None
    remove_checkpoints(str(tmp_path), "tok")
    assert store.solution("paper") is None
    assert not Path(tokenizer_root(str(tmp_path), "tok")).exists()
    assert not (tmp_path / "_work").exists()  # no empty folders left behind


def test_a_checkpoint_kept_by_other_code_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading (or editing) tokmix between a kill and the re-run must not reuse solves the
    old code made: the key digests the source, since the version string stays 0.1.0 across
    unreleased changes. Oracle: a byte-identical copy of the package digests the same."""
    import tokmix.jobs.solve_checkpoints as module

    copy = tmp_path / "tokmix"
    shutil.copytree(REPO / "tokmix", copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_digest(copy) == code_digest(REPO / "tokmix") == module._this_code()
    lp = copy / "solvers" / "mixture_lp.py"
    lp.write_bytes(lp.read_bytes() + b"\n")
    edited = code_digest(copy)
    assert edited != code_digest(REPO / "tokmix")
    (copy / "solvers" / "new_method.py").write_text("")
    assert code_digest(copy) != edited

    inputs = {"trajectories": "a", "options": "{}"}
    store = SolveCheckpoints.of(str(tmp_path / "out"), "tok", inputs, 0.0)
    store.keep_solution(
        "paper", solve_mixture(_noisy_problem(tmp_path, np.random.default_rng(1), 30))
    )
    monkeypatch.setattr(module, "_this_code", lambda: edited)
    assert checkpoint_key(inputs) not in store.root
    upgraded = SolveCheckpoints.of(str(tmp_path / "out"), "tok", inputs, 0.0)
    assert upgraded.solution("paper") is None and store.solution("paper") is not None


class _Trap:
    """Unpickling this would leave a file behind: the proof that nothing was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path(self.path).write_text, ("unpickled",))  # type: ignore[return-value]


def test_a_damaged_or_foreign_checkpoint_is_skipped_never_trusted(
    tmp_path: Path, noisy: MixtureProblem
) -> None:
    store = SolveCheckpoints(str(tmp_path / "ck"))
    store.keep_solution("paper", solve_mixture(noisy))
    lines: list[str] = []
    root = tmp_path / "ck"
    good = (root / "paper.npz").read_bytes()
    (root / "paper.npz").write_bytes(good[: len(good) // 2])  # a torn write
    assert store.solution("paper", lines.append) is None
    assert "unreadable" in lines[-1] and "solving without it" in lines[-1]
    trap = tmp_path / "trap"
    with open(root / "paper.npz", "wb") as f:  # an object array: loading it would unpickle
        np.savez(f, header=np.zeros(3, np.uint8), alpha=np.array([_Trap(str(trap))], object))
    assert store.solution("paper", lines.append) is None
    assert not trap.exists()
    header = json.dumps({"format": 1, "kind": "solution", "categories": ["a", "b"]})
    with open(root / "paper.npz", "wb") as f:  # lengths that do not agree
        np.savez(
            f,
            header=np.frombuffer(header.encode(), np.uint8),
            alpha=np.ones(3),
            byte_share=np.ones(2),
        )
    assert store.solution("paper", lines.append) is None
    (root / "replicate-3.npz").write_bytes(b"junk")
    assert store.recall(3) == (False, None)  # solved again
    store.record(4, None)
    assert store.recall(4) == (True, None)  # a failed replicate stays failed
    store.record(5, solve_mixture(noisy))
    kept, replicate = store.recall(5)
    assert kept and replicate is not None
    assert replicate.alpha.tobytes() == solve_mixture(noisy).alpha.tobytes()


def test_checkpoint_seconds_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SECONDS, raising=False)
    assert checkpoint_seconds() == 60.0
    monkeypatch.setenv(ENV_SECONDS, "0")
    assert checkpoint_seconds() == 0.0  # every round
    monkeypatch.setenv(ENV_SECONDS, "off")
    assert checkpoint_seconds() is None
    monkeypatch.setenv(ENV_SECONDS, "2.5")
    assert checkpoint_seconds() == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(ENV_SECONDS, bad)
        with pytest.raises(TokmixError, match=ENV_SECONDS):
            checkpoint_seconds()


def test_a_bad_checkpoint_interval_fails_before_counting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's typo in the variable is a one-line error at once, not a traceback after the
    count and the replay have run."""
    monkeypatch.setenv(ENV_SECONDS, "-1")
    assert main(_infer_args(tmp_path / "out", 0)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tokmix: error: {ENV_SECONDS}='-1'") and "Traceback" not in err
    assert not list((tmp_path / "out").glob("word_counts*")), "nothing was counted"


def _infer_args(out: Path, replicates: int) -> list[str]:
    bootstrap = ["--replicates", str(replicates)] if replicates else ["--groups", "0"]
    return ["infer", str(DEMO_TOKENIZER), *CATEGORY_ARGS, "--out", str(out), "--json", *bootstrap]


def _kill_when(
    out: Path, replicates: int, every: str, done: Callable[[list[Path]], bool]
) -> list[str]:
    """Run ``tokmix infer`` in a child, an LP's state kept every ``every`` seconds, and
    SIGKILL it once ``done(files kept)``; the names of the checkpoint files it left."""
    env = {**os.environ, ENV_SECONDS: every, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tokmix", *_infer_args(out, replicates)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            if done(_kept(out)):
                break
            time.sleep(0.005)
        assert child.poll() is None, "the run ended before it could be killed"
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert not (out / "mixtures").exists()  # nothing was committed
    return sorted(p.name for p in _kept(out))


def _kept(out: Path) -> list[Path]:
    """The checkpoint files under ``out/_work`` now. Each stage of the child makes ``_work``
    and removes it at its commit, so a look can find it gone half-way: nothing kept then."""
    try:
        return list((out / "_work").glob("solve-*/*/*.npz"))
    except FileNotFoundError:
        return []


@pytest.mark.slow
def test_infer_killed_during_its_replicates_resumes_to_the_same_intervals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    replicates = 10
    assert main(_infer_args(tmp_path / "whole", replicates)) == 0
    whole = json.loads(capsys.readouterr().out)

    out = tmp_path / "killed"
    # no LP states: a replicate killed mid-LP starts over, so every solve is exact
    names = _kill_when(
        out,
        replicates,
        "off",
        lambda files: sum(p.name.startswith("replicate-") for p in files) >= 3,
    )
    assert {"paper.npz", "estimate.npz"} <= set(names)
    kept = sum(n.startswith("replicate-") for n in names)
    assert 3 <= kept < replicates

    monkeypatch.setenv(ENV_SECONDS, "off")
    forced = tmp_path / "forced"  # --force recomputes: a killed run's solves are not taken
    shutil.copytree(out, forced)
    assert main([*_infer_args(forced, replicates), "--force"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "resumed" not in doc["diagnostics"] and doc["categories"] == whole["categories"]
    assert main(_infer_args(out, replicates)) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["categories"] == whole["categories"]  # shares and intervals, bit for bit
    assert resumed["diagnostics"]["resumed"][:2] == ["paper", "estimate"]
    assert resumed["diagnostics"]["resumed"][2].endswith("replicates")
    assert int(resumed["diagnostics"]["resumed"][2].split()[0]) == kept
    assert "resumed" not in whole["diagnostics"]
    assert not (out / "_work").exists()  # gone with the commit


@pytest.mark.slow
def test_infer_killed_inside_an_lp_resumes_it_to_the_same_optimum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(_infer_args(tmp_path / "whole", 0)) == 0
    whole = json.loads(capsys.readouterr().out)
    for attempt in range(3):  # the kill must land inside an LP: a stalled machine may miss it
        out = tmp_path / f"killed-{attempt}"
        names = _kill_when(
            out, 0, "0", lambda files: any(p.name.endswith(".state.npz") for p in files)
        )
        inside = [
            lp
            for lp in ("paper", "estimate")
            if f"{lp}.state.npz" in names and f"{lp}.npz" not in names
        ]
        if inside:
            break
    else:
        pytest.fail(f"no kill landed inside an LP: {names}")
    monkeypatch.setenv(ENV_SECONDS, "0")
    assert main(_infer_args(out, 0)) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert f"{inside[0]} (resumed)" in resumed["diagnostics"]["resumed"]
    got, want = resumed["diagnostics"], whole["diagnostics"]
    assert got["objective"] == pytest.approx(want["objective"], rel=1e-9)
    assert got["paper_lp"]["objective"] == pytest.approx(want["paper_lp"]["objective"], rel=1e-9)
    for a, b in zip(resumed["categories"], whole["categories"], strict=True):
        assert a["name"] == b["name"]
        assert a["byte_share"] == pytest.approx(b["byte_share"], abs=1e-6)  # the same face
    assert not (out / "_work").exists()


@pytest.mark.slow
def test_ctrl_c_during_the_solve_ends_cleanly_and_keeps_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it, pool workers
    included) is a person's choice: exit 130 with one line saying what is kept, no
    traceback; the next run takes up what was kept."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tokmix", *_infer_args(out, 10), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not [p for p in _kept(out) if p.name.startswith("replicate-")]:
            assert child.poll() is None and time.monotonic() < deadline, "no replicate was kept"
            time.sleep(0.005)
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert err.rstrip().endswith("the same command goes on from them.")
    kept = list((out / "_work").glob("solve-*/*/replicate-*.npz"))
    assert kept and not (out / "mixtures").exists()
    assert main(_infer_args(out, 10)) == 0
    resumed = json.loads(capsys.readouterr().out)["diagnostics"]["resumed"]
    assert resumed[:2] == ["paper", "estimate"] and resumed[2].endswith("replicates")
