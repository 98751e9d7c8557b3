"""Progress people can follow, and the log every stage writes to (no Ray here: the local
executor and ``tokmix infer`` use it without starting Ray)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

Log = Callable[[str], None]


class StderrLog:
    """A run's log lines on stderr, stamped. A class, not a closure, so it pickles: a solve
    task in another process (a local pool, a Ray worker) logs through its own stderr, which
    reaches the same terminal."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def __call__(self, msg: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[tokmix {self.run_id} {stamp}] {msg}", file=sys.stderr, flush=True)


def stderr_log(run_id: str) -> Log:
    return StderrLog(run_id)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def _human_seconds(s: float) -> str:
    s = round(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Shards done, bytes read, rate and ETA of one stage, logged at most every ``every``
    seconds (and once at the end)."""

    def __init__(
        self, stage: str, total_tasks: int, total_bytes: int, log: Log, *, every: float = 10.0
    ) -> None:
        self.stage, self.log = stage, log
        self.total_tasks, self.total_bytes = total_tasks, total_bytes
        self.every = every
        self.done = 0
        self.bytes_done = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, tasks: int = 1, nbytes: int = 0) -> None:
        self.done += tasks
        self.bytes_done += nbytes
        now = time.monotonic()
        if now - self._last >= self.every or self.done == self.total_tasks:
            self._last = now
            self.log(self.line())

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        elapsed = max(self.seconds, 1e-9)
        parts = [f"{self.stage}: {self.done}/{self.total_tasks} tasks"]
        if self.total_bytes:
            rate = self.bytes_done / elapsed
            parts.append(
                f"{_human_bytes(self.bytes_done)} of {_human_bytes(self.total_bytes)} "
                f"({_human_bytes(rate)}/s)"
            )
            fraction = self.bytes_done / self.total_bytes
        else:
            fraction = self.done / max(self.total_tasks, 1)
        if 0 < fraction < 1:
            parts.append(f"ETA {_human_seconds(elapsed * (1 - fraction) / fraction)}")
        parts.append(f"elapsed {_human_seconds(elapsed)}")
        return ", ".join(parts)
