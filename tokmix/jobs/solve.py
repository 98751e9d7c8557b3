"""Stage 3: trajectories -> the inferred mixture (ARCHITECTURE.md §5), as Parquet and JSON."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tokmix.analytics.confounded import confounded_groups, confounded_warning
from tokmix.analytics.groups import group_members, grouped_shares
from tokmix.errors import DatasetError, SolverError, TokmixError
from tokmix.io import catalog
from tokmix.io.catalog import mixture_json_path
from tokmix.io.datasets import content_digest, read_manifest, write_dataset
from tokmix.io.fs import filesystem_for, write_bytes_atomic
from tokmix.jobs.executors import Executor, LocalExecutor
from tokmix.jobs.progress import Log, Progress, stderr_log
from tokmix.jobs.replay import (
    group_totals_name,
    group_trajectories_name,
    read_group_trajectories,
    read_trajectories,
    trajectories_name,
)
from tokmix.jobs.solve_checkpoints import SolveCheckpoints, checkpoint_seconds, remove_checkpoints
from tokmix.jobs.stage import RunContext, Stage
from tokmix.schemas import MIXTURES
from tokmix.schemas.mixture import CategoryShare, MixtureResult
from tokmix.schemas.run_spec import (
    STRIDE_NOT_FOR_LIKELIHOOD,
    BootstrapOptions,
    RunSpec,
    StageResources,
)
from tokmix.solvers.bootstrap import BootstrapResult, MapFn, bootstrap_mixture
from tokmix.solvers.likelihood import solve_mixture_likelihood
from tokmix.solvers.mixture_lp import MixtureSolution, solve_mixture
from tokmix.solvers.noise_scaled_lp import DEFAULT_POWER, solve_mixture_scaled
from tokmix.solvers.problem import build_problem
from tokmix.solvers.torch_sweep import resolve_device


def bootstrap_options(options: BootstrapOptions | None) -> dict[str, Any] | None:
    """What :func:`run_solve` takes from a run's bootstrap options: None without groups. One
    function for both pipelines, so their solves hash and resample alike."""
    if options is None or options.groups <= 1:
        return None
    return {
        "replicates": options.replicates,
        "level": options.level,
        "seed": options.seed,
        "merge_block": options.merge_block,
    }


def mixtures_name(tokenizer: str) -> str:
    return catalog.MIXTURES.name(tokenizer)


def mixture_table(
    tokenizer: str,
    sol: MixtureSolution,
    pairs: list[int],
    bytes_: list[int],
    interval: BootstrapResult | None = None,
) -> pa.Table:
    n = len(sol.categories)
    none = pa.nulls(n, pa.float64())
    return pa.table(
        {
            "tokenizer": [tokenizer] * n,
            "category": list(sol.categories),
            "weight": sol.alpha,
            "byte_share": sol.byte_share,
            "byte_share_low": none if interval is None else interval.byte_share_low,
            "byte_share_high": none if interval is None else interval.byte_share_high,
            "pairs": pairs,
            "bytes": bytes_,
        },
        schema=MIXTURES,
    )


WHERE_NOT_WHAT = ("device",)
"""Solver options that say where a solve runs, not what it computes (the CUDA sweep finds the
CPU sweep's rows and optimum): left out of a solve's inputs, so a commit made on one device
is current on the other."""

LEFT_OUT_AT_DEFAULT = {"merge_stride": 1}
"""Options added after solves were committed, left out of the inputs at their default (which
computes what those solves did), so the commits stay current."""


def solve_inputs(out: str, tokenizer: str, solver_options: dict[str, Any]) -> dict[str, str]:
    """What a committed solve depends on: the committed trajectories (their files' sha256,
    through the manifest) and the solver options (but :data:`WHERE_NOT_WHAT`)."""
    manifest = read_manifest(out, trajectories_name(tokenizer))
    options = {
        k: v
        for k, v in solver_options.items()
        if k not in WHERE_NOT_WHAT and LEFT_OUT_AT_DEFAULT.get(k, object()) != v
    }
    return {
        "trajectories": content_digest(manifest),
        "options": json.dumps(options, sort_keys=True),
    }


def check_device(spec: RunSpec, executor: Executor) -> None:
    """``solver.device: cuda`` checked before any stage runs: in this process torch must see
    a CUDA device; on Ray the solve stage must ask for GPUs (Ray hides the GPUs from a task
    that asks for none). ``auto`` is resolved where the solve runs."""
    if "solve" not in spec.stages or spec.solver.device != "cuda":
        return
    if isinstance(executor, LocalExecutor):
        resolve_device("cuda")
    elif not spec.resources_for("solve").num_gpus:
        raise TokmixError(
            "solver.device is cuda but the solve stage asks Ray for no GPU (a task without "
            "GPUs sees none): set resources: {solve: {num_gpus: 1}}, or use device auto"
        )


def read_mixture_json(out: str, tokenizer: str) -> MixtureResult:
    fs, path = filesystem_for(mixture_json_path(out, tokenizer))
    return MixtureResult.from_json(json.loads(fs.cat_file(path)))


def run_solve(
    out: str,
    tokenizer: str,
    *,
    bootstrap: dict[str, Any] | None = None,
    map_fn: MapFn = map,
    category_groups: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    **solver_options: Any,
) -> MixtureResult:
    """Solve from a run's committed trajectories; write the JSON, then commit ``mixtures/``.

    ``solver_options``: ``estimator`` (``scaled``, the default, ``paper`` or ``likelihood``),
    ``scaled_power``, ``device`` (``auto``, ``cpu`` or ``cuda``, resolved here: where the
    LP's sweep and the likelihood run) and :func:`solve_mixture`'s own options. The paper's
    LP is always solved (the scaled LP prices its slack from that α, the likelihood starts
    from it) and reported beside the estimate. The likelihood estimator's own intervals
    (merge-block sandwich of its observed information) fill the byte-share bounds when there
    is no bootstrap.

    With ``bootstrap`` (``replicates``, ``level``, ``seed``, ``merge_block``) and committed
    per-group trajectories (a run with bootstrap groups), every byte share gets a bootstrap
    interval over document groups and merge blocks (tokmix.solvers.bootstrap); ``map_fn`` runs the
    replicates (a Ray job passes a parallel one). Returns the result, also written as
    ``mixtures/NAME.json``.

    The solves share their work: the scaled LP starts from the paper LP's α and rows, each
    replicate from the point estimate's (:class:`tokmix.solvers.mixture_lp.WarmStart`);
    ``log`` gets the solves' progress lines. Each finished solve and, every minute, an
    unfinished LP's state are kept (:mod:`tokmix.jobs.solve_checkpoints`): a re-run after a
    kill takes them up; they go once the mixture is committed.
    """
    options = dict(solver_options)
    estimator = options.pop("estimator", "scaled")
    power = options.pop("scaled_power", DEFAULT_POWER)
    device = resolve_device(options.pop("device", "cpu"))
    if estimator not in ("scaled", "paper", "likelihood"):
        raise SolverError(f"unknown estimator {estimator!r}: use 'scaled', 'paper' or 'likelihood'")
    if options.get("merge_stride", 1) > 1 and estimator == "likelihood":
        raise SolverError(STRIDE_NOT_FOR_LIKELIHOOD)
    recorded = {
        **options,
        "estimator": estimator,
        "scaled_power": power,
        "bootstrap": bootstrap,
        **_groups_key(category_groups or {}),
    }
    # The inputs recorded are the trajectories read: their digest before and after reading
    # must agree, or another run committed new ones meanwhile.
    inputs = solve_inputs(out, tokenizer, recorded)
    trajs, merge_ids, bytes_ = read_trajectories(out, tokenizer)
    groups = read_group_trajectories(out, tokenizer) if bootstrap else None
    if solve_inputs(out, tokenizer, recorded) != inputs:
        raise DatasetError(
            f"{out}: the trajectories of {tokenizer} changed while they were read (another run "
            "is writing this output root?); re-run when it is done"
        )
    problem = build_problem(trajs, merge_ids, bytes_)
    replicates = bootstrap["replicates"] if groups is not None and bootstrap is not None else 0
    note = long_solve_note(
        problem.n_categories, problem.n_steps, replicates, options.get("merge_stride", 1)
    )
    if note is not None and log is not None and estimator != "likelihood":
        log(note)
    options["device"] = device
    checkpoints = SolveCheckpoints.of(
        out,
        tokenizer,
        _checkpoint_inputs(out, tokenizer, inputs),
        None if estimator == "likelihood" else checkpoint_seconds(),
    )
    resumable = _Resumable(checkpoints, log)
    paper = resumable("paper", solve_mixture, problem, log=log, **options)
    solve: Any
    if estimator == "paper":
        solve, sol = functools.partial(solve_mixture, **options), paper
    elif estimator == "likelihood":
        solve = functools.partial(solve_mixture_likelihood, start_alpha=paper.alpha, device=device)
        sol = resumable("estimate", solve, problem, states=False)
    else:
        solve = functools.partial(
            solve_mixture_scaled, reference_alpha=paper.alpha, power=power, **options
        )
        sol = resumable("estimate", solve, problem, start=paper.warm, log=log)
    if estimator != "likelihood":  # the LP's replicates start from the estimate's rows
        solve = functools.partial(solve, start=sol.warm)
    interval = None
    if groups is not None and bootstrap is not None:
        group_trajs, group_bytes = groups
        # the replicates done, with an ETA: each takes an hour at the paper's scale
        progress = Progress("solve/replicates", bootstrap["replicates"], 0, log or _drop)
        interval = bootstrap_mixture(
            {c: group_trajs[c] for c in sol.categories},
            {c: group_bytes[c] for c in sol.categories},
            merge_ids,
            replicates=bootstrap["replicates"],
            level=bootstrap["level"],
            seed=bootstrap["seed"],
            merge_block=bootstrap.get("merge_block", 0),
            center=sol,
            solve=solve,
            map_fn=map_fn,
            memo=_ReplicateMemo(checkpoints, None if estimator == "likelihood" else log),
            on_done=lambda _index, _reused: progress.advance(),
        )
        if interval.reused:
            resumable.reused.append(f"{interval.reused} replicates")
            if log is not None:
                log(f"solve: {interval.reused} bootstrap replicates kept by an earlier run reused")
    diagnostics: dict[str, Any] = {"objective": sol.objective, **sol.diagnostics}
    diagnostics["estimator"] = estimator
    if resumable.reused:
        diagnostics["resumed"] = resumable.reused
    if estimator != "paper":  # the paper's estimate beside it, for comparison
        diagnostics["paper_lp"] = {
            "objective": paper.objective,
            "byte_share": dict(zip(paper.categories, paper.byte_share.tolist(), strict=True)),
        }
    low: list[float | None] = [None] * len(sol.categories)
    high: list[float | None] = [None] * len(sol.categories)
    model_low = diagnostics.pop("byte_share_low", None)
    model_high = diagnostics.pop("byte_share_high", None)
    if model_low is not None and model_high is not None:  # the likelihood's own intervals
        low, high = list(model_low), list(model_high)
        diagnostics["interval"] = {
            "method": f"the likelihood's {diagnostics.pop('interval', 'sandwich')} intervals",
            "level": diagnostics.get("level"),
        }
    if interval is not None and bootstrap is not None:
        low = [float(x) for x in interval.byte_share_low]
        high = [float(x) for x in interval.byte_share_high]
        diagnostics["interval"] = {
            "method": "document-group and merge-block bootstrap"
            if bootstrap.get("merge_block")
            else "document-group bootstrap",
            "merge_block": bootstrap.get("merge_block", 0),
            "level": interval.level,
            "replicates": bootstrap["replicates"] - interval.failed,
            "groups": {c: len(group_bytes[c]) for c in sol.categories},
        }
        confounded = confounded_groups(
            sol.categories, sol.byte_share, interval.replicate_byte_shares, interval.level
        )
        warning = confounded_warning(confounded, low, high, sol.categories)
        if warning is not None:
            diagnostics["confounded"] = [g.as_dict() for g in confounded]
            diagnostics["confounded_warning"] = warning
            if log is not None:
                log(f"WARNING {tokenizer}: {warning}")
    result = MixtureResult(
        tokenizer,
        tuple(
            CategoryShare(name, float(a), float(b), lo, hi)
            for name, a, b, lo, hi in zip(
                sol.categories, sol.alpha, sol.byte_share, low, high, strict=True
            )
        ),
        diagnostics,
    )
    if category_groups:
        shares = grouped_shares(
            sol.categories,
            sol.byte_share,
            group_members(list(category_groups.items()), sol.categories),
            None if interval is None else interval.replicate_byte_shares,
            1.0 if interval is None else interval.level,
        )
        result = result.with_diagnostics(groups=[g.as_dict() for g in shares])
        catalog.MIXTURE_GROUPS.write(
            pa.Table.from_pylist(
                [{"tokenizer": tokenizer, **g.as_dict()} for g in shares],
                schema=catalog.MIXTURE_GROUPS.schema,
            ),
            out,
            tokenizer,
            provenance={"stage": "solve", "tokenizer_name": tokenizer},
            inputs={**inputs, "groups": json.dumps(category_groups, sort_keys=True)},
        )
    fs, path = filesystem_for(mixture_json_path(out, tokenizer))
    write_bytes_atomic(fs, path, (json.dumps(result.to_json(), indent=1) + "\n").encode())
    write_dataset(
        mixture_table(tokenizer, sol, problem.pairs_.tolist(), problem.bytes_.tolist(), interval),
        out,
        mixtures_name(tokenizer),
        schema=MIXTURES,
        partition_cols=(),
        provenance={"stage": "solve", "tokenizer_name": tokenizer, "diagnostics": sol.diagnostics},
        input_hashes=inputs,
    )
    remove_checkpoints(out, tokenizer)
    return result


LONG_SOLVE_STEPS = 10_000
"""From this many merge steps on, a run says before its LPs that they will take long."""


def long_solve_note(
    n_categories: int, n_steps: int, replicates: int, merge_stride: int = 1
) -> str | None:
    """A line saying, before the LPs start, that they will take long, or ``None`` when the
    steps in the LPs (every ``merge_stride``-th) are fewer than :data:`LONG_SOLVE_STEPS`: a
    user who asked for the paper's 30 000 merges should learn it from the run, and how to
    trade merges for time, not after an hour of rounds. The figures are the LP benchmark's
    (README, ``--merges``)."""
    if -(-n_steps // merge_stride) < LONG_SOLVE_STEPS:
        return None
    again = (
        f", and each of the {replicates} bootstrap replicates about half that again"
        if replicates
        else ""
    )
    return (
        f"solve: {n_categories} categories x {n_steps} merge steps: the LPs will take long. "
        "Their time grows about as merges^2.3: on the benchmark's 2-core machine 30 categories "
        "of GPT-2 took 2 minutes at 5000 merges, 9 at 10000 and hours at 30000"
        f"{again}. --merges (run specs: merges) solves fewer, --merge-stride K (solver: "
        "merge_stride) every K-th of them only, an approximation at about the cost of K times "
        "fewer that keeps the late merges; the LP's lines below say how far it is"
    )


class _Resumable:
    """Runs one named solve of :func:`run_solve` through its checkpoints: a finished one kept
    by an earlier run is taken as it was; an LP goes on from its last kept state and keeps
    its state as it goes; what was reused is listed in ``reused`` (the result's diagnostics
    say so)."""

    def __init__(self, checkpoints: SolveCheckpoints, log: Callable[[str], None] | None) -> None:
        self.checkpoints = checkpoints
        self.log = log or (lambda _msg: None)
        self.reused: list[str] = []

    def __call__(
        self,
        name: str,
        solve: Callable[..., MixtureSolution],
        problem: Any,
        *,
        states: bool = True,
        **kwargs: Any,
    ) -> MixtureSolution:
        done = self.checkpoints.solution(name, self.log)
        if done is not None:
            self.log(f"solve: the {name} solve kept by an earlier run is taken as it was")
            self.reused.append(name)
            return done
        if kwargs.get("log") is not None:
            kwargs["log"] = labelled(kwargs["log"], _LABELS.get(name, name))
        if states:
            options = self.checkpoints.lp_options(name, self.log)
            if "resume" in options:
                at = options["resume"].arrays.get("loop_counts", [0])[0]
                self.log(f"solve: the {name} LP goes on from its checkpoint at round {int(at)}")
                self.reused.append(f"{name} (resumed)")
            kwargs.update(options)
        solution = solve(problem, **kwargs)
        self.checkpoints.keep_solution(name, solution)
        return solution


_LABELS = {"paper": "paper LP"}


def _drop(_message: str) -> None:
    """A log for a solve run without one."""


def labelled(log: Callable[[str], None], label: str, *, done: bool = True) -> Log:
    """``log`` with an LP's lines (``solve: ...``) named ``solve LABEL: ...``: a point
    estimate solves two LPs and every replicate one, each for minutes to hours at the paper's
    scale, and the lines must say which. ``done=False`` drops the closing line (the
    replicates' progress says when each is done)."""

    def emit(message: str) -> None:
        if message.startswith("solve: "):
            if not done and message.startswith("solve: done"):
                return
            message = f"solve {label}: {message[len('solve: ') :]}"
        log(message)

    return emit


@dataclass(frozen=True)
class _ReplicateMemo:
    """The checkpoints of the replicates, and a log for each replicate's LP (where it runs:
    on a Ray worker its stderr goes to the driver's)."""

    checkpoints: SolveCheckpoints
    log: Callable[[str], None] | None

    def options(self, index: int) -> dict[str, Any]:
        options = self.checkpoints.options(index)
        if self.log is not None:
            options["log"] = labelled(self.log, f"replicate {index + 1}", done=False)
        return options

    def recall(self, index: int) -> tuple[bool, MixtureSolution | None]:
        return self.checkpoints.recall(index)

    def record(self, index: int, solution: MixtureSolution | None) -> None:
        self.checkpoints.record(index, solution)


def _checkpoint_inputs(out: str, tokenizer: str, inputs: dict[str, str]) -> dict[str, str]:
    """The solve's inputs and, where committed, the per-group trajectories the replicates
    resample (a checkpoint must not outlive either)."""
    key = dict(inputs)
    for name in (group_trajectories_name(tokenizer), group_totals_name(tokenizer)):
        try:
            key[name] = content_digest(read_manifest(out, name))
        except DatasetError:
            continue
    return key


def _groups_key(groups: dict[str, str]) -> dict[str, Any]:
    """Category groups join the solve's inputs only when given (older commits stay current)."""
    return {"category_groups": groups} if groups else {}


def _solve_task(
    out: str,
    tokenizer: str,
    options: dict[str, Any],
    bootstrap: dict[str, Any] | None,
    map_fn: MapFn,
    category_groups: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> MixtureResult:
    """The solve stage's task; bootstrap replicates fan out through ``map_fn`` (as tasks of
    their own on Ray); ``log`` gets the solves' progress lines (it must pickle)."""
    return run_solve(
        out,
        tokenizer,
        bootstrap=bootstrap,
        map_fn=map_fn,
        category_groups=category_groups,
        log=log,
        **options,
    )


def _check_gpus_for_replicates(resources: StageResources, executor: Executor) -> None:
    """A solve task keeps its GPUs while it waits for its bootstrap replicates (Ray lends a
    blocked task's CPUs, never its GPUs), and each replicate asks for as many: fewer than
    twice the task's GPUs in the cluster would wait forever. Refused before it starts."""
    if not resources.num_gpus or executor.name != "ray":
        return
    from tokmix.jobs.runtime import cluster_gpus

    have = cluster_gpus()
    if have < 2 * resources.num_gpus:
        raise TokmixError(
            f"resources.solve.num_gpus {resources.num_gpus:g}: a solve task keeps its GPUs "
            f"while its bootstrap replicates, which ask for as many, run; the cluster has "
            f"{have:g} GPUs, fewer than twice that. "
            + (
                f"Ask for a fraction (num_gpus: {have / 2:g} shares them between a solve and "
                "a replicate), or bootstrap groups: 1"
                if have
                else "Run on a cluster with GPUs, or drop resources.solve.num_gpus"
            )
        )


def _run_solve_stage(ctx: RunContext) -> None:
    spec = ctx.spec
    solver = spec.solver.model_dump()
    bootstrap = bootstrap_options(spec.bootstrap)
    if bootstrap is not None:
        _check_gpus_for_replicates(spec.resources_for("solve"), ctx.executor)
    results: dict[str, MixtureResult] = ctx.summary.setdefault("tokenizers", {})
    pending = []
    for tok in ctx.tokenizers:
        inputs = solve_inputs(
            spec.out, tok.name, {**solver, "bootstrap": bootstrap, **_groups_key(spec.groups)}
        )
        if not ctx.force and catalog.MIXTURES.is_current(
            spec.out, tok.name, inputs, check_schema=True
        ):
            ctx.log(f"solve {tok.name}: already committed for these trajectories; skipped")
            remove_checkpoints(spec.out, tok.name)
            results[tok.name] = read_mixture_json(spec.out, tok.name)
        else:
            if ctx.force:  # recompute means recompute: not from a killed run's solves either
                remove_checkpoints(spec.out, tok.name)
            pending.append(tok.name)
    resources = spec.resources_for("solve")
    map_fn = ctx.executor.map_fn(resources)
    in_process = isinstance(ctx.executor, LocalExecutor) and (
        ctx.executor.processes == 1 or len(pending) <= 1
    )
    # a worker cannot call this process's log: it writes its own stderr, which Ray (and a
    # local pool's inherited stderr) brings to this terminal
    local_log = ctx.log if in_process else stderr_log(spec.effective_run_id)
    solved = ctx.executor.map(
        _solve_task,
        [(spec.out, name, solver, bootstrap, map_fn, spec.groups, local_log) for name in pending],
        resources=resources,
        retries=2,
    )
    for name, result in zip(pending, solved, strict=True):
        results[name] = result
        d = result.diagnostics
        ctx.log(
            f"solve {name}: {d['constraints']} constraints, {d['rounds']} rounds, "
            f"{d['seconds']:.1f}s"
        )


SOLVE = Stage("solve", tuple(catalog.of_stage("solve")), _run_solve_stage)
