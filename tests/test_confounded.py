"""Confounded categories (``tokmix.analytics.confounded``): sets whose shares trade off between
bootstrap replicates, against planted sets and against one corpus given as two halves."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO
from tokmix.analytics.confounded import MIN_HALF_WIDTH, confounded_groups
from tokmix.analytics.groups import grouped_shares
from tokmix.cli import main


def _replicates(
    rng: np.random.Generator,
    n: int,
    planted: list[list[int]],
    split_sd: float,
    held: float = 0.002,
    r: int = 20,
) -> np.ndarray:
    """``r`` draws of ``n`` shares: independent noise per category, except that each planted
    set's total is held (to ``held``) while a Dirichlet split moves each part by ``split_sd``."""
    centre = rng.uniform(0.05, 0.3, n)
    draws = centre + rng.normal(0, 1, (r, n)) * rng.uniform(0.01, 0.05, n)
    for members in planted:
        k, whole = len(members), centre[members].sum()
        total = whole + rng.normal(0, held, r)
        concentration = whole**2 * (1 / k) * (1 - 1 / k) / split_sd**2 - 1
        split = rng.dirichlet(np.full(k, concentration), r)
        draws[:, members] = total[:, None] * split
    return draws


@pytest.mark.parametrize("seed", range(8))
def test_planted_sets_are_found_and_nothing_else(seed: int) -> None:
    """Oracle: the construction. Independent categories never form a set (their sum spreads
    more than either part); a held total split at random always does, in two, three or four."""
    rng = np.random.default_rng(seed)
    n = 16
    order = rng.permutation(n)
    planted = [sorted(order[a:b].tolist()) for a, b in ((0, 2), (2, 5), (5, 9))]
    draws = _replicates(rng, n, planted, split_sd=0.05)
    names = [f"c{i}" for i in range(n)]
    share = draws.mean(axis=0)
    found = confounded_groups(names, share, draws)
    assert sorted(sorted(names.index(c) for c in g.categories) for g in found) == sorted(planted)
    for g in found:
        members = [names.index(c) for c in g.categories]
        assert g.byte_share == pytest.approx(share[members].sum())
        assert g.low is not None and g.high is not None and g.high - g.low < 0.02
        same = grouped_shares(names, share, {g.group: members}, draws)[0]
        assert (same.low, same.high) == (g.low, g.high)  # the interval --group would give


def test_a_split_known_to_a_point_is_no_warning() -> None:
    """A held total whose split moves by less than MIN_HALF_WIDTH is left alone: the parts'
    intervals are already narrow."""
    rng = np.random.default_rng(1)
    names = [f"c{i}" for i in range(6)]
    narrow = _replicates(rng, 6, [[0, 1]], split_sd=MIN_HALF_WIDTH / 8, held=1e-6)
    assert confounded_groups(names, narrow.mean(axis=0), narrow) == []
    wide = _replicates(np.random.default_rng(1), 6, [[0, 1]], MIN_HALF_WIDTH * 2, held=1e-6)
    assert [g.categories for g in confounded_groups(names, wide.mean(axis=0), wide)] == [
        ("c0", "c1")
    ]


def test_too_few_replicates_say_nothing() -> None:
    draws = np.array([[0.5, 0.5], [0.2, 0.8]])
    assert confounded_groups(["a", "b"], draws[0], draws) == []
    with pytest.raises(ValueError, match="3 categories"):
        confounded_groups(["a", "b", "c"], draws[0], draws)


def test_infer_warns_when_one_corpus_is_given_as_two_halves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped books sample cut into two halves of its documents, beside the other four
    samples: the halves come out as one set, holding about the whole sample's share, and no
    other category is in a set."""
    samples = REPO / "data" / "samples"
    docs = gzip.decompress((samples / "books.jsonl.gz").read_bytes()).splitlines(keepends=True)
    half = len(docs) // 2
    (tmp_path / "books_a.jsonl").write_bytes(b"".join(docs[:half]))
    (tmp_path / "books_b.jsonl").write_bytes(b"".join(docs[half:]))
    cats = ["books_a", "books_b", "python", "rust", "legal", "typescript"]
    paths = [str(tmp_path / f"{c}.jsonl") for c in cats[:2]]
    paths += [str(samples / f"{c}.jsonl.gz") for c in cats[2:]]
    args = [x for c, p in zip(cats, paths, strict=True) for x in ("--category", f"{c}={p}")]
    demo = str(REPO / "data" / "tokenizers" / "demo")
    assert main(["infer", demo, *args, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "WARNING: categories whose shares trade off" in out
    recorded = json.loads((tmp_path / "out" / "mixtures" / "demo.json").read_text())
    sets = recorded["diagnostics"]["confounded"]
    assert [s["categories"] for s in sets] == [["books_a", "books_b"]]
    low, high = sets[0]["byte_share_low"], sets[0]["byte_share_high"]
    parts = [c for c in recorded["categories"] if c["name"].startswith("books")]
    assert all(c["byte_share_high"] - c["byte_share_low"] > 2 * (high - low) for c in parts)
    assert 0.25 < sets[0]["byte_share"] < 0.45  # the whole sample's share is 34.5 % (the demo)
    assert main(["report", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    mixture = page[page.index('id="mixture"') :]
    mixture = mixture[: mixture.index("</section>")]
    assert "<strong>WARNING</strong>: categories whose shares trade off" in mixture
    assert page.count("categories whose shares trade off") == 1  # not again in the diagnostics
