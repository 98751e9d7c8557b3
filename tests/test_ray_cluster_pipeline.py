"""The pipeline on a real two-node Ray cluster: submitted with ``ray job submit``, reading and
writing ``s3://`` (moto), surviving a lost worker node. The oracle is the in-process pipeline
of the core issue (``tokmix infer``) on local copies of the same inputs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from tests.conftest import REPO, LocalRayCluster, ray_executable
from tokmix.bpe.loaders import load_tokenizer
from tokmix.io.datasets import read_dataset
from tokmix.jobs.count import word_counts_name
from tokmix.jobs.replay import read_trajectories
from tokmix.schemas import WORD_COUNTS

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SAMPLES = REPO / "data" / "samples"
DEMO_TOKENIZER = REPO / "data" / "tokenizers" / "demo"
CATEGORIES = ("books", "python", "rust")


def _local_corpus(root: Path) -> dict[str, Path]:
    """books and python as plain JSON lines (split into byte ranges), rust gzipped (whole)."""
    root.mkdir(parents=True, exist_ok=True)
    cats = {}
    for name in CATEGORIES:
        src = SAMPLES / f"{name}.jsonl.gz"
        if name == "rust":
            path = root / f"{name}.jsonl.gz"
            path.write_bytes(src.read_bytes())
        else:
            path = root / f"{name}.jsonl"
            path.write_bytes(gzip.decompress(src.read_bytes()))
        cats[name] = path
    return cats


def _infer_locally(cats: dict[str, Path], out: Path, merges: int) -> None:
    args = [sys.executable, "-m", "tokmix.cli", "infer", str(DEMO_TOKENIZER), "-T", str(merges)]
    args += ["--groups", "0"]  # the oracle of counts and trajectories: no intervals needed
    for name, path in cats.items():
        args += ["-c", f"{name}={path}"]
    done = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def _write_spec(
    path: Path, out: str, cats: dict[str, str], merges: int, tokenizer: str = str(DEMO_TOKENIZER)
) -> Path:
    spec = {
        "run_id": "cluster-test",
        "out": out,
        "tokenizers": [tokenizer],
        "categories": {n: {"paths": [p]} for n, p in cats.items()},
        "merges": merges,
        "shard_bytes": "60KB",
        "bootstrap": {"groups": 4, "replicates": 3},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _assert_same_results(oracle: str, run: str) -> None:
    tok = load_tokenizer(str(DEMO_TOKENIZER))
    name = word_counts_name(tok.pretokenizer)
    a = read_dataset(oracle, name, WORD_COUNTS)
    b = read_dataset(run, name, WORD_COUNTS)
    for cat in CATEGORIES:

        def rows(t, c=cat):  # type: ignore[no-untyped-def]
            return t.filter(pc.equal(t["category"], c)).sort_by("word").to_pylist()

        assert rows(a) == rows(b), cat
    want, want_ids, want_bytes = read_trajectories(oracle, tok.name)
    got, got_ids, got_bytes = read_trajectories(run, tok.name)
    assert (want_ids == got_ids).all() and want_bytes == got_bytes
    for cat in CATEGORIES:
        for field in ("step", "left", "right", "delta"):
            assert (getattr(want[cat], field) == getattr(got[cat], field)).all(), (cat, field)


def test_ray_job_submit_on_s3_equals_the_local_run(
    ray_cluster: LocalRayCluster,
    upload_to_s3: Callable[[Path, str], list[str]],
    s3_root: str,
    tmp_path: Path,
) -> None:
    local = _local_corpus(tmp_path / "corpus")
    _infer_locally(local, tmp_path / "oracle", merges=800)
    upload_to_s3(tmp_path / "corpus", f"{s3_root}/corpus")
    upload_to_s3(DEMO_TOKENIZER, f"{s3_root}/tokenizers/demo")
    cats = {n: f"{s3_root}/corpus/{p.name}" for n, p in local.items()}
    spec = _write_spec(
        tmp_path / "spec.yaml", f"{s3_root}/out", cats, 800, f"{s3_root}/tokenizers/demo"
    )
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
            "--json",
        ],
        env=ray_cluster.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[tokmix cluster-test" in done.stdout  # logs name the run id
    assert "joined the Ray cluster" in done.stdout
    # the solve task runs on a worker: its progress still reaches the job's log, named
    for line in ("solve paper LP: done", "solve estimate: done", "solve/replicates: 3/3 tasks"):
        assert line in done.stdout, done.stdout[-3000:]
    _assert_same_results(str(tmp_path / "oracle"), f"{s3_root}/out")
    oracle = json.loads((tmp_path / "oracle" / "mixtures" / "demo.json").read_text())
    from tokmix.io.fs import filesystem_for

    fs, path = filesystem_for(f"{s3_root}/out/mixtures/demo.json")
    got = json.loads(fs.cat_file(path))
    for a, b in zip(oracle["categories"], got["categories"], strict=True):
        assert a["name"] == b["name"] and abs(a["byte_share"] - b["byte_share"]) < 1e-6

    # Submitted again: every stage is committed on s3 from the same inputs, so all skip.
    again = subprocess.run(
        [sys.executable, "-m", "tokmix", "run", str(spec)],
        env={**ray_cluster.env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("skipped") == 3, again.stderr[-3000:]


def test_a_lost_worker_node_loses_and_duplicates_nothing(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """Kill the whole worker node (raylet and all) as soon as the count stage runs: Ray
    reruns its tasks and rebuilds the objects it held on the head; the committed result equals
    the local run's."""
    local = _local_corpus(tmp_path / "corpus")
    _infer_locally(local, tmp_path / "oracle", merges=800)
    cats = {n: str(p) for n, p in local.items()}
    spec = _write_spec(tmp_path / "spec.yaml", str(tmp_path / "out"), cats, merges=800)
    killed: list[int] = []

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if _count_task_running():
                killed.extend(ray_cluster.kill_worker_node())
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_when_busy, daemon=True)
    watcher.start()
    env = {**ray_cluster.env, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "tokmix", "run", str(spec)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    watcher.join()
    try:
        assert killed, "the count stage never ran"
        assert done.returncode == 0, done.stderr[-4000:]
        _assert_same_results(str(tmp_path / "oracle"), str(tmp_path / "out"))
    finally:
        ray_cluster.restart_worker_node()


def _count_task_running() -> bool:
    """Whether any Ray worker on this machine is running a count task (Ray titles a worker
    process ``ray::<task>`` while it runs one)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::_count_shard"):
                return True
    return False


def test_a_killed_run_resumes_from_its_counted_shards(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """SIGKILL the driver once some shards are counted; the next attempt counts only the
    others and commits exactly the local run's result."""
    local = _local_corpus(tmp_path / "corpus")
    _infer_locally(local, tmp_path / "oracle", merges=800)
    cats = {n: str(p) for n, p in local.items()}
    spec = _write_spec(tmp_path / "spec.yaml", str(tmp_path / "out"), cats, merges=800)
    text = spec.read_text().replace("shard_bytes: 60KB", "shard_bytes: 15KB")
    spec.write_text(text)
    command = [sys.executable, "-m", "tokmix", "run", str(spec)]
    env = {**ray_cluster.env, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    work = tmp_path / "out" / "_work"
    deadline = time.monotonic() + 300
    while len(list(work.glob("count-*/*.json"))) < 3:
        assert driver.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no shard was counted in time"
        time.sleep(0.01)
    driver.kill()
    driver.wait()
    counted = len(list(work.glob("count-*/*.json")))
    assert not (tmp_path / "out" / "mixtures").exists()

    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"count: {counted} of " in done.stderr or "shards were counted by an earlier" in (
        done.stderr
    ), done.stderr[-3000:]
    _assert_same_results(str(tmp_path / "oracle"), str(tmp_path / "out"))
    assert not list(work.glob("count-*")), "the checkpoints are removed once the stage commits"
