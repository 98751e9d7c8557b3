"""A run's report: one self-contained HTML page (figures inline as base64 PNG) from its tables.

Pure: :class:`RunData` holds the committed tables of a run (read by ``tokmix.jobs.report``),
:func:`build_report` returns the HTML and the figures; nothing here touches a filesystem.

The page loads nothing: CSS is inline, images are ``data:`` URLs, there is no script, and a
Content-Security-Policy forbids everything else, so it renders the same offline, from an e-mail
attachment or an object store. Every piece of user data (category and tokenizer names, token
bytes, diagnostics) is HTML-escaped; token bytes are shown as Python literals
(:func:`display_token`), so spaces, control characters and invalid UTF-8 stay visible.

Ratios (bytes per token, fertility, vocabulary use) are derived here from the raw sums the
stats stage stores (ARCHITECTURE.md §6), never read as stored ratios.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tokmix import __version__
from tokmix.analytics import plots
from tokmix.analytics.group_comparison import GroupComparison
from tokmix.schemas.mixture import WARNING_KEYS

UNDERTRAINED_SHOWN = 100
"""Rows of the under-trained list shown per tokenizer (small samples leave most of a large
vocabulary "never produced"; the dataset has them all)."""
TOP_TOKENS = 15
REASON_ORDER = {"unreachable": 0, "never_produced": 1}
GROUPS_FIGURE = "groups.png"

SHARES_NOTE = (
    "<strong>Byte share</strong> (β) is the share of the tokenizer's <em>training bytes</em> "
    "from each category: what people usually mean by “share of the data”. "
    "<strong>Weight</strong> (α) is the same mixture in the LP's units, shares of initial "
    "symbol <em>pairs</em>; the two differ by each category's bytes per pair."
)


@dataclass
class RunData:
    """The committed tables of one run; a table is None when its stage has not run."""

    source: str
    mixtures: pa.Table | None = None
    """MIXTURES rows of every tokenizer."""
    solutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per tokenizer, the solve's JSON document (``mixtures/NAME.json``)."""
    token_stats: pa.Table | None = None
    token_totals: pa.Table | None = None
    """Per tokenizer and token, the count over every category (:func:`summarize_frequencies`)."""
    undertrained: pa.Table | None = None
    corpus_stats: pa.Table | None = None
    skipped: list[str] = field(default_factory=list)
    """Datasets present but not readable as committed ones, with the reason."""
    inconsistent: list[str] = field(default_factory=list)
    """Datasets that no single run produced together (:mod:`tokmix.io.consistency`)."""


@dataclass(frozen=True)
class ReportFigure:
    file_name: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class Report:
    html: str
    figures: list[ReportFigure]


# --- derived values ------------------------------------------------------------------------


def display_token(token: bytes) -> str:
    """A token's bytes as a Python literal: ``' the'`` when they are UTF-8, else ``b'\\xe2'``."""
    try:
        return repr(bytes(token).decode("utf-8"))
    except UnicodeDecodeError:
        return repr(bytes(token))


@dataclass(frozen=True)
class MixtureRow:
    category: str
    weight: float
    byte_share: float
    byte_share_low: float | None
    byte_share_high: float | None
    pairs: int
    bytes_: int

    @property
    def errors(self) -> tuple[float, float] | None:
        """``(below, above)`` of the interval around the byte share, or None without one."""
        low, high = self.byte_share_low, self.byte_share_high
        if low is None or high is None or math.isnan(low) or math.isnan(high):
            return None
        return max(self.byte_share - low, 0.0), max(high - self.byte_share, 0.0)


def mixture_rows(mixtures: pa.Table) -> dict[str, list[MixtureRow]]:
    """Per tokenizer (sorted), its categories by decreasing byte share."""
    grouped: dict[str, list[MixtureRow]] = defaultdict(list)
    for r in mixtures.to_pylist():
        grouped[r["tokenizer"]].append(
            MixtureRow(
                r["category"],
                r["weight"],
                r["byte_share"],
                r["byte_share_low"],
                r["byte_share_high"],
                r["pairs"],
                r["bytes"],
            )
        )
    return {
        name: sorted(rows, key=lambda r: (-r.byte_share, r.category))
        for name, rows in sorted(grouped.items())
    }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def token_ratios(stats: pa.Table) -> list[dict[str, Any]]:
    """TOKEN_STATS rows (by tokenizer, category) with the ratios derived from their sums:
    ``bytes_per_token``, ``chars_per_token``, ``fertility`` (tokens per pre-token, i.e. per
    word) and ``vocab_use`` (share of the vocabulary produced); None over a zero."""
    rows = []
    for r in sorted(stats.to_pylist(), key=lambda r: (r["tokenizer"], r["category"])):
        rows.append(
            {
                **r,
                "bytes_per_token": _ratio(r["bytes"], r["tokens"]),
                "chars_per_token": _ratio(r["chars"], r["tokens"]),
                "fertility": _ratio(r["tokens"], r["pretokens"]),
                "vocab_use": _ratio(r["tokens_used"], r["vocab_size"]),
            }
        )
    return rows


def summarize_frequencies(frequencies: pa.Table) -> pa.Table:
    """TOKEN_FREQUENCIES summed over categories: one row per (tokenizer, token_id) with its
    token bytes and total count. Small enough to keep for a whole run, unlike the input."""
    keys = ["tokenizer", "token_id"]
    counts = frequencies.group_by(keys).aggregate([("count", "sum")])
    tokens = frequencies.group_by(keys).aggregate([("token", "min")])
    joined = counts.join(tokens, keys=keys)
    return pa.table(
        {
            "tokenizer": joined["tokenizer"],
            "token_id": joined["token_id"],
            "token": joined["token_min"],
            "count": joined["count_sum"],
        }
    ).sort_by([(k, "ascending") for k in keys])


def vocabulary_use(
    ratios: Sequence[dict[str, Any]], totals: pa.Table | None
) -> list[dict[str, Any]]:
    """Per tokenizer: vocabulary size and, when token frequencies exist, how many distinct
    tokens the whole run produced (the union over categories, which per-category counts of
    ``tokens_used`` cannot give)."""
    vocab: dict[str, int] = {}
    for r in ratios:
        vocab[r["tokenizer"]] = max(vocab.get(r["tokenizer"], 0), r["vocab_size"])
    used: dict[str, int] = {}
    if totals is not None:
        produced = pa.table(  # totals has one row per (tokenizer, token_id)
            {
                "tokenizer": totals["tokenizer"],
                "produced": pc.cast(pc.greater(totals["count"], 0), pa.int64()),
            }
        )
        for r in produced.group_by("tokenizer").aggregate([("produced", "sum")]).to_pylist():
            used[r["tokenizer"]] = r["produced_sum"]
    names = sorted(set(vocab) | set(used))
    return [
        {
            "tokenizer": name,
            "vocab_size": vocab.get(name),
            "used": used.get(name),
            "share": _ratio(used[name], vocab[name]) if name in used and vocab.get(name) else None,
        }
        for name in names
    ]


def top_tokens(totals: pa.Table, tokenizer: str, k: int = TOP_TOKENS) -> list[dict[str, Any]]:
    """The ``k`` most frequent tokens of ``tokenizer`` over the run, with their share of all
    its tokens (ties by token id)."""
    rows = totals.filter(pc.equal(totals["tokenizer"], tokenizer)).to_pylist()
    total = sum(r["count"] for r in rows)
    rows.sort(key=lambda r: (-r["count"], r["token_id"]))
    return [{**r, "share": _ratio(r["count"], total)} for r in rows[:k]]


def _undertrained_order(row: dict[str, Any]) -> tuple[int, str, int]:
    return REASON_ORDER.get(row["reason"], len(REASON_ORDER)), row["reason"], row["token_id"]


def undertrained_rows(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """Per tokenizer, its candidates: unreachable first, then never produced, by token id."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in table.to_pylist():
        grouped[r["tokenizer"]].append(r)
    return {
        name: sorted(
            rows, key=lambda r: (REASON_ORDER.get(r["reason"], 9), r["reason"], r["token_id"])
        )
        for name, rows in sorted(grouped.items())
    }


def figure_name(prefix: str, name: str) -> str:
    """A file name for ``name``'s figure: readable part plus a hash, so two names never
    collide and no name escapes the report directory."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:40] or "x"
    return f"{prefix}-{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.png"


# --- HTML ----------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, spec: str = ",") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)


def _pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{100.0 * value:.{digits}f}%"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: int = 1) -> str:
    """A table of already-escaped cells; columns from ``numeric`` on are right-aligned."""
    head = "".join(
        f"<th{' class=num' if i >= numeric else ''}>{_e(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i >= numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_html(fig: ReportFigure) -> str:
    width, height = struct.unpack(">II", fig.png[16:24])  # the PNG IHDR chunk
    data = base64.b64encode(fig.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
        f'alt="{_e(fig.caption)}" data-file="{_e(fig.file_name)}">'
        f"<figcaption>{_e(fig.caption)} (<code>{_e(fig.file_name)}</code>)</figcaption></figure>"
    )


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _format_diagnostic(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format_diagnostic(v)}" for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return "none"
        shown = ", ".join(_format_diagnostic(v) for v in value[:20])
        return shown + (f", … ({len(value)} listed)" if len(value) > 20 else "")
    return str(value)


DIAGNOSTICS = (
    ("objective", "objective (total slack)"),
    ("first_step", "first step"),
    ("last_step", "last step"),
    ("steps", "steps"),
    ("merge_stride", "LPs over 1 merge step in"),
    ("missing_merges", "merges absent from every category"),
    ("missing_steps", "absent merges (steps)"),
    ("rounds", "constraint-generation rounds"),
    ("constraints", "constraints"),
    ("pairs", "distinct pairs"),
    ("slack_steps", "steps with slack"),
    ("seconds", "solve seconds"),
    ("confounded", "categories the LP cannot split: total share and interval"),
    ("stage_seconds", "stage seconds"),
)


def diagnostics_rows(diagnostics: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) in a reading order: the named diagnostics first, the rest by key; the
    warnings (``WARNING_KEYS``) are left to the mixture section, which shows them under the
    shares they qualify."""
    named = dict(DIAGNOSTICS)
    keys = [k for k, _ in DIAGNOSTICS if k in diagnostics]
    keys += sorted(k for k in diagnostics if k not in named and k not in WARNING_KEYS)
    return [(named.get(k, k), _format_diagnostic(diagnostics[k])) for k in keys]


class _Builder:
    """Collects figures while sections are rendered."""

    def __init__(self) -> None:
        self.figures: list[ReportFigure] = []

    def figure(self, file_name: str, caption: str, png: bytes) -> str:
        fig = ReportFigure(file_name, caption, png)
        self.figures.append(fig)
        return _figure_html(fig)


def _mixture_section(mixtures: pa.Table, b: _Builder, solutions: dict[str, dict[str, Any]]) -> str:
    """Per tokenizer the chart and the table of shares, and under them the solve's warnings
    (``WARNING_KEYS``), where a reader of the shares sees them."""
    parts = [f'<p class="note">{SHARES_NOTE}</p>']
    for name, rows in mixture_rows(mixtures).items():
        errors = [r.errors for r in rows]
        n_interval = sum(e is not None for e in errors)
        png = plots.mixture_chart(
            [r.category for r in rows],
            [r.byte_share for r in rows],
            errors,
            f"Inferred training mixture of {name} (byte shares)",
        )
        interval_note = (
            "error bars: the bootstrap interval"
            if n_interval == len(rows)
            else "no interval for categories marked “no interval” (bootstrap not run)"
            if n_interval
            else "no interval: this run has no bootstrap intervals"
        )
        cells = [
            (
                _e(r.category),
                _pct(r.byte_share),
                "no interval"
                if r.errors is None
                else f"{_pct(r.byte_share_low)} – {_pct(r.byte_share_high)}",
                _num(r.weight, ".4f"),
                _num(r.pairs),
                _num(r.bytes_),
            )
            for r in rows
        ]
        parts.append(
            f'<h3 class="tokenizer">{_e(name)}</h3>'
            + b.figure(figure_name("mixture", name), f"Byte shares of {name}; {interval_note}", png)
            + _table(
                [
                    "category",
                    "byte share (β)",
                    "interval",
                    "weight (α, pair units)",
                    "sample pairs",
                    "sample bytes",
                ],
                cells,
            )
        )
        diagnostics = (solutions.get(name) or {}).get("diagnostics") or {}
        parts += [
            f'<p class="note warning"><strong>WARNING</strong>: {_e(str(diagnostics[k]))}</p>'
            for k in WARNING_KEYS
            if k in diagnostics
        ]
    return _section("mixture", "Inferred mixture", "".join(parts))


def _groups_section(solutions: dict[str, dict[str, Any]], b: _Builder) -> str:
    """Category groups side by side: one row per group, one column per tokenizer (the
    comparison of released tokenizers), each a share and its interval; above it the same
    values as one chart (``groups.png``, the chart ``tokmix run`` writes beside its summary)."""
    names = sorted(
        n for n, doc in solutions.items() if (doc.get("diagnostics") or {}).get("groups")
    )
    by_name = {n: {g["group"]: g for g in solutions[n]["diagnostics"]["groups"]} for n in names}
    groups = list(dict.fromkeys(g for n in names for g in by_name[n]))

    def cell(g: dict[str, Any] | None) -> str:
        if g is None:
            return ""
        text = _pct(g["byte_share"], 1)
        if g.get("byte_share_low") is not None:
            text += f" ({_pct(g['byte_share_low'], 1)}–{_pct(g['byte_share_high'], 1)})"
        return _e(text)

    rows = [(_e(g), *(cell(by_name[n].get(g)) for n in names)) for g in groups]
    note = (
        "<p>Each group's byte share is the sum of its categories'; the interval is taken over "
        "the bootstrap replicates' sums.</p>"
    )
    chart = GroupComparison.from_solutions({n: solutions[n] for n in names}).chart()
    caption = "Category groups per tokenizer (byte shares; error bars: the bootstrap interval)"
    figure = b.figure(GROUPS_FIGURE, caption, chart)
    return _section("groups", "Category groups", note + figure + _table(["group", *names], rows))


def _diagnostics_section(solutions: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, doc in sorted(solutions.items()):
        rows = diagnostics_rows(doc.get("diagnostics") or {})
        table = (
            _table(["diagnostic", "value"], [(_e(k), _e(v)) for k, v in rows], numeric=2)
            if rows
            else "<p>The run recorded no solver diagnostics for this tokenizer.</p>"
        )
        parts.append(f'<h3 class="tokenizer">{_e(name)}</h3>{table}')
    return _section("diagnostics", "Solver diagnostics", "".join(parts))


def _by_category(
    ratios: Sequence[dict[str, Any]], key: str
) -> tuple[list[str], dict[str, list[float | None]]]:
    categories = sorted({r["category"] for r in ratios})
    series: dict[str, list[float | None]] = {}
    for name in sorted({r["tokenizer"] for r in ratios}):
        mine = {r["category"]: r[key] for r in ratios if r["tokenizer"] == name}
        series[name] = [mine.get(c) for c in categories]
    return categories, series


def _compression_section(ratios: Sequence[dict[str, Any]], b: _Builder) -> str:
    figs = []
    for key, file_name, caption, label in (
        ("bytes_per_token", "bytes-per-token.png", "Compression: bytes per token", "bytes / token"),
        ("fertility", "fertility.png", "Fertility: tokens per word (pre-token)", "tokens / word"),
    ):
        categories, series = _by_category(ratios, key)
        figs.append(
            b.figure(file_name, caption, plots.grouped_bars(categories, series, caption, label))
        )
    cells = [
        (
            _e(r["tokenizer"]),
            _e(r["category"]),
            _num(r["documents"]),
            _num(r["bytes"]),
            _num(r["tokens"]),
            _num(r["bytes_per_token"], ".3f"),
            _num(r["chars_per_token"], ".3f"),
            _num(r["fertility"], ".3f"),
        )
        for r in ratios
    ]
    table = _table(
        [
            "tokenizer",
            "category",
            "documents",
            "bytes",
            "tokens",
            "bytes/token",
            "chars/token",
            "tokens/word",
        ],
        cells,
        numeric=2,
    )
    note = (
        '<p class="note">Derived from raw sums over each category\'s sample: more bytes per '
        "token is better compression; fertility is tokens per pre-token (word).</p>"
    )
    return _section("compression", "Compression and fertility", note + "".join(figs) + table)


def _vocabulary_section(
    ratios: Sequence[dict[str, Any]], totals: pa.Table | None, b: _Builder
) -> str:
    parts = []
    if ratios:
        categories, series = _by_category(ratios, "vocab_use")
        percent = {k: [None if v is None else 100.0 * v for v in vs] for k, vs in series.items()}
        caption = "Vocabulary use: % of the vocabulary produced"
        parts.append(
            b.figure(
                "vocab-use.png",
                caption,
                plots.grouped_bars(categories, percent, caption, "% of vocabulary"),
            )
        )
        parts.append(
            _table(
                ["tokenizer", "category", "vocabulary", "tokens used", "share used"],
                [
                    (
                        _e(r["tokenizer"]),
                        _e(r["category"]),
                        _num(r["vocab_size"]),
                        _num(r["tokens_used"]),
                        _pct(r["vocab_use"]),
                    )
                    for r in ratios
                ],
                numeric=2,
            )
        )
    use = vocabulary_use(ratios, totals)
    if totals is not None and use:
        parts.append("<h3>Whole run (union over categories)</h3>")
        parts.append(
            _table(
                ["tokenizer", "vocabulary", "tokens used", "share used"],
                [
                    (_e(u["tokenizer"]), _num(u["vocab_size"]), _num(u["used"]), _pct(u["share"]))
                    for u in use
                ],
            )
        )
        for u in use:
            top = top_tokens(totals, u["tokenizer"])
            parts.append(
                f'<h3 class="tokenizer">Most frequent tokens of {_e(u["tokenizer"])}</h3>'
                + _table(
                    ["token", "id", "count", "share of tokens"],
                    [
                        (
                            f"<code>{_e(display_token(r['token']))}</code>",
                            _num(r["token_id"], "d"),
                            _num(r["count"]),
                            _pct(r["share"]),
                        )
                        for r in top
                    ],
                )
            )
    return _section("vocabulary", "Vocabulary use", "".join(parts))


def _undertrained_section(table: pa.Table) -> str:
    parts = [
        '<p class="note"><strong>unreachable</strong>: no sequence of the merge list produces '
        "the token; <strong>never_produced</strong>: no category of this run produced it. Both "
        "are candidates for under-trained tokens. Tokens are shown as Python literals.</p>"
    ]
    for name, rows in undertrained_rows(table).items():
        counts: dict[str, int] = defaultdict(int)
        for r in rows:
            counts[r["reason"]] += 1
        summary = ", ".join(f"{n:,} {_e(reason)}" for reason, n in counts.items())
        more = len(rows) - UNDERTRAINED_SHOWN
        parts.append(
            f'<h3 class="tokenizer">{_e(name)}</h3><p>{summary}.'
            + (
                f" The first {UNDERTRAINED_SHOWN:,} are listed; {more:,} more are in the "
                "<code>undertrained</code> dataset."
                if more > 0
                else ""
            )
            + "</p>"
            + _table(
                ["token", "id", "reason"],
                [
                    (
                        f"<code>{_e(display_token(r['token']))}</code>",
                        _num(r["token_id"], "d"),
                        _e(r["reason"]),
                    )
                    for r in rows[:UNDERTRAINED_SHOWN]
                ],
                numeric=1,
            )
        )
    return _section("undertrained", "Under-trained token candidates", "".join(parts))


def _corpus_section(table: pa.Table) -> str:
    rows = sorted(table.to_pylist(), key=lambda r: (r["pretokenizer"], r["category"]))
    cells = [
        (
            _e(r["pretokenizer"]),
            _e(r["category"]),
            _num(r["documents"]),
            _num(r["bytes"]),
            _num(r["chars"]),
            _num(r["pretokens"]),
            _num(r["distinct_words"]),
            _num(r["invalid_utf8_documents"]),
        )
        for r in rows
    ]
    return _section(
        "corpus",
        "Corpus samples",
        _table(
            [
                "pre-tokenizer",
                "category",
                "documents",
                "bytes",
                "chars",
                "pre-tokens",
                "distinct words",
                "invalid UTF-8 docs",
            ],
            cells,
            numeric=2,
        ),
    )


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}
header,main,footer{max-width:1000px;margin:0 auto;padding:0 20px}
header{padding-top:16px}h1{font-size:24px;margin:8px 0}h2{font-size:19px;margin:28px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
nav a{margin-right:14px}code{font:12px ui-monospace,Menlo,Consolas,monospace;
background:#f0f0f0;padding:0 3px;border-radius:3px;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;margin:8px 0 16px;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
figure{margin:10px 0}figure img{max-width:100%;height:auto;border:1px solid #eee;background:#fff}
figcaption{font-size:12px;color:#555}.note{color:#333;background:#eef3fb;padding:8px 10px;
border-radius:4px}.warning{background:#fdf1dc}footer{color:#777;font-size:12px;padding:24px 20px}
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def build_report(run: RunData, *, generated: datetime | None = None) -> Report:
    """The report page and its figures. Sections appear only for datasets the run has."""
    b = _Builder()
    ratios = token_ratios(run.token_stats) if run.token_stats is not None else []
    sections: list[tuple[str, str, str]] = []  # (anchor, link text, HTML), in reading order
    if run.inconsistent:
        items = "".join(f"<li>{_e(s)}</li>" for s in run.inconsistent)
        text = (
            "<p><strong>These datasets do not come from one set of inputs</strong>: a later "
            "run into this output root replaced some of them. Re-run the stages named below, "
            f"or read each dataset on its own.</p><ul>{items}</ul>"
        )
        sections.append(("inconsistent", "Inconsistent", _section("inconsistent", "Warning", text)))
    if run.mixtures is not None:
        sections.append(("mixture", "Mixture", _mixture_section(run.mixtures, b, run.solutions)))
    if any((doc.get("diagnostics") or {}).get("groups") for doc in run.solutions.values()):
        sections.append(("groups", "Groups", _groups_section(run.solutions, b)))
    if run.solutions:
        sections.append(("diagnostics", "Solver", _diagnostics_section(run.solutions)))
    if ratios:
        sections.append(("compression", "Compression", _compression_section(ratios, b)))
    if ratios or run.token_totals is not None:
        html_ = _vocabulary_section(ratios, run.token_totals, b)
        sections.append(("vocabulary", "Vocabulary", html_))
    if run.undertrained is not None:
        sections.append(("undertrained", "Under-trained", _undertrained_section(run.undertrained)))
    if run.corpus_stats is not None:
        sections.append(("corpus", "Corpus", _corpus_section(run.corpus_stats)))
    if run.skipped:
        items = "".join(f"<li>{_e(s)}</li>" for s in run.skipped)
        sections.append(
            ("skipped", "Not included", _section("skipped", "Not included", f"<ul>{items}</ul>"))
        )
    body = "".join(h for _, _, h in sections) or "<p>This run has no datasets to report.</p>"
    nav = "".join(f'<a href="#{anchor}">{_e(label)}</a>' for anchor, label, _ in sections)
    when = (generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>tokmix report: {_e(run.source)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>tokmix report</h1><p>Run <code>{_e(run.source)}</code></p>"
        f"<nav>{nav}</nav></header><main>{body}</main>"
        f"<footer>tokmix {_e(__version__)}, {_e(when)}</footer></body></html>\n"
    )
    return Report(page, b.figures)
