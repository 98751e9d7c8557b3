"""Byte sizes as people write them: ``500MB``, ``1.5GiB``, ``1000``."""

from __future__ import annotations

import re
from typing import Any

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]I?B|B)?\s*", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """``500MB`` / ``1.5GiB`` / ``1000`` -> bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    match = _SIZE.fullmatch(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (try 500MB or 1GiB)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])
