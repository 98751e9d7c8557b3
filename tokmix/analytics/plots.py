"""The report's figures as PNG bytes (matplotlib, Agg canvas; no pyplot, no global state).

Each function takes plain sequences and returns a PNG, so the report can both embed a figure
(base64) and write it next to the HTML. Labels are user data (category and tokenizer names):
math-text parsing is off, so a name with ``$`` is drawn as typed rather than as TeX.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
BAR_HEIGHT_IN = 0.32
"""Inches per category row: a chart of 112 languages stays readable."""
LABEL_CHARS = 32
"""Axis labels longer than this are cut (the report's tables carry the full names)."""


def _label(name: str) -> str:
    name = str(name)
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


@contextmanager
def _plain_text() -> Iterator[None]:
    """Names drawn literally; missing-glyph warnings (CJK names in the default font) muted."""
    with (
        matplotlib.rc_context({"text.parse_math": False}),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        yield


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _error_bars(
    ax: Any,
    positions: Sequence[float],
    values: Sequence[float],
    errors: Sequence[tuple[float, float] | None],
    shown: Iterable[int],
    *,
    horizontal: bool,
    capsize: int,
) -> None:
    """Interval whiskers (``errors`` are (below, above) as fractions) on the bars ``shown``
    that have one; ``values`` are the bars' lengths in percent."""
    with_interval = [i for i in shown if errors[i] is not None]
    if not with_interval:
        return
    spread = [
        [100.0 * errors[i][0] for i in with_interval],  # type: ignore[index]
        [100.0 * errors[i][1] for i in with_interval],  # type: ignore[index]
    ]
    at = [positions[i] for i in with_interval]
    length = [values[i] for i in with_interval]
    xy, err = ((length, at), {"xerr": spread}) if horizontal else ((at, length), {"yerr": spread})
    ax.errorbar(*xy, **err, fmt="none", ecolor="#222222", capsize=capsize, linewidth=1)


def mixture_chart(
    categories: Sequence[str],
    byte_share: Sequence[float],
    errors: Sequence[tuple[float, float] | None],
    title: str,
) -> bytes:
    """Horizontal bars of byte shares (percent), first category on top.

    ``errors[i]`` is ``(below, above)`` in share units for an interval, or None: such bars get
    no error bar and a "no interval" mark, so a missing interval never reads as a certain one.
    """
    n = len(categories)
    with _plain_text():
        fig = Figure(figsize=(7.5, 1.2 + BAR_HEIGHT_IN * max(n, 1)), layout="constrained")
        ax = fig.add_subplot()
        ys = list(range(n))[::-1]
        shares = [100.0 * s for s in byte_share]
        ax.barh(ys, shares, color="#4c72b0", height=0.7)
        _error_bars(ax, ys, shares, errors, range(n), horizontal=True, capsize=3)
        right = max([*shares, 1.0])
        for i in range(n):
            top = shares[i] + (100.0 * errors[i][1] if errors[i] is not None else 0.0)  # type: ignore[index]
            label = f"{shares[i]:.2f}%" + ("" if errors[i] is not None else "  (no interval)")
            ax.text(top + right * 0.01, ys[i], label, va="center", fontsize=8)
        ax.set_yticks(ys, [_label(c) for c in categories])
        ax.set_ylim(-0.6, n - 0.4)
        ax.set_xlim(0, right * 1.5)  # room for the labels right of the bars
        ax.set_xlabel("byte share: % of training bytes")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        return _png(fig)


def grouped_bars(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str,
    xlabel: str,
) -> bytes:
    """One group of horizontal bars per category, one bar per series (tokenizer); a None value
    (e.g. a ratio over zero tokens) draws no bar."""
    n = len(categories)
    k = max(len(series), 1)
    with _plain_text():
        height = 1.4 + BAR_HEIGHT_IN * max(n, 1) * min(max(1.0, 0.6 * k), 4.0)
        fig = Figure(figsize=(7.5, height), layout="constrained")
        ax = fig.add_subplot()
        step = 0.8 / k
        for j, (name, values) in enumerate(series.items()):
            ys = [n - 1 - i - 0.4 + step * (k - j - 0.5) for i in range(n)]
            points = [(y, v) for y, v in zip(ys, values, strict=True) if v is not None]
            ax.barh(
                [y for y, _ in points],
                [v for _, v in points],
                height=step * 0.9,
                label=_label(name),
            )
        ax.set_yticks(list(range(n))[::-1], [_label(c) for c in categories])
        ax.set_ylim(-0.6, n - 0.4)
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if len(series) > 1:
            fig.legend(fontsize=8, loc="outside upper right", ncols=min(len(series), 4))
        return _png(fig)


def clustered_columns(
    clusters: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    errors: Mapping[str, Sequence[tuple[float, float] | None]],
    title: str,
) -> bytes:
    """Vertical bars of byte shares (percent): one cluster per entry of ``clusters``
    (tokenizers), one bar per series (category groups) with its value on top; ``errors`` as in
    :func:`mixture_chart`, per series. A None share draws no bar (a tokenizer without that
    group), so a missing value never reads as 0 %."""
    n, k = len(clusters), max(len(series), 1)
    step = 0.8 / k
    with _plain_text():
        fig = Figure(figsize=(max(6.0, 1.2 + 0.55 * n * k), 4.2), layout="constrained")
        ax = fig.add_subplot()
        top = 1.0
        for j, (name, values) in enumerate(series.items()):
            xs = [i - 0.4 + step * (j + 0.5) for i in range(n)]
            drawn = [i for i, v in enumerate(values) if v is not None]
            heights = [100.0 * values[i] for i in drawn]  # type: ignore[operator]
            ax.bar([xs[i] for i in drawn], heights, width=step * 0.9, label=_label(name))
            errs = errors.get(name, [None] * n)
            percent = [100.0 * v if v is not None else 0.0 for v in values]
            _error_bars(ax, xs, percent, errs, drawn, horizontal=False, capsize=2)
            for i in drawn:
                above = 100.0 * errs[i][1] if errs[i] is not None else 0.0  # type: ignore[index]
                y = 100.0 * values[i] + above  # type: ignore[operator]
                top = max(top, y)
                ax.text(xs[i], y + 0.8, f"{100.0 * values[i]:.0f}", ha="center", fontsize=7)  # type: ignore[operator]
        ax.set_xticks(list(range(n)), [_label(c) for c in clusters])
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylim(0, min(105.0, top * 1.12 + 2.0))  # room for the values on top
        ax.set_ylabel("byte share: % of training bytes")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if series:
            fig.legend(fontsize=8, loc="outside upper center", ncols=min(len(series), 5))
        return _png(fig)
