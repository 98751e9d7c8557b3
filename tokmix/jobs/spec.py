"""What the stage jobs take: categories to read and how to sample them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokmix.errors import TokmixError
from tokmix.io.corpus import TxtMode
from tokmix.schemas.run_spec import RunSpec, check_category_name, merge_steps


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
        try:
            check_category_name(name)
        except ValueError as exc:
            raise TokmixError(str(exc)) from None
        return cls(name, path)


@dataclass(frozen=True)
class SampleOptions:
    """How a category's sample is drawn (ARCHITECTURE.md §3): whole documents up to a byte
    budget."""

    max_bytes: int | None = None
    seed: int | None = None
    text_field: str = "text"
    skip_documents: int = 0
    txt_mode: TxtMode = "file"
    """How ``.txt`` files split into documents: ``file``, ``line`` or ``paragraph``."""


def categories_of(spec: RunSpec) -> tuple[list[CategorySpec], dict[str, SampleOptions]]:
    """A run spec's categories and each one's sampling options, as the stages take them."""
    cats, options = [], {}
    for name, cat in spec.categories.items():
        path: Any = cat.paths if len(cat.paths) > 1 else cat.paths[0]
        cats.append(CategorySpec(name, path))
        options[name] = SampleOptions(
            max_bytes=cat.max_bytes,
            seed=cat.seed,
            text_field=cat.text_field,
            skip_documents=cat.skip_documents,
            txt_mode=cat.txt_mode,
        )
    return cats, options


def parse_merge_range(text: str | None, merges: int | None, n_merges: int) -> tuple[int, int]:
    """``(first_step, last_step)`` from the CLI's ``--merge-range A:B`` or ``--merges T``, checked
    against the tokenizer (:func:`tokmix.schemas.run_spec.merge_steps`, messages naming the
    flags)."""
    try:
        return merge_steps(merges, text, n_merges, keys=("--merges", "--merge-range"))
    except ValueError as exc:
        raise TokmixError(str(exc)) from None
