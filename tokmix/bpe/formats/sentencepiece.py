"""SentencePiece BPE ``.model`` files (protobuf, parsed without pickle).

The replay list is the pieces in score order, each made by the split whose parts exist
earliest; the encoder (a ``tokenizers`` BPE model over every split and the ``<0xXX>`` byte
pieces, as ``transformers`` reproduces SentencePiece) needs the every-split list. The ``▁``
pre-tokenizers built here serve SentencePiece-style ``tokenizer.json`` files too.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokmix.bpe.encoders import HfWordEncoder
from tokmix.bpe.formats.base import (
    Detection,
    Evidence,
    NotThisFormat,
    Source,
    TokenizerFormat,
    read_file,
    sha256,
    single_source,
    with_override,
)
from tokmix.bpe.formats.merge_lists import char_merge_list, unreachable_notes, utf8, utf8_pairs
from tokmix.bpe.pretokenizers import (
    SENTENCEPIECE,
    SENTENCEPIECE_DIGITS,
    DigitsSplit,
    MetaspaceSplit,
    Normalizer,
    Pretokenizer,
    SentencePieceRunsSplit,
    Step,
)
from tokmix.bpe.sentencepiece_model import (
    BYTE,
    NORMAL,
    UNKNOWN,
    USER_DEFINED,
    SentencePieceModel,
    hf_style_merges,
    parse_model,
    replay_merges,
    score_order,
)
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

NAME = "sentencepiece"
METASPACE = "\u2581"
BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _find_in(folder: Path) -> tuple[Source, ...]:
    files = sorted(p for p in folder.glob("*.model") if p.is_file())
    return tuple(single_source(NAME, p) for p in files)


def _detect(path: Path, head: bytes) -> Detection | None:
    """A ``.model`` file by name; any other file nobody claimed is tried as one (protobuf has
    no signature to tell it by)."""
    evidence = Evidence.SUFFIX if path.suffix.lower() == ".model" else Evidence.GUESS
    source = single_source(NAME, path)
    if evidence is Evidence.GUESS:
        source = Source(NAME, source.files, source.name, guessed=True)
    return Detection(source, evidence)


def sentencepiece_pretokenizer(
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


def sentencepiece_encoding_pretokenizer(
    split_digits: bool, dummy_prefix: bool, normalizer: Normalizer
) -> Pretokenizer:
    """The word split of SentencePiece's encoder (``▁`` runs stay with the next word, the dummy
    prefix always added): what token statistics need, see :class:`SentencePieceRunsSplit`."""
    steps: tuple[Step, ...] = (SentencePieceRunsSplit("always" if dummy_prefix else "never"),)
    if split_digits:
        steps += (DigitsSplit(True),)
    name = "sentencepiece-digits-encode" if split_digits else "sentencepiece-encode"
    return Pretokenizer(name, steps, normalizer, byte_level=False)


def _load_sentencepiece(source: Source, override: str | None) -> LoadedTokenizer:
    """A SentencePiece ``.model``: replay list from piece scores, HF-style list for encoding."""
    path = source.files[0]
    data = read_file(path)
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
    ml = char_merge_list(cleaned, path)
    encoding = utf8_pairs(hf_style_merges(normal), path)
    notes = list(source.notes)
    notes += _sentencepiece_notes(model, len(cleaned.merges), len(encoding))
    notes += unreachable_notes(cleaned.unreachable, "no merge of two earlier pieces makes")
    normalizer = _sentencepiece_normalizer(model.normalizer_name, notes)
    pre = sentencepiece_pretokenizer(model.split_digits, model.add_dummy_prefix, normalizer)
    unknown = model.of_kind(UNKNOWN)
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format=NAME,
        sha256=sha256(data),
        merge_list=ml,
        pretokenizer=with_override(pre, override, False, path),
        vocab=dict(zip(utf8(texts_by_id, path), (p.id for p in normal), strict=True)),
        encoding_merges=encoding,
        notes=tuple(notes),
        byte_fallback=model.byte_fallback,
        byte_pieces={
            int(p.text[3:5], 16): p.id for p in model.of_kind(BYTE) if BYTE_PIECE.fullmatch(p.text)
        },
        unk_token=unknown[0].text.encode("utf-8") if unknown else None,
        unk_id=unknown[0].id if unknown else None,
        fuse_unk=True,
        encoding_pretokenizer=None
        if override is not None
        else sentencepiece_encoding_pretokenizer(
            model.split_digits, model.add_dummy_prefix, normalizer
        ),
    )


def _parse_sentencepiece(data: bytes, path: Path, *, guessed: bool) -> SentencePieceModel:
    try:
        return parse_model(data, str(path))
    except TokenizerFormatError:
        if not guessed:
            raise
        raise NotThisFormat(f"{path}: not a SentencePiece model") from None


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


FORMAT = TokenizerFormat(
    name=NAME,
    label="*.model",
    find_in=_find_in,
    detect=_detect,
    load=_load_sentencepiece,
    word_encoder=HfWordEncoder,
)
