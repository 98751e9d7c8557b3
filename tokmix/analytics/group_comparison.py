"""Released tokenizers side by side: each tokenizer's category-group shares, as one table and
one chart (tokenizers × groups), the form of Hayase et al.'s figure of released tokenizers.

One tokenizer's mixture over 50 categories is hard to compare with another's; the groups
(English, other languages, code) are what the paper reports, so a run with several tokenizers
is read as this grid. The values are the solve's group shares exactly as committed
(``mixture_groups/``, ``diagnostics.groups`` of ``mixtures/NAME.json``): nothing is
re-derived here, so the table, the chart and the dataset cannot disagree. Pure: rows in,
text and PNG bytes out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tokmix.analytics import plots


@dataclass(frozen=True)
class GroupCell:
    """One tokenizer's share of one group, with its interval (None without bootstrap)."""

    byte_share: float
    low: float | None
    high: float | None

    @property
    def errors(self) -> tuple[float, float] | None:
        """``(below, above)`` the share, for an error bar; None without an interval."""
        if self.low is None or self.high is None or math.isnan(self.low + self.high):
            return None
        return max(self.byte_share - self.low, 0.0), max(self.high - self.byte_share, 0.0)


@dataclass(frozen=True)
class GroupComparison:
    """Tokenizers (rows, in the run's order) × groups (columns, in the spec's order)."""

    tokenizers: tuple[str, ...]
    groups: tuple[str, ...]
    cells: Mapping[tuple[str, str], GroupCell]
    level: float | None = None
    """The intervals' level, when known (the solve's ``diagnostics.interval.level``)."""

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], level: float | None = None
    ) -> GroupComparison:
        """From ``mixture_groups`` rows (``tokenizer``, ``group``, ``byte_share``,
        ``byte_share_low``, ``byte_share_high``), first-seen order kept."""
        cells: dict[tuple[str, str], GroupCell] = {}
        tokenizers: dict[str, None] = {}
        groups: dict[str, None] = {}
        for r in rows:
            tokenizers.setdefault(r["tokenizer"])
            groups.setdefault(r["group"])
            cells[(r["tokenizer"], r["group"])] = GroupCell(
                float(r["byte_share"]), r.get("byte_share_low"), r.get("byte_share_high")
            )
        return cls(tuple(tokenizers), tuple(groups), cells, level)

    @classmethod
    def from_solutions(cls, solutions: Mapping[str, Mapping[str, Any]]) -> GroupComparison:
        """From the solve's JSON documents per tokenizer (``diagnostics.groups``), as a run
        summary or ``tokmix report`` holds them; tokenizers without groups are left out."""
        diagnostics = [doc.get("diagnostics") or {} for doc in solutions.values()]
        levels = {(d.get("interval") or {}).get("level") for d in diagnostics if d.get("groups")}
        return cls.from_rows(
            (
                {"tokenizer": name, **g}
                for name, d in zip(solutions, diagnostics, strict=True)
                for g in d.get("groups") or []
            ),
            levels.pop() if len(levels) == 1 else None,
        )

    def __bool__(self) -> bool:
        return bool(self.cells)

    def table_lines(self) -> list[str]:
        """The grid as fixed-width text: ``share (low–high)`` per cell, empty where a
        tokenizer lacks a group."""
        title = "Category groups: byte share"
        if self.level is not None:
            title += f" ({self.level:.0%} interval)"
        cells = [[self._text(t, g) for g in self.groups] for t in self.tokenizers]
        name_w = max(len("tokenizer"), *(len(t) for t in self.tokenizers))
        widths = [max(len(g), *(len(row[j]) for row in cells)) for j, g in enumerate(self.groups)]
        head = "  ".join(f"{g:>{w}}" for g, w in zip(self.groups, widths, strict=True))
        lines = [title, f"  {'tokenizer':<{name_w}}  {head}"]
        for t, row in zip(self.tokenizers, cells, strict=True):
            body = "  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True))
            lines.append(f"  {t:<{name_w}}  {body}")
        return lines

    def _text(self, tokenizer: str, group: str) -> str:
        cell = self.cells.get((tokenizer, group))
        if cell is None:
            return ""
        text = f"{cell.byte_share:.1%}"
        if cell.errors is not None:
            text += f" ({cell.low:.1%}–{cell.high:.1%})"
        return text

    def chart(self, title: str = "Inferred training mixtures: category groups") -> bytes:
        """Grouped bars, one cluster per tokenizer, one bar per group, error bars where the
        run has intervals (PNG)."""
        shares = {g: [self._cell_share(t, g) for t in self.tokenizers] for g in self.groups}
        errors = {g: [self._cell_errors(t, g) for t in self.tokenizers] for g in self.groups}
        return plots.clustered_columns(list(self.tokenizers), shares, errors, title)

    def _cell_share(self, tokenizer: str, group: str) -> float | None:
        cell = self.cells.get((tokenizer, group))
        return None if cell is None else cell.byte_share

    def _cell_errors(self, tokenizer: str, group: str) -> tuple[float, float] | None:
        cell = self.cells.get((tokenizer, group))
        return None if cell is None else cell.errors
