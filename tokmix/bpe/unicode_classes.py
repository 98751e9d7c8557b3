"""Per-code-point character classes for the compiled pre-tokenizer, taken from ``regex`` itself.

The compiled pre-tokenizer (:mod:`tokmix.bpe.fast_pretokenize`) must split exactly as the
``regex`` patterns of :mod:`tokmix.bpe.pretokenizers` do, so it does not carry Unicode data of
its own: it asks ``regex`` which code points ``\\p{L}``, ``\\p{N}``, ``\\s``, o200k's case classes
and the case-insensitive contraction letters match, once per process, and stores the answers as
one bit mask per code point. The Unicode version is therefore ``regex``'s (17 for 2026.x), the
one the docstring of :mod:`tokmix.bpe.pretokenizers` documents. Surrogates never reach the
tables (text is valid UTF-8 by then) and are left 0.
"""

from __future__ import annotations

import functools

import numpy as np
import regex

LETTER = 1 << 0
"""``\\p{L}``"""
NUMBER = 1 << 1
"""``\\p{N}``"""
SPACE = 1 << 2
"""``\\s`` as ``regex`` has it for ``str`` patterns"""
UPPERISH = 1 << 3
"""o200k's ``[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]``"""
LOWERISH = 1 << 4
"""o200k's ``[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]``"""

CONTRACTION_LETTERS = "sdmtlver"
"""Letters of the contractions (``'s``, ``'t``, ``'re``, ``'ve``, ``'m``, ``'ll``, ``'d``)."""
FOLD = {c: 1 << (5 + i) for i, c in enumerate(CONTRACTION_LETTERS)}
"""Bit of the code points ``(?i:c)`` matches, per contraction letter (``s`` also takes ``ſ``)."""

CLASSES: dict[int, str] = {
    LETTER: r"\p{L}",
    NUMBER: r"\p{N}",
    SPACE: r"\s",
    UPPERISH: r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]",
    LOWERISH: r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]",
    **{bit: f"(?i:{c})" for c, bit in FOLD.items()},
}
"""Each bit and the ``regex`` class that defines it."""

MAX_CODE_POINT = 0x10FFFF


def all_code_points() -> tuple[str, np.ndarray]:
    """Every code point except the surrogates, as one string, and their values in order."""
    cps = np.arange(MAX_CODE_POINT + 1, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    return cps.astype("<u4").tobytes().decode("utf-32-le"), cps


@functools.cache
def class_table() -> np.ndarray:
    """``uint16[0x110000]``: the class bits of every code point (about 0.2 s, once)."""
    text, cps = all_code_points()
    table = np.zeros(MAX_CODE_POINT + 1, dtype=np.uint16)
    for bit, cls in CLASSES.items():
        hits = np.zeros(len(text), dtype=bool)
        for m in regex.finditer(f"{cls}+", text):
            hits[m.start() : m.end()] = True
        table[cps[hits]] |= bit
    table.setflags(write=False)
    return table
