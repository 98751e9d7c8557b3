"""Where the solve runs: ``solver.device`` in the spec, ``--device`` on the CLI, checked
before any stage; left out of a solve's inputs; the solve stage's GPUs asked of Ray."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from pydantic import ValidationError

from tests.test_options import BOOKS, DEMO, _one_error_line, _spec
from tokmix.cli import build_parser, main, run_spec_of
from tokmix.errors import TokmixError
from tokmix.jobs.executors import LocalExecutor
from tokmix.jobs.infer import run_infer
from tokmix.jobs.pipeline import run_pipeline
from tokmix.jobs.ray_executor import RayExecutor
from tokmix.jobs.solve import SOLVE, check_device, solve_inputs
from tokmix.jobs.stage import RunContext
from tokmix.schemas.run_spec import (
    BootstrapOptions,
    SolverOptions,
    StageResources,
    load_run_spec,
)


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Torch sees no GPU, here or on a machine that has one."""
    monkeypatch.setattr("tokmix.solvers.torch_sweep.cuda_available", lambda: False)


def test_the_spec_names_three_devices(tmp_path: Path) -> None:
    assert SolverOptions().device == "auto"
    assert SolverOptions(device="cuda").device == "cuda"
    with pytest.raises(ValidationError):
        SolverOptions(device="gpu")  # type: ignore[arg-type]
    with pytest.raises(TokmixError, match=r"solver\.device"):
        load_run_spec(_spec(tmp_path, "solver: {device: gpu}\n"))
    assert load_run_spec(_spec(tmp_path, "solver: {device: cpu}\n")).solver.device == "cpu"


def test_the_cli_device_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--device`` on every command that solves; on ``run`` it overrides the spec's."""
    parser = build_parser()
    assert parser.parse_args(["infer", "tok", "-c", "a=b"]).device == "auto"
    assert parser.parse_args(["solve", "--tokenizer", "t", "--device", "cpu"]).device == "cpu"
    path = str(_spec(tmp_path, "solver: {device: cpu}\n"))
    assert run_spec_of(parser.parse_args(["run", path])).solver.device == "cpu"
    assert run_spec_of(parser.parse_args(["run", path, "--device", "cuda"])).solver.device == (
        "cuda"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["solve", "--tokenizer", "t", "--device", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


@pytest.mark.usefixtures("no_cuda")
def test_cuda_without_a_gpu_is_refused_before_any_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (``infer``) torch must see a GPU; on Ray the solve stage must ask for one.
    Either way one line, before the tokenizer loads or anything is written."""
    spec = load_run_spec(_spec(tmp_path, "solver: {device: cuda}\n"))
    with pytest.raises(TokmixError, match="torch sees no CUDA device"):
        run_infer(spec)
    with pytest.raises(TokmixError, match=r"asks Ray for no GPU.*num_gpus: 1"):
        run_pipeline(spec)  # prepare refuses it before Ray is used
    gpus = spec.model_copy(update={"resources": {"solve": StageResources(num_gpus=1)}})
    check_device(gpus, RayExecutor())  # Ray's solve tasks will see their GPU
    with pytest.raises(TokmixError, match="torch sees no CUDA device"):
        check_device(gpus, LocalExecutor())
    check_device(spec.model_copy(update={"stages": ["count", "replay"]}), LocalExecutor())
    out = tmp_path / "cli-out"
    code = main(["infer", str(DEMO), "-c", f"books={BOOKS}", "--device", "cuda", "-o", str(out)])
    assert code == 2
    assert "torch sees no CUDA device" in _one_error_line(capsys)
    assert not out.exists() and not (tmp_path / "out").exists()


def test_the_device_is_not_a_solve_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit solved on one device is current on the other (same rows, same optimum); any
    other option still makes a new solve."""
    monkeypatch.setattr("tokmix.jobs.solve.read_manifest", lambda _out, _name: {})
    monkeypatch.setattr("tokmix.jobs.solve.content_digest", lambda _m: "digest")
    options = SolverOptions().model_dump()
    on = {d: solve_inputs("out", "tok", {**options, "device": d}) for d in ("cpu", "cuda")}
    assert on["cpu"] == on["cuda"]
    assert "device" not in json.loads(on["cpu"]["options"])
    assert solve_inputs("out", "tok", {**options, "per_step": 9}) != on["cpu"]


@pytest.mark.slow
def test_infer_on_another_device_reuses_the_solve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--device cpu`` solves with the compiled sweep (the diagnostics say so); the same
    run with ``--device auto`` skips the committed solve."""
    args = [
        "infer",
        str(DEMO),
        "-c",
        f"books={BOOKS}",
        "-c",
        f"legal={BOOKS.parent}/legal.jsonl.gz",
    ]
    args += ["--max-bytes", "40KB", "--merges", "60", "--groups", "1", "-o", str(tmp_path)]
    assert main([*args, "--device", "cpu", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["diagnostics"]["sweep"] == "numba"
    assert main([*args, "--device", "auto", "--json"]) == 0
    captured = capsys.readouterr()
    assert "already committed for these trajectories; skipped" in captured.err
    assert json.loads(captured.out)["categories"] == first["categories"]


class _Recording(LocalExecutor):
    """A local executor that records the resources a stage asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[StageResources | None] = []

    def map(self, fn: Any, calls: Any, **kwargs: Any) -> list[Any]:
        self.asked.append(kwargs.get("resources"))
        return super().map(fn, calls, **kwargs)

    def map_fn(self, resources: StageResources | None = None) -> Any:
        self.asked.append(resources)
        return super().map_fn(resources)


def test_the_solve_stage_asks_for_its_declared_gpus(tmp_path: Path) -> None:
    """Its tasks and its replicates' map both get ``resources.solve`` (nothing to solve
    here: the requests are what is checked)."""
    spec = load_run_spec(_spec(tmp_path, "resources: {solve: {num_gpus: 0.5, num_cpus: 2}}\n"))
    executor = _Recording()
    SOLVE.run(RunContext(spec, [], {}, [], {}, executor))
    assert executor.asked == [StageResources(num_gpus=0.5, num_cpus=2)] * 2


@pytest.fixture(scope="module")
def ray_with_a_gpu() -> Iterator[None]:
    """An embedded Ray that declares one GPU (a logical resource: no device needed)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=1,
        num_gpus=1,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def _gpus(_: int) -> tuple[list[Any], str | None]:
    return list(ray.get_gpu_ids()), os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.ray
@pytest.mark.usefixtures("ray_with_a_gpu")
def test_ray_solve_tasks_get_the_gpus_the_spec_gives(tmp_path: Path) -> None:
    """A solve task and a replicate of a spec with ``num_gpus: 1`` hold Ray's GPU (and
    CUDA_VISIBLE_DEVICES names it, which is what torch then sees); without, they hold none."""
    spec = load_run_spec(_spec(tmp_path, "resources: {solve: {num_gpus: 1}}\n"))
    executor = RayExecutor()
    with_gpu = spec.resources_for("solve")
    assert with_gpu.ray_options()["num_gpus"] == 1
    [(ids, visible)] = executor.map(_gpus, [(0,)], resources=with_gpu)
    assert len(ids) == 1 and visible == str(ids[0])
    [(ids, _)] = executor.map_fn(with_gpu)(_gpus, [0])
    assert len(ids) == 1
    [(ids, visible)] = executor.map(_gpus, [(0,)], resources=StageResources())
    assert ids == [] and not visible


@pytest.mark.ray
@pytest.mark.usefixtures("ray_with_a_gpu")
def test_a_solve_that_would_wait_forever_for_a_gpu_is_refused(tmp_path: Path) -> None:
    """Ray lends a blocked task's CPUs, not its GPUs: a solve holding the cluster's one GPU
    could never run a replicate asking for another. Refused at the stage's start; a half
    GPU each, or no replicates, runs."""
    spec = load_run_spec(_spec(tmp_path))

    def stage(num_gpus: float, groups: int) -> None:
        run = spec.model_copy(
            update={
                "resources": {"solve": StageResources(num_gpus=num_gpus)},
                "bootstrap": BootstrapOptions(groups=groups),
            }
        )
        SOLVE.run(RunContext(run, [], {}, [], {}, RayExecutor()))

    with pytest.raises(TokmixError, match=r"cluster has 1 GPUs.*num_gpus: 0\.5"):
        stage(1, 4)
    stage(0.5, 4)
    stage(1, 1)
