"""Pre-tokenizers: the rule that splits text into the words inside which merges apply.

A :class:`Pretokenizer` is a small pipeline modelled on Hugging Face ``tokenizers``: a
normalizer, then split steps applied to every piece in turn. The known families (GPT-2,
cl100k / Llama 3, o200k, digit-splitting variants, SentencePiece ``▁``) are named constants;
tokenizer files build theirs from what they carry (:func:`from_hf_json`). The steps use the
``regex`` module, the reference the design names; ``tests/test_pretokenizers.py`` checks them
against ``tokenizers``' own Rust pre-tokenizers.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import regex

from tokmix.errors import TokenizerFormatError

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2 / r50k / p50k, as the Hugging Face ``ByteLevel(use_regex=True)`` pre-tokenizer has it."""

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
"""cl100k_base as tiktoken writes it (GPT-3.5 / GPT-4)."""

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


@dataclass(frozen=True)
class RegexSplit:
    """Split each piece on a regex, as ``tokenizers.pre_tokenizers.Split`` does."""

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
        matches: list[tuple[int, int, bool]] = []  # (start, end, is_delimiter)
        pos = 0
        for m in self.compiled.finditer(piece):
            if m.start() == m.end():
                continue
            if m.start() > pos:
                matches.append((pos, m.start(), self.invert))
            matches.append((m.start(), m.end(), not self.invert))
            pos = m.end()
        if pos < len(piece):
            matches.append((pos, len(piece), self.invert))
        return _apply_behavior(piece, matches, self.behavior)


@dataclass(frozen=True)
class DigitsSplit:
    """``tokenizers.pre_tokenizers.Digits``: digits apart from the rest, one by one if asked."""

    individual_digits: bool = True

    def __call__(self, piece: str) -> list[str]:
        out: list[str] = []
        run = ""
        run_is_digit = False
        for ch in piece:
            is_digit = _is_hf_digit(ch)
            if self.individual_digits and is_digit:
                if run:
                    out.append(run)
                out.append(ch)
                run = ""
                continue
            if run and is_digit != run_is_digit:
                out.append(run)
                run = ""
            run += ch
            run_is_digit = is_digit
        if run:
            out.append(run)
        return out


def _is_hf_digit(ch: str) -> bool:
    """Rust ``char::is_numeric``: Unicode general categories Nd, Nl and No."""
    return unicodedata.category(ch) in ("Nd", "Nl", "No")


@dataclass(frozen=True)
class MetaspaceSplit:
    """``tokenizers.pre_tokenizers.Metaspace``: spaces become ``▁``; each ``▁`` opens a word."""

    prepend: Literal["always", "first", "never"] = "always"
    split: bool = True

    def __call__(self, piece: str, *, first: bool = True) -> list[str]:
        text = piece.replace(" ", METASPACE)
        if (
            self.prepend == "always" or (self.prepend == "first" and first)
        ) and not text.startswith(METASPACE):
            text = METASPACE + text
        if not self.split:
            return [text] if text else []
        out: list[str] = []
        start = 0
        for i, ch in enumerate(text):
            if ch == METASPACE and i > start:
                out.append(text[start:i])
                start = i
        if start < len(text):
            out.append(text[start:])
        return out


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


def _apply_behavior(
    piece: str, spans: list[tuple[int, int, bool]], behavior: Behavior
) -> list[str]:
    """Turn delimiter/non-delimiter spans into pieces, per ``SplitDelimiterBehavior``."""
    out: list[str] = []
    if behavior == "isolated":
        return [piece[s:e] for s, e, _ in spans]
    if behavior == "removed":
        return [piece[s:e] for s, e, delim in spans if not delim]
    if behavior == "merged_with_previous":
        for s, e, delim in spans:
            if delim and out:
                out[-1] += piece[s:e]
            else:
                out.append(piece[s:e])
        return out
    if behavior == "merged_with_next":
        pending = ""
        for s, e, delim in spans:
            if delim:
                pending += piece[s:e]
            else:
                out.append(pending + piece[s:e])
                pending = ""
        if pending:
            out.append(pending)
        return out
    if behavior == "contiguous":
        prev_delim: bool | None = None
        for s, e, delim in spans:
            if delim and prev_delim:
                out[-1] += piece[s:e]
            else:
                out.append(piece[s:e])
            prev_delim = delim
        return out
    raise TokenizerFormatError(f"unknown split behavior {behavior!r}")


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
        if self.normalizer == "none":
            return text
        return unicodedata.normalize(self.normalizer.upper(), text)

    def split(self, text: str) -> list[str]:
        """The pre-tokens of ``text``, in order."""
        pieces = [self.normalize(text)] if text else []
        for step in self.steps:
            nxt: list[str] = []
            for i, piece in enumerate(pieces):
                if isinstance(step, MetaspaceSplit):
                    nxt.extend(step(piece, first=i == 0))
                else:
                    nxt.extend(step(piece))
            pieces = nxt
        return pieces

    def words(self, text: str) -> Iterator[bytes]:
        """Pre-tokens as the UTF-8 bytes replay and word tables use."""
        for piece in self.split(text):
            yield piece.encode("utf-8", errors="surrogatepass")

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


def _step_spec(step: Step) -> dict[str, Any]:
    spec = {k: v for k, v in vars(step).items() if k != "compiled"}
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
    p.name: p for p in (GPT2, CL100K, LLAMA3, O200K, GPT2_DIGITS, SENTENCEPIECE, SENTENCEPIECE_DIGITS)
}


def named(name: str) -> Pretokenizer:
    """A known family by name (``gpt2``, ``cl100k``, ``llama3``, ``o200k``, ...)."""
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise TokenizerFormatError(f"unknown pre-tokenizer {name!r}; known: {known}") from None


_HF_BEHAVIORS: dict[str, Behavior] = {
    "Isolated": "isolated",
    "Removed": "removed",
    "MergedWithPrevious": "merged_with_previous",
    "MergedWithNext": "merged_with_next",
    "Contiguous": "contiguous",
}


def from_hf_json(pre_tokenizer: dict[str, Any] | None, normalizer: dict[str, Any] | None,
                 *, byte_level: bool, name: str = "custom") -> Pretokenizer:
    """Build the pre-tokenizer a ``tokenizer.json`` declares (its ``pre_tokenizer`` and
    ``normalizer`` objects). Unsupported step types raise, naming the type."""
    steps = tuple(_hf_steps(pre_tokenizer)) if pre_tokenizer else ()
    norm = _hf_normalizer(normalizer)
    family = _family_name(steps, byte_level) or name
    return Pretokenizer(family, steps, norm, byte_level, description=pre_tokenizer or {})


def _hf_steps(spec: dict[str, Any]) -> Iterator[Step]:
    kind = spec.get("type")
    if kind == "Sequence":
        for sub in spec.get("pretokenizers", []):
            yield from _hf_steps(sub)
    elif kind == "ByteLevel":
        yield ByteLevelSplit(bool(spec.get("add_prefix_space", False)),
                             bool(spec.get("use_regex", True)))
    elif kind == "Split":
        pattern = spec.get("pattern", {})
        if "Regex" in pattern:
            pat = pattern["Regex"]
        elif "String" in pattern:
            pat = regex.escape(pattern["String"])
        else:
            raise TokenizerFormatError(f"Split pre-tokenizer without a pattern: {spec}")
        behavior = _HF_BEHAVIORS.get(spec.get("behavior", "Isolated"))
        if behavior is None:
            raise TokenizerFormatError(f"unsupported Split behavior {spec.get('behavior')!r}")
        yield RegexSplit(pat, behavior, bool(spec.get("invert", False)))
    elif kind == "Digits":
        yield DigitsSplit(bool(spec.get("individual_digits", False)))
    elif kind == "Metaspace":
        prepend = spec.get("prepend_scheme")
        if prepend is None:
            prepend = "always" if spec.get("add_prefix_space", True) else "never"
        yield MetaspaceSplit(prepend, bool(spec.get("split", True)))
    else:
        raise TokenizerFormatError(
            f"pre-tokenizer type {kind!r} is not supported; tokmix reproduces ByteLevel, Split, "
            "Digits, Metaspace and Sequences of them"
        )


def _hf_normalizer(spec: dict[str, Any] | None) -> Normalizer:
    if not spec:
        return "none"
    kind = spec.get("type")
    simple: dict[str, Normalizer] = {"NFC": "nfc", "NFKC": "nfkc", "NFD": "nfd", "NFKD": "nfkd"}
    if kind in simple:
        return simple[kind]
    if kind == "Sequence" and not spec.get("normalizers"):
        return "none"
    raise TokenizerFormatError(
        f"normalizer {kind!r} is not supported for replay; tokmix handles none, NFC, NFKC, NFD "
        "and NFKD (SentencePiece space handling is part of its pre-tokenizer)"
    )


def _family_name(steps: Sequence[Step], byte_level: bool) -> str | None:
    """Name a pipeline after the known family it equals, so reports read naturally."""
    for fam in FAMILIES.values():
        if fam.byte_level == byte_level and fam.steps == tuple(steps):
            return fam.name
    if steps == (ByteLevelSplit(False, True),):
        return "gpt2"
    return None
