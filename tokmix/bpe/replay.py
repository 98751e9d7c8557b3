"""Merge replay: pair-count trajectories of a word table under a merge list (ARCHITECTURE.md §4).

For a category with word counts ``n(w)``, ``c_t(x, y)`` is the number of adjacent symbol
pairs ``(x, y)`` in the words after merges ``m_1 .. m_{t-1}``, overlaps included, weighted by
``n(w)``. Applying a merge replaces its occurrences left to right, non-overlapping, exactly as
the Hugging Face BPE trainer does. A :class:`PairTrajectory` stores the counts at the first
recorded step plus, per step, only the pairs whose count changed.

Two implementations live here: :func:`replay_merges` (compiled with numba: a pair -> words
index so each step touches only the words that contain the merged pair) and
:func:`replay_merges_reference` (recounts every pair from scratch at every step: slow and
obviously right). Tests hold one against the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numba as nb
import numpy as np
from numba import types
from numba.typed import Dict

from tokmix.bpe.merges import MergeList

_KEY_SHIFT = np.int64(32)
_KEY_MASK = np.int64(0xFFFFFFFF)


@dataclass(frozen=True)
class PairTrajectory:
    """Sparse pair counts of one category over a range of merge steps.

    Rows with ``step == first_step - 1`` hold the absolute counts ``c_{first_step}``; a row at
    step ``t >= first_step`` holds ``c_{t+1}(p) - c_t(p)``. Hence ``c_t`` is the sum of
    ``delta`` over rows with ``step < t``. Rows are sorted by ``(step, left, right)``, with no
    zero deltas, so equal trajectories have equal arrays. ``pairs`` is ``d = sum_p c_1(p)``,
    the LP's normalizer, whatever the recorded range.
    """

    step: np.ndarray  # int32
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    delta: np.ndarray  # int64
    first_step: int
    last_step: int
    pairs: int

    def __add__(self, other: PairTrajectory) -> PairTrajectory:
        """Trajectories of disjoint word shards add up (linearity, ARCHITECTURE.md §4)."""
        if (self.first_step, self.last_step) != (other.first_step, other.last_step):
            raise ValueError("only trajectories over the same steps add up")
        return _canonical(
            np.concatenate([self.step, other.step]),
            np.concatenate([self.left, other.left]),
            np.concatenate([self.right, other.right]),
            np.concatenate([self.delta, other.delta]),
            self.first_step,
            self.last_step,
            self.pairs + other.pairs,
        )

    @classmethod
    def total(cls, parts: Sequence[PairTrajectory]) -> PairTrajectory:
        """The sum of many shard trajectories in one pass (``a + b + ...`` re-sorts per term)."""
        if not parts:
            raise ValueError("no trajectories to add")
        first = parts[0]
        if any((p.first_step, p.last_step) != (first.first_step, first.last_step) for p in parts):
            raise ValueError("only trajectories over the same steps add up")
        return _canonical(
            np.concatenate([p.step for p in parts]),
            np.concatenate([p.left for p in parts]),
            np.concatenate([p.right for p in parts]),
            np.concatenate([p.delta for p in parts]),
            first.first_step,
            first.last_step,
            sum(p.pairs for p in parts),
        )

    def __len__(self) -> int:
        return len(self.step)

    def counts_at(self, t: int) -> Counter[tuple[int, int]]:
        """``c_t`` as a Counter of ``(left, right) -> count`` (for tests and inspection)."""
        if not self.first_step <= t <= self.last_step + 1:
            raise ValueError(f"step {t} is outside {self.first_step}..{self.last_step + 1}")
        mask = self.step < t
        counts: Counter[tuple[int, int]] = Counter()
        for a, b, d in zip(self.left[mask], self.right[mask], self.delta[mask], strict=True):
            counts[(int(a), int(b))] += int(d)
        return +counts


def _canonical(
    step: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    delta: np.ndarray,
    first_step: int,
    last_step: int,
    pairs: int,
) -> PairTrajectory:
    """Sum duplicate ``(step, left, right)`` rows, drop zeros, sort."""
    if len(step):
        order = np.lexsort((right, left, step))
        step, left, right, delta = step[order], left[order], right[order], delta[order]
        new_group = np.ones(len(step), dtype=bool)
        new_group[1:] = (
            (step[1:] != step[:-1]) | (left[1:] != left[:-1]) | (right[1:] != right[:-1])
        )
        starts = np.flatnonzero(new_group)
        delta = np.add.reduceat(delta, starts)
        step, left, right = step[starts], left[starts], right[starts]
        keep = delta != 0
        step, left, right, delta = step[keep], left[keep], right[keep], delta[keep]
    return PairTrajectory(
        step.astype(np.int32),
        left.astype(np.int32),
        right.astype(np.int32),
        delta.astype(np.int64),
        first_step,
        last_step,
        int(pairs),
    )


def encode_words(words: list[bytes], merge_list: MergeList) -> tuple[np.ndarray, np.ndarray]:
    """Base segmentations of ``words`` as one flat int32 array plus int64 offsets."""
    parts = [merge_list.encode_base(w) for w in words]
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return flat.astype(np.int32, copy=False), offsets


def replay_merges(
    words: Mapping[bytes, int] | tuple[list[bytes], np.ndarray],
    merge_list: MergeList,
    *,
    first_step: int = 1,
    last_step: int | None = None,
) -> PairTrajectory:
    """Replay ``merge_list`` over a word table; record steps ``first_step .. last_step``.

    ``words`` is ``{word: count}`` or ``(words, counts)``. Merges before ``first_step`` are
    applied without being recorded (a merge range ``A:B`` is ``first_step=A+1, last_step=B``).
    """
    word_list, counts = _as_arrays(words)
    last = len(merge_list) if last_step is None else last_step
    _check_range(first_step, last, len(merge_list))
    flat, offsets = encode_words(word_list, merge_list)
    merges = np.ascontiguousarray(merge_list.merge_ids[:last])
    step, key, delta, pairs = _replay_kernel(flat, offsets, counts, merges, np.int64(first_step))
    left = (key >> _KEY_SHIFT).astype(np.int32)
    right = (key & _KEY_MASK).astype(np.int32)
    return _canonical(step, left, right, delta, first_step, last, int(pairs))


def _as_arrays(
    words: Mapping[bytes, int] | tuple[list[bytes], np.ndarray],
) -> tuple[list[bytes], np.ndarray]:
    if isinstance(words, tuple):
        word_list, counts = words
        return list(word_list), np.asarray(counts, dtype=np.int64)
    word_list = list(words)
    return word_list, np.fromiter((words[w] for w in word_list), np.int64, len(word_list))


def _check_range(first_step: int, last_step: int, n_merges: int) -> None:
    if not 1 <= first_step <= last_step + 1 or last_step > n_merges:
        raise ValueError(
            f"merge range {first_step - 1}:{last_step} is not within the {n_merges} merges"
        )


@nb.njit(cache=True)
def _grow(arr: np.ndarray, size: int) -> np.ndarray:
    if size < len(arr):
        return arr
    out = np.empty(max(2 * len(arr), size + 1), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


@nb.njit(cache=True)
def _get(d: Dict, key: np.int64, default: int) -> np.int64:  # typed Dict.get is Optional
    if key in d:
        return d[key]
    return np.int64(default)


@nb.njit(cache=True)
def _emit(out_step, out_key, out_delta, n_out, step, key, value):
    """Append one trajectory row, growing the output arrays as needed."""
    out_step = _grow(out_step, n_out)
    out_key = _grow(out_key, n_out)
    out_delta = _grow(out_delta, n_out)
    out_step[n_out] = step
    out_key[n_out] = key
    out_delta[n_out] = value
    return out_step, out_key, out_delta, n_out + 1


@nb.njit(cache=True)
def _pair_key(a: int, b: int) -> np.int64:
    return (np.int64(a) << 32) | np.int64(b)


@nb.njit(cache=True)
def _replay_kernel(
    sym: np.ndarray,
    off: np.ndarray,
    counts: np.ndarray,
    merges: np.ndarray,
    first_step: np.int64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.int64]:
    n_words = len(counts)
    length = np.empty(n_words, dtype=np.int64)
    for w in range(n_words):
        length[w] = off[w + 1] - off[w]

    # pair -> head of a linked list of (word) records; stale or repeated records are
    # skipped at use (a word is visited once per step, and only if it holds the pair)
    head = Dict.empty(key_type=types.int64, value_type=types.int64)
    rec_word = np.empty(max(16, len(sym)), dtype=np.int64)
    rec_next = np.empty(max(16, len(sym)), dtype=np.int64)
    n_rec = 0

    out_step = np.empty(1024, dtype=np.int32)
    out_key = np.empty(1024, dtype=np.int64)
    out_delta = np.empty(1024, dtype=np.int64)
    n_out = 0

    total_pairs = np.int64(0)
    for w in range(n_words):
        s = off[w]
        for j in range(length[w] - 1):
            key = _pair_key(sym[s + j], sym[s + j + 1])
            total_pairs += counts[w]
            h = _get(head, key, -1)
            if h >= 0 and rec_word[h] == w:
                continue
            rec_word = _grow(rec_word, n_rec)
            rec_next = _grow(rec_next, n_rec)
            rec_word[n_rec] = w
            rec_next[n_rec] = h
            head[key] = n_rec
            n_rec += 1

    stamp = np.full(n_words, -1, dtype=np.int64)
    n_merges = merges.shape[0]
    for t in range(n_merges + 1):
        if t + 1 == first_step:
            # snapshot of c_{first_step}, stored at step first_step - 1
            snap = Dict.empty(key_type=types.int64, value_type=types.int64)
            for w in range(n_words):
                s = off[w]
                for j in range(length[w] - 1):
                    key = _pair_key(sym[s + j], sym[s + j + 1])
                    snap[key] = _get(snap, key, 0) + counts[w]
            for key, value in snap.items():
                out_step, out_key, out_delta, n_out = _emit(
                    out_step, out_key, out_delta, n_out, t, key, value
                )
        if t == n_merges:
            break
        a = merges[t, 0]
        b = merges[t, 1]
        c = merges[t, 2]
        mkey = _pair_key(a, b)
        r = _get(head, mkey, -1)
        if r < 0:
            continue
        delta = Dict.empty(key_type=types.int64, value_type=types.int64)
        while r >= 0:
            w = rec_word[r]
            r = rec_next[r]
            if stamp[w] == t:
                continue
            stamp[w] = t
            s = off[w]
            n_sym = length[w]
            found = False
            for j in range(n_sym - 1):
                if sym[s + j] == a and sym[s + j + 1] == b:
                    found = True
                    break
            if not found:
                continue
            n = counts[w]
            for j in range(n_sym - 1):
                key = _pair_key(sym[s + j], sym[s + j + 1])
                delta[key] = _get(delta, key, 0) - n
            i = 0
            k = 0
            while i < n_sym:
                if i < n_sym - 1 and sym[s + i] == a and sym[s + i + 1] == b:
                    sym[s + k] = c
                    i += 2
                else:
                    sym[s + k] = sym[s + i]
                    i += 1
                k += 1
            length[w] = k
            for j in range(k - 1):
                x = sym[s + j]
                y = sym[s + j + 1]
                key = _pair_key(x, y)
                delta[key] = _get(delta, key, 0) + n
                if x == c or y == c:
                    rec_word = _grow(rec_word, n_rec)
                    rec_next = _grow(rec_next, n_rec)
                    rec_word[n_rec] = w
                    rec_next[n_rec] = _get(head, key, -1)
                    head[key] = n_rec
                    n_rec += 1
        head.pop(mkey)
        if t + 1 >= first_step:
            for key, value in delta.items():
                if value != 0:
                    out_step, out_key, out_delta, n_out = _emit(
                        out_step, out_key, out_delta, n_out, t + 1, key, value
                    )
    return out_step[:n_out], out_key[:n_out], out_delta[:n_out], total_pairs


def replay_merges_reference(
    words: Mapping[bytes, int],
    merge_list: MergeList,
    *,
    first_step: int = 1,
    last_step: int | None = None,
) -> PairTrajectory:
    """The definition, executed: re-segment every word and recount every pair at each step."""
    last = len(merge_list) if last_step is None else last_step
    _check_range(first_step, last, len(merge_list))
    segs = {w: [int(x) for x in merge_list.encode_base(w)] for w in words}
    merge_ids = merge_list.merge_ids

    def pair_counts() -> Counter[tuple[int, int]]:
        counts: Counter[tuple[int, int]] = Counter()
        for w, seg in segs.items():
            for x, y in pairwise(seg):
                counts[(x, y)] += words[w]
        return counts

    def apply(t: int) -> None:
        a, b, c = (int(v) for v in merge_ids[t - 1])
        for w, seg in segs.items():
            out, i = [], 0
            while i < len(seg):
                if i + 1 < len(seg) and seg[i] == a and seg[i + 1] == b:
                    out.append(c)
                    i += 2
                else:
                    out.append(seg[i])
                    i += 1
            segs[w] = out

    pairs = sum(pair_counts().values())
    for t in range(1, first_step):
        apply(t)
    rows: list[tuple[int, int, int, int]] = []
    prev = pair_counts()
    rows.extend((first_step - 1, a, b, n) for (a, b), n in prev.items())
    for t in range(first_step, last + 1):
        apply(t)
        cur = pair_counts()
        for p in prev.keys() | cur.keys():
            if cur[p] != prev[p]:
                rows.append((t, p[0], p[1], cur[p] - prev[p]))
        prev = cur
    arr = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return _canonical(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], first_step, last, pairs)
