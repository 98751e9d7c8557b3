"""The accuracy report of ``tokmix evaluate``: tables beside the paper's, and one plot.

:func:`summarize` is pure (results rows in, summary frames out); :func:`report_blocks` lays
the report out once, as headings, paragraphs, the plot and tables; :func:`render_markdown`
and :func:`render_html` write those same blocks as Markdown and as one self-contained HTML
page (the run report's page style and Content-Security-Policy, the plot inline as a
``data:`` PNG, every value escaped). :func:`write_report` writes ``report.md``,
``report.html`` and ``accuracy.png`` under the output root.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tokmix import __version__
from tokmix.analytics.report import CSP, STYLE, _e, _table
from tokmix.io.fs import filesystem_for, join, write_bytes_atomic
from tokmix.solvers.bootstrap import widen_for_training_noise

# Hayase et al. 2024, Table 1 (mean log10 MSE over byte shares; ARCHITECTURE.md §8).
PAPER = {
    ("languages", 5): -7.30,
    ("languages", 10): -7.66,
    ("languages", 30): -7.73,
    ("languages", 112): -7.69,
    ("code", 5): -6.46,
    ("code", 10): -6.30,
    ("code", 30): -5.98,
    ("domains", 5): -3.41,
}
PAPER_RANDOM = {5: -1.39, 10: -1.84, 30: -2.70, 112: -3.82}
ORDER = ["paper-lp", "scaled-lp", "likelihood", "bagged-lp", "tc", "tee", "uniform", "random"]
LPS = ["paper-lp", "scaled-lp", "likelihood"]  # scored on every variant (curves, robustness)


def _trials(results: pd.DataFrame) -> pd.DataFrame:
    """One row per trial, variant and estimator (the score is repeated per category)."""
    keys = ["setting", "n", "trial", "variant", "estimator"]
    return results.groupby(keys, as_index=False).agg(
        log10_mse=("log10_mse", "first"),
        steps=("steps", "first"),
        sample_bytes=("sample_bytes", "first"),
        slack_steps=("slack_steps", "first"),
        missing_merges=("missing_merges", "first"),
        objective=("objective", "first"),
        seconds=("seconds", "first"),
    )


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {0.0 if np.isnan(std) else std:.2f}"


THREE = ("paper-lp", "scaled-lp", "likelihood")
"""The estimators issue 14 compares: the paper's LP, tokmix's default, the likelihood."""

DEFAULT_RULE = (-0.3, 0.1)
"""An estimator replaces the default only if, in every setting, its mean Δ log10 MSE vs the
paper's LP is at most -0.3 with a paired standard error under 0.1 (issue 14)."""


def _paired(diff: pd.Series) -> str:
    """Mean Δ ± paired s.e. (better in how many of how many trials)."""
    k = len(diff)
    se = f"{float(diff.std() / np.sqrt(k)):.2f}" if k > 1 else "–"  # one trial: no spread
    return f"{diff.mean():+.2f} ± {se} ({int((diff < 0).sum())}/{k})"


def _meets_rule(diff: pd.Series) -> bool:
    k = len(diff)
    if k < 2:
        return False
    return bool(diff.mean() <= DEFAULT_RULE[0] and diff.std() / np.sqrt(k) < DEFAULT_RULE[1])


def side_by_side(df: pd.DataFrame) -> pd.DataFrame:
    """Per setting (and over all): the three estimators on the trials where all three were
    scored, mean log10 MSE, Δ vs the paper's LP ± paired s.e., and the coverage of each
    one's interval (covered / categories). Pairing on the same trials is why the Δ's s.e. is
    far below the spread of the scores: tokenizers and samples differ more between trials
    than estimators do on one."""
    base = df[(df.variant == "base") & df.estimator.isin(THREE)]
    scores = base.groupby(["setting", "n", "trial", "estimator"]).log10_mse.first().unstack()
    if not set(THREE) <= set(scores.columns):
        return pd.DataFrame()
    scores = scores[list(THREE)].dropna()
    if scores.empty:
        return pd.DataFrame()
    trial_keys = set(scores.index)
    in_trials = np.array(
        [k in trial_keys for k in zip(base.setting, base.n, base.trial, strict=True)]
    )
    covered = base[in_trials & base.low.notna()]
    covered = covered.assign(hit=(covered.low <= covered.truth) & (covered.truth <= covered.high))

    def row(sc: pd.DataFrame, cov: pd.DataFrame) -> dict[str, Any]:
        out: dict[str, Any] = {"trials": len(sc)}
        for est in THREE:
            out[est] = f"{sc[est].mean():.2f}"
        for est in THREE[1:]:
            out[f"{est} Δ"] = _paired(sc[est] - sc["paper-lp"])
        for est in THREE:
            hits = cov[cov.estimator == est].hit
            out[f"{est} coverage"] = (
                f"{hits.mean():.0%} ({int(hits.sum())}/{len(hits)})" if len(hits) else "–"
            )
        out["likelihood meets the default rule"] = (
            "yes" if _meets_rule(sc["likelihood"] - sc["paper-lp"]) else "no"
        )
        return out

    rows, index = [], []
    for (setting, n), sc in scores.groupby(level=["setting", "n"]):
        cov = covered[(covered.setting == setting) & (covered.n == n)]
        rows.append(row(sc, cov))
        index.append((setting, n))
    rows.append(row(scores, covered))
    index.append(("all", 0))
    table = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["setting", "n"]))
    every = table["likelihood meets the default rule"].iloc[:-1].eq("yes").all()
    table.loc[("all", 0), "likelihood meets the default rule"] = (
        "yes (every setting)" if every else "no"
    )
    return table


def summarize(results: pa.Table) -> dict[str, pd.DataFrame]:
    """Main table, paper vs bagged, coverage, curve and robustness summaries."""
    df = results.to_pandas()
    trials = _trials(df)
    base = trials[trials.variant == "base"]
    stats = base.groupby(["setting", "n", "estimator"]).log10_mse.agg(["mean", "std"])
    table = pd.DataFrame(index=stats.index.droplevel("estimator").unique())
    table["trials"] = base.groupby(["setting", "n"]).trial.nunique()
    for est in ORDER:
        if est in stats.index.get_level_values("estimator"):
            sub = stats.xs(est, level="estimator").reindex(table.index)
            table[est] = [_fmt(m, s) for m, s in zip(sub["mean"], sub["std"], strict=True)]
    table["paper (Hayase et al.)"] = [f"{PAPER[k]:.2f}" if k in PAPER else "–" for k in table.index]
    table["paper's random"] = [
        f"{PAPER_RANDOM[k[1]]:.2f}" if k[1] in PAPER_RANDOM else "–" for k in table.index
    ]

    wide = base.pivot_table(
        index=["setting", "n", "trial"], columns="estimator", values="log10_mse"
    )
    parts = []
    for est in ("scaled-lp", "likelihood", "bagged-lp"):
        if not {"paper-lp", est} <= set(wide.columns):
            continue
        diff = (wide[est] - wide["paper-lp"]).dropna()
        if diff.empty:
            continue
        g = diff.groupby(level=["setting", "n"])
        part = pd.DataFrame(
            {
                "estimator": est,
                "trials": g.size(),
                "mean Δ log10 MSE vs paper-lp": g.mean().round(3),
                "paired s.e.": (g.std() / np.sqrt(g.size())).round(3),
                "better than paper-lp in": g.apply(lambda d: int((d < 0).sum())),
            }
        )
        overall = pd.DataFrame(
            {
                "estimator": [est],
                "trials": [len(diff)],
                "mean Δ log10 MSE vs paper-lp": [round(float(diff.mean()), 3)],
                "paired s.e.": [round(float(diff.std() / np.sqrt(len(diff))), 3)],
                "better than paper-lp in": [int((diff < 0).sum())],
            },
            index=pd.MultiIndex.from_tuples([("all", 0)], names=["setting", "n"]),
        )
        parts += [part, overall]
    versus = pd.concat(parts) if parts else pd.DataFrame()

    lp = df[(df.variant == "base") & df.estimator.isin(LPS)]
    lp = lp[lp.low.notna()]
    cover = lp.assign(covered=(lp.low <= lp.truth) & (lp.truth <= lp.high))
    cover = cover.assign(width=cover.high - cover.low)
    lo2, hi2 = widen_for_training_noise(
        cover.estimate.to_numpy(),
        cover.low.to_numpy(),
        cover.high.to_numpy(),
        cover.sample_bytes.to_numpy(),
        cover.train_bytes.to_numpy(),
    )
    cover = cover.assign(
        covered_train=(lo2 <= cover.truth) & (cover.truth <= hi2), width_train=hi2 - lo2
    )
    coverage = (
        cover.groupby(["estimator", "setting", "n"])
        .agg(
            categories=("covered", "size"),
            coverage=("covered", "mean"),
            median_width=("width", "median"),
            coverage_with_training_noise=("covered_train", "mean"),
            median_width_with_training_noise=("width_train", "median"),
        )
        .round(4)
    )

    paper = trials[trials.estimator.isin(LPS)]
    curve_rows = paper[
        paper.variant.str.startswith(("steps=", "sample=")) | (paper.variant == "base")
    ]
    curve = (
        curve_rows.groupby(["setting", "n", "variant", "estimator"])
        .agg(
            steps=("steps", "first"),
            sample_bytes=("sample_bytes", "mean"),
            trials=("trial", "nunique"),
            mean=("log10_mse", "mean"),
            std=("log10_mse", "std"),
        )
        .round(3)
    )
    robust_rows = paper[~paper.variant.str.startswith(("steps=", "sample="))].copy()
    robust_rows["variant"] = robust_rows.variant.str.replace(r"=.*", "", regex=True)
    robustness = (
        robust_rows.groupby(["setting", "n", "variant", "estimator"])
        .agg(
            trials=("trial", "nunique"),
            mean=("log10_mse", "mean"),
            std=("log10_mse", "std"),
            slack_steps=("slack_steps", "mean"),
            objective=("objective", "mean"),
            missing_merges=("missing_merges", "mean"),
        )
        .round(3)
    )
    return {
        "three": side_by_side(df),
        "main": table,
        "versus": versus,
        "coverage": coverage,
        "curve": curve,
        "robustness": robustness,
    }


def _md(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)\n"
    flat = frame.reset_index()
    cols = [str(c) for c in flat.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in flat.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


Block = tuple[str, Any]
"""One piece of the report: ``("h1" | "h2" | "p", text)``, ``("img", (alt, file))`` or
``("table", frame)``. Text may hold Markdown inline code (backquotes)."""


def report_blocks(summary: dict[str, pd.DataFrame], params: dict[str, Any]) -> list[Block]:
    """The report's content, in reading order, for every output format."""
    level = params.get("level", 0.95)
    return [
        ("h1", "tokmix evaluate: accuracy of mixture inference"),
        (
            "p",
            "Mean ± std over trials of log10 MSE of byte shares (lower is better). `paper-lp` is\n"
            "the paper's LP unchanged; `scaled-lp` the noise-scaled LP, tokmix's default\n"
            "(tokmix.solvers.noise_scaled_lp); `likelihood` the merge-race likelihood\n"
            "(tokmix.solvers.likelihood); `bagged-lp` the mean of scaled-lp's bootstrap\n"
            "replicates; TC, TEE, uniform and random are the baselines (tokmix.solvers.baselines).",
        ),
        ("p", "Parameters: `" + json.dumps(params, sort_keys=True) + "`"),
        ("img", ("accuracy", "accuracy.png")),
        ("h2", "The three estimators on the same trials (issue 14)"),
        (
            "p",
            "Trials where `paper-lp`, `scaled-lp` and `likelihood` were all scored (base\n"
            "variant). Means of log10 MSE; `Δ`: the estimator's log10 MSE minus the paper LP's on\n"
            "the same trial, mean ± paired standard error (better in / trials; < 0: better).\n"
            f"Coverage of the true byte shares by each estimator's nominal {level:.0%} interval:\n"
            "the LPs' bootstrap (the same resamples, each solved by its own LP), the\n"
            "likelihood's model interval; covered / categories. The default rule: mean Δ <=\n"
            f"{DEFAULT_RULE[0]} with paired s.e. < {DEFAULT_RULE[1]} in every setting.",
        ),
        ("table", summary["three"]),
        ("h2", "Accuracy beside the paper"),
        ("table", summary["main"]),
        ("h2", "Improved estimators vs the paper's LP on the same trials (Δ < 0: better)"),
        ("table", summary["versus"]),
        ("h2", f"Interval coverage (nominal {level:.0%})"),
        (
            "p",
            "`paper-lp`, `scaled-lp` and `bagged-lp`: bootstrap intervals; `likelihood`: the\n"
            "model's own,\n"
            "a merge-block sandwich of its observed information (delta method to byte shares).",
        ),
        (
            "p",
            "Percentile intervals from 40 replicates; below that, the point estimate ± z·sd of\n"
            "the replicates (tokmix.solvers.bootstrap.bootstrap_mixture, method auto).",
        ),
        (
            "p",
            "Each replicate resamples the attacker's document groups and blocks of\n"
            f"{params.get('merge_block', 0)} merges (0: documents only). The tokenizer's own\n"
            "training text is a finite sample too; resampling merges captures part of that\n"
            "noise, not all, so coverage falls below nominal where the training text is small\n"
            "(here: megabytes). The\n"
            "`with_training_noise` columns stretch each interval by\n"
            "sqrt(1 + sample_bytes / (share x train_bytes))\n"
            "(tokmix.solvers.bootstrap.widen_for_training_noise; an analyst supplies the\n"
            "training size as an assumption, the experiment knows it).",
        ),
        ("table", summary["coverage"]),
        ("h2", "Accuracy against merges T and sample bytes"),
        ("table", summary["curve"]),
        ("h2", "Robustness and the diagnostics that flag it"),
        (
            "p",
            "`shift`: attacker text from other source directories than the training text;\n"
            "`leave-out`: one training category unknown to the attacker (scored on the others,\n"
            "renormalized). `slack_steps`: merge steps whose constraint needed slack.",
        ),
        ("table", summary["robustness"]),
    ]


def render_markdown(summary: dict[str, pd.DataFrame], params: dict[str, Any]) -> str:
    lines: list[str] = []
    for kind, value in report_blocks(summary, params):
        if kind == "table":
            lines.append(_md(value))  # ends with a newline: the blank line after it
        elif kind == "img":
            lines += [f"![{value[0]}]({value[1]})", ""]
        else:
            lines += [{"h1": "# ", "h2": "## ", "p": ""}[kind] + value, ""]
    return "\n".join(lines)


def _inline_html(text: str) -> str:
    """Escaped text with Markdown's inline code as ``<code>``."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", _e(text))


def _html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>(none)</p>"
    flat = frame.reset_index()
    rows = [[_e(v) for v in row] for row in flat.itertuples(index=False)]
    return _table([str(c) for c in flat.columns], rows, numeric=frame.index.nlevels)


def render_html(summary: dict[str, pd.DataFrame], params: dict[str, Any], png: bytes) -> str:
    """The report as one page that loads nothing (see the run report, tokmix.analytics.report):
    the same blocks as the Markdown, the plot embedded."""
    parts: list[str] = []
    title = "tokmix evaluate"
    for kind, value in report_blocks(summary, params):
        if kind == "h1":
            title = value
            parts.append(f"<h1>{_e(value)}</h1>")
        elif kind == "h2":
            parts.append(f"<h2>{_e(value)}</h2>")
        elif kind == "p":
            parts.append(f"<p>{_inline_html(value)}</p>")
        elif kind == "img":
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{_e(value[0])}" '
                f'data-file="{_e(value[1])}"><figcaption><code>{_e(value[1])}</code>'
                "</figcaption></figure>"
            )
        else:
            parts.append(_html_table(value))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<main>{''.join(parts)}</main>"
        f"<footer>tokmix {_e(__version__)}</footer></body></html>\n"
    )


def plot_png(results: pa.Table) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = _trials(results.to_pandas())
    base = trials[trials.variant == "base"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    groups = sorted({(s, n) for s, n in zip(base.setting, base.n, strict=True)})
    width = 0.8 / len(ORDER)
    for k, est in enumerate(ORDER):
        sub = base[base.estimator == est]
        means = [sub[(sub.setting == s) & (sub.n == n)].log10_mse.mean() for s, n in groups]
        stds = [sub[(sub.setting == s) & (sub.n == n)].log10_mse.std() for s, n in groups]
        axes[0].bar(np.arange(len(groups)) + k * width, means, width, yerr=stds, label=est)
    for i, key in enumerate(groups):
        if key in PAPER:
            axes[0].hlines(PAPER[key], i - 0.1, i + 0.9, colors="k", linestyles="dashed")
    axes[0].set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    axes[0].set_xticklabels([f"{s}\nn={n}" for s, n in groups])
    axes[0].set_ylabel("log10 MSE (byte shares)")
    axes[0].set_title("estimators (dashed: paper, 10 GB / 1 GB data)")

    paper = trials[(trials.estimator == LPS[-1])]
    steps = paper[paper.variant.str.startswith("steps=") | (paper.variant == "base")]
    for (s, n), sub in steps.groupby(["setting", "n"]):
        curve = sub.groupby("steps").log10_mse.mean()
        axes[1].plot(curve.index, curve.values, marker="o", label=f"{s} n={n}")
    axes[1].set_xlabel("merges T")
    axes[1].set_ylabel(f"log10 MSE ({LPS[-1]})")
    axes[1].set_title("accuracy against merges T")
    sizes = paper[paper.variant.str.startswith("sample=") | (paper.variant == "base")]
    for (s, n), sub in sizes.groupby(["setting", "n"]):
        curve = sub.groupby("variant").agg(x=("sample_bytes", "mean"), y=("log10_mse", "mean"))
        curve = curve.sort_values("x")
        axes[2].plot(curve.x / 1e6, curve.y, marker="o", label=f"{s} n={n}")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("attacker sample per category (MB)")
    axes[2].set_ylabel(f"log10 MSE ({LPS[-1]})")
    axes[2].set_title("accuracy against sample bytes")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:  # a run without curve variants has no lines
            ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(results: pa.Table, out: str, params: dict[str, Any]) -> str:
    """Write ``report.md``, ``report.html`` and ``accuracy.png`` under ``out``; returns the
    Markdown."""
    summary = summarize(results)
    text = render_markdown(summary, params)
    png = plot_png(results)
    fs, base = filesystem_for(out)
    fs.makedirs(base, exist_ok=True)
    write_bytes_atomic(fs, join(base, "report.md"), text.encode())
    write_bytes_atomic(fs, join(base, "report.html"), render_html(summary, params, png).encode())
    write_bytes_atomic(fs, join(base, "accuracy.png"), png)
    return text
