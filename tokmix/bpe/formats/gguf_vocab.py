"""llama.cpp GGUF files (``*.gguf``): the tokenizer stored in a model's metadata.

``tokenizer.ggml.model`` says which tokenizer: ``gpt2`` is byte-level BPE (``tokens`` in GPT-2's
byte alphabet, ``merges`` as ``"a b"`` strings, the pre-tokenizer named by
``tokenizer.ggml.pre``); ``llama`` is SentencePiece BPE (``tokens`` with ``scores`` and
``token_type``; reduced as a ``.model`` file is); ``gemma4`` is SentencePiece-style BPE with
its merges stored (``▁`` for spaces, byte fallback, no word split but at newlines). Every other
model (``bert``, ``t5`` Unigram, ``rwkv``, ...) is refused, naming it.

``tokenizer.ggml.pre`` values are llama.cpp's names (``llama-vocab.cpp``); :data:`PRE_TOKENIZERS`
maps them to the regexes llama.cpp applies (each regex splits every piece, matches and the text
between them both kept), or to tokmix's family when the split is the same. An unknown name, or a
file without one (GGUFs older than mid-2024, which llama.cpp itself splits with a generic
"default" and warns about), is refused unless the caller passes ``pretokenizer=``.
Token types: control, user-defined and unused tokens are special/added tokens, left out of the
vocabulary as a ``tokenizer.json``'s ``added_tokens`` are.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tokmix.bpe.byte_level import is_byte_level, unbyte_merges, unbyte_vocab
from tokmix.bpe.encoders import HfWordEncoder
from tokmix.bpe.formats.base import (
    Detection,
    Evidence,
    Source,
    TokenizerFormat,
    single_source,
    with_override,
)
from tokmix.bpe.formats.compression import compression_of
from tokmix.bpe.formats.gguf_metadata import MAGIC, read_gguf_metadata
from tokmix.bpe.formats.merge_lists import byte_level_lists, char_level_lists, examples, utf8
from tokmix.bpe.formats.sentencepiece import (
    BYTE_PIECE,
    sentencepiece_encoding_pretokenizer,
    sentencepiece_pretokenizer,
    sentencepiece_tokenizer,
)
from tokmix.bpe.pretokenizers import (
    GPT2,
    LLAMA3,
    O200K,
    Pretokenizer,
    RegexSplit,
    regex_pretokenizer,
)
from tokmix.bpe.sentencepiece_model import BYTE, NORMAL, UNKNOWN, Piece, SentencePieceModel
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

NAME = "gguf"
METASPACE = "\u2581"

# llama.cpp's regexes (llama-vocab.cpp, llama-cpp-python 0.3.36), as Python ``regex`` patterns.
_GPT2_NO_TAIL = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN35 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_DEEPSEEK_LATIN = (  # llama.cpp's list of Latin, Greek, Cyrillic, ... letter ranges, escaped
    "A-Za-z\\xb5\\xc0-\\xd6\\xd8-\\xf6\\xf8-\\u01ba\\u01bc-\\u01bf\\u01c4-\\u0293\\u0295-\\u02af"
    "\\u0370-\\u0373\\u0376\\u0377\\u037b-\\u037d\\u037f\\u0386\\u0388-\\u038a\\u038c"
    "\\u038e-\\u03a1\\u03a3-\\u03f5\\u03f7-\\u0481\\u048a-\\u052f\\u0531-\\u0556\\u10a0-\\u10c5"
    "\\u13a0-\\u13f5\\u13f8-\\u13fd\\u1c90-\\u1cba\\u1cbd-\\u1cbf\\u1d00-\\u1d2b\\u1d6b-\\u1d77"
    "\\u1d79-\\u1d9a\\u1e00-\\u1f15\\u1f18-\\u1f1d\\u1f20-\\u1f45\\u1f48-\\u1f4d\\u1f50-\\u1f57"
    "\\u1f59\\u1f5b\\u1f5d\\u1f5f-\\u1f7d\\u1f80-\\u1fb4\\u1fb6-\\u1fbc\\u1fbe\\u1fc2-\\u1fc4"
    "\\u1fc6-\\u1fcc\\u1fd0-\\u1fd3\\u1fd6-\\u1fdb\\u1fe0-\\u1fec\\u1ff2-\\u1ff4\\u1ff6-\\u1ffc"
    "\\u2102\\u2107\\u210a-\\u2113\\u2115\\u2119-\\u211d\\u2124\\u2126\\u2128\\u212a-\\u212d"
    "\\u212f-\\u2134\\u2139\\u213c-\\u213f\\u2145-\\u2149\\u214e\\u2183\\u2184\\u2c00-\\u2c7b"
    "\\u2c7e-\\u2ce4\\u2ceb-\\u2cee\\u2cf2\\u2cf3\\ua640-\\ua66d\\ua680-\\ua69b\\ua722-\\ua76f"
    "\\ua771-\\ua787\\ua78b-\\ua78e\\uab70-\\uabbf\\ufb00-\\ufb06\\ufb13-\\ufb17\\uff21-\\uff3a"
    "\\uff41-\\uff5a\\U00010400-\\U0001044f\\U000104b0-\\U000104d3\\U000104d8-\\U000104fb"
    "\\U00010c80-\\U00010cb2\\U00010cc0-\\U00010cf2\\U000118a0-\\U000118df\\U0001e900-\\U0001e943"
)
_CJK = r"[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
_SPLITS: dict[str, tuple[str, ...]] = {
    "deepseek-llm": (
        r"[\r\n]",
        rf"\s?[{_DEEPSEEK_LATIN}]+",
        r"\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
        r"\s+$",
        _CJK,
        r"\p{N}+",
    ),
    "deepseek-coder": (r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK, r"\p{N}"),
    "falcon": (r"[\p{P}\$\+<=>\^~\|`]+", _GPT2_NO_TAIL, r"[0-9][0-9][0-9]"),
    "starcoder": (r"\p{N}", _GPT2_NO_TAIL),
    "default": (r"[\p{P}\$\+<=>\^~\|]+", _GPT2_NO_TAIL, r"\p{N}+", r"[0-9][0-9][0-9]"),
}
_ALIASES: dict[str, tuple[str, ...]] = {
    "gpt2": (
        "gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4",
        "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
        "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe",
    ),
    "llama3": (
        "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
        "jina-v5-nano", "dbrx", "smaug-bpe", "chatglm-bpe", "glm4", "glm5",
    ),
    "qwen2": ("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez"),
    "qwen35": ("qwen35",),
    "o200k": ("gpt-4o", "llama4", "kanana2", "talkie"),
    "tekken": ("tekken",),
    "deepseek-llm": ("deepseek-llm",),
    "deepseek-coder": ("deepseek-coder",),
    "falcon": ("falcon",),
    "starcoder": (
        "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
    ),
    "default": ("default",),
}  # fmt: skip
_IGNORE_MERGES = frozenset(
    {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}
    | {"jina-v5-nano", "glm4", "glm5", "tekken"}
)
"""The ``pre`` names for which llama.cpp sets ``ignore_merges`` (a pre-token that is itself a
token is taken whole)."""


def _pretokenizer_of(group: str, pre: str) -> Pretokenizer:
    if group == "gpt2":
        return GPT2
    if group == "llama3":
        return LLAMA3
    if group == "o200k":
        return O200K
    if group in ("qwen2", "qwen35", "tekken"):
        pattern = {"qwen2": _QWEN2, "qwen35": _QWEN35, "tekken": _TEKKEN}[group]
        return regex_pretokenizer(f"llama.cpp-{group}", pattern)
    steps = tuple(RegexSplit(p, "isolated") for p in _SPLITS[group])
    return Pretokenizer(f"llama.cpp-{group}", steps)


PRE_TOKENIZERS: dict[str, str] = {pre: group for group, pres in _ALIASES.items() for pre in pres}
"""llama.cpp ``tokenizer.ggml.pre`` name -> the split group tokmix reproduces."""


def gguf_pretokenizer(pre: str) -> Pretokenizer:
    """The pre-tokenizer llama.cpp applies for a ``tokenizer.ggml.pre`` name."""
    group = PRE_TOKENIZERS.get(pre)
    if group is None:
        raise KeyError(pre)
    return _pretokenizer_of(group, pre)


def _find_in(folder: Path) -> tuple[Source, ...]:
    files = sorted(p for p in folder.glob("*.gguf") if p.is_file())
    return tuple(single_source(NAME, p) for p in files)


def _detect(path: Path, head: bytes) -> Detection | None:
    """The ``GGUF`` magic, whatever the name."""
    if head.startswith(MAGIC):
        return Detection(single_source(NAME, path), Evidence.SIGNATURE)
    if path.suffix.lower() == ".gguf":
        return Detection(single_source(NAME, path), Evidence.SUFFIX)
    return None


def _load_gguf(source: Source, override: str | None) -> LoadedTokenizer:
    path = source.files[0]
    with path.open("rb") as fh:
        if compression_of(fh.read(8)) is not None:
            raise TokenizerFormatError(
                f"{path}: a compressed GGUF file; decompress it first (GGUF is memory-mapped)"
            )
    meta, header_bytes = read_gguf_metadata(path)
    model = _text(meta.get("tokenizer.ggml.model"))
    tokens = meta.get("tokenizer.ggml.tokens")
    if model is None or not isinstance(tokens, list):
        raise TokenizerFormatError(
            f"{path}: the GGUF file holds no tokenizer (no tokenizer.ggml.model / tokens keys)"
        )
    with path.open("rb") as fh:
        digest = hashlib.sha256(fh.read(header_bytes)).hexdigest()
    notes = (*source.notes, f"GGUF tokenizer.ggml.model={model!r}; sha256 of the metadata")
    if model == "gpt2":
        return _byte_level(source, meta, tokens, override, digest, notes)
    if model == "llama":
        return _sentencepiece(source, meta, tokens, override, digest, notes)
    if model == "gemma4":
        return _char_level(source, meta, tokens, override, digest, notes)
    kind = {"bert": "WordPiece", "t5": "Unigram", "rwkv": "RWKV", "plamo2": "Unigram"}
    raise TokenizerFormatError(
        f"{path}: the GGUF tokenizer is {model!r} ({kind.get(model, 'not BPE')}), not BPE; "
        "tokmix infers mixtures from BPE merge lists only (gpt2, llama, gemma4 GGUFs)"
    )


def _text(value: Any) -> str | None:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else None


def _token_types(meta: dict[str, Any], n: int, path: Path) -> np.ndarray:
    types = meta.get("tokenizer.ggml.token_type")
    if types is None:
        return np.full(n, NORMAL, dtype=np.int32)
    if not isinstance(types, np.ndarray) or len(types) != n:
        raise TokenizerFormatError(f"{path}: tokenizer.ggml.token_type does not match the tokens")
    return types.astype(np.int32)


def _strings(values: Sequence[bytes], what: str, path: Path) -> list[str]:
    try:
        return [v.decode("utf-8") for v in values]
    except (UnicodeDecodeError, AttributeError) as exc:
        raise TokenizerFormatError(
            f"{path}: a GGUF {what} entry is not UTF-8 text ({exc})"
        ) from None


def _merge_pairs(meta: dict[str, Any], path: Path) -> list[tuple[str, str]]:
    raw = meta.get("tokenizer.ggml.merges")
    if not isinstance(raw, list) or not raw:
        raise TokenizerFormatError(f"{path}: a BPE GGUF without tokenizer.ggml.merges")
    out = []
    for n, entry in enumerate(_strings(raw, "merge", path), start=1):
        parts = entry.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerFormatError(f"{path}: merge {n} is not 'a b': {entry!r}")
        out.append((parts[0], parts[1]))
    return out


def _pre_name(meta: dict[str, Any], override: str | None, path: Path) -> tuple[str | None, bool]:
    """The file's ``pre`` name (None when absent) and whether llama.cpp ignores merges."""
    pre = _text(meta.get("tokenizer.ggml.pre"))
    if override is None and (pre is None or pre not in PRE_TOKENIZERS):
        why = (
            "has no tokenizer.ggml.pre (written before llama.cpp recorded pre-tokenizers)"
            if pre is None
            else f"names pre-tokenizer {pre!r}, which tokmix does not reproduce"
        )
        raise TokenizerFormatError(
            f"{path}: the GGUF file {why}; pass pretokenizer= a family (gpt2, llama3, o200k) "
            "or the tokenizer's regex"
        )
    return pre, pre in _IGNORE_MERGES


def _byte_level(
    source: Source,
    meta: dict[str, Any],
    tokens: list[bytes],
    override: str | None,
    digest: str,
    notes: tuple[str, ...],
) -> LoadedTokenizer:
    path = source.files[0]
    pre, ignore_merges = _pre_name(meta, override, path)
    texts = _strings(tokens, "token", path)
    types = _token_types(meta, len(texts), path)
    normal = {t: i for i, t in enumerate(texts) if types[i] == NORMAL}
    kept = {t: i for t, i in normal.items() if is_byte_level(t)}
    outside = [t for t in normal if t not in kept]
    vocab = unbyte_vocab(kept, path)
    lists = byte_level_lists(vocab, unbyte_merges(_merge_pairs(meta, path), path), path)
    file_pretok = gguf_pretokenizer(pre) if pre in PRE_TOKENIZERS else None
    n_special = len(texts) - len(normal)
    extra = [f"GGUF pre={pre!r}"]
    if n_special:
        extra.append(f"{n_special} control/user-defined/unused tokens excluded from vocab")
    if outside:
        extra.append(
            f"{len(outside)} normal tokens are not in GPT-2's byte alphabet (no byte-level "
            f"encoding produces them), excluded from vocab (e.g. {examples(outside)})"
        )
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format=NAME,
        sha256=digest,
        merge_list=lists.merge_list,
        pretokenizer=with_override(file_pretok, override, True, path),
        vocab=vocab,
        encoding_merges=lists.encoding_merges,
        hand_inserted=lists.hand_inserted,
        notes=(*notes, *extra, *lists.notes),
        ignore_merges=ignore_merges and override is None,
    )


def _pieces(meta: dict[str, Any], tokens: list[bytes], path: Path) -> list[Piece]:
    texts = _strings(tokens, "token", path)
    types = _token_types(meta, len(texts), path)
    scores = meta.get("tokenizer.ggml.scores")
    if not isinstance(scores, np.ndarray) or len(scores) != len(texts):
        raise TokenizerFormatError(f"{path}: a SentencePiece GGUF needs tokenizer.ggml.scores")
    return [
        Piece(id=i, text=t, score=float(s), kind=int(k))
        for i, (t, s, k) in enumerate(zip(texts, scores, types, strict=True))
    ]


def _digits_split(pieces: Sequence[Piece]) -> bool:
    """Whether training split digits: no normal piece holds a digit beside anything else.
    (GGUF does not store SentencePiece's ``split_digits``.)"""
    return not any(
        len(p.text.lstrip(METASPACE)) > 1 and any(ch in "0123456789" for ch in p.text)
        for p in pieces
        if p.kind == NORMAL
    )


def _sentencepiece(
    source: Source,
    meta: dict[str, Any],
    tokens: list[bytes],
    override: str | None,
    digest: str,
    notes: tuple[str, ...],
) -> LoadedTokenizer:
    """``llama``: SentencePiece pieces with scores, reduced as a ``.model`` file is."""
    path = source.files[0]
    pieces = _pieces(meta, tokens, path)
    split_digits = _digits_split(pieces)
    model = SentencePieceModel(
        model_type="BPE",
        pieces=tuple(pieces),
        byte_fallback=any(p.kind == BYTE for p in pieces),
        split_digits=split_digits,
        add_dummy_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", True)),
        remove_extra_whitespaces=bool(meta.get("tokenizer.ggml.remove_extra_whitespaces", False)),
        allow_whitespace_only_pieces=any(
            len(p.text) > 1 and set(p.text) == {METASPACE} for p in pieces
        ),
        normalizer_name="identity",
    )
    source = Source(
        source.format,
        source.files,
        source.name,
        (*notes, f"split_digits={split_digits} inferred from the pieces (GGUF omits it)"),
    )
    loaded = sentencepiece_tokenizer(source, b"", model, override, format_name=NAME)
    return _with_sha(loaded, digest)


def _with_sha(tok: LoadedTokenizer, digest: str) -> LoadedTokenizer:
    return dataclasses.replace(tok, sha256=digest)


def _char_level(
    source: Source,
    meta: dict[str, Any],
    tokens: list[bytes],
    override: str | None,
    digest: str,
    notes: tuple[str, ...],
) -> LoadedTokenizer:
    """``gemma4``: SentencePiece-style BPE with merges (``▁`` for spaces, no dummy prefix)."""
    path = source.files[0]
    pieces = _pieces(meta, tokens, path)
    normal = {p.text: p.id for p in pieces if p.kind == NORMAL}
    lists = char_level_lists(normal, _merge_pairs(meta, path), path)
    split_digits = _digits_split(pieces)
    pre = sentencepiece_pretokenizer(split_digits, False, "none")
    unknown = [p for p in pieces if p.kind == UNKNOWN]
    return LoadedTokenizer(
        name=source.name,
        path=str(path),
        format=NAME,
        sha256=digest,
        merge_list=lists.merge_list,
        pretokenizer=with_override(pre, override, False, path),
        vocab=dict(zip(utf8(normal, path), normal.values(), strict=True)),
        encoding_merges=lists.encoding_merges,
        hand_inserted=lists.hand_inserted,
        notes=(*notes, *lists.notes),
        byte_fallback=True,
        byte_pieces={
            int(p.text[3:5], 16): p.id
            for p in pieces
            if p.kind == BYTE and BYTE_PIECE.fullmatch(p.text)
        },
        unk_token=unknown[0].text.encode("utf-8") if unknown else None,
        unk_id=unknown[0].id if unknown else None,
        encoding_pretokenizer=None
        if override is not None
        else sentencepiece_encoding_pretokenizer(split_digits, False, "none"),
    )


FORMAT = TokenizerFormat(
    name=NAME,
    label="*.gguf",
    find_in=_find_in,
    detect=_detect,
    load=_load_gguf,
    word_encoder=HfWordEncoder,
)
