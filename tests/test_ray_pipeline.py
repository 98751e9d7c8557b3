"""The Ray pipeline equals the in-process pipeline of the core issue, bit for bit.

An embedded Ray (2 CPUs) runs the stages over the shipped demo samples, decompressed so that
files split into byte-range shards; the oracle is tokmix.jobs.count.run_count and
tokmix.jobs.replay.run_replay, which read each category as one stream.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
import ray

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import PairTrajectory
from tokmix.errors import CorpusReadError, DatasetError, TokmixError
from tokmix.io.datasets import read_dataset, read_manifest
from tokmix.jobs.count import corpus_stats_name, run_count, word_counts_name
from tokmix.jobs.count_ray import run_count_ray
from tokmix.jobs.infer import run_infer
from tokmix.jobs.pipeline import run_pipeline
from tokmix.jobs.replay import read_group_trajectories, read_trajectories, run_replay
from tokmix.jobs.replay_ray import run_replay_ray
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.schemas import CORPUS_STATS, MIXTURES, WORD_COUNTS
from tokmix.schemas.run_spec import RunSpec, load_run_spec

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
DEMO_TOKENIZER = ROOT / "data" / "tokenizers" / "demo"

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def embedded_ray() -> Iterator[None]:
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Demo categories as plain JSON lines (splittable), one as two files."""
    root = tmp_path_factory.mktemp("corpus")
    cats: dict[str, str] = {}
    for name in ("books", "python", "rust"):
        raw = gzip.decompress((SAMPLES / f"{name}.jsonl.gz").read_bytes())
        (root / name).mkdir()
        if name == "rust":
            lines = raw.splitlines(keepends=True)
            half = len(lines) // 2
            (root / name / "part-0.jsonl").write_bytes(b"".join(lines[:half]))
            (root / name / "part-1.jsonl").write_bytes(b"".join(lines[half:]))
        else:
            (root / name / "docs.jsonl").write_bytes(raw)
        cats[name] = str(root / name)
    shutil.copy(SAMPLES / "legal.jsonl.gz", root / "legal.jsonl.gz")  # a whole-file shard
    cats["legal"] = str(root / "legal.jsonl.gz")
    return cats


OPTIONS = {
    "books": SampleOptions(max_bytes=150_000),
    "python": SampleOptions(skip_documents=5, max_bytes=200_000),
    "rust": SampleOptions(),
    "legal": SampleOptions(),
}


def _sorted_rows(table):  # type: ignore[no-untyped-def]
    return table.sort_by([("category", "ascending"), ("word", "ascending")]).to_pylist()


def test_ray_count_and_replay_equal_in_process(
    embedded_ray: None, corpus: dict[str, str], tmp_path: Path
) -> None:
    tok = load_tokenizer(str(DEMO_TOKENIZER))
    specs = [CategorySpec(n, p) for n, p in corpus.items()]
    local, dist = str(tmp_path / "local"), str(tmp_path / "ray")

    # the oracle: one sequential stream per category, with that category's options
    tables = run_count(specs, tok.pretokenizer, local, OPTIONS)

    totals = run_count_ray(
        specs, OPTIONS, tok.pretokenizer, dist, shard_bytes=40_000, partitions=3, groups=4
    )
    manifest = read_manifest(dist, word_counts_name(tok.pretokenizer))
    assert len(manifest["files"]) > len(specs)  # several partitions per category
    words = read_dataset(dist, word_counts_name(tok.pretokenizer), WORD_COUNTS)
    for name, table in tables.items():
        mine = words.filter(pc.equal(words["category"], name))
        assert _sorted_rows(mine) == _sorted_rows(table.to_arrow(name)), name
        expected = table.totals()
        expected["files"] = table.files
        assert totals[name] == expected, name
    stats = read_dataset(dist, corpus_stats_name(tok.pretokenizer), CORPUS_STATS).to_pylist()
    assert {r["category"]: r["bytes"] for r in stats} == {n: t.bytes_ for n, t in tables.items()}
    assert tables["books"].bytes_ <= 150_000 and tables["python"].bytes_ <= 200_000

    run_replay(tok, tables, local, 1, 800)
    run_replay_ray(tok, dist, 1, 800)
    want, want_ids, want_bytes = read_trajectories(local, tok.name)
    got, got_ids, got_bytes = read_trajectories(dist, tok.name)
    assert (got_ids == want_ids).all() and got_bytes == want_bytes
    assert set(got) == set(want)
    for name in want:
        for field in ("step", "left", "right", "delta"):
            assert (getattr(got[name], field) == getattr(want[name], field)).all(), (name, field)
        assert got[name].pairs == want[name].pairs

    # The bootstrap groups partition each sample: their word counts, bytes and trajectories
    # add up to the category's.
    groups = read_group_trajectories(dist, tok.name)
    assert groups is not None
    group_trajs, group_bytes = groups
    for name in want:
        assert len(group_trajs[name]) >= 2
        total = PairTrajectory.total(group_trajs[name])
        assert (total.delta == want[name].delta).all() and total.pairs == want[name].pairs
        assert sum(group_bytes[name]) == tables[name].bytes_


def _spec(corpus: dict[str, str], out: Path, **extra: object) -> RunSpec:
    return RunSpec.model_validate(
        {
            "out": str(out),
            "tokenizers": extra.pop("tokenizers", [str(DEMO_TOKENIZER)]),
            "categories": {n: {"paths": [p]} for n, p in corpus.items()},
            "merges": 600,
            "shard_bytes": "50KB",
            "bootstrap": {"groups": 1},
            **extra,
        }
    )


def test_pipeline_is_idempotent_and_resumes(
    embedded_ray: None, corpus: dict[str, str], tmp_path: Path
) -> None:
    lines: list[str] = []
    spec = _spec(corpus, tmp_path / "out", bootstrap={"groups": 6, "replicates": 4})
    first = run_pipeline(spec, log=lines.append)
    rows = first["tokenizers"]["demo"]["categories"]
    shares = {r["name"]: r["byte_share"] for r in rows}
    assert abs(sum(shares.values()) - 1) < 1e-9 and all(v > 0.02 for v in shares.values())
    assert all(r["byte_share_low"] <= r["byte_share"] <= r["byte_share_high"] for r in rows)
    assert any("count: " in line and "ETA" not in line for line in lines)
    summary = json.loads((tmp_path / "out" / "runs" / f"{spec.effective_run_id}.json").read_text())
    assert summary["tokenizers"]["demo"]["categories"] == first["tokenizers"]["demo"]["categories"]

    # `tokmix infer` (one process) on the same inputs and seed: the same estimate and the
    # same intervals, bit for bit, in the JSON and in the committed mixtures.
    local = run_infer(spec.model_copy(update={"out": str(tmp_path / "local")})).to_json()
    assert local["categories"] == rows
    assert (
        local["diagnostics"]["interval"] == first["tokenizers"]["demo"]["diagnostics"]["interval"]
    )
    mixtures = [
        read_dataset(str(root), "mixtures/tokenizer=demo", MIXTURES).to_pylist()
        for root in (tmp_path / "out", tmp_path / "local")
    ]
    assert mixtures[0] == mixtures[1]

    lines.clear()
    again = run_pipeline(spec, log=lines.append)
    assert sum("skipped" in line for line in lines) == 3  # count, replay, solve
    assert again["tokenizers"] == first["tokenizers"]

    # A run killed after counting: the later stages were never committed.
    for dataset in ("trajectories/tokenizer=demo", "mixtures/tokenizer=demo"):
        os.remove(tmp_path / "out" / dataset / "_SUCCESS")
    lines.clear()
    resumed = run_pipeline(spec, log=lines.append)
    assert sum("skipped" in line for line in lines) == 1  # count only
    assert resumed["tokenizers"]["demo"]["categories"] == first["tokenizers"]["demo"]["categories"]


def test_run_reuses_what_infer_committed(
    embedded_ray: None, corpus: dict[str, str], tmp_path: Path
) -> None:
    """One input-digest scheme: ``tokmix infer`` (in-process) then ``tokmix run`` (Ray) on the
    same spec and root skips every stage, rewrites nothing and reports the same mixture."""
    spec = _spec(corpus, tmp_path, merges=300, bootstrap={"groups": 3, "replicates": 3})
    local = run_infer(spec).to_json()
    before = {p: p.read_bytes() for p in tmp_path.rglob("_SUCCESS")}
    assert len(before) == 10  # count 4, replay 5, solve 1
    lines: list[str] = []
    summary = run_pipeline(spec, log=lines.append)
    skipped = [line for line in lines if "already committed" in line]
    assert [line.split()[0].rstrip(":") for line in skipped] == ["count", "replay", "solve"], lines
    assert summary["tokenizers"]["demo"]["categories"] == local["categories"]
    assert {p: p.read_bytes() for p in tmp_path.rglob("_SUCCESS")} == before


def test_bad_inputs_name_the_path(
    embedded_ray: None, corpus: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"text": "ok"}\n')[:-9])
    (bad / "empty-text.jsonl").write_text('{"text": ""}\n' * 3)
    cases = {
        str(tmp_path / "missing" / "*.jsonl"): (CorpusReadError, "missing"),
        str(bad / "broken.jsonl.gz"): (CorpusReadError, "broken.jsonl.gz: not a valid gzip"),
        str(bad / "empty-text.jsonl"): (CorpusReadError, "empty-text.jsonl has no text"),
    }
    for path, (error, message) in cases.items():
        spec = _spec({"books": corpus["books"], "odd": path}, tmp_path / "o1")
        with pytest.raises(error, match=message):
            run_pipeline(spec, log=lambda _m: None)

    spec = _spec(corpus, tmp_path / "o2", stages=["count"])
    run_pipeline(spec, log=lambda _m: None)
    victim = next((tmp_path / "o2" / "word_counts").rglob("category=rust/part-*.parquet"))
    size = victim.stat().st_size
    victim.write_bytes(b"\0" * size)  # corrupt, same size: the manifest's check passes
    spec = _spec(corpus, tmp_path / "o2", stages=["replay"])
    with pytest.raises(DatasetError, match=rf"{victim.name}: unreadable word-count file"):
        run_pipeline(spec, log=lambda _m: None)


def test_run_spec_validation(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "out: o\ntokenizers: [tok.json]\n"
        "categories:\n  en: {paths: data/en.jsonl, max_bytes: 2MB}\n"
    )
    spec = load_run_spec(path)
    assert spec.categories["en"].paths == [str(tmp_path / "data" / "en.jsonl")]
    assert spec.categories["en"].max_bytes == 2_000_000
    assert spec.tokenizers == [str(tmp_path / "tok.json")]
    assert spec.stages == ["count", "replay", "solve"]
    path.write_text("out: o\ntokenizers: [t]\ncategories: {en: {paths: [x], max_byte: 3}}\n")
    with pytest.raises(TokmixError, match=r"categories.en.max_byte: Extra inputs"):
        load_run_spec(path)
    path.write_text("out: o\ntokenizers: [t]\ncategories: {en: {paths: [x]}}\nstages: [sort]\n")
    with pytest.raises(TokmixError, match=r"stages.0"):
        load_run_spec(path)


def _processes_titled(prefix: str) -> list[int]:
    """PIDs whose title (Ray sets ``ray::<task or actor>``) starts with ``prefix``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(prefix):
            pids.append(int(entry.name))
    return pids


class _Killer(threading.Thread):
    """Kills the first Ray worker process seen running each given task or actor."""

    def __init__(self, titles: list[str]) -> None:
        super().__init__(daemon=True)
        self.titles, self.killed, self.stop = list(titles), [], threading.Event()

    def run(self) -> None:
        while self.titles and not self.stop.is_set():
            pids = _processes_titled(self.titles[0])
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                self.killed.append(self.titles.pop(0))
            time.sleep(0.005)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray workers through /proc")
def test_killed_workers_lose_and_duplicate_nothing(
    embedded_ray: None, shared_data: Path, tmp_path: Path
) -> None:
    """SIGKILL a worker mid-count and a replay actor mid-replay: Ray retries them, and the
    committed word tables and trajectories equal a clean run's."""
    corpus = {}
    for name in ("python", "go"):
        raw = gzip.decompress(
            (shared_data / "corpora" / "code" / name / "docs.jsonl.gz").read_bytes()
        )
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(raw[: raw.index(b"\n", 2_000_000) + 1])  # 2 MB of whole lines
        corpus[name] = str(path)
    gpt2 = str(shared_data / "tokenizers" / "gpt2")
    options = {
        "shard_bytes": "250KB",
        "merges": 2000,
        "tokenizers": [gpt2],
        "stages": ["count", "replay"],  # the stages under test; solving adds nothing
    }
    clean = _spec(corpus, tmp_path / "clean", **options)
    run_pipeline(clean, log=lambda _m: None)

    faulty = _spec(corpus, tmp_path / "faulty", **options)
    killer = _Killer(["ray::_count_shard", "ray::_replay_file"])
    killer.start()
    try:
        run_pipeline(faulty, log=lambda _m: None)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed == ["ray::_count_shard", "ray::_replay_file"]

    tok = load_tokenizer(gpt2)
    name = word_counts_name(tok.pretokenizer)
    a = read_dataset(str(tmp_path / "clean"), name, WORD_COUNTS)
    b = read_dataset(str(tmp_path / "faulty"), name, WORD_COUNTS)
    assert _sorted_rows(a) == _sorted_rows(b)
    want, _, want_bytes = read_trajectories(str(tmp_path / "clean"), tok.name)
    got, _, got_bytes = read_trajectories(str(tmp_path / "faulty"), tok.name)
    assert want_bytes == got_bytes
    for cat in want:
        assert (want[cat].delta == got[cat].delta).all() and (want[cat].step == got[cat].step).all()


def test_stats_stage_equals_tokmix_stats_and_reports(
    embedded_ray: None, corpus: dict[str, str], tmp_path: Path
) -> None:
    from tokmix.jobs.report import run_report
    from tokmix.jobs.stats import run_stats

    specs = [CategorySpec(n, p) for n, p in corpus.items()]
    want = run_stats([str(DEMO_TOKENIZER)], specs, str(tmp_path / "local"), SampleOptions())
    spec = _spec(corpus, tmp_path / "ray", stages=["count", "replay", "solve", "stats"])
    summary = run_pipeline(spec, log=lambda _m: None)
    key = ("tokenizer", "category")
    assert sorted(summary["token_stats"], key=lambda r: [r[k] for k in key]) == sorted(
        want.to_pylist(), key=lambda r: [r[k] for k in key]
    )
    html = Path(run_report(str(tmp_path / "ray"), None)).read_text()
    assert "Inferred mixture" in html and "Vocabulary use" in html


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray workers through /proc")
def test_a_solve_task_killed_among_its_replicates_is_retried_from_its_checkpoints(
    embedded_ray: None, corpus: dict[str, str], tmp_path: Path
) -> None:
    """SIGKILL the worker running the solve task once it has kept some replicates: Ray
    retries the task, which takes the finished solves and replicates as they were
    (tokmix/jobs/solve_checkpoints.py), and the intervals equal a clean run's bit for bit."""
    options = {"merges": 1500, "bootstrap": {"groups": 6, "replicates": 12}}
    clean = run_pipeline(_spec(corpus, tmp_path / "clean", **options), log=lambda _m: None)
    out = tmp_path / "faulty"
    stop = threading.Event()
    killed: list[int] = []

    def kill_the_solve_task() -> None:
        while not stop.is_set() and not killed:
            if len(list(out.glob("_work/solve-demo/*/replicate-*.npz"))) >= 3:
                for pid in _processes_titled("ray::_solve_task"):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_solve_task, daemon=True)
    killer.start()
    try:
        faulty = run_pipeline(_spec(corpus, out, **options), log=lambda _m: None)
    finally:
        stop.set()
        killer.join()
    assert killed, "the solve task was never seen with replicates kept"
    got, want = faulty["tokenizers"]["demo"], clean["tokenizers"]["demo"]
    assert got["categories"] == want["categories"]
    resumed = got["diagnostics"]["resumed"]
    assert resumed[:2] == ["paper", "estimate"] and resumed[2].endswith("replicates")
    assert int(resumed[2].split()[0]) >= 3
    assert not (out / "_work").exists()
