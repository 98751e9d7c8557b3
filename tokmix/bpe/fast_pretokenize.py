"""The compiled pre-tokenizer and word counter: the known families as state machines over UTF-8.

Counting words touches every byte of a corpus, and the ``regex`` path (one ``findall`` per
document, a Python string per word) runs at about 13 MB/s per core. Here the pre-tokenizers of
the known families are hand-written matchers over the UTF-8 bytes of a document, compiled with
numba, and the words they find are counted in the same pass in an open-addressing hash table
keyed by the word's bytes (64-bit FNV-1a, then a byte-for-byte comparison, so a hash collision
cannot merge two words). Python strings exist only once per *distinct* word, when the table is
handed to a :class:`~tokmix.bpe.words.WordTable`, and not at all when it is handed over as
arrays (:meth:`CompiledWordCounter.arrays`, what the sharded count's map task reads).

Exactness: each matcher is the regex of :mod:`tokmix.bpe.pretokenizers`, alternative by
alternative in the order ``regex`` tries them, with the backtracking worked out by hand (notes
at each matcher). Character classes come from ``regex`` itself (:mod:`unicode_classes`), so
the Unicode version is ``regex``'s. Normalizers, lone surrogates and SentencePiece's space
replacement run in Python before the kernel with the same functions the ``regex`` path uses.
``tests/test_fast_pretokenize.py`` checks the words, in order, against the ``regex`` path.

What compiles (:func:`compile_plan`): one split step equal to GPT-2's, cl100k's (tiktoken's
form), Llama 3's (the Hugging Face form of cl100k; also with single digits, as Qwen2 files
have it) or o200k's pattern, with ``removed`` +
``invert`` or ``isolated`` (the same words, as these patterns match every character), GPT-2's
``ByteLevel``, either of them after a ``Digits`` step, and ``Metaspace`` (the training and the
encoding split) alone or followed by ``Digits``, under any normalizer. Anything else keeps the
``regex`` path; :func:`word_counter` logs that once per pre-tokenizer.

The engine is chosen in one place, :func:`word_counter`: ``"auto"`` (compiled when it can,
the default), ``"compiled"`` (raise if it cannot) or ``"regex"`` (the reference). Users pick it
in the run spec (``count: {engine: ...}``) or with ``--count-engine``; it reaches the counter
as an argument of the count tasks (the core reads no environment).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Literal, Protocol

import numba
import numpy as np

from tokmix.bpe import unicode_classes as uc
from tokmix.bpe.pretokenizers import (
    CL100K_PATTERN,
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    O200K_PATTERN,
    ByteLevelSplit,
    DigitsSplit,
    MetaspaceSplit,
    Pretokenizer,
    RegexSplit,
    SentencePieceRunsSplit,
    decode_utf8,
)
from tokmix.bpe.word_arrays import WordArrays

log = logging.getLogger(__name__)

Engine = Literal["auto", "compiled", "regex"]
ENGINES: tuple[Engine, ...] = ("auto", "compiled", "regex")
"""The engines, as ``tokmix.schemas.run_spec.CountOptions`` names them (a test keeps the two
equal: the schema layer may not import the core)."""

# Matcher kinds.
GPT2, CL100K, LLAMA3, O200K, METASPACE, METASPACE_RUNS, LLAMA3_DIGIT = range(7)
# Digits handling before the matcher: none, each digit a word, each run of digits a word.
NO_DIGITS, DIGIT_EACH, DIGIT_RUNS = range(3)

QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")
"""Llama 3's pattern with single digits (``\\p{N}``), as Qwen2-style ``tokenizer.json`` files
carry it."""

_PATTERN_KINDS = {GPT2_PATTERN: GPT2, CL100K_PATTERN: CL100K, LLAMA3_PATTERN: LLAMA3}
_PATTERN_KINDS[O200K_PATTERN] = O200K
_PATTERN_KINDS[QWEN2_PATTERN] = LLAMA3_DIGIT

_L = uc.LETTER
_N = uc.NUMBER
_S = uc.SPACE
_UP = uc.UPPERISH
_LO = uc.LOWERISH
_SLN = _S | _L | _N
_F_S, _F_D, _F_M, _F_T = uc.FOLD["s"], uc.FOLD["d"], uc.FOLD["m"], uc.FOLD["t"]
_F_L, _F_V, _F_E, _F_R = uc.FOLD["l"], uc.FOLD["v"], uc.FOLD["e"], uc.FOLD["r"]
_CR, _LF, _SPACE, _APOS, _SLASH = 13, 10, 32, 39, 47
_META0, _META1, _META2 = 0xE2, 0x96, 0x81  # U+2581 in UTF-8

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)
_inline = numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
"""Small helpers are inlined by numba: a call per character costs more than the work."""


# ------------------------------------------------------------------ UTF-8 and classes


@_inline
def _decode(t: np.ndarray, i: int) -> tuple[np.int64, int]:
    """The code point at byte ``i`` of valid UTF-8 and its length in bytes."""
    b0 = np.int64(t[i])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xE0:
        return ((b0 & 0x1F) << 6) | (np.int64(t[i + 1]) & 0x3F), 2
    if b0 < 0xF0:
        return ((b0 & 0x0F) << 12) | ((np.int64(t[i + 1]) & 0x3F) << 6) | (
            np.int64(t[i + 2]) & 0x3F
        ), 3
    return (
        ((b0 & 0x07) << 18)
        | ((np.int64(t[i + 1]) & 0x3F) << 12)
        | ((np.int64(t[i + 2]) & 0x3F) << 6)
        | (np.int64(t[i + 3]) & 0x3F)
    ), 4


@_inline
def _run(t: np.ndarray, i: int, n: int, cls: np.ndarray, mask: int) -> int:
    """End of the run of characters from ``i`` whose class has a bit of ``mask``."""
    while i < n:
        c, k = _decode(t, i)
        if not cls[c] & mask:
            break
        i += k
    return i


@_inline
def _run_other(t: np.ndarray, i: int, n: int, cls: np.ndarray) -> int:
    """End of the run of ``[^\\s\\p{L}\\p{N}]`` from ``i``."""
    while i < n:
        c, k = _decode(t, i)
        if cls[c] & _SLN:
            break
        i += k
    return i


@_inline
def _run_bytes(t: np.ndarray, i: int, n: int, a: int, b: int, c: int) -> int:
    """End of the run of the ASCII bytes ``a``, ``b``, ``c`` from ``i``."""
    while i < n and (t[i] == a or t[i] == b or t[i] == c):
        i += 1
    return i


@_inline
def _is_class(t: np.ndarray, i: int, n: int, cls: np.ndarray, mask: int) -> bool:
    if i >= n:
        return False
    c, _ = _decode(t, i)
    return bool(cls[c] & mask)


@_inline
def _is_other(t: np.ndarray, i: int, n: int, cls: np.ndarray) -> bool:
    if i >= n:
        return False
    c, _ = _decode(t, i)
    return not cls[c] & _SLN


@_inline
def _prev_start(t: np.ndarray, e: int) -> int:
    """Start of the character that ends at byte ``e``."""
    e -= 1
    while (t[e] & 0xC0) == 0x80:
        e -= 1
    return e


@_jit
def _numbers_1_3(t: np.ndarray, p: int, n: int, cls: np.ndarray, most: int = 3) -> int:
    """``\\p{N}{1,3}`` (or ``{1,most}``) at ``p`` (the caller checked the first)."""
    e = p
    for _ in range(most):
        if not _is_class(t, e, n, cls, _N):
            break
        _, k = _decode(t, e)
        e += k
    return e


@_jit
def _contraction(t: np.ndarray, p: int, n: int, cls: np.ndarray) -> int:
    """``(?i:'s|'t|'re|'ve|'m|'ll|'d)`` at ``p``: its end, or -1. (``regex``'s simple case
    folding compares one character at a time; the fold bits say which letters match.)"""
    if p >= n or t[p] != _APOS or p + 1 >= n:
        return -1
    c2, k2 = _decode(t, p + 1)
    f2 = cls[c2]
    if f2 & (_F_S | _F_T | _F_M | _F_D):
        return p + 1 + k2
    q = p + 1 + k2
    if q >= n:
        return -1
    c3, k3 = _decode(t, q)
    f3 = cls[c3]
    if (f2 & _F_R and f3 & _F_E) or (f2 & _F_V and f3 & _F_E) or (f2 & _F_L and f3 & _F_L):
        return q + k3
    return -1


@_inline
def _last_newline(t: np.ndarray, p: int, e: int) -> int:
    """Index of the last ``\\r`` or ``\\n`` in ``t[p:e]``, or -1."""
    q = e - 1
    while q >= p:
        if t[q] == _LF or t[q] == _CR:
            return q
        q -= 1
    return -1


# ------------------------------------------------------------------ matchers


@_jit
def _match_gpt2(t: np.ndarray, p: int, n: int, cls: np.ndarray) -> int:
    """``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``.

    Contractions are case-sensitive. The optional space is taken when the class after it
    follows. ``\\s+(?!\\S)`` backtracks one character off a run that a non-space follows (so a
    run of one character falls to ``\\s+``)."""
    c, _ = _decode(t, p)
    if c == _APOS and p + 1 < n:
        b = t[p + 1]
        if b == 115 or b == 116 or b == 109 or b == 100:  # s t m d
            return p + 2
        if p + 2 < n:
            b2 = t[p + 2]
            if (b == 114 and b2 == 101) or (b == 118 and b2 == 101) or (b == 108 and b2 == 108):
                return p + 3  # re ve ll
    f = cls[c]
    if c == _SPACE and p + 1 < n:
        c2, _ = _decode(t, p + 1)
        f2 = cls[c2]
        if f2 & _L:
            return _run(t, p + 1, n, cls, _L)
        if f2 & _N:
            return _run(t, p + 1, n, cls, _N)
        if not f2 & _SLN:
            return _run_other(t, p + 1, n, cls)
    if f & _L:
        return _run(t, p, n, cls, _L)
    if f & _N:
        return _run(t, p, n, cls, _N)
    if not f & _S:
        return _run_other(t, p, n, cls)
    e = _run(t, p, n, cls, _S)
    if e == n:
        return e
    q = _prev_start(t, e)
    return q if q > p else e


@_jit
def _letters_with_prefix(
    t: np.ndarray, p: int, n: int, c: np.int64, k: int, cls: np.ndarray
) -> int:
    """``[^\\r\\n\\p{L}\\p{N}]?\\p{L}+`` at ``p`` (possessive or not, the same here: a
    character taken by the prefix cannot be a letter), or -1."""
    f = cls[c]
    if f & _L:
        return _run(t, p, n, cls, _L)
    if c != _CR and c != _LF and not f & _N and _is_class(t, p + k, n, cls, _L):
        return _run(t, p + k, n, cls, _L)
    return -1


@_jit
def _punct_newlines(
    t: np.ndarray, p: int, n: int, c: np.int64, cls: np.ndarray, slash: bool
) -> int:
    """`` ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*`` (o200k: ``[\\r\\n/]*``) at ``p``, or -1."""
    if c == _SPACE and _is_other(t, p + 1, n, cls):
        e = _run_other(t, p + 1, n, cls)
    elif not cls[c] & _SLN:
        e = _run_other(t, p, n, cls)
    else:
        return -1
    return _run_bytes(t, e, n, _CR, _LF, _SLASH if slash else _LF)


@_jit
def _match_cl100k(
    t: np.ndarray, p: int, n: int, cls: np.ndarray, tiktoken: bool, digits: int = 3
) -> int:
    """cl100k in tiktoken's form (``tiktoken``) or the Hugging Face form (Llama 3).

    After the contractions, letters, 1-3 digits and punctuation, whitespace from ``p`` runs to
    ``e``. tiktoken: ``\\s++$`` takes the run if it ends the text; ``\\s*[\\r\\n]`` ends after
    the run's last newline; ``\\s+(?!\\S)`` one character short of ``e``; ``\\s`` one
    character. HF: ``\\s*[\\r\\n]+`` ends after the last newline too (greedy ``\\s*`` gives
    back up to it); ``\\s+(?!\\S)`` takes a run at the end, or one character short of ``e``;
    ``\\s+`` the run."""
    e = _contraction(t, p, n, cls)
    if e >= 0:
        return e
    c, k = _decode(t, p)
    e = _letters_with_prefix(t, p, n, c, k, cls)
    if e >= 0:
        return e
    f = cls[c]
    if f & _N:
        return _numbers_1_3(t, p, n, cls, digits)
    e = _punct_newlines(t, p, n, c, cls, False)
    if e >= 0:
        return e
    e = _run(t, p, n, cls, _S)
    if tiktoken and e == n:
        return e
    q = _last_newline(t, p, e)
    if q >= 0:
        return q + 1
    if e == n:
        return e
    q = _prev_start(t, e)
    if q > p:
        return q
    return p + k if tiktoken else e


@_jit
def _o200k_body(t: np.ndarray, s: int, n: int, cls: np.ndarray) -> int:
    """``[UP]*[LO]+`` at ``s``, or -1. ``regex`` tries ``[UP]*`` longest first: the whole
    run of UP characters if a LO character follows it (then the LO run), else up to the last
    UP character that is also LO (Lm, Lo, M), which ends the match (the characters after it
    are not LO)."""
    u = s
    last_lo = -1
    while u < n:
        c, k = _decode(t, u)
        f = cls[c]
        if not f & _UP:
            break
        if f & _LO:
            last_lo = u + k
        u += k
    if _is_class(t, u, n, cls, _LO):
        return _run(t, u, n, cls, _LO)
    return last_lo


@_jit
def _match_o200k(t: np.ndarray, p: int, n: int, cls: np.ndarray) -> int:
    """o200k: each of the two word alternatives with its optional prefix first, then without
    (a combining mark is both a prefix and a UP/LO character), then the contraction suffix."""
    c, k = _decode(t, p)
    f = cls[c]
    prefix = c != _CR and c != _LF and not f & (_L | _N)
    e = -1
    if prefix:
        e = _o200k_body(t, p + k, n, cls)
    if e < 0:
        e = _o200k_body(t, p, n, cls)
    if e < 0:
        if prefix and _is_class(t, p + k, n, cls, _UP):
            e = _run(t, _run(t, p + k, n, cls, _UP), n, cls, _LO)
        elif f & _UP:
            e = _run(t, _run(t, p, n, cls, _UP), n, cls, _LO)
    if e >= 0:
        s = _contraction(t, e, n, cls)
        return s if s >= 0 else e
    if f & _N:
        return _numbers_1_3(t, p, n, cls)
    e = _punct_newlines(t, p, n, c, cls, True)
    if e >= 0:
        return e
    e = _run(t, p, n, cls, _S)
    q = _last_newline(t, p, e)
    if q >= 0:
        return q + 1
    if e == n:
        return e
    q = _prev_start(t, e)
    return q if q > p else e


@_inline
def _meta_size(t: np.ndarray, i: int, n: int) -> int:
    """Bytes of the ``▁`` at ``i`` (0 if none): a space, which stands for ``▁`` in the
    kernel's input (:func:`_prepared`), or U+2581 itself (3 bytes), which the text may hold."""
    if i >= n:
        return 0
    b = t[i]
    if b == _SPACE:
        return 1
    if b == _META0 and i + 2 < n and t[i + 1] == _META1 and t[i + 2] == _META2:
        return 3
    return 0


@_jit
def _match_metaspace(t: np.ndarray, p: int, n: int, runs: bool) -> int:
    """``▁[^▁]*|[^▁]+`` (training: a word before every ``▁``) or ``▁+[^▁]*|[^▁]+`` (encoding:
    a run of ``▁`` and the text after it), where a ``▁`` is a space or U+2581."""
    i = p
    k = _meta_size(t, i, n)
    if k:
        i += k
        while runs:
            k = _meta_size(t, i, n)
            if not k:
                break
            i += k
    while i < n:
        b = t[i]
        if b == _SPACE or (b == _META0 and _meta_size(t, i, n)):
            break
        i += 1
    return i


@_jit
def _match(kind: int, t: np.ndarray, p: int, n: int, cls: np.ndarray) -> int:
    if kind == GPT2:
        return _match_gpt2(t, p, n, cls)
    if kind == CL100K:
        return _match_cl100k(t, p, n, cls, True)
    if kind == LLAMA3:
        return _match_cl100k(t, p, n, cls, False)
    if kind == LLAMA3_DIGIT:
        return _match_cl100k(t, p, n, cls, False, 1)
    if kind == O200K:
        return _match_o200k(t, p, n, cls)
    return _match_metaspace(t, p, n, kind == METASPACE_RUNS)


@_inline
def _piece_end(digits: int, t: np.ndarray, p: int, n: int, cls: np.ndarray) -> int:
    """End of the piece a ``Digits`` step makes at ``p``: a digit (run), or the text up to the
    next digit. Matchers see each piece as their whole input."""
    if digits == NO_DIGITS:
        return n
    c, k = _decode(t, p)
    if cls[c] & _N:
        return p + k if digits == DIGIT_EACH else _run(t, p, n, cls, _N)
    end = p + k
    while end < n:
        c, k = _decode(t, end)
        if cls[c] & _N:
            break
        end += k
    return end


# ------------------------------------------------------------------ counting
#
# The table is open addressing with linear probing over records of four int64 (one cache
# line holds two): ``(hash, head, offset, count)``. ``head`` is the word's first 7 bytes and
# its length (capped at 255) in the top byte, so a word of up to 7 bytes *is* its head: found
# and compared without touching anything else. Longer words are also kept in the arena, as
# their length (8 bytes) and their bytes, at ``offset``; a lookup that matches hash and head
# compares them byte for byte. ``hash`` 0 marks a free record.

_HASH, _HEAD, _OFFSET, _COUNT = range(4)
_SHORT = 7
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)


@_inline
def _head(t: np.ndarray, p: int, size: int) -> np.int64:
    h = np.uint64(min(size, 255)) << np.uint64(56)
    for i in range(min(size, _SHORT)):
        h |= np.uint64(t[p + i]) << np.uint64(8 * i)
    return np.int64(h)


@_inline
def _hash(t: np.ndarray, p: int, size: int, head: np.int64) -> np.int64:
    """A 64-bit hash of the word (its head, then the rest 8 bytes at a time), never 0."""
    h = np.uint64(head)
    i = _SHORT
    while i < size:
        chunk = np.uint64(0)
        for j in range(min(8, size - i)):
            chunk |= np.uint64(t[p + i + j]) << np.uint64(8 * j)
        h = (h ^ chunk) * _MIX1
        i += 8
    h ^= h >> np.uint64(33)
    h *= _MIX2
    h ^= h >> np.uint64(29)
    out = np.int64(h)
    return out if out != 0 else np.int64(1)


@_inline
def _same_long(t: np.ndarray, p: int, size: int, arena: np.ndarray, off: int) -> bool:
    stored = np.int64(0)
    for j in range(8):
        stored |= np.int64(arena[off + j]) << (8 * j)
    if stored != size:
        return False
    off += 8
    for j in range(_SHORT, size):  # noqa: SIM110 - a loop numba compiles
        if arena[off + j] != t[p + j]:
            return False
    return True


@_jit
def _count(
    kind: int,
    digits: int,
    t: np.ndarray,
    p: int,
    cls: np.ndarray,
    table: np.ndarray,
    arena: np.ndarray,
    meta: np.ndarray,
) -> int:
    """Count the words of ``t[p:]`` into ``table``; return where it stopped (``len(t)`` when
    done, earlier when the table or the arena must grow first: resume there after growing).

    ``meta = (distinct words, arena bytes used, words counted)``."""
    n = len(t)
    mask = len(table) - 1
    limit = len(table) // 2
    distinct, used, words = meta[0], meta[1], meta[2]
    piece = p  # end of the current Digits piece (the text's end without a Digits step)
    while p < n:
        if p >= piece:
            piece = _piece_end(digits, t, p, n, cls)
        e = _match(kind, t, p, piece, cls)
        size = e - p
        if distinct >= limit or (size > _SHORT and used + size + 8 > len(arena)):
            break
        head = _head(t, p, size)
        h = _hash(t, p, size, head)
        i = h & mask
        while True:
            hh = table[i, _HASH]
            if hh == 0:
                table[i, _HASH] = h
                table[i, _HEAD] = head
                table[i, _COUNT] = 1
                table[i, _OFFSET] = -1
                if size > _SHORT:
                    table[i, _OFFSET] = used
                    for j in range(8):
                        arena[used + j] = (size >> (8 * j)) & 0xFF
                    arena[used + 8 : used + 8 + size] = t[p:e]
                    used += 8 + size
                distinct += 1
                break
            if (
                hh == h
                and table[i, _HEAD] == head
                and (size <= _SHORT or _same_long(t, p, size, arena, table[i, _OFFSET]))
            ):
                table[i, _COUNT] += 1
                break
            i = (i + 1) & mask
        words += 1
        p = e
    meta[0], meta[1], meta[2] = distinct, used, words
    return p


@_jit
def _rehash(table: np.ndarray, bigger: np.ndarray) -> None:
    mask = len(bigger) - 1
    for i in range(len(table)):
        h = table[i, _HASH]
        if h == 0:
            continue
        j = h & mask
        while bigger[j, _HASH] != 0:
            j = (j + 1) & mask
        bigger[j] = table[i]


@_jit
def _export(
    table: np.ndarray, arena: np.ndarray, blob: np.ndarray, ends: np.ndarray, metaspace: bool
) -> tuple[np.int64, bool]:
    """Every word of the table into ``blob``, one after another, in table order (the order of
    the used records), and its end into ``ends``; returns the number of bytes written and
    whether a word held a literal ``▁``. With ``metaspace`` each space is written as ``▁``
    (the kernel counts ``▁`` as a space, :func:`_prepared`), so ``blob`` must hold three times
    the words' bytes, and a word that held ``▁`` itself may come out equal to another's."""
    w = 0
    b = np.int64(0)
    marked = False
    for i in range(len(table)):
        if table[i, _HASH] == 0:
            continue
        head = np.uint64(table[i, _HEAD])
        size = np.int64(head >> np.uint64(56))
        off = np.int64(-1)
        if size > _SHORT:
            off = table[i, _OFFSET]
            size = np.int64(0)
            for j in range(8):
                size |= np.int64(arena[off + j]) << (8 * j)
            off += 8
        before1 = before2 = np.uint8(0)  # the word's two bytes before this one, as stored
        for j in range(size):
            if off < 0:
                byte = np.uint8((head >> np.uint64(8 * j)) & np.uint64(0xFF))
            else:
                byte = arena[off + j]
            if metaspace and byte == _SPACE:
                blob[b] = _META0
                blob[b + 1] = _META1
                blob[b + 2] = _META2
                b += 3
            else:
                blob[b] = byte
                b += 1
                if byte == _META2 and before1 == _META1 and before2 == _META0:
                    marked = True
            before2, before1 = before1, byte
        ends[w] = b
        w += 1
    return b, marked and metaspace


@_jit
def _spans(kind: int, digits: int, t: np.ndarray, cls: np.ndarray, ends: np.ndarray) -> int:
    """The end of every word in order into ``ends`` (as long as ``t``); their number."""
    n = len(t)
    p = 0
    w = 0
    piece = 0
    while p < n:
        if p >= piece:
            piece = _piece_end(digits, t, p, n, cls)
        p = _match(kind, t, p, piece, cls)
        ends[w] = p
        w += 1
    return w


# ------------------------------------------------------------------ plans


@dataclass(frozen=True)
class Plan:
    """How the compiled path reproduces one pre-tokenizer: Python-side preparation (normal
    form, lone surrogates, ``▁`` for spaces, a prefix space) and the kernel's matcher."""

    kind: int
    digits: int = NO_DIGITS
    metaspace: MetaspaceSplit | None = None
    prefix_space: bool = False


def compile_plan(pretokenizer: Pretokenizer) -> Plan | None:
    """The compiled plan of ``pretokenizer``, or None if its steps are not a known shape."""
    steps = pretokenizer.steps
    digits = NO_DIGITS
    if len(steps) == 2 and isinstance(steps[0], DigitsSplit) and _regex_kind(steps[1]) is not None:
        digits = DIGIT_EACH if steps[0].individual_digits else DIGIT_RUNS
        steps = steps[1:]
    if (
        len(steps) == 2
        and isinstance(steps[0], MetaspaceSplit)
        and isinstance(steps[1], DigitsSplit)
    ):
        digits = DIGIT_EACH if steps[1].individual_digits else DIGIT_RUNS
        steps = steps[:1]
    if len(steps) != 1:
        return None
    step = steps[0]
    if isinstance(step, MetaspaceSplit):
        if not step.split:
            return None
        runs = isinstance(step, SentencePieceRunsSplit)
        return Plan(METASPACE_RUNS if runs else METASPACE, digits, metaspace=step)
    if isinstance(step, ByteLevelSplit):
        if not step.use_regex:
            return None
        return Plan(GPT2, digits, prefix_space=step.add_prefix_space)
    kind = _regex_kind(step)
    return None if kind is None else Plan(kind, digits)


def _regex_kind(step: object) -> int | None:
    if isinstance(step, ByteLevelSplit) and step == ByteLevelSplit(False, True):
        return GPT2
    if not isinstance(step, RegexSplit):
        return None
    words_are_matches = (step.behavior == "removed" and step.invert) or (
        step.behavior == "isolated" and not step.invert
    )
    return _PATTERN_KINDS.get(step.pattern) if words_are_matches else None


def _prepared(pretokenizer: Pretokenizer, plan: Plan, text: str) -> bytes:
    """The UTF-8 bytes the kernel splits: what the ``regex`` path's steps see.

    Lone surrogates are found by the encoder failing (rare) rather than by a scan.
    SentencePiece's ``▁`` (:meth:`MetaspaceSplit.prepare` puts one for every space) stays a
    space here, one byte where ``▁`` takes three: the matcher takes a space or a ``▁`` alike,
    and the counted words get their ``▁`` back once per distinct word (:func:`_metaspace_words`).
    Replacing on the bytes cost more than the rest of the preparation, and the longer words
    left fewer of them short enough for the table's 7-byte heads."""
    if pretokenizer.normalizer != "none":
        text = pretokenizer.normalize(text)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = pretokenizer.normalize(text).encode("utf-8")
    metaspace = plan.metaspace
    if metaspace is not None:
        prepend = metaspace.prepend == "always" or metaspace.prepend == "first"
        runs = isinstance(metaspace, SentencePieceRunsSplit)
        starts = data.startswith(b" ") or data.startswith(_META)
        if prepend and data and (runs or not starts):
            data = b" " + data
    elif plan.prefix_space and data and not data.startswith(b" "):
        data = b" " + data
    return data


_META = "\u2581".encode()


def split(pretokenizer: Pretokenizer, text: str | bytes, plan: Plan | None = None) -> list[str]:
    """The pre-tokens of ``text`` in order, by the compiled path (tests compare it with
    :meth:`Pretokenizer.split`); bytes are decoded as :func:`decode_utf8` does."""
    plan = plan or compile_plan(pretokenizer)
    if plan is None:
        raise ValueError(f"pre-tokenizer {pretokenizer.name!r} has no compiled plan")
    if isinstance(text, bytes):
        text = decode_utf8(text)
    data = _prepared(pretokenizer, plan, text)
    t = np.frombuffer(data, dtype=np.uint8)
    ends = np.empty(len(t), dtype=np.int64)
    count = _spans(plan.kind, plan.digits, t, uc.class_table(), ends)
    out, start = [], 0
    for end in ends[:count].tolist():
        out.append(data[start:end].decode("utf-8"))
        start = end
    return [w.replace(" ", "\u2581") for w in out] if plan.metaspace is not None else out


# ------------------------------------------------------------------ word counters


class WordCounter(Protocol):
    """Counts the words of documents; ``drain`` hands over (and forgets) what it counted,
    ``arrays`` shows the same as arrays."""

    def add(self, text: str) -> int:
        """Count one document's words; return how many."""
        ...

    def drain(self) -> Counter[bytes]: ...

    def arrays(self) -> WordArrays:
        """What :meth:`drain` would hand over, as arrays in its order, without draining."""
        ...


class RegexWordCounter:
    """The reference: :meth:`Pretokenizer.split` and a ``Counter`` (what tokmix did before)."""

    def __init__(self, pretokenizer: Pretokenizer) -> None:
        self.pretokenizer = pretokenizer
        self.counts: Counter[bytes] = Counter()

    def add(self, text: str) -> int:
        pieces = self.pretokenizer.split(text)
        counts = self.counts
        for piece, n in Counter(pieces).items():
            counts[piece.encode("utf-8")] += n
        return len(pieces)

    def drain(self) -> Counter[bytes]:
        out, self.counts = self.counts, Counter()
        return out

    def arrays(self) -> WordArrays:
        return WordArrays.from_counts(self.counts)


class CompiledWordCounter:
    """The compiled counter: words live in a numba hash table until :meth:`drain` (or are
    read as arrays, :meth:`arrays`)."""

    _INITIAL_RECORDS = 1 << 12
    _INITIAL_ARENA = 1 << 16

    def __init__(self, pretokenizer: Pretokenizer, plan: Plan) -> None:
        self.pretokenizer = pretokenizer
        self.plan = plan
        self.classes = uc.class_table()
        self._reset()

    def _reset(self) -> None:
        self.table = np.zeros((self._INITIAL_RECORDS, 4), dtype=np.int64)
        self.arena = np.zeros(self._INITIAL_ARENA, dtype=np.uint8)
        self.meta = np.zeros(3, dtype=np.int64)

    def add(self, text: str) -> int:
        return self.add_bytes(_prepared(self.pretokenizer, self.plan, text))

    def add_bytes(self, data: bytes) -> int:
        """Count the words of already prepared, valid UTF-8 ``data``."""
        t = np.frombuffer(data, dtype=np.uint8)
        before = int(self.meta[2])
        p = 0
        kind, digits = self.plan.kind, self.plan.digits
        while True:
            p = _count(kind, digits, t, p, self.classes, self.table, self.arena, self.meta)
            if p >= len(t):
                return int(self.meta[2]) - before
            self._grow(len(t) - p)

    def _grow(self, pending: int) -> None:
        """Double the table when half full; make the arena hold the rest of the text."""
        if self.meta[0] >= len(self.table) // 2:
            bigger = np.zeros((2 * len(self.table), 4), dtype=np.int64)
            _rehash(self.table, bigger)
            self.table = bigger
        need = int(self.meta[1]) + pending + 8
        if need > len(self.arena):
            arena = np.zeros(max(2 * len(self.arena), need), np.uint8)
            arena[: self.meta[1]] = self.arena[: self.meta[1]]
            self.arena = arena

    def arrays(self) -> WordArrays:
        """The counted words as arrays, in the order :meth:`drain` would give them, without a
        Python object per word; the counter keeps counting."""
        words, marked = self._export()
        if marked:  # SentencePiece text that held U+2581: words may be equal (rare)
            return WordArrays.from_counts(_summed(words))
        return words

    def drain(self) -> Counter[bytes]:
        """The counted words as ``bytes -> count``; the counter starts over empty."""
        words, marked = self._export()
        self._reset()
        return _summed(words) if marked else _as_counter(words)

    def _export(self) -> tuple[WordArrays, bool]:
        """The table's words (``▁`` given back to SentencePiece words) and counts, in table
        order, and whether a word held a literal ``▁`` (then two records may hold one word:
        counted once with spaces and once with ``▁``)."""
        distinct = int(self.meta[0])
        used = self.table[:, _HASH] != 0
        metaspace = self.plan.metaspace is not None
        stored = int(self.meta[1]) + _SHORT * distinct
        blob = np.empty(3 * stored if metaspace else stored, dtype=np.uint8)
        offsets = np.zeros(distinct + 1, dtype=np.int64)
        size, marked = _export(self.table, self.arena, blob, offsets[1:], metaspace)
        counts = self.table[used, _COUNT]
        return WordArrays(blob[:size], offsets, counts), bool(marked)


def _as_counter(words: WordArrays) -> Counter[bytes]:
    """Distinct words as a ``Counter``: one ``bytes`` object per word, no hashing twice."""
    out: Counter[bytes] = Counter()
    dict.update(out, zip(words.words(), words.counts.tolist(), strict=True))
    return out


def _summed(words: WordArrays) -> Counter[bytes]:
    """Words that may repeat, summed (in the order of their first record)."""
    out: Counter[bytes] = Counter()
    for word, n in zip(words.words(), words.counts.tolist(), strict=True):
        out[word] += n
    return out


_LOGGED: set[str] = set()


def word_counter(pretokenizer: Pretokenizer, engine: Engine = "auto") -> WordCounter:
    """The counter for ``pretokenizer``: the one place that picks compiled or ``regex``."""
    if engine not in ENGINES:
        raise ValueError(f"count engine must be one of {ENGINES}, not {engine!r}")
    if engine == "regex":
        return RegexWordCounter(pretokenizer)
    plan = compile_plan(pretokenizer)
    if plan is None:
        if engine == "compiled":
            raise ValueError(
                f"pre-tokenizer {pretokenizer.name!r} has no compiled form; "
                "count it with the 'auto' or 'regex' engine"
            )
        if pretokenizer.key not in _LOGGED:
            _LOGGED.add(pretokenizer.key)
            log.info(
                "pre-tokenizer %s (%s) has no compiled form; counting it with the regex path",
                pretokenizer.name,
                pretokenizer.key,
            )
        return RegexWordCounter(pretokenizer)
    return CompiledWordCounter(pretokenizer, plan)


def count_pretokens(
    pretokenizer: Pretokenizer, text: str | bytes, engine: Engine = "auto"
) -> Counter[bytes]:
    """The word counts of one text (bytes are decoded as :func:`decode_utf8` does)."""
    counter = word_counter(pretokenizer, engine)
    counter.add(decode_utf8(text) if isinstance(text, bytes) else text)
    return counter.drain()
