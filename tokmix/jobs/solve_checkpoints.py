"""What a solve keeps while it runs, so that a solve killed half-way loses minutes, not hours.

At the paper's scale one LP takes tens of minutes and the 20 bootstrap replicates twenty
times that (``benchmarks/results/lp_scale.md``), and the solve stage commits only at its end.
A run killed before then (a pre-empted node, a Ray task retried, Ctrl-C) used to start the
solve over. Now the solve stage writes, under ``OUT/_work/solve-TOKENIZER/KEY/`` (beside the
count's shard checkpoints):

- each finished solve (``paper``, the estimate, ``replicate-K``): a re-run takes it as it was,
  bit for bit, so its shares and intervals are those of a run that was never killed;
- the unfinished LP's state (its model, basis, box and limits, :class:`Checkpoint`) at most every
  ``TOKMIX_SOLVE_CHECKPOINT_SECONDS`` (default 60; 0: every round; ``off``: never): a re-run
  goes on from that round (GPT-2, 30 categories x 2 000 and 5 000 merges, killed at 35-92 % of
  an LP: 0.97-1.14x an unkilled one in all, against 1.37-1.86x starting over;
  ``benchmarks/results/resume.md``).
  The loop still ends only when a sweep finds no violated row, so the optimum is the same;
  where the optimal face holds more than one α, the vertex reached may differ in the last
  digits of a share (HiGHS's pricing weights are not kept, so its pivots may differ).

``KEY`` digests the solve's inputs (the committed trajectories, the per-group ones and the
solver options) and tokmix's own source, so a checkpoint is never taken by a solve of other
data, options or code. The files are ``.npz`` archives of plain arrays with a JSON header,
read with ``allow_pickle=False``: a damaged or foreign file is skipped with a log line, never
trusted and never fatal (it only ever saves time). The stage removes the tokenizer's
checkpoints once its mixture is committed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zipfile import BadZipFile

import numpy as np

from tokmix import __version__
from tokmix.errors import TokmixError
from tokmix.io.fs import filesystem_for, join, remove_tree, write_bytes_atomic
from tokmix.solvers.mixture_lp import Checkpoint, LoopState, MixtureSolution, WarmStart

FORMAT = 1
T = TypeVar("T")
ENV_SECONDS = "TOKMIX_SOLVE_CHECKPOINT_SECONDS"
DEFAULT_SECONDS = 60.0


def checkpoint_seconds() -> float | None:
    """How often an unfinished LP's state is written (``None``: never). Read where the solve
    runs (Ray forwards the variable to workers); checked before any stage runs too."""
    raw = os.environ.get(ENV_SECONDS, "").strip()
    if not raw:
        return DEFAULT_SECONDS
    if raw.lower() == "off":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise TokmixError(f"{ENV_SECONDS}={raw!r}: give seconds (0: every round) or 'off'")
    return seconds


def code_digest(package: Path) -> str:
    """A digest of tokmix's version and every source file under ``package``: a solve kept by
    other code (an upgrade, an edit between a kill and the re-run) is never taken, since the
    version alone stays the same across unreleased changes. Checkpoints only save time, so
    dropping them on any change is the safe side."""
    h = hashlib.sha256(__version__.encode())
    for path in sorted(package.rglob("*.py")):
        h.update(f"\0{path.relative_to(package).as_posix()}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@functools.cache
def _this_code() -> str:
    return code_digest(Path(__file__).resolve().parents[1])


def checkpoint_key(inputs: dict[str, str]) -> str:
    """The directory name of one solve's checkpoints: a digest of what it depends on, the
    code that solves it included."""
    payload = json.dumps({"inputs": inputs, "code": _this_code()}, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:24]


@dataclass(frozen=True)
class SolveCheckpoints:
    """One solve's checkpoints under ``root`` (a local path or URL). Plain values, so
    bootstrap replicates on Ray workers keep their own (:class:`ReplicateMemo`). ``every``:
    seconds between an unfinished LP's states (``None``: none, for solves that are not LPs)."""

    root: str
    every: float | None = None

    @classmethod
    def of(
        cls, out: str, tokenizer: str, inputs: dict[str, str], every: float | None
    ) -> SolveCheckpoints:
        return cls(join(tokenizer_root(out, tokenizer), checkpoint_key(inputs)), every)

    def lp_options(self, name: str, log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """The options that make LP ``name`` keep its state as it goes and, when an earlier
        run kept one, go on from it (``solve_mixture``'s ``checkpoint``, ``resume``...)."""
        if self.every is None:
            return {}
        options: dict[str, Any] = {"checkpoint": self.keeper(name), "checkpoint_every": self.every}
        state = self.state(name, log)
        if state is not None:
            options.update(start=state.warm, resume=state.state)
        return options

    def solution(
        self, name: str, log: Callable[[str], None] | None = None
    ) -> MixtureSolution | None:
        """The finished solve ``name`` kept by an earlier run, or None."""
        return self._read(f"{name}.npz", "solution", _solution, log)

    def keep_solution(self, name: str, solution: MixtureSolution) -> None:
        meta = {
            "categories": list(solution.categories),
            "objective": solution.objective,
            "diagnostics": solution.diagnostics,
        }
        arrays = {"alpha": solution.alpha, "byte_share": solution.byte_share}
        if solution.warm is not None:
            arrays.update(_warm_arrays(solution.warm))
        self._write(f"{name}.npz", "solution", meta, arrays)

    def state(self, name: str, log: Callable[[str], None] | None = None) -> Checkpoint | None:
        """The unfinished LP ``name``'s last state, or None."""
        return self._read(f"{name}.state.npz", "state", lambda _meta, a: _checkpoint(a), log)

    def keeper(self, name: str) -> Callable[[Checkpoint], None]:
        """What the LP calls with its state (``solve_mixture(checkpoint=...)``)."""

        def keep(checkpoint: Checkpoint) -> None:
            arrays = _warm_arrays(checkpoint.warm)
            arrays.update({_LOOP + k: v for k, v in checkpoint.state.arrays.items()})
            self._write(f"{name}.state.npz", "state", {}, arrays)

        return keep

    def options(self, index: int) -> dict[str, Any]:
        return self.lp_options(f"replicate-{index}")

    def recall(self, index: int) -> tuple[bool, MixtureSolution | None]:
        solution = self.solution(f"replicate-{index}")
        if solution is not None:
            return True, solution
        failed = self._read(f"replicate-{index}.failed.npz", "failed", lambda *_: True)
        return failed is not None, None

    def record(self, index: int, solution: MixtureSolution | None) -> None:
        if solution is None:
            self._write(f"replicate-{index}.failed.npz", "failed", {}, {})
        else:
            self.keep_solution(f"replicate-{index}", solution)

    def _write(self, file: str, kind: str, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        header = json.dumps({"format": FORMAT, "kind": kind, **meta}, default=_plain)
        buffer = io.BytesIO()
        np.savez(buffer, header=np.frombuffer(header.encode(), dtype=np.uint8), **arrays)
        fs, path = filesystem_for(join(self.root, file))
        write_bytes_atomic(fs, path, buffer.getvalue())

    def _read(
        self,
        file: str,
        kind: str,
        parse: Callable[[dict[str, Any], dict[str, np.ndarray]], T],
        log: Callable[[str], None] | None = None,
    ) -> T | None:
        """``parse(header, arrays)`` of ``file``, or None when it is missing or does not
        parse (a damaged or foreign file: logged, never trusted)."""
        url = join(self.root, file)
        fs, path = filesystem_for(url)
        try:
            raw = fs.cat_file(path)
        except FileNotFoundError:
            return None
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
            meta = json.loads(arrays.pop("header").tobytes().decode())
            if meta.get("format") != FORMAT or meta.get("kind") != kind:
                raise ValueError(f"format {meta.get('format')!r}, kind {meta.get('kind')!r}")
            return parse(meta, arrays)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, BadZipFile) as exc:
            if log is not None:
                log(f"solve: checkpoint {url} is unreadable ({exc}); solving without it")
            return None


def tokenizer_root(out: str, tokenizer: str) -> str:
    return join(out, "_work", f"solve-{tokenizer}")


def remove_checkpoints(out: str, tokenizer: str) -> None:
    """Drop a tokenizer's checkpoints (its mixture is committed: they can only go stale)."""
    remove_tree(tokenizer_root(out, tokenizer))


def _warm_arrays(warm: WarmStart) -> dict[str, np.ndarray]:
    return {
        "warm_alpha": np.asarray(warm.alpha, dtype=np.float64),
        "warm_step": np.asarray(warm.step, dtype=np.int64),
        "warm_pair_key": np.asarray(warm.pair_key, dtype=np.int64),
    }


_LOOP = "loop_"  # the prefix of a state's LoopState arrays in its file


def _checkpoint(arrays: dict[str, np.ndarray]) -> Checkpoint:
    warm = _warm(arrays)
    if warm is None:
        raise ValueError("a state without α and rows")
    loop = {k[len(_LOOP) :]: v for k, v in arrays.items() if k.startswith(_LOOP)}
    return Checkpoint(warm, LoopState(loop))


def _warm(arrays: dict[str, np.ndarray]) -> WarmStart | None:
    if "warm_alpha" not in arrays:
        return None
    alpha = _float_vector(arrays["warm_alpha"], "warm_alpha")
    step, key = arrays["warm_step"], arrays["warm_pair_key"]
    if step.dtype != np.int64 or key.dtype != np.int64 or step.shape != key.shape:
        raise ValueError("warm-start rows are not two int64 vectors of one length")
    if step.ndim != 1:
        raise ValueError("warm-start rows are not vectors")
    return WarmStart(alpha, step, key)


def _solution(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> MixtureSolution:
    categories = tuple(meta["categories"])
    if not all(isinstance(c, str) for c in categories):
        raise ValueError("categories are not names")
    alpha = _float_vector(arrays["alpha"], "alpha")
    share = _float_vector(arrays["byte_share"], "byte_share")
    if len(alpha) != len(categories) or len(share) != len(categories):
        raise ValueError(f"{len(categories)} categories but {len(alpha)} weights")
    objective = meta["objective"]
    diagnostics = meta["diagnostics"]
    if not isinstance(objective, float) or not isinstance(diagnostics, dict):
        raise ValueError("objective or diagnostics missing")
    return MixtureSolution(categories, alpha, share, objective, diagnostics, _warm(arrays))


def _float_vector(value: np.ndarray, name: str) -> np.ndarray:
    if value.dtype != np.float64 or value.ndim != 1 or not np.isfinite(value).all():
        raise ValueError(f"{name} is not a finite float64 vector")
    return value


def _plain(value: Any) -> Any:
    """JSON for the numpy values diagnostics may hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")
