"""GPT-2's ``vocab.json`` (``encoder.json``) + ``merges.txt`` (``vocab.bpe``) pair.

The pair carries no pre-tokenizer (GPT-2's regex is assumed, and said so) and no mark for
special tokens (``<|...|>`` entries no merge makes are taken as special). The encoder is a
``tokenizers`` BPE model over the merge list, as for a byte-level ``tokenizer.json``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tokmix.bpe.byte_level import Pairs, unbyte_merges, unbyte_vocab
from tokmix.bpe.encoders import HfWordEncoder
from tokmix.bpe.formats.base import (
    Detection,
    Evidence,
    Source,
    TokenizerFormat,
    parse_json,
    read_file,
    string_vocab,
    with_override,
)
from tokmix.bpe.formats.merge_lists import byte_level_lists, examples
from tokmix.bpe.pretokenizers import GPT2
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

NAME = "gpt2-vocab-merges"
_GPT2_SPECIAL = re.compile(r"<\|[^|]+\|>")


def _find_in(folder: Path) -> tuple[Source, ...]:
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    return (_pair_source(vocab, merges),) if vocab.is_file() and merges.is_file() else ()


def _detect(path: Path, head: bytes) -> Detection | None:
    """``merges.txt`` (or ``vocab.json`` with one beside it) by name; a ``#version`` first line
    by content."""
    if path.name == "merges.txt":
        return Detection(_pair_source(path.with_name("vocab.json"), path), Evidence.FILE_NAME)
    if path.name == "vocab.json" and path.with_name("merges.txt").is_file():
        return Detection(_pair_source(path, path.with_name("merges.txt")), Evidence.FILE_NAME)
    if head.startswith(b"#version"):
        return Detection(_pair_source(path.with_name("vocab.json"), path), Evidence.CONTENT)
    return None


def _pair_source(vocab: Path, merges: Path) -> Source:
    if not vocab.is_file():
        raise TokenizerFormatError(
            f"{merges}: a GPT-2 merges file needs its vocab.json beside it; {vocab} is missing"
        )
    return Source(NAME, (vocab, merges), merges.resolve().parent.name)


def _load_vocab_merges(source: Source, override: str | None) -> LoadedTokenizer:
    """GPT-2's ``vocab.json`` (``encoder.json``) and ``merges.txt`` (``vocab.bpe``) pair."""
    vocab_path, merges_path = source.files
    vocab_data, merges_data = read_file(vocab_path), read_file(merges_path)
    raw_vocab = parse_json(vocab_data, vocab_path)
    if not isinstance(raw_vocab, dict):
        raise TokenizerFormatError(f"{vocab_path}: not a token -> id object")
    vocab = unbyte_vocab(string_vocab(raw_vocab, vocab_path), vocab_path)
    merges = unbyte_merges(_merges_txt(merges_data, merges_path), merges_path)
    notes = list(source.notes)
    vocab = _drop_gpt2_specials(vocab, merges, notes)
    lists = byte_level_lists(vocab, merges, merges_path)
    if override is None:
        notes.append(
            "vocab.json + merges.txt carry no pre-tokenizer; GPT-2's regex assumed "
            "(pass pretokenizer= to choose another)"
        )
    digest = hashlib.sha256(vocab_data)
    digest.update(merges_data)
    return LoadedTokenizer(
        name=source.name,
        path=str(merges_path),
        format=NAME,
        sha256=digest.hexdigest(),
        merge_list=lists.merge_list,
        pretokenizer=with_override(GPT2, override, True, merges_path),
        vocab=vocab,
        encoding_merges=lists.encoding_merges,
        notes=(
            *notes,
            f"vocabulary from {vocab_path.name}; sha256 covers both files",
            *lists.notes,
        ),
    )


def _merges_txt(data: bytes, path: Path) -> list[tuple[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenizerFormatError(f"{path}: not UTF-8 text ({exc})") from None
    out: list[tuple[str, str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if (n == 1 and line.startswith("#version")) or not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerFormatError(f"{path}: line {n} is not a merge 'a b': {line[:80]!r}")
        out.append((parts[0], parts[1]))
    if not out:
        raise TokenizerFormatError(f"{path}: no merges found")
    return out


def _drop_gpt2_specials(
    vocab: dict[bytes, int], merges: Pairs, notes: list[str]
) -> dict[bytes, int]:
    """``<|endoftext|>``-style entries that no merge makes are special tokens (vocab.json has no
    other way to mark them)."""
    made = {a + b for a, b in merges}
    specials = [t for t in vocab if t not in made and _GPT2_SPECIAL.fullmatch(t.decode("latin-1"))]
    if specials:
        notes.append(f"special tokens excluded from vocab: {examples(specials)}")
    dropped = set(specials)
    return {t: i for t, i in vocab.items() if t not in dropped}


FORMAT = TokenizerFormat(
    name=NAME,
    label="vocab.json + merges.txt",
    find_in=_find_in,
    detect=_detect,
    load=_load_vocab_merges,
    word_encoder=HfWordEncoder,
)
