"""Tokenizer loaders: released tokenizer files reduced to a :class:`LoadedTokenizer` (DESIGN §2).

Formats, all read offline from local files:

- Hugging Face ``tokenizer.json`` with a BPE model, byte-level (GPT-2 byte-to-unicode alphabet)
  or SentencePiece-style (``▁``, byte fallback); merges as ``"a b"`` strings or ``["a", "b"]``.
- GPT-2 ``vocab.json`` + ``merges.txt``.
- tiktoken rank files (``base64-token rank`` lines): merges recovered from the ranks.
- SentencePiece BPE ``.model`` files (protobuf).

Whatever the format, ``merge_list`` is the replay list: one merge per produced token, in training
order. Lists that carry several merges per token (SentencePiece conversions, Llama 3, gpt-oss)
are cleaned for replay and kept whole in ``encoding_merges``, because the tokenizer's own
encoder needs every one of them. Tokens no merge of earlier tokens can make are reported in
``MergeList.unreachable`` and in the notes, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokmix.bpe.merges import BYTE_ALPHABET, MergeList
from tokmix.bpe.pretokenizers import (
    CL100K,
    GPT2,
    O200K,
    SENTENCEPIECE,
    SENTENCEPIECE_DIGITS,
    DigitsSplit,
    MetaspaceSplit,
    Normalizer,
    Pretokenizer,
    SentencePieceRunsSplit,
    Step,
    from_hf_json,
    named,
)
from tokmix.bpe.sentencepiece_model import (
    BYTE,
    NORMAL,
    UNKNOWN,
    USER_DEFINED,
    CharMerges,
    SentencePieceModel,
    hf_style_merges,
    parse_model,
    replay_merges,
    score_order,
)
from tokmix.bpe.tiktoken_ranks import parse_tiktoken_ranks, recover_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

__all__ = ["bytes_to_unicode", "load_tokenizer"]

METASPACE = "\u2581"
PRIORITY = "tokenizer.json, vocab.json + merges.txt, *.tiktoken, *.model"
_GENERIC_STEMS = frozenset(
    {"tokenizer", "vocab", "merges", "encoder", "spiece", "sentencepiece", "sentencepiece.bpe"}
)
_TIKTOKEN_FAMILIES = (
    ("r50k", GPT2),
    ("p50k", GPT2),
    ("gpt2", GPT2),
    ("cl100k", CL100K),
    ("o200k", O200K),
)
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")
_GPT2_SPECIAL = re.compile(r"<\|[^|]+\|>")
_TIKTOKEN_LINE = re.compile(rb"[A-Za-z0-9+/]+=*[ \t]+[0-9]+")

Pairs = list[tuple[bytes, bytes]]


def load_tokenizer(path: str | Path, *, pretokenizer: str | None = None) -> LoadedTokenizer:
    """Load a BPE tokenizer from a file, or from a directory holding one.

    In a directory the first format found wins, in the order ``tokenizer.json``,
    ``vocab.json`` + ``merges.txt``, ``*.tiktoken``, ``*.model`` (the notes say when others were
    there). ``pretokenizer`` names a known family (``gpt2``, ``cl100k``, ``o200k``, ...) to use
    instead of the file's; tiktoken files whose name does not reveal their regex need it.
    Raises :class:`TokenizerFormatError` for a missing, empty, unreadable or non-BPE file.
    ``s3://`` (any fsspec URL) files and prefixes are copied to a local cache first.
    """
    if "://" in str(path):
        from tokmix.io.fs import local_copy

        try:
            path = local_copy(str(path))
        except FileNotFoundError as exc:
            raise TokenizerFormatError(f"{exc}; check the tokenizer URL") from None
    source = _resolve(Path(path))
    loader = {
        "hf-json": _load_hf_json,
        "gpt2-vocab-merges": _load_vocab_merges,
        "tiktoken": _load_tiktoken,
        "sentencepiece": _load_sentencepiece,
    }[source.format]
    return loader(source, pretokenizer)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, the alphabet of byte-level ``tokenizer.json``
    and ``vocab.json`` files (``Ġ`` is the space byte)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _byte_decode_table() -> dict[int, int]:
    """``str.translate`` table from byte-level characters to code points 0-255; characters of
    the Latin-1 range that are not in the alphabet map out of range, so encoding then fails."""
    table = {ord(ch): b for b, ch in bytes_to_unicode().items()}
    for cp in range(256):
        table.setdefault(cp, 0x10FFFF)
    return table


_BYTE_DECODE = _byte_decode_table()


# ------------------------------------------------------------------ file resolution


@dataclass(frozen=True)
class _Source:
    """What :func:`_resolve` decided to read: the format, its file(s), a name, and why."""

    format: str
    files: tuple[Path, ...]
    name: str
    notes: tuple[str, ...] = ()
    guessed: bool = False
    """The format was guessed from the content (the file name said nothing)."""


def _resolve(path: Path) -> _Source:
    if not path.exists():
        raise TokenizerFormatError(f"{path}: no such file or directory")
    if path.is_dir():
        return _resolve_dir(path)
    return _resolve_file(path)


def _resolve_dir(folder: Path) -> _Source:
    """Pick the tokenizer file of a directory by format priority (see :func:`load_tokenizer`)."""
    found = _formats_in(folder)
    if not found:
        listing = ", ".join(sorted(p.name for p in folder.iterdir())[:20]) or "nothing"
        raise TokenizerFormatError(
            f"{folder}: no tokenizer file found (looked for {PRIORITY}); it holds: {listing}"
        )
    fmt, files, label = found[0]
    if fmt in ("tiktoken", "sentencepiece") and len(files) > 1:
        names = ", ".join(f.name for f in files)
        raise TokenizerFormatError(
            f"{folder}: several {label} files ({names}); pass the path of the one to load"
        )
    notes: tuple[str, ...] = ()
    if len(found) > 1:
        others = ", ".join(lab for _, _, lab in found[1:])
        notes = (f"{folder} also holds {others}; loaded {label} (priority: {PRIORITY})",)
    return _Source(fmt, files, folder.resolve().name, notes)


def _formats_in(folder: Path) -> list[tuple[str, tuple[Path, ...], str]]:
    found: list[tuple[str, tuple[Path, ...], str]] = []
    if (folder / "tokenizer.json").is_file():
        found.append(("hf-json", (folder / "tokenizer.json",), "tokenizer.json"))
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    if vocab.is_file() and merges.is_file():
        found.append(("gpt2-vocab-merges", (vocab, merges), "vocab.json + merges.txt"))
    for fmt, pattern in (("tiktoken", "*.tiktoken"), ("sentencepiece", "*.model")):
        files = tuple(sorted(p for p in folder.glob(pattern) if p.is_file()))
        if files:
            found.append((fmt, files, pattern))
    return found


def _resolve_file(path: Path) -> _Source:
    """Tell a file's format from its name, or from its first bytes when the name is silent."""
    suffix = path.suffix.lower()
    if path.name == "merges.txt":
        return _pair_source(path.with_name("vocab.json"), path)
    if path.name == "vocab.json" and path.with_name("merges.txt").is_file():
        return _pair_source(path, path.with_name("merges.txt"))
    by_suffix = {".json": "hf-json", ".tiktoken": "tiktoken", ".model": "sentencepiece"}
    if suffix in by_suffix:
        return _Source(by_suffix[suffix], (path,), _name_of(path))
    head = _read(path)[:4096]
    if head.lstrip().startswith(b"{"):
        return _Source("hf-json", (path,), _name_of(path))
    if head.startswith(b"#version"):
        return _pair_source(path.with_name("vocab.json"), path)
    if _TIKTOKEN_LINE.fullmatch(head.split(b"\n", 1)[0].strip()):
        return _Source("tiktoken", (path,), _name_of(path))
    return _Source("sentencepiece", (path,), _name_of(path), guessed=True)


def _pair_source(vocab: Path, merges: Path) -> _Source:
    if not vocab.is_file():
        raise TokenizerFormatError(
            f"{merges}: a GPT-2 merges file needs its vocab.json beside it; {vocab} is missing"
        )
    return _Source("gpt2-vocab-merges", (vocab, merges), merges.resolve().parent.name)


def _name_of(path: Path) -> str:
    """The file's stem, or its directory's name when the stem says nothing (``tokenizer``)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.resolve().parent.name if stem.lower() in _GENERIC_STEMS else stem


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TokenizerFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise TokenizerFormatError(f"{path}: the file is empty (0 bytes)")
    return data


def _parse_json(data: bytes, path: Path) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerFormatError(
            f"{path}: not valid JSON ({exc}); starts with {data[:40]!r}"
        ) from None


# ------------------------------------------------------------------ pre-tokenizers


def _with_override(
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


def _sentencepiece_pretokenizer(
    split_digits: bool, dummy_prefix: bool, normalizer: Normalizer
) -> Pretokenizer:
    """The ``▁`` pre-tokenizer, the named constant whenever the settings are the usual ones (so
    tokenizers that split alike share word tables)."""
    family = SENTENCEPIECE_DIGITS if split_digits else SENTENCEPIECE
    if dummy_prefix and normalizer == "none":
        return family
    steps = tuple(
        MetaspaceSplit("never", s.split)
        if isinstance(s, MetaspaceSplit) and not dummy_prefix
        else s
        for s in family.steps
    )
    return Pretokenizer(family.name, steps, normalizer, byte_level=False)


def _sentencepiece_encoding_pretokenizer(
    split_digits: bool, dummy_prefix: bool, normalizer: Normalizer
) -> Pretokenizer:
    """The word split of SentencePiece's encoder (``▁`` runs stay with the next word, the dummy
    prefix always added): what token statistics need, see :class:`SentencePieceRunsSplit`."""
    steps: tuple[Step, ...] = (SentencePieceRunsSplit("always" if dummy_prefix else "never"),)
    if split_digits:
        steps += (DigitsSplit(True),)
    name = "sentencepiece-digits-encode" if split_digits else "sentencepiece-encode"
    return Pretokenizer(name, steps, normalizer, byte_level=False)


def _tiktoken_family(path: Path, override: str | None) -> Pretokenizer:
    if override is not None:
        return _with_override(None, override, True, path)
    stem = path.name.lower()
    for key, family in _TIKTOKEN_FAMILIES:
        if key in stem:
            return family
    raise TokenizerFormatError(
        f"{path}: a tiktoken file carries no pre-tokenizer regex and its name names no known "
        "family (r50k, p50k, gpt2, cl100k, o200k); pass pretokenizer= (e.g. 'cl100k', 'o200k')"
    )


# ------------------------------------------------------------------ merge lists


def _merge_list(path: Path, **kwargs: Any) -> MergeList:
    """Build a :class:`MergeList`, naming the file if the list is inconsistent."""
    try:
        return MergeList(**kwargs)
    except TokenizerFormatError as exc:
        raise TokenizerFormatError(f"{path}: {exc}") from None


def _char_merge_list(cleaned: CharMerges, path: Path) -> MergeList:
    """The replay list of a SentencePiece-style vocabulary, cleaned to one merge per piece."""
    return _merge_list(
        path,
        base=_utf8(cleaned.base, path),
        merges=_utf8_pairs(cleaned.merges, path),
        alphabet="chars",
        unreachable=_utf8(cleaned.unreachable, path),
    )


def _is_redundant(merges: Sequence[tuple[Any, Any]]) -> bool:
    """Several merges make the same token: the file lists splits, not the training order."""
    return len({left + right for left, right in merges}) < len(merges)


@dataclass(frozen=True)
class _Lists:
    merge_list: MergeList
    encoding_merges: tuple[tuple[bytes, bytes], ...] | None
    notes: tuple[str, ...]


def _byte_level_lists(vocab: Mapping[bytes, int], merges: Pairs, path: Path) -> _Lists:
    """Replay list of a byte-level vocabulary and merge list (HF json or vocab.json pair).

    A one-merge-per-token list is used as is, in file order. A redundant list (Llama 3 style)
    is replaced by the order recovered from the vocabulary ids, exactly as for tiktoken ranks,
    and kept whole for encoding.
    """
    if not _is_redundant(merges):
        made = {left + right for left, right in merges}
        unreachable = tuple(t for t in _by_id(vocab) if len(t) >= 2 and t not in made)
        ml = _merge_list(
            path,
            base=BYTE_ALPHABET,
            merges=tuple(merges),
            alphabet="bytes",
            unreachable=unreachable,
        )
        return _Lists(ml, None, _unreachable_notes(unreachable, "no merge in the file makes"))
    rec = recover_merges(vocab)
    ml = _merge_list(
        path, base=BYTE_ALPHABET, merges=rec.merges, alphabet="bytes", unreachable=rec.unreachable
    )
    notes = [
        f"redundant merge list ({len(merges)} merges for "
        f"{len({a + b for a, b in merges})} tokens): training order recovered from vocabulary "
        f"ids ({len(rec.merges)} merges); the full list is kept in encoding_merges"
    ]
    listed = set(merges)
    outside = sum(1 for pair in rec.merges if pair not in listed)
    if outside:
        notes.append(f"{outside} recovered merges are not in the file's merge list")
    notes += _recovery_notes(rec.non_binary, rec.unreachable)
    return _Lists(ml, tuple(merges), tuple(notes))


def _char_level_lists(
    vocab: Mapping[str, int], merges: list[tuple[str, str]], path: Path
) -> _Lists:
    """Replay list of a SentencePiece-style (character alphabet) vocabulary and merge list.

    The alphabet is the single-character tokens. A redundant list (a SentencePiece conversion)
    is cleaned as a ``.model`` is: tokens in the order their first merge appears (the file is
    sorted by piece score), each made by the split whose parts exist earliest.
    """
    base = [t for t in _by_id(vocab) if len(t) == 1]
    if not _is_redundant(merges):
        made = {left + right for left, right in merges}
        unreachable = [t for t in _by_id(vocab) if len(t) >= 2 and t not in made]
        ml = _merge_list(
            path,
            base=_utf8(base, path),
            merges=_utf8_pairs(merges, path),
            alphabet="chars",
            unreachable=_utf8(unreachable, path),
        )
        return _Lists(ml, None, _unreachable_notes(unreachable, "no merge in the file makes"))
    order = list(dict.fromkeys(left + right for left, right in merges))
    in_order = set(order)
    order += [t for t in _by_id(vocab) if len(t) >= 2 and t not in in_order]
    cleaned = replay_merges(order, base)
    ml = _char_merge_list(cleaned, path)
    notes = [
        f"redundant merge list ({len(merges)} merges for {len(in_order)} tokens, as "
        f"SentencePiece conversions write): one merge per token kept for replay "
        f"({len(cleaned.merges)}); the full list is kept in encoding_merges",
        *_unreachable_notes(cleaned.unreachable, "no merge of two earlier tokens makes"),
    ]
    return _Lists(ml, _utf8_pairs(merges, path), tuple(notes))


def _by_id(vocab: Mapping[Any, int]) -> list[Any]:
    return sorted(vocab, key=vocab.__getitem__)


def _recovery_notes(non_binary: Sequence[bytes], unreachable: Sequence[bytes]) -> list[str]:
    notes = []
    if non_binary:
        notes.append(
            f"{len(non_binary)} tokens do not BPE-encode into two parts with lower ranks; each "
            f"was given the split into earlier tokens that exist earliest (e.g. "
            f"{_examples(non_binary)})"
        )
    return notes + list(_unreachable_notes(unreachable, "no merge of two earlier tokens makes"))


def _unreachable_notes(tokens: Sequence[bytes | str], why: str) -> tuple[str, ...]:
    if not tokens:
        return ()
    return (
        f"{len(tokens)} vocabulary tokens are unreachable ({why} them), listed in "
        f"merge_list.unreachable and not replayed (e.g. {_examples(tokens)})",
    )


def _examples(tokens: Sequence[bytes | str], n: int = 5) -> str:
    return ", ".join(repr(t) for t in tokens[:n])


def _utf8(tokens: Iterable[str], path: Path) -> tuple[bytes, ...]:
    try:
        return tuple(t.encode("utf-8") for t in tokens)
    except UnicodeEncodeError as exc:
        raise TokenizerFormatError(f"{path}: a token is not valid Unicode ({exc})") from None


def _utf8_pairs(pairs: Iterable[tuple[str, str]], path: Path) -> tuple[tuple[bytes, bytes], ...]:
    try:
        return tuple((a.encode("utf-8"), b.encode("utf-8")) for a, b in pairs)
    except UnicodeEncodeError as exc:
        raise TokenizerFormatError(f"{path}: a merge is not valid Unicode ({exc})") from None


def _unbyte(token: str, path: Path) -> bytes:
    """A byte-level token string (``Ġthe``) as the bytes it stands for (`` the``)."""
    try:
        return token.translate(_BYTE_DECODE).encode("latin-1")
    except UnicodeEncodeError:
        raise TokenizerFormatError(
            f"{path}: token {token!r} has characters outside the GPT-2 byte-level alphabet"
        ) from None


def _unbyte_vocab(vocab: Mapping[str, int], path: Path) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for token, idx in vocab.items():
        raw = _unbyte(token, path)
        if raw in out:
            raise TokenizerFormatError(f"{path}: two tokens stand for the bytes {raw!r}")
        out[raw] = idx
    return out


def _unbyte_merges(merges: Iterable[tuple[str, str]], path: Path) -> Pairs:
    cache: dict[str, bytes] = {}

    def unbyte(part: str) -> bytes:
        raw = cache.get(part)
        if raw is None:
            raw = cache[part] = _unbyte(part, path)
        return raw

    return [(unbyte(a), unbyte(b)) for a, b in merges]


# ------------------------------------------------------------------ HF tokenizer.json


def _load_hf_json(source: _Source, override: str | None) -> LoadedTokenizer:
    """A Hugging Face ``tokenizer.json`` with a BPE model, byte-level or SentencePiece-style."""
    path = source.files[0]
    data = _read(path)
    doc = _parse_json(data, path)
    model = _hf_bpe_model(doc, path)
    raw_vocab = _string_vocab(model.get("vocab"), path)
    added = {str(t.get("content")) for t in doc.get("added_tokens") or []}
    vocab = {t: i for t, i in raw_vocab.items() if t not in added}
    merges = _merge_entries(model.get("merges"), path)
    notes = list(source.notes) + _model_option_notes(model, len(raw_vocab) - len(vocab))
    encoding_pretok: Pretokenizer | None = None
    if _is_byte_level(doc):
        byte_vocab = _unbyte_vocab(vocab, path)
        lists = _byte_level_lists(byte_vocab, _unbyte_merges(merges, path), path)
        pre = _hf_pretokenizer(doc, path, byte_level=True)
        pretok = _with_override(pre, override, True, path)
    else:
        char_vocab = _drop_byte_pieces(vocab, model, notes)
        byte_vocab = dict(zip(_utf8(char_vocab, path), char_vocab.values(), strict=True))
        lists = _char_level_lists(char_vocab, merges, path)
        pre = _hf_sentencepiece_pretokenizer(doc, path, notes)
        pretok = _with_override(pre, override, False, path)
        if override is None:
            encoding_pretok = _hf_sentencepiece_encoding_pretokenizer(doc, pre)
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format="hf-json",
        sha256=_sha256(data),
        merge_list=lists.merge_list,
        pretokenizer=pretok,
        vocab=byte_vocab,
        encoding_merges=lists.encoding_merges,
        notes=tuple(notes) + lists.notes,
        encoding_pretokenizer=encoding_pretok,
        **_hf_encoder_options(model, raw_vocab, byte_level=_is_byte_level(doc)),
    )


def _hf_encoder_options(
    model: dict[str, Any], raw_vocab: dict[str, int], *, byte_level: bool
) -> dict[str, Any]:
    """What the file's BPE encoder does beyond merging: byte fallback, the unknown token,
    ``ignore_merges`` (token statistics must encode exactly as the library does)."""
    unk = model.get("unk_token")
    unk_id = raw_vocab.get(unk) if isinstance(unk, str) else None
    byte_pieces: dict[int, int] = {}
    if not byte_level and model.get("byte_fallback"):
        byte_pieces = {int(t[3:5], 16): i for t, i in raw_vocab.items() if _BYTE_PIECE.fullmatch(t)}
    return {
        "byte_fallback": bool(model.get("byte_fallback")) and not byte_level,
        "byte_pieces": byte_pieces,
        "unk_token": unk.encode("utf-8") if isinstance(unk, str) and unk_id is not None else None,
        "unk_id": unk_id,
        "fuse_unk": bool(model.get("fuse_unk")),
        "ignore_merges": bool(model.get("ignore_merges")),
    }


def _hf_bpe_model(doc: Any, path: Path) -> dict[str, Any]:
    """The ``model`` object of a ``tokenizer.json``, checked to be BPE."""
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        if isinstance(doc, dict) and doc and all(isinstance(v, int) for v in doc.values()):
            raise TokenizerFormatError(
                f"{path}: a plain vocabulary (GPT-2 vocab.json?) with no merges; pass the "
                "directory that holds it and merges.txt"
            )
        found = f"keys {sorted(doc)[:8]}" if isinstance(doc, dict) else type(doc).__name__
        raise TokenizerFormatError(
            f"{path}: not a Hugging Face tokenizer.json (no 'model' object; found {found})"
        )
    model: dict[str, Any] = doc["model"]
    kind = model.get("type") or _untyped_model_kind(model)
    if kind != "BPE":
        raise TokenizerFormatError(
            f"{path}: the tokenizer model is {kind}, not BPE; tokmix infers mixtures from BPE "
            "merge lists only"
        )
    for option in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(option):
            raise TokenizerFormatError(
                f"{path}: BPE with {option}={model[option]!r} is not supported (its merges "
                "act on marked subwords that replay does not model)"
            )
    return model


def _untyped_model_kind(model: dict[str, Any]) -> str:
    """Older ``tokenizer.json`` files omit ``model.type``; tell the model from its fields."""
    if "merges" in model:
        return "BPE"
    if isinstance(model.get("vocab"), list):
        return "Unigram"
    if "max_input_chars_per_word" in model:
        return "WordPiece"
    return "WordLevel" if "vocab" in model else "an unknown model"


def _string_vocab(raw: Any, path: Path) -> dict[str, int]:
    if not isinstance(raw, dict) or not raw:
        raise TokenizerFormatError(f"{path}: the BPE vocabulary is missing or not an object")
    bad = next(((t, i) for t, i in raw.items() if not isinstance(i, int)), None)
    if bad is not None:
        raise TokenizerFormatError(f"{path}: vocabulary entry {bad[0]!r} has id {bad[1]!r}")
    return dict(raw)


def _merge_entries(raw: Any, path: Path) -> list[tuple[str, str]]:
    """Merges written as ``"a b"`` strings or as ``["a", "b"]`` lists."""
    if not isinstance(raw, list):
        raise TokenizerFormatError(f"{path}: the BPE model has no merges list")
    out: list[tuple[str, str]] = []
    for n, entry in enumerate(raw, start=1):
        parts = entry.split(" ") if isinstance(entry, str) else entry
        if (
            not isinstance(parts, list)
            or len(parts) != 2
            or not all(isinstance(p, str) and p for p in parts)
        ):
            raise TokenizerFormatError(
                f"{path}: merge {n} is neither 'a b' nor ['a', 'b']: {entry!r}"
            )
        out.append((parts[0], parts[1]))
    return out


def _model_option_notes(model: dict[str, Any], n_special: int) -> list[str]:
    notes = []
    if n_special:
        notes.append(f"{n_special} added/special tokens excluded from vocab")
    if model.get("dropout"):
        notes.append(f"BPE dropout {model['dropout']} ignored (replay is deterministic)")
    if model.get("ignore_merges"):
        notes.append(
            "ignore_merges: the encoder takes a pre-token that is itself a vocabulary token "
            "whole, before any merge; encoding with encoding_merges alone differs on such words"
        )
    return notes


def _is_byte_level(doc: dict[str, Any]) -> bool:
    """GPT-2 byte alphabet: a ``ByteLevel`` pre-tokenizer or decoder says so."""
    return _has_type(doc.get("pre_tokenizer"), "ByteLevel") or _has_type(
        doc.get("decoder"), "ByteLevel"
    )


def _has_type(spec: Any, kind: str) -> bool:
    return bool(_steps_of_type(spec, kind))


def _steps_of_type(spec: Any, kind: str) -> list[dict[str, Any]]:
    """Every step of ``kind`` in a (possibly nested) ``Sequence`` of HF components."""
    if not isinstance(spec, dict):
        return []
    if spec.get("type") == kind:
        return [spec]
    found: list[dict[str, Any]] = []
    for key in ("pretokenizers", "decoders", "normalizers"):
        for sub in spec.get(key) or []:
            found += _steps_of_type(sub, kind)
    return found


def _hf_pretokenizer(doc: dict[str, Any], path: Path, *, byte_level: bool) -> Pretokenizer:
    try:
        return from_hf_json(doc.get("pre_tokenizer"), doc.get("normalizer"), byte_level=byte_level)
    except TokenizerFormatError as exc:
        raise TokenizerFormatError(f"{path}: {exc}") from None


def _drop_byte_pieces(
    vocab: dict[str, int], model: dict[str, Any], notes: list[str]
) -> dict[str, int]:
    """Byte-fallback tokens ``<0xXX>`` are bytes, not merge symbols: left out of the vocab."""
    if not model.get("byte_fallback"):
        return vocab
    kept = {t: i for t, i in vocab.items() if not _BYTE_PIECE.fullmatch(t)}
    if len(kept) < len(vocab):
        notes.append(f"{len(vocab) - len(kept)} byte-fallback tokens <0xXX> excluded from vocab")
    return kept


def _hf_sentencepiece_pretokenizer(
    doc: dict[str, Any], path: Path, notes: list[str]
) -> Pretokenizer:
    """The pre-tokenizer of a character-level ``tokenizer.json``.

    SentencePiece conversions express ``▁`` handling either as a ``Metaspace`` pre-tokenizer
    or as ``Prepend("▁")`` + ``Replace(" ", "▁")`` normalizers; both become the SentencePiece
    family (words split before each ``▁``, as SentencePiece training does). Other
    character-level pipelines are taken from the file as they are.
    """
    pre, norm = doc.get("pre_tokenizer"), doc.get("normalizer")
    metaspace = _steps_of_type(pre, "Metaspace")
    rest_norm, prepended, replaced = _strip_metaspace_normalizers(norm)
    if not metaspace and not replaced:
        return _hf_pretokenizer(doc, path, byte_level=False)
    others = [
        s.get("type") for s in _leaf_steps(pre) if s.get("type") not in ("Metaspace", "Digits")
    ]
    if others:
        raise TokenizerFormatError(
            f"{path}: SentencePiece-style pre-tokenizer with {others} steps is not supported"
        )
    digits = any(s.get("individual_digits") for s in _steps_of_type(pre, "Digits"))
    dummy = prepended or any(_metaspace_prepends(s) for s in metaspace)
    if any(s.get("split") is False for s in metaspace):
        notes.append(
            "Metaspace(split=false) in the file; words are split before each ▁, as "
            "SentencePiece training splits them"
        )
    try:
        normalizer = from_hf_json(None, rest_norm, byte_level=False).normalizer
    except TokenizerFormatError as exc:
        raise TokenizerFormatError(f"{path}: {exc}") from None
    return _sentencepiece_pretokenizer(digits, dummy, normalizer)


def _hf_sentencepiece_encoding_pretokenizer(
    doc: dict[str, Any], training: Pretokenizer
) -> Pretokenizer | None:
    """The encoder's word split of a ``Prepend("▁")`` + ``Replace(" ", "▁")`` conversion (no
    ``Metaspace``): the library encodes the whole text, so a ``▁`` run stays with the next word
    (:class:`SentencePieceRunsSplit`). ``Metaspace`` files split as ``pretokenizer`` does
    (``split=false`` ones are approximated by it)."""
    pre, norm = doc.get("pre_tokenizer"), doc.get("normalizer")
    _, prepended, replaced = _strip_metaspace_normalizers(norm)
    if _steps_of_type(pre, "Metaspace") or not replaced:
        return None
    steps: tuple[Step, ...] = (SentencePieceRunsSplit("always" if prepended else "never"),)
    digits = _steps_of_type(pre, "Digits")
    if digits:
        steps += (DigitsSplit(bool(digits[0].get("individual_digits"))),)
    return Pretokenizer(f"{training.name}-encode", steps, training.normalizer, byte_level=False)


def _leaf_steps(spec: Any) -> list[dict[str, Any]]:
    if not isinstance(spec, dict):
        return []
    if spec.get("type") == "Sequence":
        return [leaf for sub in spec.get("pretokenizers") or [] for leaf in _leaf_steps(sub)]
    return [spec]


def _metaspace_prepends(step: dict[str, Any]) -> bool:
    scheme = step.get("prepend_scheme")
    if scheme is None:
        return bool(step.get("add_prefix_space", True))
    return scheme != "never"


def _strip_metaspace_normalizers(norm: Any) -> tuple[dict[str, Any] | None, bool, bool]:
    """Remove ``Prepend("▁")`` / ``Replace(" ", "▁")`` (the pre-tokenizer does their work);
    return what is left and whether each was there."""
    if not isinstance(norm, dict):
        return None, False, False
    steps = norm.get("normalizers") if norm.get("type") == "Sequence" else [norm]
    kept, prepended, replaced = [], False, False
    for step in steps or []:
        if step.get("type") == "Prepend" and step.get("prepend") == METASPACE:
            prepended = True
        elif (
            step.get("type") == "Replace"
            and step.get("content") == METASPACE
            and (step.get("pattern") == {"String": " "})
        ):
            replaced = True
        else:
            kept.append(step)
    if not kept:
        return None, prepended, replaced
    rest = kept[0] if len(kept) == 1 else {"type": "Sequence", "normalizers": kept}
    return rest, prepended, replaced


# ------------------------------------------------------------------ vocab.json + merges.txt


def _load_vocab_merges(source: _Source, override: str | None) -> LoadedTokenizer:
    """GPT-2's ``vocab.json`` (``encoder.json``) and ``merges.txt`` (``vocab.bpe``) pair."""
    vocab_path, merges_path = source.files
    vocab_data, merges_data = _read(vocab_path), _read(merges_path)
    raw_vocab = _parse_json(vocab_data, vocab_path)
    if not isinstance(raw_vocab, dict):
        raise TokenizerFormatError(f"{vocab_path}: not a token -> id object")
    vocab = _unbyte_vocab(_string_vocab(raw_vocab, vocab_path), vocab_path)
    merges = _unbyte_merges(_merges_txt(merges_data, merges_path), merges_path)
    notes = list(source.notes)
    vocab = _drop_gpt2_specials(vocab, merges, notes)
    lists = _byte_level_lists(vocab, merges, merges_path)
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
        format="gpt2-vocab-merges",
        sha256=digest.hexdigest(),
        merge_list=lists.merge_list,
        pretokenizer=_with_override(GPT2, override, True, merges_path),
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
        notes.append(f"special tokens excluded from vocab: {_examples(specials)}")
    dropped = set(specials)
    return {t: i for t, i in vocab.items() if t not in dropped}


# ------------------------------------------------------------------ tiktoken


def _load_tiktoken(source: _Source, override: str | None) -> LoadedTokenizer:
    """A tiktoken rank file; the merge list is recovered from the ranks."""
    path = source.files[0]
    data = _read(path)
    ranks = parse_tiktoken_ranks(data, str(path))
    pretok = _tiktoken_family(path, override)
    rec = recover_merges(ranks)
    ml = _merge_list(
        path, base=BYTE_ALPHABET, merges=rec.merges, alphabet="bytes", unreachable=rec.unreachable
    )
    notes = [
        *source.notes,
        f"merges recovered from ranks: {len(rec.merges)}",
        *_recovery_notes(rec.non_binary, rec.unreachable),
    ]
    missing = sum(1 for b in BYTE_ALPHABET if b not in ranks)
    if missing:
        notes.append(f"{missing} single bytes have no rank (the encoder cannot encode them)")
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format="tiktoken",
        sha256=_sha256(data),
        merge_list=ml,
        pretokenizer=pretok,
        vocab=dict(ranks),
        notes=tuple(notes),
    )


# ------------------------------------------------------------------ SentencePiece


def _load_sentencepiece(source: _Source, override: str | None) -> LoadedTokenizer:
    """A SentencePiece ``.model``: replay list from piece scores, HF-style list for encoding."""
    path = source.files[0]
    data = _read(path)
    model = _parse_sentencepiece(data, path, guessed=source.guessed)
    if model.model_type != "BPE":
        raise TokenizerFormatError(
            f"{path}: the SentencePiece model type is {model.model_type}, not BPE; tokmix infers "
            "mixtures from BPE merge lists only"
        )
    normal = model.of_kind(NORMAL)
    texts_by_id = [p.text for p in normal]
    base = [t for t in texts_by_id if len(t) == 1]
    cleaned = replay_merges([p.text for p in score_order(normal) if len(p.text) > 1], base)
    ml = _char_merge_list(cleaned, path)
    encoding = _utf8_pairs(hf_style_merges(normal), path)
    notes = list(source.notes)
    notes += _sentencepiece_notes(model, len(cleaned.merges), len(encoding))
    notes += _unreachable_notes(cleaned.unreachable, "no merge of two earlier pieces makes")
    normalizer = _sentencepiece_normalizer(model.normalizer_name, notes)
    pre = _sentencepiece_pretokenizer(model.split_digits, model.add_dummy_prefix, normalizer)
    unknown = model.of_kind(UNKNOWN)
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format="sentencepiece",
        sha256=_sha256(data),
        merge_list=ml,
        pretokenizer=_with_override(pre, override, False, path),
        vocab=dict(zip(_utf8(texts_by_id, path), (p.id for p in normal), strict=True)),
        encoding_merges=encoding,
        notes=tuple(notes),
        byte_fallback=model.byte_fallback,
        byte_pieces={
            int(p.text[3:5], 16): p.id for p in model.of_kind(BYTE) if _BYTE_PIECE.fullmatch(p.text)
        },
        unk_token=unknown[0].text.encode("utf-8") if unknown else None,
        unk_id=unknown[0].id if unknown else None,
        fuse_unk=True,
        encoding_pretokenizer=None
        if override is not None
        else _sentencepiece_encoding_pretokenizer(
            model.split_digits, model.add_dummy_prefix, normalizer
        ),
    )


def _parse_sentencepiece(data: bytes, path: Path, *, guessed: bool) -> SentencePieceModel:
    try:
        return parse_model(data, str(path))
    except TokenizerFormatError:
        if not guessed:
            raise
        raise TokenizerFormatError(
            f"{path}: not a tokenizer file tokmix knows ({PRIORITY}); starts with {data[:40]!r}"
        ) from None


def _sentencepiece_notes(model: SentencePieceModel, n_replay: int, n_encoding: int) -> list[str]:
    notes = [
        f"SentencePiece BPE: {n_replay} merges for replay (one per piece, by score); "
        f"{n_encoding} HF-style merges (every split) in encoding_merges"
    ]
    skipped = {
        "byte-fallback": len(model.of_kind(BYTE)),
        "user-defined": len(model.of_kind(USER_DEFINED)),
    }
    for kind, count in skipped.items():
        if count:
            notes.append(f"{count} {kind} pieces excluded from vocab and merges")
    if model.remove_extra_whitespaces:
        notes.append(
            "remove_extra_whitespaces: SentencePiece collapses whitespace runs and "
            "strips the ends before encoding; the pre-tokenizer does not"
        )
    if model.allow_whitespace_only_pieces:
        notes.append(
            "allow_whitespace_only_pieces: training kept runs of ▁ attached to the "
            "next word, so pieces such as ▁▁ exist"
        )
    return notes


def _sentencepiece_normalizer(name: str, notes: list[str]) -> Normalizer:
    """Map SentencePiece's normalization rule to the closest Unicode normal form."""
    if name in ("identity", ""):
        return "none"
    if name == "nfkc":
        return "nfkc"
    if name in ("nmt_nfkc", "nfkc_cf", "nmt_nfkc_cf"):
        notes.append(f"normalizer {name} approximated by NFKC (its extra rules are not applied)")
        return "nfkc"
    notes.append(f"normalizer {name!r} (a custom rule table) is not reproduced; none applied")
    return "none"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
