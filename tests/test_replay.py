"""The replay engine against the definition, executed (brute-force recount at every step)."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokmix.bpe.merges import BYTE_ALPHABET, MergeList
from tokmix.bpe.replay import PairTrajectory, replay_merges, replay_merges_reference


def _greedy_merges(words: Counter[bytes], n: int, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """Merges a trainer could pick: a most frequent pair, ties broken at random."""
    segs = {w: [bytes([c]) for c in w] for w in words}
    merges: list[tuple[bytes, bytes]] = []
    for _ in range(n):
        counts: Counter[tuple[bytes, bytes]] = Counter()
        for w, s in segs.items():
            for x, y in pairwise(s):
                counts[(x, y)] += words[w]
        if not counts:
            break
        top = max(counts.values())
        pick = rng.choice(sorted(p for p, c in counts.items() if c == top))
        merges.append(pick)
        for w, s in segs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == pick:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out
    return merges


def _random_merges(rng: random.Random, alphabet: bytes, n: int) -> list[tuple[bytes, bytes]]:
    """Arbitrary valid merges (parts exist, products new), frequent or not."""
    symbols = [bytes([c]) for c in alphabet]
    merges: list[tuple[bytes, bytes]] = []
    seen = set(symbols)
    while len(merges) < n:
        a, b = rng.choice(symbols), rng.choice(symbols)
        if a + b in seen:
            continue
        merges.append((a, b))
        symbols.append(a + b)
        seen.add(a + b)
    return merges


def _same(a: PairTrajectory, b: PairTrajectory) -> None:
    assert (a.first_step, a.last_step, a.pairs) == (b.first_step, b.last_step, b.pairs)
    for name in ("step", "left", "right", "delta"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


words_strategy = st.dictionaries(
    st.binary(min_size=1, max_size=12).map(lambda b: bytes(97 + x % 3 for x in b)),
    st.integers(1, 50),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(words=words_strategy, seed=st.integers(0, 2**32 - 1), greedy=st.booleans())
def test_replay_equals_brute_force_recount(
    words: dict[bytes, int], seed: int, greedy: bool
) -> None:
    rng = random.Random(seed)
    merges = _greedy_merges(Counter(words), 15, rng) if greedy else _random_merges(rng, b"abc", 15)
    ml = MergeList(BYTE_ALPHABET, tuple(merges))
    _same(replay_merges(words, ml), replay_merges_reference(words, ml))


@settings(max_examples=60, deadline=None)
@given(words=words_strategy, seed=st.integers(0, 2**32 - 1), data=st.data())
def test_merge_range_equals_brute_force(words: dict[bytes, int], seed: int, data) -> None:  # type: ignore[no-untyped-def]
    ml = MergeList(BYTE_ALPHABET, tuple(_random_merges(random.Random(seed), b"abc", 12)))
    first = data.draw(st.integers(1, 13))
    last = data.draw(st.integers(first - 1, 12))
    _same(
        replay_merges(words, ml, first_step=first, last_step=last),
        replay_merges_reference(words, ml, first_step=first, last_step=last),
    )


def test_overlapping_pairs_count_and_merge_left_to_right() -> None:
    ml = MergeList(BYTE_ALPHABET, ((b"a", b"a"), (b"aa", b"a")))
    traj = replay_merges({b"aaa": 2, b"aaaa": 1}, ml)
    a, aa = ord("a"), 256
    assert traj.counts_at(1) == Counter({(a, a): 2 * 2 + 3})  # "a a a" holds (a, a) twice
    # "aaa" -> "aa a"; "aaaa" -> "aa aa"
    assert traj.counts_at(2) == Counter({(aa, a): 2, (aa, aa): 1})
    assert traj.counts_at(3) == Counter({(aa, aa): 1})  # "aa a" -> "aaa"
    assert traj.pairs == 7


def test_absent_merge_changes_nothing_and_merged_pair_drops_to_zero() -> None:
    ml = MergeList(BYTE_ALPHABET, ((b"x", b"y"), (b"a", b"b")))
    traj = replay_merges({b"abab": 3, b"ba": 1}, ml)
    assert not (traj.step == 1).any()  # (x, y) occurs nowhere
    assert traj.counts_at(3)[(ord("a"), ord("b"))] == 0
    assert traj.counts_at(3) == Counter({(257, 257): 3, (ord("b"), ord("a")): 1})


def test_shard_trajectories_add_up() -> None:
    rng = random.Random(7)
    words = Counter(
        {
            bytes(rng.choice(b"abcd") for _ in range(rng.randint(1, 10))): rng.randint(1, 9)
            for _ in range(400)
        }
    )
    ml = MergeList(BYTE_ALPHABET, tuple(_greedy_merges(words, 30, rng)))
    items = list(words.items())
    shards = [dict(items[i::3]) for i in range(3)]
    total = replay_merges(dict(items), ml)
    summed = (
        replay_merges(shards[0], ml) + replay_merges(shards[1], ml) + replay_merges(shards[2], ml)
    )
    _same(total, summed)


def test_char_alphabet_maps_unknown_characters_to_unk() -> None:
    base = tuple(c.encode() for c in "▁ab")
    ml = MergeList(base, ((b"a", b"b"), ("▁".encode(), b"ab")), alphabet="chars")
    word = "▁abé".encode()
    assert ml.encode_base(word).tolist() == [0, 1, 2, ml.unk_id]
    traj = replay_merges({word: 2}, ml)
    _same(traj, replay_merges_reference({word: 2}, ml))
    assert traj.counts_at(3) == Counter({(4, ml.unk_id): 2})


def test_bad_range_is_rejected() -> None:
    ml = MergeList(BYTE_ALPHABET, ((b"a", b"b"),))
    with pytest.raises(ValueError, match="merge range"):
        replay_merges({b"ab": 1}, ml, first_step=1, last_step=2)
