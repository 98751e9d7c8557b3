"""Whether the datasets of an output root come from one consistent set of inputs.

Every committed dataset records the digests of the datasets it was computed from (its
manifest's ``input_hashes``, see :mod:`tokmix.io.catalog`). A root where a later run replaced the
word tables but not the mixture, say, holds datasets that no single run produced together; a
report built from it would set a mixture beside corpus statistics it was not solved from. This
module lists such links, in words, so ``tokmix report`` can flag them.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from tokmix.errors import DatasetError
from tokmix.io import catalog
from tokmix.io.datasets import MANIFEST, content_digest, read_manifest
from tokmix.io.fs import filesystem_for, join


def _committed(out: str, dataset: catalog.Dataset) -> dict[str, dict[str, Any]]:
    """Manifest per key value of every committed instance of ``dataset`` under ``out``."""
    fs, base = filesystem_for(join(out, dataset.kind))
    found: dict[str, dict[str, Any]] = {}
    for manifest in fs.glob(posixpath.join(base, f"{dataset.key}=*", MANIFEST)):
        value = posixpath.basename(posixpath.dirname(manifest)).split("=", 1)[1]
        try:
            found[value] = read_manifest(out, dataset.name(value))
        except DatasetError:
            continue
    return found


def _sample_identity(inputs: dict[str, Any]) -> tuple[Any, ...]:
    """What names a corpus sample in a count's inputs (files, pre-tokenizer, sampling options);
    the bootstrap group count that the count stage adds does not change the words."""
    return tuple(inputs.get(k) for k in ("corpus", "pretokenizer", "sample"))


def root_inconsistencies(out: str) -> list[str]:
    """Links between committed datasets of ``out`` that do not hold, one sentence each."""
    problems: list[str] = []
    words = {
        content_digest(m): f"{d.kind}/pretokenizer={k}"
        for d in (catalog.WORD_COUNTS, catalog.GROUP_WORD_COUNTS)
        for k, m in _committed(out, d).items()
    }
    word_inputs = [
        _sample_identity(m.get("input_hashes", {}))
        for m in _committed(out, catalog.WORD_COUNTS).values()
    ]
    trajectories = _committed(out, catalog.TRAJECTORIES)
    for tok, manifest in sorted(trajectories.items()):
        source = manifest.get("input_hashes", {}).get("word_counts")
        if source is not None and source not in words:
            problems.append(
                f"trajectories of {tok} were replayed from word tables this root no longer holds"
            )
    for tok, manifest in sorted(_committed(out, catalog.MIXTURES).items()):
        source = manifest.get("input_hashes", {}).get("trajectories")
        if tok not in trajectories:
            continue  # a solve-only root (trajectories elsewhere) is not inconsistent
        if source != content_digest(trajectories[tok]):
            problems.append(
                f"the mixture of {tok} was solved from trajectories this root no longer holds"
            )
    for tok, manifest in sorted(_committed(out, catalog.TOKEN_STATS).items()):
        source = manifest.get("input_hashes", {}).get("word_tables")
        if source is None:
            continue
        try:
            identity = _sample_identity(json.loads(source))
        except (TypeError, ValueError):
            continue
        if word_inputs and identity not in word_inputs:
            problems.append(
                f"token statistics of {tok} were computed from a corpus sample other than the "
                "word tables this root holds"
            )
    return problems
