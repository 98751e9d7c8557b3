"""Mistral's tekken tokenizer JSON (``tekken.json``, Mistral NeMo and later).

A JSON object: ``config`` (``pattern``, the tiktoken ``pat_str``; ``default_vocab_size``;
``default_num_special_tokens``), ``vocab`` (a list of ``{rank, token_bytes (base64),
token_str}`` in rank order) and ``special_tokens``. As ``mistral-common`` reads it, the
non-special vocabulary is the first ``default_vocab_size - default_num_special_tokens`` ranks,
and token ids are ranks shifted by the number of special tokens. The encoder is tiktoken over
those ranks with the file's pattern, which is what ``mistral-common`` runs.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from tokmix.bpe.encoders import TiktokenWordEncoder
from tokmix.bpe.formats.base import (
    Detection,
    Evidence,
    Source,
    TokenizerFormat,
    parse_json,
    read_file,
    single_source,
)
from tokmix.bpe.formats.rank_json import json_keys_in_head, rank_tokenizer
from tokmix.bpe.formats.tiktoken import rank_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

NAME = "tekken"


def _find_in(folder: Path) -> tuple[Source, ...]:
    files = sorted(p for p in folder.glob("tekken*.json") if p.is_file())
    return tuple(single_source(NAME, p) for p in files)


def _detect(path: Path, head: bytes) -> Detection | None:
    """A JSON object whose start has tekken's ``config`` keys or ``token_bytes`` entries
    (whatever its name: beats ``.json`` being read as a ``tokenizer.json``)."""
    if json_keys_in_head(head, (b"token_bytes",)) or json_keys_in_head(
        head, (b"config", b"default_num_special_tokens")
    ):
        return Detection(single_source(NAME, path), Evidence.SIGNATURE)
    if path.name.lower().startswith("tekken") and path.suffix.lower() == ".json":
        return Detection(single_source(NAME, path), Evidence.FILE_NAME)
    return None


def _load_tekken(source: Source, override: str | None) -> LoadedTokenizer:
    path = source.files[0]
    data = read_file(path)
    doc = parse_json(data, path)
    config = doc.get("config") if isinstance(doc, dict) else None
    vocab = doc.get("vocab") if isinstance(doc, dict) else None
    if not isinstance(config, dict) or not isinstance(vocab, list):
        raise TokenizerFormatError(
            f"{path}: not a tekken file (needs a 'config' object and a 'vocab' list)"
        )
    pattern = _field(config, "pattern", str, path)
    vocab_size = _field(config, "default_vocab_size", int, path)
    n_special = _field(config, "default_num_special_tokens", int, path)
    n_inner = vocab_size - n_special
    if not 256 <= n_inner <= len(vocab):
        raise TokenizerFormatError(
            f"{path}: config says {vocab_size} tokens with {n_special} special ones, but the "
            f"vocab lists {len(vocab)} (the non-special part must be 256..{len(vocab)})"
        )
    ranks = _tekken_ranks(vocab[:n_inner], path)
    notes = (
        f"tekken: {n_inner} of {len(vocab)} vocab entries used (default_vocab_size "
        f"{vocab_size} - {n_special} special tokens), ids are ranks + {n_special}",
    )
    return rank_tokenizer(
        source,
        data,
        format_name=NAME,
        ranks=ranks,
        id_offset=n_special,
        pattern=pattern,
        override=override,
        notes=notes,
    )


def _field(config: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = config.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TokenizerFormatError(
            f"{path}: tekken config.{key} is missing or not a {kind.__name__} ({value!r})"
        )
    return value


def _tekken_ranks(entries: list[Any], path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("rank") != i:
            raise TokenizerFormatError(
                f"{path}: vocab entry {i} is not {{rank: {i}, token_bytes, token_str}}: "
                f"{str(entry)[:80]}"
            )
        try:
            token = base64.b64decode(entry.get("token_bytes", ""), validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise TokenizerFormatError(
                f"{path}: vocab entry {i}: token_bytes is not base64 ({exc})"
            ) from None
        if not token or token in ranks:
            raise TokenizerFormatError(f"{path}: vocab entry {i}: empty or repeated token")
        ranks[token] = i
    return ranks


FORMAT = TokenizerFormat(
    name=NAME,
    label="tekken*.json",
    find_in=_find_in,
    detect=_detect,
    load=_load_tekken,
    word_encoder=TiktokenWordEncoder,
    encoder_merges=rank_merges,
)
