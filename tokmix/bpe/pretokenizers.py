"""Pre-tokenizers: the rule that splits text into the words inside which merges apply.

A :class:`Pretokenizer` is a small pipeline modelled on Hugging Face ``tokenizers``: a
normalizer, then split steps applied to every piece in turn. The known families (GPT-2,
cl100k / Llama 3, o200k, digit-splitting variants, SentencePiece ``▁``) are named constants;
tokenizer files build theirs from what they carry (:func:`from_hf_json`). The steps run on the
``regex`` module; ``tests/test_pretokenizers.py`` checks every family, pre-token for pre-token
and in order, against ``tokenizers``' Rust pre-tokenizers (Oniguruma) and against tiktoken
(fancy-regex), on generated, hand-written and real text.

Exactness notes (what "the same pre-tokens as the tokenizer" means here):

- **Input text.** Bytes are decoded with ``errors="replace"`` (:func:`decode_utf8`): every
  maximal invalid UTF-8 subsequence becomes one U+FFFD, which is what Rust's
  ``String::from_utf8_lossy`` does and what any tokenizer was actually shown (tiktoken and
  ``tokenizers`` take ``str``/``String`` only; they never see invalid bytes). ``surrogateescape``
  is not used: it would put raw bytes 0x80-0xFF into words that no tokenizer produces. Lone
  surrogates in a ``str`` (JSON ``"\\ud800"`` escapes, ``surrogateescape`` decoding) are made
  valid the way tiktoken does it before splitting (a high+low pair becomes its character, a lone
  one U+FFFD), so :meth:`Pretokenizer.words` is always valid UTF-8.
- **Unicode versions.** ``regex`` (2026.x) has Unicode 17 tables; the installed ``tokenizers``
  (Oniguruma) and tiktoken (Rust ``regex``) have Unicode 16. They classify every code point
  alike except the code points first assigned in Unicode 17 (17,810) (unassigned, ``\\p{Cn}``, to
  the Rust engines) and U+0295 (ʕ, moved from Ll to Lo in Unicode 17, which matters to o200k's
  case classes). Text with those characters can split differently; the tests exclude exactly
  that set from generated text and assert that it is the only difference. Digits
  (:class:`DigitsSplit`) use ``regex``'s ``\\p{N}`` rather than ``unicodedata`` so the result
  does not depend on the Python version. Normalizers use ``unicodedata`` (Python 3.11: Unicode
  14), so they match ``tokenizers`` only for characters Python's tables know.
- **cl100k has two forms.** tiktoken's ``cl100k_base`` pattern (:data:`CL100K_PATTERN`,
  possessive, ``\\s++$``) and the Hugging Face form (:data:`LLAMA3_PATTERN`, the original
  cl100k regex that ``tokenizer.json`` files carry) are *not* equivalent: on text ending in a
  newline and spaces (``"a\\n   "``) tiktoken gives ``["a", "\\n   "]``, the HF form
  ``["a", "\\n", "   "]``. Both are reproduced; which one a tokenizer uses is its file's choice.
- **Regex dialect.** ``tokenizer.json`` patterns are Oniguruma (Ruby syntax), not Python:
  ``$``/``^`` are line anchors, ``X{n,m}+`` means ``(?:X{n,m})+`` (not possessive), ``(?m)``
  means dot-all, ``\\h`` is a hex digit, ``\\Z`` allows a final newline and ``\\z`` does not.
  :func:`from_hf_json` translates these; constructs whose meaning differs and that are not
  translated (``\\w``, ``\\b``, ``\\R``, ...) are refused rather than silently mis-split.
  Empty matches follow Oniguruma's iteration (no empty match right after a match).
- **Speed.** A pipeline that is one regex whose matches are the words (GPT-2, cl100k, Llama 3,
  o200k) runs as a single ``findall`` (2-4 % slower than a bare ``findall``; the general path
  is about 45 % slower), and so does ``Metaspace`` + ``Digits``; everything else, and any text
  on which ``findall`` cannot vouch for the result (empty matches), takes the general path.
  Counting words (:class:`~tokmix.bpe.words.WordTable`) does not use this module when it can
  help it: :mod:`tokmix.bpe.fast_pretokenize` runs the known shapes as compiled state machines
  over UTF-8 with classes read from ``regex`` (5-7x faster), and this module is its reference.
"""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal

import regex

from tokmix.errors import TokenizerFormatError

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2 / r50k / p50k, as the Hugging Face ``ByteLevel(use_regex=True)`` pre-tokenizer has it
(tiktoken's r50k form splits identically; the tests check it)."""

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
"""cl100k_base as tiktoken writes it (GPT-3.5 / GPT-4). Python ``regex`` syntax: ``{1,3}+`` is
possessive here, as in tiktoken, but not in Oniguruma."""

LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
"""The Hugging Face form of cl100k, used by Llama 3 and cl100k ``tokenizer.json`` files."""

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
"""o200k_base (GPT-4o) as tiktoken writes it."""

METASPACE = "\u2581"  # ▁

Behavior = Literal["isolated", "removed", "merged_with_previous", "merged_with_next", "contiguous"]
Normalizer = Literal["none", "nfc", "nfkc", "nfd", "nfkd"]

_SURROGATE = regex.compile(r"[\ud800-\udfff]")


def decode_utf8(data: bytes) -> str:
    """Text of raw bytes as a tokenizer would have seen it: invalid UTF-8 becomes U+FFFD."""
    return data.decode("utf-8", errors="replace")


def _valid_unicode(text: str) -> str:
    """``text`` without lone surrogates, as tiktoken repairs a ``str`` before encoding it.

    Checked first because almost every text has none, and the repair copies the string."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


# ------------------------------------------------------------------ matching like tokenizers

Span = tuple[int, int, bool]
"""``(start, end, is_match)``: a piece of the input and whether the pattern matched it."""


def _onig_find_iter(compiled: regex.Pattern[str], text: str) -> list[tuple[int, int]]:
    """Match spans as ``tokenizers`` iterates them (rust-onig ``find_iter``).

    It differs from Python's ``finditer`` only around empty matches: an empty match right after
    the previous match is skipped *and the search moves one character on*, where Python would
    retry at the same place for a non-empty match. So ``finditer`` is used unless it produced
    an empty match, and the exact loop only then."""
    spans = [m.span() for m in compiled.finditer(text)]
    if all(s != e for s, e in spans):
        return spans
    spans = []
    pos, last_end = 0, -1
    while pos <= len(text):
        m = compiled.search(text, pos)
        if m is None:
            break
        s, e = m.span()
        if s == e and e == last_end:
            pos += 1
            continue
        spans.append((s, e))
        pos = last_end = e
    return spans


def _find_matches(compiled: regex.Pattern[str], text: str, invert: bool) -> list[Span]:
    """``Pattern::find_matches`` of ``tokenizers``: matches and the gaps between them, in order,
    empty matches included (they matter to the merging behaviours)."""
    if not text:
        return [(0, 0, invert)]
    spans: list[Span] = []
    prev = 0
    for s, e in _onig_find_iter(compiled, text):
        if s != prev:
            spans.append((prev, s, invert))
        spans.append((s, e, not invert))
        prev = e
    if prev != len(text):
        spans.append((prev, len(text), invert))
    return spans


def _apply_behavior(piece: str, spans: list[Span], behavior: Behavior) -> list[str]:
    """Pieces of ``piece`` per ``SplitDelimiterBehavior``; a transcription of
    ``NormalizedString::split`` (including its treatment of adjacent and empty matches)."""
    kept: list[tuple[int, int]]
    if behavior == "isolated":
        kept = [(s, e) for s, e, _ in spans]
    elif behavior == "removed":
        kept = [(s, e) for s, e, is_match in spans if not is_match]
    elif behavior == "contiguous":
        kept = _merge_forward(spans, lambda is_match, prev: is_match == prev)
    elif behavior == "merged_with_previous":
        kept = _merge_forward(spans, lambda is_match, prev: is_match and not prev)
    elif behavior == "merged_with_next":
        reversed_spans = [(-e, -s, m) for s, e, m in reversed(spans)]
        merged = _merge_forward(reversed_spans, lambda is_match, prev: is_match and not prev)
        kept = [(-e, -s) for s, e in reversed(merged)]
    else:
        raise TokenizerFormatError(f"unknown split behavior {behavior!r}")
    return [piece[s:e] for s, e in kept if s != e]


def _merge_forward(spans: list[Span], joins: Callable[[bool, bool], bool]) -> list[tuple[int, int]]:
    """Fold spans left to right, extending the last kept span when ``joins(is_match, previous
    span's is_match)``; ``previous`` starts as False, as in ``tokenizers``."""
    out: list[tuple[int, int]] = []
    previous = False
    for s, e, is_match in spans:
        if joins(is_match, previous) and out:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
        previous = is_match
    return out


# ------------------------------------------------------------------ split steps


@dataclass(frozen=True)
class RegexSplit:
    """Split each piece on a regex, as ``tokenizers.pre_tokenizers.Split`` does.

    ``pattern`` is Python ``regex`` syntax (:func:`from_hf_json` translates Oniguruma's)."""

    pattern: str
    behavior: Behavior = "isolated"
    invert: bool = False

    @cached_property
    def compiled(self) -> regex.Pattern[str]:
        try:
            return regex.compile(self.pattern)
        except regex.error as exc:
            raise TokenizerFormatError(
                f"pre-tokenizer regex does not compile ({exc}): {self.pattern!r}"
            ) from exc

    def __call__(self, piece: str) -> list[str]:
        return self.split_first(piece)[0]

    def split_first(self, piece: str) -> tuple[list[str], bool]:
        """The pieces, and whether the first of them still starts where ``piece`` did (a
        ``removed`` delimiter at the start moves it; Metaspace's ``first`` scheme cares)."""
        fast = self.fast_split(piece)
        if fast is not None:
            return fast, True
        spans = _find_matches(self.compiled, piece, self.invert)
        kept_start = self.behavior != "removed" or not spans or not spans[0][2]
        return _apply_behavior(piece, spans, self.behavior), kept_start

    def fast_split(self, piece: str) -> list[str] | None:
        """One ``findall`` when its result is the answer, else None (then take the general path).

        That is the case when the words are the matches (``removed`` + ``invert``, or
        ``isolated`` matches that cover the whole piece) and no match is empty."""
        words_are_matches = self.behavior == "removed" and self.invert
        if not (words_are_matches or self.behavior == "isolated") or self.compiled.groups:
            return None
        found: list[str] = self.compiled.findall(piece)
        if "" in found:
            return None
        if not words_are_matches and sum(map(len, found)) != len(piece):
            return None
        return found


@dataclass(frozen=True)
class DigitsSplit:
    """``tokenizers.pre_tokenizers.Digits``: digits apart from the rest, one by one if asked.

    Rust's ``char::is_numeric`` is general category N (Nd, Nl, No), here ``regex``'s ``\\p{N}``.
    """

    individual_digits: bool = True

    @cached_property
    def compiled(self) -> regex.Pattern[str]:
        return regex.compile(r"(\p{N})" if self.individual_digits else r"(\p{N}+)")

    def __call__(self, piece: str) -> list[str]:
        return [p for p in self.compiled.split(piece) if p]


@dataclass(frozen=True)
class MetaspaceSplit:
    """``tokenizers.pre_tokenizers.Metaspace``: spaces become ``▁``; each ``▁`` opens a word.

    ``first`` (for the ``"first"`` scheme) says whether the piece starts at the start of the
    text, which is how ``tokenizers`` decides (original offset 0)."""

    prepend: Literal["always", "first", "never"] = "always"
    split: bool = True

    def __call__(self, piece: str, *, first: bool = True) -> list[str]:
        text = self.prepare(piece, first=first)
        if not self.split:
            return [text] if text else []
        head, *rest = text.split(METASPACE)
        return ([head] if head else []) + [METASPACE + part for part in rest]

    def prepare(self, piece: str, *, first: bool = True) -> str:
        """Spaces replaced by ``▁``, and a ``▁`` prepended where the scheme asks for one."""
        text = piece.replace(" ", METASPACE)
        prepend = self.prepend == "always" or (self.prepend == "first" and first)
        if prepend and text and not text.startswith(METASPACE):
            text = METASPACE + text
        return text


_METASPACE_RUNS = regex.compile(rf"{METASPACE}+[^{METASPACE}]*|[^{METASPACE}]+")


@dataclass(frozen=True)
class SentencePieceRunsSplit(MetaspaceSplit):
    """``▁`` as SentencePiece *encodes* text, which is not how it trains.

    The encoder has no word boundaries; its merges are bounded by the vocabulary, where ``▁``
    appears only at the start of a piece or in whitespace-only pieces (``▁▁``, ``▁▁▁▁``). So
    a run of ``▁`` and the text after it form one word (``"a  b"`` encodes as ``▁a``, ``▁``,
    ``▁b``: the run and ``b`` interact), and the dummy ``▁`` is prepended even before a
    leading space (``" x"`` is ``▁▁x``). Token statistics need this split; replay needs
    :class:`MetaspaceSplit`'s (training splits before every ``▁``)."""

    def __call__(self, piece: str, *, first: bool = True) -> list[str]:
        text = self.prepare(piece, first=first)
        if not self.split:
            return [text] if text else []
        found: list[str] = _METASPACE_RUNS.findall(text)
        return found

    def prepare(self, piece: str, *, first: bool = True) -> str:
        text = piece.replace(" ", METASPACE)
        prepend = self.prepend == "always" or (self.prepend == "first" and first)
        return METASPACE + text if prepend and text else text


_METASPACE_RUNS_DIGITS = {
    individual: regex.compile(
        (r"\p{N}" if individual else r"\p{N}+") + rf"|{METASPACE}+[^{METASPACE}\p{{N}}]*"
        rf"|[^{METASPACE}\p{{N}}]+"
    )
    for individual in (True, False)
}
""":class:`SentencePieceRunsSplit` then Digits in one pattern (a ``▁`` run opens a word)."""

_METASPACE_DIGITS = {
    individual: regex.compile(
        (r"\p{N}" if individual else r"\p{N}+") + rf"|{METASPACE}[^{METASPACE}\p{{N}}]*"
        rf"|[^{METASPACE}\p{{N}}]+"
    )
    for individual in (True, False)
}
"""Metaspace then Digits in one pattern: a digit (run), or a word from one ``▁`` to the next
``▁`` or digit, or the text before the first ``▁``."""


@dataclass(frozen=True)
class ByteLevelSplit:
    """``tokenizers.pre_tokenizers.ByteLevel``'s split part (the byte mapping is not ours)."""

    add_prefix_space: bool = False
    use_regex: bool = True

    def __call__(self, piece: str) -> list[str]:
        if self.add_prefix_space and not piece.startswith(" "):
            piece = " " + piece
        if not self.use_regex:
            return [piece] if piece else []
        return _GPT2_SPLIT(piece)


_GPT2_SPLIT = RegexSplit(GPT2_PATTERN)
Step = RegexSplit | DigitsSplit | MetaspaceSplit | ByteLevelSplit


def _run_step(step: Step, pieces: list[str], at_start: bool) -> tuple[list[str], bool]:
    """Apply one step to every piece; track whether the first piece begins the text."""
    out: list[str] = []
    first_kept = at_start
    for i, piece in enumerate(pieces):
        if isinstance(step, MetaspaceSplit):
            out.extend(step(piece, first=i == 0 and at_start))
        elif isinstance(step, RegexSplit):
            split, kept = step.split_first(piece)
            if i == 0:
                first_kept = at_start and kept
            out.extend(split)
        else:
            out.extend(step(piece))
    return out, first_kept


# ------------------------------------------------------------------ the pipeline


_NORMAL_FORMS: dict[str, Literal["NFC", "NFD", "NFKC", "NFKD"]] = {
    "nfc": "NFC",
    "nfd": "NFD",
    "nfkc": "NFKC",
    "nfkd": "NFKD",
}


@dataclass(frozen=True)
class Pretokenizer:
    """A normalizer and a sequence of split steps; ``name`` is the family, for people."""

    name: str
    steps: tuple[Step, ...]
    normalizer: Normalizer = "none"
    byte_level: bool = True
    """Byte-level tokenizers merge bytes; SentencePiece-style ones merge characters."""
    description: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def normalize(self, text: str) -> str:
        """Valid Unicode (lone surrogates repaired), then the Unicode normal form if any."""
        text = _valid_unicode(text)
        form = _NORMAL_FORMS.get(self.normalizer)
        return text if form is None else unicodedata.normalize(form, text)

    def split(self, text: str) -> list[str]:
        """The pre-tokens of ``text``, in order; never empty strings."""
        text = self.normalize(text)
        if not text:
            return []
        fast_path = self._fast_path
        if fast_path is not None:
            fast = fast_path(text)
            if fast is not None:
                return fast
        pieces, at_start = [text], True
        for step in self.steps:
            pieces, at_start = _run_step(step, pieces, at_start)
        return pieces

    def words(self, text: str) -> Iterator[bytes]:
        """Pre-tokens as the UTF-8 bytes replay and word tables use."""
        for piece in self.split(text):
            yield piece.encode("utf-8")

    @cached_property
    def _fast_path(self) -> Callable[[str], list[str] | None] | None:
        """The whole pipeline as one ``findall``, for the shapes where that is exact; it
        returns None (take the general path) when it cannot vouch for a text.

        - one regex step (GPT-2's ``ByteLevel`` counts as one): :meth:`RegexSplit.fast_split`;
        - ``Metaspace(split=True)`` then ``Digits``: each digit (run) apart, and a word before
          every ``▁``, is what ``_METASPACE_DIGITS`` matches in the ``▁``-prepared text."""
        steps = self.steps
        if len(steps) == 1 and isinstance(steps[0], RegexSplit):
            return steps[0].fast_split
        if steps == (ByteLevelSplit(False, True),):
            return _GPT2_SPLIT.fast_split
        if len(steps) == 2:
            metaspace, digits = steps
            if (
                isinstance(metaspace, MetaspaceSplit)
                and metaspace.split
                and isinstance(digits, DigitsSplit)
            ):
                table = (
                    _METASPACE_RUNS_DIGITS
                    if isinstance(metaspace, SentencePieceRunsSplit)
                    else _METASPACE_DIGITS
                )
                pattern = table[digits.individual_digits]
                return functools.partial(_prepared_findall, pattern, metaspace)
        return None

    @cached_property
    def key(self) -> str:
        """Stable id of what this pre-tokenizer does: one word table serves equal keys."""
        spec = {
            "normalizer": self.normalizer,
            "byte_level": self.byte_level,
            "steps": [_step_spec(s) for s in self.steps],
        }
        blob = json.dumps(spec, sort_keys=True).encode()
        return f"{self.name}-{hashlib.sha256(blob).hexdigest()[:12]}"


def _prepared_findall(
    pattern: regex.Pattern[str], metaspace: MetaspaceSplit, text: str
) -> list[str]:
    found: list[str] = pattern.findall(metaspace.prepare(text, first=True))
    return found


def _step_spec(step: Step) -> dict[str, Any]:
    spec: dict[str, Any] = {f.name: getattr(step, f.name) for f in fields(step)}
    spec["type"] = type(step).__name__
    return spec


def regex_pretokenizer(name: str, pattern: str, *, individual_digits: bool = False) -> Pretokenizer:
    """A byte-level pre-tokenizer: one regex (matches are the words), digits split if asked."""
    steps: tuple[Step, ...] = (RegexSplit(pattern, "removed", invert=True),)
    if individual_digits:
        steps = (DigitsSplit(True), *steps)
    return Pretokenizer(name, steps)


GPT2 = regex_pretokenizer("gpt2", GPT2_PATTERN)
CL100K = regex_pretokenizer("cl100k", CL100K_PATTERN)
LLAMA3 = regex_pretokenizer("llama3", LLAMA3_PATTERN)
O200K = regex_pretokenizer("o200k", O200K_PATTERN)
GPT2_DIGITS = regex_pretokenizer("gpt2-digits", GPT2_PATTERN, individual_digits=True)
SENTENCEPIECE = Pretokenizer("sentencepiece", (MetaspaceSplit("always", True),), byte_level=False)
SENTENCEPIECE_DIGITS = Pretokenizer(
    "sentencepiece-digits",
    (MetaspaceSplit("always", True), DigitsSplit(True)),
    byte_level=False,
)

FAMILIES: dict[str, Pretokenizer] = {
    p.name: p
    for p in (GPT2, CL100K, LLAMA3, O200K, GPT2_DIGITS, SENTENCEPIECE, SENTENCEPIECE_DIGITS)
}


def named(name: str) -> Pretokenizer:
    """A known family by name (``gpt2``, ``cl100k``, ``llama3``, ``o200k``, ...), or a
    byte-level regex (a tiktoken ``pat_str``) when ``name`` is one (:func:`from_pattern`)."""
    try:
        return FAMILIES[name]
    except KeyError:
        pass
    if _looks_like_regex(name):
        return from_pattern(name)
    known = ", ".join(sorted(FAMILIES))
    raise TokenizerFormatError(
        f"unknown pre-tokenizer {name!r}; known: {known}, or a regex (a tiktoken pat_str)"
    ) from None


_REGEX_SYNTAX = frozenset("\\|()[]?*+{}")


def _looks_like_regex(spec: str) -> bool:
    """Family names are plain words (``gpt2-digits``); a regex has regex syntax."""
    return any(ch in _REGEX_SYNTAX for ch in spec)


def from_pattern(pattern: str, *, name: str | None = None) -> Pretokenizer:
    """A byte-level pre-tokenizer from a tiktoken-style regex (``pat_str``: its matches are
    the words, text between matches is dropped, as tiktoken does).

    A pattern that is a known family's (GPT-2, cl100k, Llama 3, o200k) returns that family, so
    tokenizers that split alike share word tables. Others are named ``regex-<hash>`` (or
    ``name``); the pattern must compile in the ``regex`` module (Python syntax, which tiktoken's
    fancy-regex patterns use).
    """
    for family in (GPT2, CL100K, LLAMA3, O200K):
        only = family.steps[0]
        if isinstance(only, RegexSplit) and only.pattern == pattern:
            return family
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise TokenizerFormatError(
            f"pre-tokenizer regex does not compile ({exc}): {pattern!r}"
        ) from None
    digest = hashlib.sha256(pattern.encode("utf-8")).hexdigest()[:8]
    return regex_pretokenizer(name or f"regex-{digest}", pattern)


# ------------------------------------------------------------------ tokenizer.json

_HF_BEHAVIORS: dict[str, Behavior] = {
    "Isolated": "isolated",
    "Removed": "removed",
    "MergedWithPrevious": "merged_with_previous",
    "MergedWithNext": "merged_with_next",
    "Contiguous": "contiguous",
}


def from_hf_json(
    pre_tokenizer: dict[str, Any] | None,
    normalizer: dict[str, Any] | None,
    *,
    byte_level: bool,
    name: str = "custom",
) -> Pretokenizer:
    """Build the pre-tokenizer a ``tokenizer.json`` declares (its ``pre_tokenizer`` and
    ``normalizer`` objects). Unsupported step types raise, naming the type."""
    steps = tuple(_hf_steps(pre_tokenizer)) if pre_tokenizer else ()
    if any(isinstance(s, ByteLevelSplit) for s in steps[:-1]):
        # ByteLevel maps each piece to GPT-2's byte alphabet; later steps would split that.
        raise TokenizerFormatError(
            "a ByteLevel pre-tokenizer followed by other steps is not supported (they would "
            "see GPT-2's byte alphabet); ByteLevel must be the last step"
        )
    steps = tuple(_canonical(s) for s in steps if s != ByteLevelSplit(False, False))
    norm = _hf_normalizer(normalizer)
    family = _family_name(steps, byte_level) or name
    return Pretokenizer(family, steps, norm, byte_level, description=pre_tokenizer or {})


def _hf_steps(spec: dict[str, Any]) -> Iterator[Step]:
    kind = spec.get("type")
    if kind == "Sequence":
        for sub in spec.get("pretokenizers", []):
            yield from _hf_steps(sub)
    elif kind == "ByteLevel":
        yield ByteLevelSplit(
            bool(spec.get("add_prefix_space", False)), bool(spec.get("use_regex", True))
        )
    elif kind == "Split":
        yield _hf_split(spec)
    elif kind == "Digits":
        yield DigitsSplit(bool(spec.get("individual_digits", False)))
    elif kind == "Metaspace":
        yield _hf_metaspace(spec)
    else:
        raise TokenizerFormatError(
            f"pre-tokenizer type {kind!r} is not supported; tokmix reproduces ByteLevel, Split, "
            "Digits, Metaspace and Sequences of them"
        )


def _hf_split(spec: dict[str, Any]) -> RegexSplit:
    pattern = spec.get("pattern", {})
    if "Regex" in pattern:
        pat = onig_to_regex(pattern["Regex"])
    elif "String" in pattern:
        pat = regex.escape(pattern["String"])
    else:
        raise TokenizerFormatError(f"Split pre-tokenizer without a pattern: {spec}")
    behavior = _HF_BEHAVIORS.get(spec.get("behavior", "Isolated"))
    if behavior is None:
        raise TokenizerFormatError(f"unsupported Split behavior {spec.get('behavior')!r}")
    return RegexSplit(pat, behavior, bool(spec.get("invert", False)))


def _hf_metaspace(spec: dict[str, Any]) -> MetaspaceSplit:
    replacement = spec.get("replacement", METASPACE)
    if replacement != METASPACE:
        raise TokenizerFormatError(
            f"Metaspace with replacement {replacement!r} is not supported (only {METASPACE!r})"
        )
    scheme = spec.get("prepend_scheme")
    if scheme is None:  # files written before prepend_scheme existed
        scheme = "always" if spec.get("add_prefix_space", True) else "never"
    prepend = _PREPEND_SCHEMES.get(scheme)
    if prepend is None:
        raise TokenizerFormatError(f"unknown Metaspace prepend_scheme {scheme!r}")
    return MetaspaceSplit(prepend, bool(spec.get("split", True)))


_PREPEND_SCHEMES: dict[str, Literal["always", "first", "never"]] = {
    "always": "always",
    "first": "first",
    "never": "never",
}


def _hf_normalizer(spec: dict[str, Any] | None) -> Normalizer:
    """The one Unicode normal form a normalizer applies (``Sequence``s of one are flattened)."""
    if not spec:
        return "none"
    kind = spec.get("type")
    if kind == "Sequence":
        subs = [s for s in spec.get("normalizers") or [] if s]
        if len(subs) <= 1:
            return _hf_normalizer(subs[0] if subs else None)
    simple: dict[str, Normalizer] = {"NFC": "nfc", "NFKC": "nfkc", "NFD": "nfd", "NFKD": "nfkd"}
    if kind in simple:
        return simple[kind]
    raise TokenizerFormatError(
        f"normalizer {kind!r} is not supported for replay; tokmix handles none, NFC, NFKC, NFD "
        "and NFKD (SentencePiece space handling is part of its pre-tokenizer)"
    )


def _canonical(step: Step) -> Step:
    """``ByteLevel(use_regex=true)`` as the GPT-2 family's own step: the GPT-2 regex matches
    every character, so its ``isolated`` pieces are its matches. Equal steps give equal keys,
    so a ``tokenizer.json`` and a tiktoken file of one family share word tables. (A
    ``ByteLevel`` that neither splits nor adds a space is dropped before this.)"""
    if step == ByteLevelSplit(False, True):
        return GPT2.steps[0]
    return step


def _family_name(steps: Sequence[Step], byte_level: bool) -> str | None:
    """Name a pipeline after the known family it equals, so reports read naturally."""
    for fam in FAMILIES.values():
        if fam.byte_level == byte_level and fam.steps == tuple(steps):
            return fam.name
    return None


# ------------------------------------------------------------------ Oniguruma -> regex

_ONIG_ESCAPES = {"z": r"\Z", "Z": r"(?=\n?\Z)", "h": "[0-9a-fA-F]", "H": "[^0-9a-fA-F]"}
"""Escapes whose Oniguruma meaning Python spells differently."""
_UNSUPPORTED_ESCAPES = "wWbBRXKGyYOk"
"""Escapes whose Oniguruma meaning differs from ``regex``'s (``\\w`` counts ², ³, ¹, ¼-¾ as
word characters and not ZWJ/ZWNJ, ...) or that ``regex`` lacks: refused, not guessed."""
_INTERVAL = regex.compile(r"\{(\d*)(?:(,)(\d*))?\}")
_BRACED_HEX = regex.compile(r"\{([0-9a-fA-F]{1,8})\}")
_FLAG_GROUP = regex.compile(r"\(\?([imx]*)(?:-([imx]*))?([:)])")


def onig_to_regex(pattern: str) -> str:
    """A ``tokenizer.json`` regex (Oniguruma, Ruby syntax) in Python ``regex`` syntax.

    Translated: ``^``/``$`` (line anchors in Oniguruma), ``X{n,m}+`` (one or more repetitions
    of ``X{n,m}``, not possessive), flags (``m`` is dot-all; ``(?i)`` inside a pattern scopes to
    the end of its group, alternatives included), ``\\h``/``\\H``, ``\\z``/``\\Z``, ``\\x{..}``,
    a ``{`` that is no interval (literal). Everything else is shared syntax with the same
    meaning (checked per code point for ``\\s``, ``\\d``, ``\\p{..}``, ``.``, POSIX classes)."""
    out: list[str] = []
    groups: list[int] = []  # positions in ``out`` of the open groups
    isolated = [0]  # per open group (and the top level): flag scopes to close at its end
    atom: int | None = None  # position in ``out`` where the last atom starts
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            text, i = _onig_escape(pattern, i)
            atom = len(out)
            out.append(text)
        elif c == "[":
            text, i = _onig_class(pattern, i)
            atom = len(out)
            out.append(text)
        elif c == "(":
            flags = _FLAG_GROUP.match(pattern, i)
            i += len(flags.group(0)) if flags else 1
            if flags and flags.group(3) == ")":  # isolated option: a scope to the group's end
                out.append(_onig_flags(flags)[:-1] + ":")
                isolated[-1] += 1
            else:
                groups.append(len(out))
                isolated.append(0)
                out.append(_onig_flags(flags) if flags else "(")
        elif c == ")":
            i += 1
            out.append(")" * isolated.pop() + ")")
            atom = groups.pop() if groups else None
            isolated = isolated or [0]
        elif c == "{":
            interval = _INTERVAL.match(pattern, i)
            if interval is None or not _is_interval(interval):
                i += 1
                atom = len(out)
                out.append("\\{")
                continue
            i = interval.end()
            if pattern.startswith("+", i) and atom is not None:
                # Oniguruma reads X{n,m}+ as (?:X{n,m})+; Python as possessive X{n,m}.
                out[atom:] = ["(?:" + "".join(out[atom:]) + interval.group(0) + ")"]
            else:
                out.append(interval.group(0))
        else:
            i += 1
            if c in "^$":
                out.append(f"(?m:{c})")
            else:
                out.append(c)
            if c in "^$|":
                atom = None
            elif c not in "*+?":
                atom = len(out) - 1
    return "".join(out) + ")" * sum(isolated)


def _is_interval(m: regex.Match[str]) -> bool:
    """Oniguruma takes ``{n}``, ``{n,}``, ``{,m}``, ``{n,m}`` as intervals, ``{}``/``{,}`` not."""
    return bool(m.group(1) or m.group(3))


def _onig_flags(m: regex.Match[str]) -> str:
    """``(?imx-imx)`` / ``(?imx-imx:``: Oniguruma's ``m`` is Python's ``s`` (dot-all)."""
    on, off, end = (
        (m.group(1) or "").replace("m", "s"),
        (m.group(2) or "").replace("m", "s"),
        m.group(3),
    )
    return "(?" + on + (f"-{off}" if off else "") + end


def _onig_escape(pattern: str, i: int) -> tuple[str, int]:
    """The escape at ``pattern[i]`` (a backslash), translated, and the index after it."""
    if i + 1 >= len(pattern):
        raise TokenizerFormatError(f"pre-tokenizer regex ends with a backslash: {pattern!r}")
    c = pattern[i + 1]
    if c in _UNSUPPORTED_ESCAPES:
        raise TokenizerFormatError(
            f"pre-tokenizer regex uses \\{c}, whose Oniguruma meaning tokmix does not reproduce "
            f"exactly; not supported: {pattern!r}"
        )
    if c in _ONIG_ESCAPES:
        return _ONIG_ESCAPES[c], i + 2
    end = i + 2
    if c == "x" and (code := _BRACED_HEX.match(pattern, end)):
        return f"\\U{int(code.group(1), 16):08X}", code.end()
    if c in "pP" and pattern.startswith("{", end):
        close = pattern.find("}", end)
        end = len(pattern) if close < 0 else close + 1
    elif c == "x":
        end = _hex_end(pattern, end, 2)
    elif c == "u":
        end = _hex_end(pattern, end, 4)
    return pattern[i:end], end


def _hex_end(pattern: str, start: int, most: int) -> int:
    end = start
    while end < len(pattern) and end - start < most and pattern[end] in "0123456789abcdefABCDEF":
        end += 1
    return end


def _onig_class(pattern: str, i: int) -> tuple[str, int]:
    """The bracket class starting at ``pattern[i]``, translated, and the index after it."""
    out = ["["]
    depth = 1
    j = i + 1
    if pattern.startswith("^", j):
        out.append("^")
        j += 1
    if pattern.startswith("]", j):  # a leading ] is a literal
        out.append(r"\]")
        j += 1
    while j < len(pattern) and depth:
        c = pattern[j]
        if c == "\\":
            if pattern[j + 1 : j + 2] == "h":
                out.append("0-9a-fA-F")
                j += 2
                continue
            text, j = _onig_escape(pattern, j)
            if text.startswith(("(", "[")):  # \H, \z, \Z: no meaning inside a class
                raise TokenizerFormatError(f"unsupported escape in a class: {pattern!r}")
            out.append(text)
            continue
        if pattern.startswith("&&", j):
            raise TokenizerFormatError(f"class intersection (&&) is not supported: {pattern!r}")
        depth += {"[": 1, "]": -1}.get(c, 0)
        out.append(c)
        j += 1
    return "".join(out), j
