"""Long documents pre-tokenized in pieces, with the same pre-tokens as in one go.

Pre-tokenizing a document costs several times its size in working memory (the pieces, their
offsets, the words). A document of hundreds of megabytes (a dump without newlines, a log)
would make a count task's memory grow with the document rather than with its word table. So a
long document is cut into pieces of about :data:`PIECE_CHARS` characters, at places where the
pre-tokenizer itself always cuts, and each piece is pre-tokenized alone.

Where that is exact: after a ``\\n`` that follows a non-space character and precedes a letter.
In the regexes of GPT-2, cl100k (both forms) and o200k, no pre-token holds a newline and a
letter after it (the letter alternatives take at most one leading space or non-newline
punctuation; whitespace runs stop before a non-space; o200k's punctuation tail takes ``\\r``,
``\\n`` and ``/`` only), none reaches back before it (no look-behind), and the one look-ahead,
``\\s+(?!\\S)``, sees the newline end either piece the same way. So the pre-tokens of the pieces
are those of the whole, in order. Only pre-tokenizers made of exactly those regexes (and digit
splits, and GPT-2's byte-level split without a prefix space) are cut; any other is run on the
whole document, within the corpus reader's line limit (``tokmix.io.corpus.MAX_LINE_BYTES``).
``tests/test_long_text.py`` checks the claim on every shared corpus and on generated text.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

from tokmix.bpe.pretokenizers import (
    CL100K_PATTERN,
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    O200K_PATTERN,
    ByteLevelSplit,
    DigitsSplit,
    Pretokenizer,
    RegexSplit,
)

PIECE_CHARS = 1 << 22
"""About how long a piece is (4 Mi characters)."""

_CUTTABLE_PATTERNS = frozenset({GPT2_PATTERN, CL100K_PATTERN, LLAMA3_PATTERN, O200K_PATTERN})
_CUT = regex.compile(r"(?<=\S\n)(?=\p{L})")


def cuttable(pretokenizer: Pretokenizer) -> bool:
    """Whether :func:`pieces` may cut text for ``pretokenizer`` (see the module docstring)."""
    if pretokenizer.normalizer != "none" or not pretokenizer.steps:
        return False
    for step in pretokenizer.steps:
        if isinstance(step, ByteLevelSplit):
            if step.add_prefix_space or not step.use_regex:
                return False
        elif isinstance(step, RegexSplit):
            words_are_matches = (step.behavior, step.invert) in (
                ("isolated", False),
                ("removed", True),
            )
            if step.pattern not in _CUTTABLE_PATTERNS or not words_are_matches:
                return False
        elif not isinstance(step, DigitsSplit):
            return False
    return True


def pieces(text: str, pretokenizer: Pretokenizer, piece_chars: int = PIECE_CHARS) -> Iterator[str]:
    """``text`` in pieces whose pre-tokens, in order, are ``text``'s (one piece when it is
    short, has no cut place, or the pre-tokenizer is not :func:`cuttable`)."""
    if len(text) <= piece_chars or not cuttable(pretokenizer):
        yield text
        return
    start = 0
    while len(text) - start > piece_chars:
        cut = _CUT.search(text, start + piece_chars // 2)
        if cut is None:
            break
        yield text[start : cut.start()]
        start = cut.start()
    yield text[start:]
