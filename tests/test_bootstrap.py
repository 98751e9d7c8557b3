"""Document-group bootstrap: linearity of group trajectories, weighted sums, intervals."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import sample_documents
from tokmix.bpe.pretokenizers import named
from tokmix.bpe.replay import PairTrajectory, replay_merges
from tokmix.bpe.training import train_bytelevel_bpe
from tokmix.bpe.words import count_words
from tokmix.solvers.bootstrap import (
    bootstrap_mixture,
    document_groups,
    weighted_trajectory,
    widen_for_training_noise,
)
from tokmix.solvers.mixture_lp import MixtureSolution, solve_mixture
from tokmix.solvers.problem import MixtureProblem, build_problem, byte_shares

CATS = ("books", "python", "legal")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    docs = {c: sample_documents(c, 120_000) for c in CATS}
    train = [d for c in CATS for d in sample_documents(c)[-40:]]
    tok = train_bytelevel_bpe(train, 120, Path(tmp_path_factory.mktemp("tok")))
    pre = named("gpt2")
    groups, tables = {}, {}
    for c in CATS:
        g = document_groups([f"{c}:{i}" for i in range(len(docs[c]))], 4)
        tables[c] = [
            count_words([docs[c][i] for i in np.flatnonzero(g == k)], pre) for k in range(4)
        ]
        groups[c] = [replay_merges(t.counts, tok.merge_list) for t in tables[c]]
    return {"tok": tok, "docs": docs, "tables": tables, "groups": groups, "pre": pre}


def _same(a: PairTrajectory, b: PairTrajectory) -> None:
    assert (a.first_step, a.last_step, a.pairs) == (b.first_step, b.last_step, b.pairs)
    for f in ("step", "left", "right", "delta"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_document_groups_are_deterministic_and_order_free() -> None:
    keys = [f"doc{i}" for i in range(200)]
    g = document_groups(keys, 7)
    assert g.min() >= 0 and g.max() < 7 and len(set(g.tolist())) == 7
    rev = document_groups(keys[::-1], 7)[::-1]
    np.testing.assert_array_equal(g, rev)


def test_group_trajectories_add_up_to_the_whole_sample(setup: dict) -> None:
    for c in CATS:
        whole = replay_merges(
            count_words(setup["docs"][c], setup["pre"]).counts, setup["tok"].merge_list
        )
        parts = setup["groups"][c]
        _same(weighted_trajectory(parts, np.ones(len(parts), dtype=np.int64)), whole)


def test_weighted_sum_is_the_trajectory_of_the_resampled_table(setup: dict) -> None:
    c = "python"
    w = np.array([2, 0, 1, 1])
    resampled: Counter[bytes] = Counter()
    for table, k in zip(setup["tables"][c], w, strict=True):
        for word, n in table.counts.items():
            resampled[word] += int(k) * n
    _same(
        weighted_trajectory(setup["groups"][c], w),
        replay_merges(resampled, setup["tok"].merge_list),
    )


def _identical_groups(setup: dict) -> tuple[dict, dict, MixtureSolution]:
    tok = setup["tok"]
    groups = {c: [setup["groups"][c][0]] * 3 for c in CATS}
    nbytes = {c: [setup["tables"][c][0].bytes_] * 3 for c in CATS}
    point = solve_mixture(
        build_problem(
            {c: groups[c][0] for c in CATS},
            tok.merge_list.merge_ids,
            {c: b[0] for c, b in nbytes.items()},
        )
    )
    return groups, nbytes, point


def test_identical_groups_give_a_zero_width_interval_at_the_point_estimate(setup: dict) -> None:
    # every group is the same text: any resample is the sample scaled, which the LP ignores
    groups, nbytes, point = _identical_groups(setup)
    merge_ids = setup["tok"].merge_list.merge_ids
    boot = bootstrap_mixture(groups, nbytes, merge_ids, replicates=3, seed=1)
    np.testing.assert_allclose(boot.byte_share_low, point.byte_share, atol=1e-6)
    np.testing.assert_allclose(boot.byte_share_high, point.byte_share, atol=1e-6)
    assert not boot.covers(point.byte_share + 1e-3).any()


def test_intervals_of_distinct_groups_have_width_and_hold_replicates(setup: dict) -> None:
    tok = setup["tok"]
    nbytes = {c: [t.bytes_ for t in setup["tables"][c]] for c in CATS}
    boot = bootstrap_mixture(
        setup["groups"], nbytes, tok.merge_list.merge_ids, replicates=12, seed=0
    )
    s = boot.replicate_byte_shares
    assert s.shape == (12 - boot.failed, 3)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, atol=1e-9)
    assert (boot.byte_share_low <= boot.byte_share_high).all()
    assert (boot.byte_share_high - boot.byte_share_low).max() > 0
    inside = (s >= boot.byte_share_low - 1e-12) & (s <= boot.byte_share_high + 1e-12)
    assert inside.mean() >= 0.8


def test_training_noise_widening() -> None:
    est = np.array([0.5, 0.01])
    low, high = est - 0.01, est + 0.01
    lo, hi = widen_for_training_noise(est, low, high, 1e6, 1e12)  # paper-sized training text
    np.testing.assert_allclose([lo, hi], [low, high], atol=1e-6)
    lo, hi = widen_for_training_noise(est, low, high, 1e6, 1e6)
    # factor sqrt(1 + 1/0.5) = 1.73 for the big share, sqrt(1 + 100) for the small one
    np.testing.assert_allclose(hi[0] - est[0], 0.01 * np.sqrt(3.0))
    assert lo[1] == 0.0 and hi[1] == pytest.approx(0.01 + 0.01 * np.sqrt(101.0))


def test_merge_blocks_resample_the_steps_the_solver_sees(setup: dict) -> None:
    """With identical groups only the merge draw varies: a single block spanning every merge
    is always drawn once (replicates = the point estimate); blocks of 10 merges move it, and
    each solve gets whole blocks, as many steps as the merge list has."""
    groups, nbytes, point = _identical_groups(setup)
    merge_ids = setup["tok"].merge_list.merge_ids
    n_steps = setup["groups"][CATS[0]][0].last_step
    seen: list[np.ndarray] = []

    def recording(problem: MixtureProblem, step_weight: np.ndarray) -> MixtureSolution:
        seen.append(step_weight)
        return solve_mixture(problem, step_weight=step_weight)

    whole = bootstrap_mixture(
        groups, nbytes, merge_ids, replicates=3, seed=2, merge_block=n_steps, solve=recording
    )
    np.testing.assert_allclose(whole.replicate_byte_shares, [point.byte_share] * 3, atol=1e-6)
    assert all((w == 1).all() for w in seen)

    seen.clear()
    boot = bootstrap_mixture(
        groups, nbytes, merge_ids, replicates=6, seed=2, merge_block=10, solve=recording
    )
    assert len(seen) == 6
    for w in seen:
        assert len(w) == n_steps and w.sum() == n_steps  # 120 merges: 12 whole blocks
        blocks = w.reshape(-1, 10)
        assert (blocks == blocks[:, :1]).all()  # a block is drawn whole
    assert np.ptp(boot.replicate_byte_shares, axis=0).max() > 1e-4
    again = bootstrap_mixture(groups, nbytes, merge_ids, replicates=6, seed=2, merge_block=10)
    np.testing.assert_array_equal(again.replicate_byte_shares, boot.replicate_byte_shares)


def _resampled_bytes(problem: MixtureProblem, **_: Any) -> MixtureSolution:
    """A stand-in for the LP that is a function of each category's own draw alone: its
    resampled pair total as α, so its byte share is its share of the resampled bytes."""
    alpha = problem.pairs_ / problem.pairs_.sum()
    return MixtureSolution(problem.categories, alpha, byte_shares(alpha, problem), 0.0)


def _by_name(
    setup: dict, names: tuple[str, ...], **options: Any
) -> dict[str, tuple[float, float, np.ndarray]]:
    nbytes = {c: [t.bytes_ for t in setup["tables"][c]] for c in names}
    boot = bootstrap_mixture(
        {c: setup["groups"][c] for c in names},
        nbytes,
        setup["tok"].merge_list.merge_ids,
        replicates=8,
        seed=3,
        merge_block=10,
        **options,
    )
    assert boot.categories == names
    return {
        c: (boot.byte_share_low[i], boot.byte_share_high[i], boot.replicate_byte_shares[:, i])
        for i, c in enumerate(names)
    }


@pytest.mark.parametrize("order", list(itertools.permutations(CATS)))
def test_a_category_draws_the_same_whatever_the_order_categories_are_listed_in(
    setup: dict, order: tuple[str, ...]
) -> None:
    """The listing order of a spec or a command line must not change anyone's interval."""
    listed = _by_name(setup, order, solve=_resampled_bytes)
    alphabetical = _by_name(setup, tuple(sorted(CATS)), solve=_resampled_bytes)
    for c in CATS:
        assert np.ptp(listed[c][2]) > 0  # the draws do move the stand-in's shares
        # the same draws: equal but for the order the byte totals are summed in
        np.testing.assert_allclose(listed[c][2], alphabetical[c][2], rtol=1e-12)
        np.testing.assert_allclose(listed[c][:2], alphabetical[c][:2], rtol=1e-12)


def test_lp_intervals_do_not_depend_on_the_listing_order(setup: dict) -> None:
    listed = _by_name(setup, CATS[::-1])
    alphabetical = _by_name(setup, tuple(sorted(CATS)))
    for c in CATS:
        np.testing.assert_allclose(listed[c][2], alphabetical[c][2], atol=1e-6)
        np.testing.assert_allclose(listed[c][:2], alphabetical[c][:2], atol=1e-6)


class _DictMemo:
    def __init__(self) -> None:
        self.kept: dict[int, MixtureSolution | None] = {}

    def options(self, index: int) -> dict[str, Any]:
        return {}

    def recall(self, index: int) -> tuple[bool, MixtureSolution | None]:
        return (index in self.kept), self.kept.get(index)

    def record(self, index: int, solution: MixtureSolution | None) -> None:
        self.kept[index] = solution


def test_bootstrap_solves_only_the_replicates_its_memo_lacks(setup: dict) -> None:
    """What a re-run after a kill does: the replicates kept are taken, the others solved, and
    the draws (made from the seed first) give the same intervals bit for bit."""
    trajs, merge_ids = setup["groups"], setup["tok"].merge_list.merge_ids
    nbytes = {c: [t.bytes_ for t in setup["tables"][c]] for c in CATS}
    solved: list[int] = []

    def counting(problem: MixtureProblem, **kw: Any) -> MixtureSolution:
        solved.append(1)
        return solve_mixture(problem, **kw)

    memo = _DictMemo()
    full = bootstrap_mixture(trajs, nbytes, merge_ids, replicates=6, solve=counting, memo=memo)
    assert len(solved) == 6 and sorted(memo.kept) == list(range(6))
    for k in (1, 4):
        del memo.kept[k]
    solved.clear()
    done: list[tuple[int, bool]] = []
    again = bootstrap_mixture(
        trajs,
        nbytes,
        merge_ids,
        replicates=6,
        solve=counting,
        memo=memo,
        on_done=lambda i, reused: done.append((i, reused)),
    )
    assert len(solved) == 2
    assert done == [(k, k not in (1, 4)) for k in range(6)]  # each once, in order, as it came
    assert again.replicate_byte_shares.tobytes() == full.replicate_byte_shares.tobytes()
    assert again.byte_share_low.tobytes() == full.byte_share_low.tobytes()
