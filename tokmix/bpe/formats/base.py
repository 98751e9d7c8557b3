"""The tokenizer-format plugin interface and what every format's loader shares.

A format is a :class:`TokenizerFormat` value (see the package docstring for the contract); this
module holds the types of that contract and the small helpers every loader needs: reading a
local file, parsing JSON, naming a tokenizer, applying a caller's pre-tokenizer override.
Nothing here knows a particular format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokmix.bpe.pretokenizers import Pretokenizer, named
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

if TYPE_CHECKING:
    from tokmix.bpe.encoders import WordEncoder

HEAD_BYTES = 4096
"""How much of a file detection sees (:attr:`TokenizerFormat.detect`'s ``head``)."""

GENERIC_STEMS = frozenset(
    {"tokenizer", "vocab", "merges", "encoder", "spiece", "sentencepiece", "sentencepiece.bpe"}
)
"""File stems that say nothing about the tokenizer: such a file is named after its folder."""


class Evidence(IntEnum):
    """How sure a detection is; the strongest wins, ties go to the earlier registry entry."""

    GUESS = 0
    """Nothing else claimed the file; try this format and say so if it fails."""
    CONTENT = 1
    """The first bytes look like this format (used when no name says anything)."""
    SUFFIX = 2
    """The file's suffix is this format's (``.json``, ``.tiktoken``, ``.model``)."""
    FILE_NAME = 3
    """The file's whole name is this format's (``merges.txt``)."""
    SIGNATURE = 4
    """The content is unmistakably this format, whatever the name says (a magic number, a
    line syntax no other format has): it overrides a misleading name."""


class NotThisFormat(TokenizerFormatError):
    """A loader found that a guessed file (:attr:`Source.guessed`) is not of its format; the
    dispatcher turns it into "not a tokenizer file tokmix knows"."""


@dataclass(frozen=True)
class Source:
    """What detection decided to read: the format's name, its file(s), a tokenizer name, notes."""

    format: str
    files: tuple[Path, ...]
    name: str
    notes: tuple[str, ...] = ()
    guessed: bool = False
    """The format was guessed (nothing claimed the file); its loader words errors accordingly."""


@dataclass(frozen=True)
class Detection:
    """A format's claim on a file: the source it would load and how sure it is."""

    source: Source
    evidence: Evidence


def listed_merges(tokenizer: LoadedTokenizer) -> Iterable[tuple[bytes, bytes]]:
    """The merges a merge-list encoder applies: exactly its file's list, redundant splits
    included (the default :attr:`TokenizerFormat.encoder_merges`)."""
    return tokenizer.encoding_merges or tokenizer.merge_list.merges


@dataclass(frozen=True)
class TokenizerFormat:
    """One tokenizer file format: how to find it, load it, and encode with it.

    See the package docstring (:mod:`tokmix.bpe.formats`) for the contract of each field.
    """

    name: str
    """The value of :attr:`LoadedTokenizer.format` (``hf-json``, ``tiktoken``, ...)."""
    label: str
    """How messages name its files (``tokenizer.json``, ``*.tiktoken``)."""
    find_in: Callable[[Path], tuple[Source, ...]]
    """The candidate sources of this format in a directory (several: an error naming them)."""
    detect: Callable[[Path, bytes], Detection | None]
    """Whether a file (its path and first :data:`HEAD_BYTES` bytes) is of this format."""
    load: Callable[[Source, str | None], LoadedTokenizer]
    """Read the source's files into a :class:`LoadedTokenizer`; the second argument is the
    caller's pre-tokenizer override (a family name) or None."""
    word_encoder: Callable[[LoadedTokenizer], WordEncoder]
    """The encoder that encodes pre-tokens exactly as the format's own library does."""
    encoder_merges: Callable[[LoadedTokenizer], Iterable[tuple[bytes, bytes]]] = listed_merges
    """Every merge the format's encoder can apply (under-trained token analysis)."""


# ------------------------------------------------------------------ files


def read_file(path: Path) -> bytes:
    """A local file's bytes; a missing, unreadable or empty file is a format error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenizerFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise TokenizerFormatError(f"{path}: the file is empty (0 bytes)")
    return data


def read_head(path: Path) -> bytes:
    """The first :data:`HEAD_BYTES` bytes of a local file (empty for an empty file)."""
    try:
        with path.open("rb") as f:
            return f.read(HEAD_BYTES)
    except OSError as exc:
        raise TokenizerFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None


def parse_json(data: bytes, path: Path) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerFormatError(
            f"{path}: not valid JSON ({exc}); starts with {data[:40]!r}"
        ) from None


def name_of(path: Path) -> str:
    """The file's stem, or its directory's name when the stem says nothing (``tokenizer``)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.resolve().parent.name if stem.lower() in GENERIC_STEMS else stem


def single_source(fmt: str, path: Path) -> Source:
    """The source of a one-file format, named after the file."""
    return Source(fmt, (path,), name_of(path))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def string_vocab(raw: Any, path: Path) -> dict[str, int]:
    """A JSON token -> id object, checked."""
    if not isinstance(raw, dict) or not raw:
        raise TokenizerFormatError(f"{path}: the BPE vocabulary is missing or not an object")
    bad = next(((t, i) for t, i in raw.items() if not isinstance(i, int)), None)
    if bad is not None:
        raise TokenizerFormatError(f"{path}: vocabulary entry {bad[0]!r} has id {bad[1]!r}")
    return dict(raw)


# ------------------------------------------------------------------ pre-tokenizers


def with_override(
    default: Pretokenizer | None, override: str | None, byte_level: bool, path: Path
) -> Pretokenizer:
    """The file's pre-tokenizer, or the named family the caller asked for instead."""
    if override is None:
        if default is None:
            raise TokenizerFormatError(f"{path}: no pre-tokenizer known; pass pretokenizer=")
        return default
    chosen = named(override)
    if chosen.byte_level != byte_level:
        kind = "byte-level" if byte_level else "character-level (SentencePiece)"
        raise TokenizerFormatError(
            f"{path}: pre-tokenizer {override!r} does not fit a {kind} tokenizer"
        )
    return chosen
