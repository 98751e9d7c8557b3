"""Flaky object storage: the real moto S3 server behind a proxy that fails a share of requests
(503 SlowDown, dropped connections, replies lost after the write happened, stalled requests).
Datasets and whole pipeline runs must end exactly as they do on a healthy store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import REPO, LocalRayCluster, ray_executable
from tests.s3_faults import FaultyS3Proxy
from tests.test_ray_cluster_pipeline import (
    DEMO_TOKENIZER,
    _assert_same_results,
    _infer_locally,
    _local_corpus,
    _write_spec,
)
from tokmix.io.datasets import is_committed, read_dataset, write_dataset
from tokmix.io.fs import filesystem_for
from tokmix.schemas import WORD_COUNTS


@pytest.fixture
def flaky(s3_proxy: FaultyS3Proxy) -> Iterator[FaultyS3Proxy]:
    """The session's proxy, failing requests for the length of one test."""
    s3_proxy.injected.clear()
    yield s3_proxy
    s3_proxy.rate = 0.0
    s3_proxy.faults = ("slowdown", "drop", "lost_reply", "stall")


def _words(n: int) -> pa.Table:
    rows = [{"category": f"c{i % 7}", "word": f"w{i}".encode(), "count": i + 1} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=WORD_COUNTS)


def test_datasets_survive_every_kind_of_fault(
    s3_root: str, flaky: FaultyS3Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKMIX_S3_TIMEOUT", "1")
    flaky.stall_seconds = 3
    flaky.rate = 0.3
    table = _words(500)
    hashes = {"corpus": "x"}
    for attempt in range(3):  # a re-run over its own files, as a resumed stage does
        write_dataset(
            table, s3_root, "word_counts", schema=WORD_COUNTS, provenance={}, input_hashes=hashes
        )
        assert is_committed(s3_root, "word_counts", hashes), attempt
        got = read_dataset(s3_root, "word_counts", WORD_COUNTS).sort_by("word")
        assert got.to_pylist() == table.sort_by("word").to_pylist()
    assert set(flaky.injected) == {"slowdown", "drop", "lost_reply", "stall"}, flaky.injected


@pytest.mark.ray
@pytest.mark.slow
def test_ray_job_on_flaky_s3_equals_the_local_run(
    ray_cluster: LocalRayCluster,
    upload_to_s3: Callable[[Path, str], list[str]],
    s3_root: str,
    tmp_path: Path,
    flaky: FaultyS3Proxy,
) -> None:
    """``ray job submit`` with corpus, tokenizer and output on S3, one request in eight
    failing: the committed word tables, trajectories and mixture equal the local run's."""
    local = _local_corpus(tmp_path / "corpus")
    _infer_locally(local, tmp_path / "oracle", merges=400)
    upload_to_s3(tmp_path / "corpus", f"{s3_root}/corpus")
    upload_to_s3(DEMO_TOKENIZER, f"{s3_root}/tokenizers/demo")
    cats = {n: f"{s3_root}/corpus/{p.name}" for n, p in local.items()}
    spec = _write_spec(
        tmp_path / "spec.yaml", f"{s3_root}/out", cats, 400, f"{s3_root}/tokenizers/demo"
    )
    flaky.faults = ("slowdown", "drop", "lost_reply")
    flaky.rate = 0.125
    done = subprocess.run(
        [
            ray_executable(),
            "job",
            "submit",
            "--address",
            ray_cluster.dashboard_url,
            "--working-dir",
            str(REPO),
            "--",
            "python",
            "-m",
            "tokmix",
            "run",
            str(spec),
        ],
        env=ray_cluster.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    flaky.rate = 0.0
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sum(flaky.injected.values()) >= 10, flaky.injected
    _assert_same_results(str(tmp_path / "oracle"), f"{s3_root}/out")
    oracle = json.loads((tmp_path / "oracle" / "mixtures" / "demo.json").read_text())
    fs, path = filesystem_for(f"{s3_root}/out/mixtures/demo.json")
    got = json.loads(fs.cat_file(path))
    for a, b in zip(oracle["categories"], got["categories"], strict=True):
        assert a["name"] == b["name"] and abs(a["byte_share"] - b["byte_share"]) < 1e-6


@pytest.mark.ray
@pytest.mark.slow
def test_two_runs_into_one_s3_root_never_mix(
    ray_cluster: LocalRayCluster,
    upload_to_s3: Callable[[Path, str], list[str]],
    s3_root: str,
    tmp_path: Path,
) -> None:
    """Two drivers on the cluster, one S3 output root, different corpora: while the first
    holds the root's lease the second fails at once, naming it; the first's result is its own,
    and the root stays consistent."""
    import time

    from tokmix.io.consistency import root_inconsistencies
    from tokmix.io.root import LOCK

    local = _local_corpus(tmp_path / "corpus")
    _infer_locally(local, tmp_path / "oracle", merges=400)
    upload_to_s3(tmp_path / "corpus", f"{s3_root}/corpus")
    cats = {n: f"{s3_root}/corpus/{p.name}" for n, p in local.items()}
    other = {"books": cats["books"], "python": cats["python"]}
    out = f"{s3_root}/out"
    first_spec = _write_spec(tmp_path / "first.yaml", out, cats, 400)
    second_spec = _write_spec(tmp_path / "second.yaml", out, other, 400)
    second_spec.write_text(second_spec.read_text().replace("cluster-test", "second-run"))
    env = {**ray_cluster.env, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tokmix", "run"]
    first = subprocess.Popen(
        [*command, str(first_spec)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    fs, root = filesystem_for(out)
    deadline = time.monotonic() + 300
    while not fs.exists(f"{root}/{LOCK}"):
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the first run never took the lease"
        time.sleep(0.05)
    second = subprocess.run(
        [*command, str(second_spec)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _, first_err = first.communicate(timeout=900)
    assert first.returncode == 0, first_err[-3000:]
    assert second.returncode != 0
    assert "in use by run 'cluster-test'" in second.stderr and "Traceback" not in second.stderr
    _assert_same_results(str(tmp_path / "oracle"), out)
    assert root_inconsistencies(out) == []
    assert not fs.exists(f"{root}/{LOCK}")
