"""Category groups: shares of named groups of categories (``--group english=lang-en``).

A group is a name and a glob over category names (``code='code-*'``); its byte share is the sum
of its categories' shares. Its interval comes from the bootstrap replicates: the group's share
is summed *within each replicate* and the percentile interval taken over those sums, never by
adding the categories' bounds (which would be far too wide, and is not an interval of
anything). Pure: arrays in, values out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tokmix.errors import TokmixError


def parse_group(spec: str) -> tuple[str, str]:
    """``name=glob`` as given to ``--group``."""
    name, sep, pattern = spec.partition("=")
    if not sep or not name.strip() or not pattern.strip():
        raise TokmixError(f"--group is NAME=GLOB (e.g. code='code-*'), got {spec!r}")
    return name.strip(), pattern.strip()


def group_members(
    groups: Sequence[tuple[str, str]], categories: Sequence[str]
) -> dict[str, list[int]]:
    """Each group's category indices; a group matching no category, or a repeated group name,
    is an error naming the categories there are."""
    out: dict[str, list[int]] = {}
    for name, pattern in groups:
        if name in out:
            raise TokmixError(f"group {name!r} is given twice")
        members = [i for i, c in enumerate(categories) if fnmatch.fnmatchcase(c, pattern)]
        if not members:
            raise TokmixError(
                f"group {name}={pattern!r} matches no category (categories: "
                f"{', '.join(categories)})"
            )
        out[name] = members
    return out


@dataclass(frozen=True)
class GroupShare:
    """One group's byte share, its interval (None without replicates) and its categories."""

    group: str
    categories: tuple[str, ...]
    byte_share: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "categories": list(self.categories),
            "byte_share": self.byte_share,
            "byte_share_low": self.low,
            "byte_share_high": self.high,
        }


def grouped_shares(
    categories: Sequence[str],
    byte_share: np.ndarray,
    members: dict[str, list[int]],
    replicates: np.ndarray | None = None,
    level: float = 0.95,
) -> list[GroupShare]:
    """Group shares from category shares; intervals from per-replicate sums.

    ``replicates`` is ``(n_replicates, n_categories)`` byte shares of the bootstrap draws (as
    ``BootstrapResult.replicate_byte_shares``); bounds at ``level``, percentile from 40
    replicates and below that normal around the group's point share, as the category
    intervals are (around the mean of the sums, a group's interval could sit off the share it
    stands beside, as the bagged and the point estimate differ)."""
    share = np.asarray(byte_share, dtype=np.float64)
    out = []
    tail = (1.0 - level) / 2.0
    for name, idx in members.items():
        point = float(share[idx].sum())
        low = high = None
        if replicates is not None and len(replicates):
            sums = np.asarray(replicates, dtype=np.float64)[:, idx].sum(axis=1)
            low, high = _interval(sums, point, tail, level)
        out.append(GroupShare(name, tuple(categories[i] for i in idx), point, low, high))
    return out


PERCENTILE_FROM = 40
"""As ``tokmix.solvers.bootstrap``: percentile intervals from 40 replicates, normal below."""


def _interval(sums: np.ndarray, point: float, tail: float, level: float) -> tuple[float, float]:
    if len(sums) >= PERCENTILE_FROM:
        lo, hi = np.quantile(sums, [tail, 1.0 - tail])
        return float(lo), float(hi)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    sd = float(sums.std(ddof=1)) if len(sums) > 1 else 0.0
    return max(0.0, point - z * sd), min(1.0, point + z * sd)
