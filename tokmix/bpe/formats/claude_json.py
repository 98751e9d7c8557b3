"""Anthropic's published Claude tokenizer JSON (``claude.json`` of ``@anthropic-ai/tokenizer``).

Keys: ``bpe_ranks`` (one string, js-tiktoken's compact rank format: lines ``<label> <offset>
<base64 token> <base64 token> ...``, each token ranked ``offset + i``), ``pat_str`` (the
regex), ``special_tokens`` (name -> id) and ``explicit_n_vocab``. Ranks are token ids. The
publisher's encoder is js-tiktoken over those ranks and ``pat_str`` after NFKC normalization
(``countTokens`` normalizes first), so the pre-tokenizer here normalizes NFKC and the encoder is
tiktoken over the same ranks.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

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

NAME = "claude-json"


def _find_in(folder: Path) -> tuple[Source, ...]:
    files = sorted(p for p in folder.glob("claude*.json") if p.is_file())
    return tuple(single_source(NAME, p) for p in files)


def _detect(path: Path, head: bytes) -> Detection | None:
    """A JSON object whose start names ``bpe_ranks`` or ``pat_str`` (keys no
    ``tokenizer.json`` has), whatever its name."""
    if json_keys_in_head(head, (b"bpe_ranks",)) or json_keys_in_head(head, (b"pat_str",)):
        return Detection(single_source(NAME, path), Evidence.SIGNATURE)
    return None


def parse_bpe_ranks(text: str, path: Path) -> dict[bytes, int]:
    """js-tiktoken's compact ranks: per line a label (ignored), an offset, base64 tokens."""
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        fields = line.split(" ")
        try:
            offset = int(fields[1])
            tokens = [base64.b64decode(f, validate=True) for f in fields[2:]]
        except (IndexError, ValueError, binascii.Error) as exc:
            raise TokenizerFormatError(
                f"{path}: bpe_ranks line {lineno} is not '<label> <offset> <base64>...' "
                f"({exc}): {line[:60]!r}"
            ) from None
        for i, token in enumerate(tokens):
            if not token or token in ranks:
                raise TokenizerFormatError(
                    f"{path}: bpe_ranks line {lineno}: token {i} is empty or repeated"
                )
            ranks[token] = offset + i
    if not ranks:
        raise TokenizerFormatError(f"{path}: bpe_ranks holds no tokens")
    return ranks


def _load_claude(source: Source, override: str | None) -> LoadedTokenizer:
    path = source.files[0]
    data = read_file(path)
    doc = parse_json(data, path)
    if not isinstance(doc, dict) or not isinstance(doc.get("bpe_ranks"), str):
        raise TokenizerFormatError(f"{path}: no 'bpe_ranks' string (Claude tokenizer JSON)")
    pattern = doc.get("pat_str")
    if not isinstance(pattern, str):
        raise TokenizerFormatError(f"{path}: no 'pat_str' string (the pre-tokenizer regex)")
    ranks = parse_bpe_ranks(doc["bpe_ranks"], path)
    offset = min(ranks.values())
    dense = {token: rank - offset for token, rank in ranks.items()}
    if sorted(dense.values()) != list(range(len(dense))):
        raise TokenizerFormatError(f"{path}: bpe_ranks are not consecutive from {offset}")
    specials = doc.get("special_tokens") or {}
    notes = (
        f"Claude JSON: {len(ranks)} ranked tokens (ids {offset}..{offset + len(ranks) - 1}), "
        f"{len(specials)} special tokens excluded; text NFKC-normalized as countTokens does",
    )
    return rank_tokenizer(
        source,
        data,
        format_name=NAME,
        ranks=dense,
        id_offset=offset,
        pattern=pattern,
        override=override,
        normalizer="nfkc",
        notes=notes,
    )


FORMAT = TokenizerFormat(
    name=NAME,
    label="claude*.json",
    find_in=_find_in,
    detect=_detect,
    load=_load_claude,
    word_encoder=TiktokenWordEncoder,
    encoder_merges=rank_merges,
)
