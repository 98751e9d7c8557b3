"""``MixtureResult``: the solve's typed result is the JSON document and the Parquet rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.helpers import REPO
from tokmix.jobs.infer import run_infer
from tokmix.jobs.solve import read_mixture_json
from tokmix.schemas.mixture import CategoryShare, MixtureResult
from tokmix.schemas.run_spec import RunSpec

SAMPLES = REPO / "data" / "samples"


def test_result_json_and_parquet_say_the_same(tmp_path: Path) -> None:
    spec = RunSpec.model_validate(
        {
            "out": str(tmp_path),
            "tokenizers": [str(REPO / "data" / "tokenizers" / "demo")],
            "categories": {
                n: {"paths": [str(SAMPLES / f"{n}.jsonl.gz")], "max_bytes": 30_000}
                for n in ("books", "python", "rust")
            },
            "merges": 200,
            "bootstrap": {"groups": 3, "replicates": 3},
        }
    )
    result = run_infer(spec)
    assert isinstance(result, MixtureResult) and result.has_interval
    assert [c.name for c in result.categories] == ["books", "python", "rust"]
    assert abs(sum(result.byte_shares.values()) - 1) < 1e-9
    assert all(
        isinstance(c, CategoryShare) and c.byte_share_low is not None for c in result.categories
    )

    on_disk = json.loads((tmp_path / "mixtures" / "demo.json").read_text())
    extra = {"stage_seconds", "out"}
    assert set(result.diagnostics) - set(on_disk["diagnostics"]) == extra
    written = result.to_json()
    written["diagnostics"] = {k: v for k, v in written["diagnostics"].items() if k not in extra}
    assert written == on_disk
    assert read_mixture_json(str(tmp_path), "demo") == MixtureResult.from_json(on_disk)
    assert MixtureResult.from_json(result.to_json()) == result

    rows = pq.read_table(tmp_path / "mixtures" / "tokenizer=demo").to_pylist()
    assert {r["category"]: (r["weight"], r["byte_share"], r["byte_share_low"]) for r in rows} == {
        c.name: (c.weight, c.byte_share, c.byte_share_low) for c in result.categories
    }


def test_without_interval_the_rows_have_no_interval_keys() -> None:
    doc = {
        "tokenizer": "t",
        "categories": [{"name": "a", "weight": 1.0, "byte_share": 1.0}],
        "diagnostics": {"objective": 0.0},
    }
    result = MixtureResult.from_json(doc)
    assert not result.has_interval and result.to_json() == doc
