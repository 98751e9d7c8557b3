"""What infer and run check about a merge list (and the samples) before trusting a mixture.

- **Which merges to solve.** ``--merges`` / ``--merge-range`` as before; by default the
  hand-inserted head (``LoadedTokenizer.hand_inserted``, Gemma's whitespace runs) is replayed
  but left out of the LP; ``--merge-range auto`` solves only the extension of the longest known
  base the tokenizer continues (``tokmix.bpe.lineage``).
- **Lineage.** Against the known bases (``--base PATH``, and every tokenizer in the
  directories of ``$TOKMIX_KNOWN_TOKENIZERS``), the longest whose whole list starts this one.
- **Order.** ``tokmix.bpe.order_check`` on the counted samples: a merge list that does not fit
  them better than a shuffled control gets a warning with the figure.
- **Categories the LP cannot tell apart.** Two categories whose samples have the same word
  frequencies (the same text given twice, by a repeated path or overlapping globs) have the
  same pair counts at every step: any split of their share is optimal and the one reported is
  arbitrary, so they get a warning.

The checks are pure functions of the tokenizer and word tables; this module only loads bases
and formats what they say for the JSON document, the log and the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokmix.bpe.lineage import Lineage, base_of
from tokmix.bpe.order_check import check_merge_order
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.words import WordTable
from tokmix.errors import TokenizerFormatError, TokmixError
from tokmix.io.catalog import mixture_json_path
from tokmix.io.fs import filesystem_for, write_bytes_atomic
from tokmix.jobs.tokenizers import load_tokenizer
from tokmix.schemas.mixture import MixtureResult
from tokmix.schemas.run_spec import merge_steps as range_steps

KNOWN_ENV = "TOKMIX_KNOWN_TOKENIZERS"
ORDER_CHECK_WORDS = 200_000
"""The order check replays the most frequent words only (its figure is a rank correlation of
the most frequent pairs; rare words do not move it)."""


@dataclass(frozen=True)
class MergeSteps:
    """The steps to replay and solve, and what decided them."""

    first: int
    last: int
    diagnostics: dict[str, Any] = field(default_factory=dict)
    messages: tuple[str, ...] = ()


def known_bases(paths: Sequence[str] = ()) -> list[LoadedTokenizer]:
    """The tokenizers ``paths`` name, and each entry of the ``$TOKMIX_KNOWN_TOKENIZERS``
    directories (``os.pathsep``-separated) that loads as one; unreadable entries are
    skipped there (they are other files), but a path the user passed must load."""
    out = [load_tokenizer(p) for p in paths]
    for folder in filter(None, os.environ.get(KNOWN_ENV, "").split(os.pathsep)):
        for entry in sorted(Path(folder).iterdir()):
            try:
                out.append(load_tokenizer(entry))
            except TokenizerFormatError:
                continue
    return out


def merge_steps(
    tokenizer: LoadedTokenizer,
    merge_range: str | None,
    merges: int | None,
    bases: Sequence[LoadedTokenizer] = (),
    *,
    keys: tuple[str, str] = ("merges", "merge_range"),
) -> MergeSteps:
    """``(first, last)`` steps for the replay and the LP, with the lineage and hand-inserted
    merges that decided them (see the module docstring); ``keys`` name the two options as the
    user gave them."""
    diagnostics: dict[str, Any] = {}
    messages: list[str] = []
    lineage = base_of(tokenizer, bases) if bases else None
    if lineage is not None:
        diagnostics["lineage"] = _lineage_dict(lineage)
        messages.append(lineage.describe())
    hand = len(tokenizer.hand_inserted)
    if hand:
        diagnostics["hand_inserted"] = {
            "merges_left_out": hand,
            "tokens": [t.decode("utf-8", errors="replace") for t in tokenizer.hand_inserted],
        }
    if merge_range == "auto":
        if lineage is None:
            raise TokmixError(
                f"{keys[1]} auto: {tokenizer.name} extends none of the known tokenizers "
                f"({len(bases)} given with --base / bases: or ${KNOWN_ENV}); give A:B"
            )
        first, last = lineage.extension
        return MergeSteps(first + 1, last, diagnostics, tuple(messages))
    try:
        first, last = range_steps(
            merges, merge_range, tokenizer.n_merges, tokenizer=f"tokenizer {tokenizer.name}",
            keys=keys,
        )  # fmt: skip
    except ValueError as exc:
        raise TokmixError(str(exc)) from None
    if merge_range is None and hand:
        if last <= hand:
            raise TokmixError(
                f"{keys[0]} {last}: the first {hand} merges of {tokenizer.name} are "
                f"hand-inserted and left out; give more, or {keys[1]} 0:{last} to keep them"
            )
        first = hand + 1
        messages.append(
            f"{hand} hand-inserted merges (whitespace runs) replayed but left out of the LP; "
            f"solving steps {first}..{last} ({keys[1]} 0:{last} keeps them)"
        )
    return MergeSteps(first, last, diagnostics, tuple(messages))


def _lineage_dict(found: Lineage) -> dict[str, Any]:
    return {
        "base": found.base,
        "shared_merges": found.shared,
        "extension": list(found.extension),
        "note": found.describe(),
    }


def order_diagnostics(
    tokenizer: LoadedTokenizer, tables: Mapping[str, WordTable], *, n_steps: int = 2000
) -> tuple[dict[str, Any], str | None]:
    """The order check on the pooled samples: its figures, and the warning if any."""
    pooled = WordTable.total(tables.values())
    sample = dict(pooled.counts.most_common(ORDER_CHECK_WORDS))
    check = check_merge_order(sample, tokenizer.merge_list, n_steps=n_steps)
    return check.as_dict(), check.warning()


def record_checks(out: str, result: MixtureResult, diagnostics: Mapping[str, Any]) -> MixtureResult:
    """The result with the checks in its diagnostics, written over the solve's JSON document
    (``mixtures/<tokenizer>.json``), which the report reads: its diagnostics table shows the
    figures and the warning."""
    result = result.with_diagnostics(**diagnostics)
    fs, path = filesystem_for(mixture_json_path(out, result.tokenizer))
    write_bytes_atomic(fs, path, (json.dumps(result.to_json(), indent=1) + "\n").encode())
    return result


def indistinguishable(tables: Mapping[str, WordTable]) -> list[list[str]]:
    """Groups (two or more, in the tables' order) of categories whose word frequencies are
    the same: counts equal up to one factor (a sample and the same text twice over)."""
    totals = {name: table.counts.total() for name, table in tables.items()}
    buckets: dict[int, list[str]] = {}
    for name, table in tables.items():  # equal frequencies need equal vocabularies
        if totals[name]:
            buckets.setdefault(len(table.counts), []).append(name)

    def same(a: str, b: str) -> bool:
        ca, cb, ta, tb = tables[a].counts, tables[b].counts, totals[a], totals[b]
        return ca.keys() == cb.keys() and all(n * tb == cb[w] * ta for w, n in ca.items())

    groups = []
    for names in buckets.values():
        while len(names) > 1:
            first, rest = names[0], names[1:]
            group = [first, *(n for n in rest if same(first, n))]
            if len(group) > 1:
                groups.append(group)
            names = [n for n in rest if n not in group]
    return groups


def checks_for(
    tokenizer: LoadedTokenizer, steps: MergeSteps, tables: Mapping[str, WordTable]
) -> tuple[dict[str, Any], list[str]]:
    """Every check's diagnostics (lineage, hand-inserted, order, categories alike) and
    warnings, as one dict."""
    order, warning = order_diagnostics(tokenizer, tables)
    diagnostics = {**steps.diagnostics, "order_check": order}
    warnings = []
    if warning:
        diagnostics["order_warning"] = warning
        warnings.append(warning)
    alike = indistinguishable(tables)
    if alike:
        names = "; ".join(" and ".join(group) for group in alike)
        diagnostics["sample_warning"] = (
            f"categories {names} have the same word frequencies (the same text given twice?): "
            "the LP cannot tell them apart, so how their share splits between them is "
            "arbitrary; give each category its own text, or merge them"
        )
        warnings.append(diagnostics["sample_warning"])
    return diagnostics, warnings
