"""SentencePiece BPE models: reading ``.model`` files and deriving their merge lists.

A SentencePiece BPE model has no merge list, only pieces with scores; score order is the order
in which training added them. Two lists are derived from the pieces (ARCHITECTURE.md §2):

- :func:`replay_merges`: one merge per produced piece, in score order, each the split whose
  parts exist earliest. This is what training did, and what replay needs.
- :func:`hf_style_merges`: every split of a piece whose halves are both pieces, by piece score
  then ids (``transformers``' ``SentencePieceExtractor``). Only this redundant list makes a plain
  BPE encoder reproduce SentencePiece's output; the one-per-piece list does not.

The file is parsed with the ``ModelProto`` class that the ``sentencepiece`` package bundles
(``sentencepiece_model_pb2``) and protobuf's ``ParseFromString``: plain data, no pickle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from tokmix.bpe.tiktoken_ranks import earliest_split
from tokmix.errors import TokenizerFormatError

# sentencepiece_model.proto enums, spelled the way people know the model types.
MODEL_TYPES = {1: "Unigram", 2: "BPE", 3: "Word", 4: "Char"}
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Piece:
    """One vocabulary entry of a SentencePiece model, ``id`` being its position."""

    id: int
    text: str
    score: float
    kind: int
    """``NORMAL``, ``UNKNOWN``, ``CONTROL``, ``USER_DEFINED``, ``UNUSED`` or ``BYTE``."""


@dataclass(frozen=True)
class SentencePieceModel:
    """The parts of a ``ModelProto`` that matter for merges and pre-tokenization."""

    model_type: str
    pieces: tuple[Piece, ...]
    byte_fallback: bool
    split_digits: bool
    add_dummy_prefix: bool
    remove_extra_whitespaces: bool
    allow_whitespace_only_pieces: bool
    normalizer_name: str

    def of_kind(self, kind: int) -> list[Piece]:
        return [p for p in self.pieces if p.kind == kind]


def parse_model(data: bytes, path: str) -> SentencePieceModel:
    """Read a serialized ``ModelProto``; garbage and pieceless files raise, naming the path."""
    from sentencepiece import sentencepiece_model_pb2 as pb  # heavy import, only when needed

    proto = pb.ModelProto()  # type: ignore[attr-defined]
    try:
        proto.ParseFromString(data)
    except DecodeError as exc:
        raise TokenizerFormatError(
            f"{path}: not a SentencePiece model (protobuf: {exc}); starts with {data[:32]!r}"
        ) from None
    if not proto.pieces:
        raise TokenizerFormatError(
            f"{path}: not a SentencePiece model (no pieces); starts with {data[:32]!r}"
        )
    trainer, norm = proto.trainer_spec, proto.normalizer_spec
    code = int(trainer.model_type)
    return SentencePieceModel(
        model_type=MODEL_TYPES.get(code, f"unknown model type {code}"),
        pieces=tuple(
            Piece(i, p.piece, float(p.score), int(p.type)) for i, p in enumerate(proto.pieces)
        ),
        byte_fallback=bool(trainer.byte_fallback),
        split_digits=bool(trainer.split_digits),
        add_dummy_prefix=bool(norm.add_dummy_prefix),
        remove_extra_whitespaces=bool(norm.remove_extra_whitespaces),
        allow_whitespace_only_pieces=bool(trainer.allow_whitespace_only_pieces),
        normalizer_name=str(norm.name),
    )


def score_order(pieces: Iterable[Piece]) -> list[Piece]:
    """Pieces in the order training added them: descending score, then id."""
    return sorted(pieces, key=lambda p: (-p.score, p.id))


@dataclass(frozen=True)
class CharMerges:
    """A char-level merge list (parts as ``str``) and the pieces no merge can make."""

    base: tuple[str, ...]
    merges: tuple[tuple[str, str], ...]
    unreachable: tuple[str, ...]


def replay_merges(ordered: Sequence[str], base: Sequence[str]) -> CharMerges:
    """One merge per multi-character piece of ``ordered`` (training order).

    ``base`` is the alphabet (the single-character pieces); each longer piece gets the split
    whose two parts both exist earliest (:func:`~tokmix.bpe.tiktoken_ranks.earliest_split`), so
    the list is valid in order. A piece with no such split is unreachable: reported, not merged.
    """
    base_set = frozenset(base)
    positions: dict[str, int] = {}
    merges: list[tuple[str, str]] = []
    unreachable: list[str] = []
    for piece in ordered:
        if len(piece) < 2:
            continue
        pair = earliest_split(piece, positions, base_set)
        if pair is None:
            unreachable.append(piece)
            continue
        positions[piece] = len(merges)
        merges.append(pair)
    return CharMerges(tuple(base), tuple(merges), tuple(unreachable))


def hf_style_merges(pieces: Sequence[Piece]) -> list[tuple[str, str]]:
    """Every split of every piece into two pieces, as ``transformers`` converts SentencePiece.

    Splits of one piece are ordered by (left id, right id); pieces by descending score, then
    id. This is the list a Hugging Face BPE needs to encode exactly like SentencePiece.
    """
    ids = {p.text: p.id for p in pieces}
    out: list[tuple[str, str]] = []
    for piece in score_order(pieces):
        text = piece.text
        local = [
            (text[:i], text[i:]) for i in range(1, len(text)) if text[:i] in ids and text[i:] in ids
        ]
        local.sort(key=lambda lr: (ids[lr[0]], ids[lr[1]]))
        out.extend(local)
    return out
