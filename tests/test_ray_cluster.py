"""The session's local Ray cluster (tests/conftest.py) is a real two-node cluster: a driver in
this process reaches both nodes, a job submitted through the dashboard runs and its logs come
back, and a killed worker node leaves and comes back."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, LocalRayCluster, alive_node_ids, ray_executable

pytestmark = pytest.mark.ray


def test_tasks_run_on_both_nodes(ray_driver: LocalRayCluster) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    expected = {node.node_id() for node in ray_driver.nodes()}
    assert len(expected) == 2
    seen = set()
    for node_id in expected:
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        seen.add(ray.get(where.options(scheduling_strategy=strategy).remote(), timeout=120))
    assert seen == expected

    # Without pinning, two one-CPU tasks held at once must land on two different nodes.
    @ray.remote(num_cpus=1)
    def hold(seconds: float) -> str:
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id()

    assert set(ray.get([hold.remote(2.0), hold.remote(2.0)], timeout=120)) == expected


JOB = """
import os, ray, tokmix
ray.init()
@ray.remote(num_cpus=1)
def where():
    import time; time.sleep(1.0)
    return ray.get_runtime_context().get_node_id()
nodes = sorted(set(ray.get([where.remote(), where.remote()])))
print("tokmix-from", os.path.dirname(os.path.dirname(tokmix.__file__)))
print("cwd", os.getcwd())
print("nodes", ",".join(nodes))
"""

SETTINGS_JOB = """
import os, time, ray
from tokmix.jobs.runtime import ray_session
with ray_session():
    @ray.remote(num_cpus=1)
    def setting():
        time.sleep(1.0)  # two held at once: one on each node
        return ray.get_runtime_context().get_node_id(), os.environ.get(
            "TOKMIX_SOLVE_CHECKPOINT_SECONDS"
        )
    print(sorted(set(ray.get([setting.remote(), setting.remote()]))))
"""


def test_a_jobs_tokmix_settings_reach_the_workers_of_both_nodes(
    ray_cluster: LocalRayCluster,
) -> None:
    """The nodes were started by ``ray start`` without the job's environment: a setting the
    user gives the job (here how often a solve keeps its state) must travel with it, or the
    solve tasks on the workers silently ignore it."""
    assert "TOKMIX_SOLVE_CHECKPOINT_SECONDS" not in os.environ
    env = {**ray_cluster.env, "TOKMIX_SOLVE_CHECKPOINT_SECONDS": "7"}
    done = subprocess.run(
        [sys.executable, "-c", SETTINGS_JOB],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = ast.literal_eval(done.stdout.strip().splitlines()[-1])  # data, never eval
    assert len({node for node, _ in seen}) == 2 and {v for _, v in seen} == {"7"}, seen


def test_both_nodes_read_the_moto_s3(
    ray_driver: LocalRayCluster,
    upload_to_s3: Callable[[Path, str], list[str]],
    s3_root: str,
    tmp_path: Path,
) -> None:
    """The nodes' environment points tokmix.io.fs at the session's moto server."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub" / "b.txt").write_text("beta")
    urls = upload_to_s3(tmp_path, f"{s3_root}/in")
    assert urls == [f"{s3_root}/in/a.txt", f"{s3_root}/in/sub/b.txt"]

    @ray.remote(num_cpus=1)
    def read(prefix: str) -> dict[str, str]:
        from tokmix.io.fs import expand, filesystem_for

        files = expand(prefix)
        return {url: filesystem_for(url)[0].cat_file(url).decode() for url in files}

    for node in ray_driver.nodes():
        strategy = NodeAffinitySchedulingStrategy(node.node_id(), soft=False)
        got = ray.get(read.options(scheduling_strategy=strategy).remote(f"{s3_root}/in/"))
        assert got == dict(zip(urls, ["alpha", "beta"], strict=True))


@pytest.mark.slow
def test_job_submit_with_working_dir(ray_cluster: LocalRayCluster) -> None:
    """``ray job submit --working-dir .`` ships this checkout and runs the entrypoint on it."""
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
            "-c",
            JOB,
        ],
        env=ray_cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = dict(
        line.split(" ", 1)
        for line in done.stdout.splitlines()
        if line.startswith(("tokmix-from ", "cwd ", "nodes "))
    )
    assert out["tokmix-from"] == out["cwd"] != str(REPO), "tokmix came from the shipped copy"
    assert "working_dir_files" in out["cwd"] or "runtime_resources" in out["cwd"]
    assert set(out["nodes"].split(",")) == {node.node_id() for node in ray_cluster.nodes()}


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def test_a_crashed_worker_process_is_retried(ray_driver: LocalRayCluster, tmp_path: Path) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray_driver.workers[0]

    @ray.remote(num_cpus=1, max_retries=2)
    def attempt(marks: str) -> int:
        Path(marks, str(os.getpid())).touch()
        time.sleep(3 if len(os.listdir(marks)) == 1 else 0)
        return os.getpid()

    strategy = NodeAffinitySchedulingStrategy(node.node_id(), soft=False)
    ref = attempt.options(scheduling_strategy=strategy).remote(str(tmp_path))
    _wait(lambda: any(tmp_path.iterdir()), 120, "the first attempt to start")
    first = int(next(tmp_path.iterdir()).name)
    assert first in node.worker_pids()
    assert first in ray_driver.kill_workers_on(node)
    second = ray.get(ref, timeout=120)
    assert second != first
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == sorted([first, second])


@pytest.mark.slow
def test_a_killed_worker_node_leaves_and_a_restarted_one_joins(ray_driver: LocalRayCluster) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    old = ray_driver.workers[0]
    old_id = old.node_id()
    assert old.raylet_pid() is not None
    assert ray_driver.kill_worker_node()
    assert old.pids() == [] and ray_driver.head.raylet_pid() is not None
    _wait(lambda: old_id not in alive_node_ids(ray_driver.dashboard_url), 60, "the node's death")
    new = ray_driver.restart_worker_node()
    assert new.node_id() != old_id
    assert alive_node_ids(ray_driver.dashboard_url) >= {new.node_id(), ray_driver.head.node_id()}

    @ray.remote(num_cpus=1)
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    strategy = NodeAffinitySchedulingStrategy(new.node_id(), soft=False)
    assert (
        ray.get(where.options(scheduling_strategy=strategy).remote(), timeout=120) == new.node_id()
    )
