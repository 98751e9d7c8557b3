"""Hugging Face ``tokenizer.json`` with a BPE model, byte-level or SentencePiece-style.

Byte-level files (a ``ByteLevel`` pre-tokenizer or decoder) spell bytes in GPT-2's alphabet;
SentencePiece-style files (``▁``, byte fallback) work on characters. Merges are written as
``"a b"`` strings or ``["a", "b"]`` lists. The encoder is a ``tokenizers`` BPE model over the
file's full merge list with its byte fallback, unknown token and ``ignore_merges``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokmix.bpe.byte_level import unbyte_merges, unbyte_vocab
from tokmix.bpe.encoders import HfWordEncoder
from tokmix.bpe.formats.base import (
    Detection,
    Evidence,
    Source,
    TokenizerFormat,
    parse_json,
    read_file,
    sha256,
    single_source,
    string_vocab,
    with_override,
)
from tokmix.bpe.formats.merge_lists import byte_level_lists, char_level_lists, utf8
from tokmix.bpe.formats.sentencepiece import BYTE_PIECE, METASPACE, sentencepiece_pretokenizer
from tokmix.bpe.pretokenizers import (
    DigitsSplit,
    Pretokenizer,
    SentencePieceRunsSplit,
    Step,
    from_hf_json,
)
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

NAME = "hf-json"


def _find_in(folder: Path) -> tuple[Source, ...]:
    path = folder / "tokenizer.json"
    return (single_source(NAME, path),) if path.is_file() else ()


def _detect(path: Path, head: bytes) -> Detection | None:
    """A ``.json`` file by name; otherwise a JSON object (first byte ``{``) by content."""
    if path.suffix.lower() == ".json":
        return Detection(single_source(NAME, path), Evidence.SUFFIX)
    if head.lstrip().startswith(b"{"):
        return Detection(single_source(NAME, path), Evidence.CONTENT)
    return None


def _load_hf_json(source: Source, override: str | None) -> LoadedTokenizer:
    """A Hugging Face ``tokenizer.json`` with a BPE model, byte-level or SentencePiece-style."""
    path = source.files[0]
    data = read_file(path)
    doc = parse_json(data, path)
    model = _hf_bpe_model(doc, path)
    raw_vocab = string_vocab(model.get("vocab"), path)
    added = {str(t.get("content")) for t in doc.get("added_tokens") or []}
    vocab = {t: i for t, i in raw_vocab.items() if t not in added}
    merges = _merge_entries(model.get("merges"), path)
    notes = list(source.notes) + _model_option_notes(model, len(raw_vocab) - len(vocab))
    encoding_pretok: Pretokenizer | None = None
    if _is_byte_level(doc):
        byte_vocab = unbyte_vocab(vocab, path)
        lists = byte_level_lists(byte_vocab, unbyte_merges(merges, path), path)
        pre = _hf_pretokenizer(doc, path, byte_level=True)
        pretok = with_override(pre, override, True, path)
    else:
        char_vocab = _drop_byte_pieces(vocab, model, notes)
        byte_vocab = dict(zip(utf8(char_vocab, path), char_vocab.values(), strict=True))
        lists = char_level_lists(char_vocab, merges, path)
        pre = _hf_sentencepiece_pretokenizer(doc, path, notes)
        pretok = with_override(pre, override, False, path)
        if override is None:
            encoding_pretok = _hf_sentencepiece_encoding_pretokenizer(doc, pre)
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format="hf-json",
        sha256=sha256(data),
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
        byte_pieces = {int(t[3:5], 16): i for t, i in raw_vocab.items() if BYTE_PIECE.fullmatch(t)}
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
    kept = {t: i for t, i in vocab.items() if not BYTE_PIECE.fullmatch(t)}
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
    return sentencepiece_pretokenizer(digits, dummy, normalizer)


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


FORMAT = TokenizerFormat(
    name=NAME,
    label="tokenizer.json",
    find_in=_find_in,
    detect=_detect,
    load=_load_hf_json,
    word_encoder=HfWordEncoder,
)
