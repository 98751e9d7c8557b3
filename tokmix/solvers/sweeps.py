"""Which mixed-frequency sweep a solve calls each round, by device (ARCHITECTURE.md §5).

The compiled heap sweep (:mod:`tokmix.solvers.edges`) on the CPU, the torch sweep
(:mod:`tokmix.solvers.torch_sweep`) on CUDA or, asked for by name, on the CPU (its tests).
Both take :func:`tokmix.solvers.edges.find_violated_edges`' arguments after the problem and
return its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tokmix.solvers.edges import find_violated_edges
from tokmix.solvers.problem import MixtureProblem
from tokmix.solvers.torch_sweep import TorchEdgeSweep, resolve_device

EdgeSweep = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
SWEEPS = ("mixed", "dense", "torch")  # what solve_mixture(sweep=...) takes; "dense" is its own


def edge_sweep(problem: MixtureProblem, sweep: str, device: str) -> tuple[EdgeSweep, str]:
    """The mixed-frequency sweep a solve calls each round, and its name for the diagnostics:
    on ``cpu`` the compiled heap sweep (:mod:`tokmix.solvers.edges`), or with
    ``sweep="torch"`` its torch peer on the CPU (tests hold one to the other); on ``cuda``
    the torch sweep (:mod:`tokmix.solvers.torch_sweep`). ``device`` ``auto``: cuda when torch
    sees one."""
    where = resolve_device(device)
    if where == "cuda" or sweep == "torch":
        torch_sweep = TorchEdgeSweep(problem, where)
        return torch_sweep, f"torch-{where}"

    def compiled(
        *args: Any, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return find_violated_edges(problem, *args, **kwargs)

    return compiled, "numba"
