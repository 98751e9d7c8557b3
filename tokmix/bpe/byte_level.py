"""GPT-2's byte-level alphabet: how ``tokenizer.json`` and ``vocab.json`` files write bytes.

Byte-level files spell every byte as a printable character (``Ġ`` is the space byte); tokmix
works on the bytes themselves, so loaders translate tokens and merges back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from tokmix.errors import TokenizerFormatError

Pairs = list[tuple[bytes, bytes]]


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


def _unbyte(token: str, path: Path) -> bytes:
    """A byte-level token string (``Ġthe``) as the bytes it stands for (`` the``)."""
    try:
        return token.translate(_BYTE_DECODE).encode("latin-1")
    except UnicodeEncodeError:
        raise TokenizerFormatError(
            f"{path}: token {token!r} has characters outside the GPT-2 byte-level alphabet"
        ) from None


def unbyte_vocab(vocab: Mapping[str, int], path: Path) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for token, idx in vocab.items():
        raw = _unbyte(token, path)
        if raw in out:
            raise TokenizerFormatError(f"{path}: two tokens stand for the bytes {raw!r}")
        out[raw] = idx
    return out


def unbyte_merges(merges: Iterable[tuple[str, str]], path: Path) -> Pairs:
    cache: dict[str, bytes] = {}

    def unbyte(part: str) -> bytes:
        raw = cache.get(part)
        if raw is None:
            raw = cache[part] = _unbyte(part, path)
        return raw

    return [(unbyte(a), unbyte(b)) for a, b in merges]
