"""Categories the estimate cannot split: found from the bootstrap replicates.

Two categories of very similar text (two halves of one corpus, two English web crawls) make the
LP's optimum flat along the line that moves share from one to the other: the estimate of their
*sum* is as firm as any, but how it splits between them follows the noise of the samples. Each
alone then gets a wide interval, and read one at a time those intervals hide what the data do
say: the split is unknown, the total is not. Exact duplicates are caught before the solve
(``tokmix.jobs.merge_checks.indistinguishable``); near ones only show in the replicates, where
the two shares move against each other.

A set of categories is *confounded* when the spread of its summed share over the replicates is
at most :data:`RATIO` of the spread of each of its parts, and each part's interval reaches at
least :data:`MIN_HALF_WIDTH` from its centre (a split known to a point is worth no warning).
Every member must be hedged by the others, so a category that merely sits beside a set never
passes. Sets are grown from each category, most uncertain first, by adding the category whose
share moves most against the set's sum (the most negative correlation): a corpus in two, three or
four slices is found whole, where a pairwise test would miss three equal slices (each pair of
them is as spread as one slice). Pure: arrays in, groups out; the sum's interval is the one
``--group`` would give.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from tokmix.analytics.groups import GroupShare, grouped_shares

RATIO = 0.5
"""A set is confounded when its sum spreads at most this fraction of its least spread part."""
MIN_HALF_WIDTH = 0.01
"""Each part's interval reaches at least this far (a byte share) from its centre."""
MAX_SET = 6
"""The largest set looked for (a corpus given as more slices than this is not one question)."""


def confounded_groups(
    categories: Sequence[str],
    byte_share: np.ndarray,
    replicates: np.ndarray,
    level: float = 0.95,
) -> list[GroupShare]:
    """The confounded sets of two or more categories (module docstring), each with its summed
    share and that sum's interval; ``replicates`` is ``(n_replicates, n_categories)``."""
    draws = np.asarray(replicates, dtype=np.float64)
    if draws.ndim != 2 or draws.shape[1] != len(categories):
        raise ValueError(f"replicates of shape {draws.shape} for {len(categories)} categories")
    if len(draws) < 3:  # a spread from two draws says nothing
        return []
    z = float(norm.ppf(0.5 + level / 2))
    centred = draws - draws.mean(axis=0)
    spread = centred.std(axis=0, ddof=1)
    free = {int(i) for i in np.flatnonzero(spread >= MIN_HALF_WIDTH / z)}
    sets: list[list[int]] = []
    for seed in sorted(free, key=lambda i: (-spread[i], i)):
        if seed not in free:
            continue
        members, total, best = [seed], centred[:, seed].copy(), None
        while len(members) < min(MAX_SET, len(categories) - 1):  # all of them: held by Σ = 1
            others = sorted(free.difference(members))
            if not others:
                break
            hedge = (centred[:, others].T @ total) / spread[others]  # ∝ the correlation
            pick = int(np.argmin(hedge))
            if hedge[pick] >= 0:
                break
            members.append(others[pick])
            total += centred[:, others[pick]]
            ratio = float(total.std(ddof=1)) / float(spread[members].min())
            if ratio <= RATIO and (best is None or ratio < best[0]):
                best = (ratio, sorted(members))
        if best is not None:
            sets.append(best[1])
            free.difference_update(best[1])
    found = {"+".join(categories[i] for i in s): s for s in sets}
    return grouped_shares(categories, byte_share, found, draws, level)


def confounded_warning(
    groups: Sequence[GroupShare],
    low: Sequence[float | None],
    high: Sequence[float | None],
    categories: Sequence[str],
) -> str | None:
    """One line for the log and the CLI: each set, its parts' intervals and its sum's."""
    if not groups:
        return None
    index = {c: i for i, c in enumerate(categories)}

    def span(lo: float | None, hi: float | None) -> str:
        return "" if lo is None or hi is None else f" [{lo:.1%}, {hi:.1%}]"

    described = []
    for g in groups:
        parts = ", ".join(f"{c}{span(low[index[c]], high[index[c]])}" for c in g.categories)
        described.append(f"{parts}: together {g.byte_share:.1%}{span(g.low, g.high)}")
    return (
        "categories whose shares trade off between bootstrap replicates (their text is too "
        "alike for the LP to split it): " + "; ".join(described) + ". Read each set's total, "
        "not its parts (--group NAME=GLOB reports a set's total and interval)"
    )
