"""The inferred mixture of one tokenizer: the solve stage's typed result and its JSON form.

``MixtureResult`` is what ``run_solve`` returns, ``tokmix infer`` prints and ``tokmix run``
summarizes; ``mixtures/NAME.json`` is :meth:`MixtureResult.to_json` written out, read back by
:meth:`MixtureResult.from_json`. The document's shape is the README's ``--json`` contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

WARNING_KEYS = ("order_warning", "sample_warning", "confounded_warning")
"""The diagnostics keys that hold a warning about the estimate (the merge list's order, two
categories of the same text, categories whose shares trade off): ``tokmix infer`` prints them
under the mixture, the report shows them under its table."""


@dataclass(frozen=True)
class CategoryShare:
    """One category's estimate: ``weight`` α (pair units), ``byte_share`` β, and β's bootstrap
    interval when the run has one."""

    name: str
    weight: float
    byte_share: float
    byte_share_low: float | None = None
    byte_share_high: float | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "weight": self.weight,
            "byte_share": self.byte_share,
        }
        if self.byte_share_low is not None and self.byte_share_high is not None:
            doc["byte_share_low"] = self.byte_share_low
            doc["byte_share_high"] = self.byte_share_high
        return doc


@dataclass(frozen=True)
class MixtureResult:
    """A tokenizer's inferred training mixture and how the solve went.

    ``diagnostics`` keeps the solver's own keys in the order it reported them (objective,
    steps, rounds, constraints, ..., ``estimator``, ``paper_lp``, ``interval``); the JSON
    document is written from it unchanged.
    """

    tokenizer: str
    categories: tuple[CategoryShare, ...]
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def byte_shares(self) -> dict[str, float]:
        return {c.name: c.byte_share for c in self.categories}

    @property
    def has_interval(self) -> bool:
        return "interval" in self.diagnostics

    @property
    def warnings(self) -> list[str]:
        """The warnings in the diagnostics (:data:`WARNING_KEYS`), in that order."""
        return [str(self.diagnostics[k]) for k in WARNING_KEYS if k in self.diagnostics]

    def with_diagnostics(self, **extra: Any) -> MixtureResult:
        """The same result with more diagnostics (stage seconds, the output root)."""
        return replace(self, diagnostics={**self.diagnostics, **extra})

    def to_json(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer,
            "categories": [c.to_json() for c in self.categories],
            "diagnostics": dict(self.diagnostics),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MixtureResult:
        return cls(
            tokenizer=doc["tokenizer"],
            categories=tuple(
                CategoryShare(
                    name=c["name"],
                    weight=c["weight"],
                    byte_share=c["byte_share"],
                    byte_share_low=c.get("byte_share_low"),
                    byte_share_high=c.get("byte_share_high"),
                )
                for c in doc["categories"]
            ),
            diagnostics=dict(doc.get("diagnostics", {})),
        )
