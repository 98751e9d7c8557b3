"""Constraint generation: which (step, pair) constraints does a candidate mixture violate?

For a candidate ``(alpha, v)`` the sweep replays the alpha-weighted pair counts step by step
(adding each step's sparse deltas) and, at step ``t``, lists the pairs ``p != m_t`` with
``g_t(p) - v_p > g_t(m_t) + v_t``, most violated first, where ``g_t = Σ_i α_i f_{i,t}``.
A lazily invalidated max-heap keyed by ``g(p) - v_p`` finds them without scanning every pair
at every step: each step costs ``O((changed pairs + found) log heap)``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from tokmix.solvers.problem import MixtureProblem


@nb.njit(cache=True)
def _heap_push(hv, hp, hver, size, value, pair, version):
    if size >= len(hv):
        new_cap = 2 * len(hv) + 16
        hv2 = np.empty(new_cap, np.float64)
        hp2 = np.empty(new_cap, np.int64)
        hver2 = np.empty(new_cap, np.int64)
        hv2[:size] = hv[:size]
        hp2[:size] = hp[:size]
        hver2[:size] = hver[:size]
        hv, hp, hver = hv2, hp2, hver2
    i = size
    hv[i] = value
    hp[i] = pair
    hver[i] = version
    while i > 0:
        parent = (i - 1) // 2
        if hv[parent] >= hv[i]:
            break
        hv[parent], hv[i] = hv[i], hv[parent]
        hp[parent], hp[i] = hp[i], hp[parent]
        hver[parent], hver[i] = hver[i], hver[parent]
        i = parent
    return hv, hp, hver, size + 1


@nb.njit(cache=True)
def _heap_pop(hv, hp, hver, size):
    value, pair, version = hv[0], hp[0], hver[0]
    size -= 1
    hv[0], hp[0], hver[0] = hv[size], hp[size], hver[size]
    i = 0
    while True:
        left = 2 * i + 1
        right = left + 1
        big = i
        if left < size and hv[left] > hv[big]:
            big = left
        if right < size and hv[right] > hv[big]:
            big = right
        if big == i:
            break
        hv[big], hv[i] = hv[i], hv[big]
        hp[big], hp[i] = hp[i], hp[big]
        hver[big], hver[i] = hver[i], hver[big]
        i = big
    return value, pair, version, size


@nb.njit(cache=True)
def _held_buffers(limit):
    """Room for the heap entries one step pops (at most its limit, plus the merge's own)."""
    most = 0
    for k in range(len(limit)):
        most = max(most, limit[k])
    return (
        np.empty(most + 1, np.int64),
        np.empty(most + 1, np.float64),
        np.empty(most + 1, np.int64),
    )


@nb.njit(cache=True)
def _pop_violated(heap, version, held, out, k, m, threshold, limit, tol):
    """Step ``k``'s violated pairs: pop heap entries above ``threshold`` (skipping stale ones
    and the merge ``m`` itself) until ``limit`` are found, append them to ``out``, then push
    back every live entry popped, so the heap serves the next step. Both sweeps share it."""
    hv, hp, hver, size = heap
    held_p, held_v, held_ver = held
    out_step, out_pair, out_excess, n_out = out
    n_held = 0
    n_found = 0
    while size > 0 and hv[0] > threshold and n_found < limit:
        value, p, ver, size = _heap_pop(hv, hp, hver, size)
        if ver != version[p]:
            continue  # stale: the pair's count changed since this entry
        held_p[n_held] = p
        held_v[n_held] = value
        held_ver[n_held] = ver
        n_held += 1
        if p == m:
            continue
        n_found += 1
        if n_out >= len(out_step):
            out_step = np.concatenate((out_step, np.empty(len(out_step), np.int64)))
            out_pair = np.concatenate((out_pair, np.empty(len(out_pair), np.int64)))
            out_excess = np.concatenate((out_excess, np.empty(len(out_excess), np.float64)))
        out_step[n_out] = k
        out_pair[n_out] = p
        out_excess[n_out] = value - threshold + tol
        n_out += 1
    for j in range(n_held):
        hv, hp, hver, size = _heap_push(hv, hp, hver, size, held_v[j], held_p[j], held_ver[j])
    return (hv, hp, hver, size), (out_step, out_pair, out_excess, n_out)


@nb.njit(cache=True)
def _sweep(
    rows_pair,
    rows_cat,
    rows_delta,
    step_start,
    merge_pair,
    n_pairs,
    n_cat,
    alpha,
    scale,
    v_step,
    v_pair,
    limit,
    tol,
):
    weight = alpha * scale
    counts = np.zeros((n_pairs, n_cat), dtype=np.int64)
    g = np.zeros(n_pairs, dtype=np.float64)
    version = np.zeros(n_pairs, dtype=np.int64)
    heap = (np.empty(1024, np.float64), np.empty(1024, np.int64), np.empty(1024, np.int64), 0)
    touched = np.zeros(n_pairs, dtype=np.int64)
    touched_mark = np.full(n_pairs, -1, dtype=np.int64)
    out = (np.empty(1024, np.int64), np.empty(1024, np.int64), np.empty(1024, np.float64), 0)
    out_coef = np.empty((1024, n_cat), np.float64)
    held = _held_buffers(limit)

    n_steps = len(merge_pair)
    missing = np.zeros(n_steps, dtype=np.bool_)
    for k in range(n_steps):
        # rows of local step k hold c_{t} - c_{t-1} for t = first_step + k (k = 0: snapshot)
        n_touched = 0
        for r in range(step_start[k], step_start[k + 1]):
            p = rows_pair[r]
            counts[p, rows_cat[r]] += rows_delta[r]
            if touched_mark[p] != k:
                touched_mark[p] = k
                touched[n_touched] = p
                n_touched += 1
        for j in range(n_touched):
            p = touched[j]
            s = 0.0
            for i in range(n_cat):
                s += counts[p, i] * weight[i]
            g[p] = s
            version[p] += 1
            if s > 0.0:
                hv, hp, hver, size = heap
                heap = _heap_push(hv, hp, hver, size, s - v_pair[p], p, version[p])
        m = merge_pair[k]
        if m < 0:
            missing[k] = True
            continue
        present = False
        for i in range(n_cat):
            if counts[m, i] != 0:
                present = True
        if not present:
            missing[k] = True
            continue
        before = out[3]
        threshold = g[m] + v_step[k] + tol
        heap, out = _pop_violated(heap, version, held, out, k, m, threshold, limit[k], tol)
        if len(out_coef) < len(out[0]):
            grown = np.empty((len(out[0]), n_cat), np.float64)
            grown[: len(out_coef)] = out_coef
            out_coef = grown
        for e in range(before, out[3]):  # the rows' coefficients on alpha, from the counts at hand
            for i in range(n_cat):
                out_coef[e, i] = (counts[m, i] - counts[out[1][e], i]) * scale[i]
        # the merge's own count drops to 0 next step; its stale entry is skipped by version
    out_step, out_pair, out_excess, n_out = out
    return out_step[:n_out], out_pair[:n_out], out_excess[:n_out], out_coef[:n_out], missing


def find_violations(
    problem: MixtureProblem,
    alpha: np.ndarray,
    v_step: np.ndarray,
    v_pair: np.ndarray,
    scale: np.ndarray,
    *,
    per_step: int | np.ndarray,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Violated constraints of ``(alpha, v)``: ``(local_step, pair, excess, coefficients)``,
    the coefficients being each row's ``f_{i,t}(m_t) - f_{i,t}(p)`` on alpha, and a per-step
    flag of merges absent from every category at their step (they get no constraints).

    ``scale[i]`` turns category ``i``'s counts into the LP's normalized frequencies.
    At most ``per_step`` per step (a number, or one per step), the most violated first.
    """
    return _sweep(
        problem.rows_pair,
        problem.rows_cat,
        problem.rows_delta,
        problem.step_start,
        problem.merge_pair,
        problem.n_pairs,
        problem.n_categories,
        np.ascontiguousarray(alpha, dtype=np.float64),
        np.ascontiguousarray(scale, dtype=np.float64),
        np.ascontiguousarray(v_step, dtype=np.float64),
        np.ascontiguousarray(v_pair, dtype=np.float64),
        np.broadcast_to(np.asarray(per_step, dtype=np.int64), (problem.n_steps,)).copy(),
        float(tol),
    )
