"""What the stage jobs take: categories to read and how to sample them."""

from __future__ import annotations

from dataclasses import dataclass

from tokmix.errors import TokmixError
from tokmix.io.corpus import TxtMode


@dataclass(frozen=True)
class CategorySpec:
    """One category of a run: a name and the file, directory, glob or s3 prefix to read."""

    name: str
    path: str

    @classmethod
    def parse(cls, text: str) -> CategorySpec:
        """``NAME=PATH`` as the CLI takes it."""
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            raise TokmixError(
                f"a category is NAME=PATH (for example python=corpus/py/*.jsonl), got {text!r}"
            )
        if "/" in name or name.startswith("."):
            raise TokmixError(f"category name {name!r} may not contain '/' or start with '.'")
        return cls(name, path)


@dataclass(frozen=True)
class SampleOptions:
    """How a category's sample is drawn (DESIGN §3): whole documents up to a byte budget."""

    max_bytes: int | None = None
    seed: int | None = None
    text_field: str = "text"
    skip_documents: int = 0
    txt_mode: TxtMode = "file"
    """How ``.txt`` files split into documents: ``file``, ``line`` or ``paragraph``."""


def parse_merge_range(text: str | None, merges: int | None, n_merges: int) -> tuple[int, int]:
    """``(first_step, last_step)`` from ``--merge-range A:B`` or ``--merges T``.

    Default: the first 30 000 merges, or all when fewer (DESIGN §4). ``A:B`` records steps
    ``A+1 .. B``: the merges after the first ``A``.
    """
    if text is not None and merges is not None:
        raise TokmixError("give --merges or --merge-range, not both")
    if text is not None:
        a, sep, b = text.partition(":")
        try:
            first, last = int(a or 0), int(b) if b else n_merges
        except ValueError:
            raise TokmixError(f"--merge-range is A:B with integers, got {text!r}") from None
        if not sep or not 0 <= first < last <= n_merges:
            raise TokmixError(
                f"--merge-range {text!r} must satisfy 0 <= A < B <= {n_merges}"
                " (the tokenizer's merges)"
            )
        return first + 1, last
    last = min(n_merges, 30_000) if merges is None else merges
    if not 1 <= last <= n_merges:
        raise TokmixError(f"--merges must be between 1 and {n_merges}, got {last}")
    return 1, last
