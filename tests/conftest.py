"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent.

Besides the shared data, two real services are started once per test session, on 127.0.0.1
only and on free ports, so several people (or CI jobs) can run the suite on one machine:

* ``moto_endpoint``: a moto S3 server; ``s3_root`` gives a test a fresh bucket and points
  ``tokmix.io.fs.filesystem_for`` at the server through the environment.
* ``ray_cluster``: a two-node local Ray cluster (``ray start --head`` plus one worker node), for
  tests marked ``@pytest.mark.ray``. Its nodes see the moto server as their S3, so a job
  running on it reads and writes ``s3://`` the way it would on a real cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.s3_faults import FaultyS3Proxy

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TOKMIX_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (corpora and released tokenizers), or skip."""
    if os.environ.get("CI") and not SHARED_DATA.is_dir():
        pytest.fail(f"CI must have the shared data at {SHARED_DATA}")
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"needs the shared corpora and tokenizers at {SHARED_DATA} (not in a user clone)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizers_dir(shared_data: Path) -> Path:
    return shared_data / "tokenizers"


@pytest.fixture(scope="session")
def corpora_dir(shared_data: Path) -> Path:
    return shared_data / "corpora"


# --- S3 (a real moto server) --------------------------------------------------------------

S3_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE")
"""Variables that would point boto at a real account or another endpoint."""


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1, shared by the whole session.

    Buckets are never reused between tests (``s3_root`` makes a fresh one), so sharing the
    server costs no isolation.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_proxy(moto_endpoint: str) -> Iterator[FaultyS3Proxy]:
    """A fault-injecting proxy in front of the moto server (``tests/s3_faults.py``); every S3
    client of the session, Ray workers included, goes through it. It passes everything until a
    test sets ``s3_proxy.rate`` (and resets it)."""
    proxy = FaultyS3Proxy(moto_endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def s3_env(s3_proxy: FaultyS3Proxy) -> dict[str, str]:
    """The environment variables that send boto/s3fs to the moto server (through the proxy)
    with dummy keys; a short timeout so a stalled request is retried within seconds."""
    return {
        "AWS_ENDPOINT_URL": s3_proxy.url,
        "TOKMIX_S3_TIMEOUT": "5",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture
def s3_root(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server (``s3://tokmix-<random>/run``), with this test's
    environment pointing at it."""
    for var in S3_UNSET:
        monkeypatch.delenv(var, raising=False)
    for var, value in s3_env.items():
        monkeypatch.setenv(var, value)
    from tokmix.io.fs import filesystem_for

    bucket = f"tokmix-{uuid.uuid4().hex[:12]}"
    fs, _ = filesystem_for(f"s3://{bucket}")
    fs.mkdir(bucket)
    return f"s3://{bucket}/run"


@pytest.fixture
def upload_to_s3(s3_root: str) -> Callable[[Path, str], list[str]]:
    """``upload(local_dir, url)`` copies every file below ``local_dir`` to the prefix ``url``
    (keeping relative paths) and returns the uploaded URLs, sorted."""
    from tokmix.io.fs import filesystem_for, join

    def upload(local_dir: Path, url: str) -> list[str]:
        fs, _ = filesystem_for(url)
        urls = []
        for path in sorted(Path(local_dir).rglob("*")):
            if path.is_file():
                target = join(url, path.relative_to(local_dir).as_posix())
                fs.put_file(str(path), target)
                urls.append(target)
        return urls

    return upload


# --- a local two-node Ray cluster ---------------------------------------------------------


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice), never one this session
    handed out before: a node's components must all get different ports."""
    while True:
        with socket.socket() as s:
            s.bind(("", 0))  # all interfaces: Ray binds some ports on the node IP
            port = int(s.getsockname()[1])
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def ray_executable() -> str:
    """The ``ray`` CLI of the interpreter running the tests (not whatever is first on PATH)."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else shutil.which("ray") or "ray"


@dataclass
class RayNode:
    """One ``ray start`` invocation and every process it left behind.

    ``ray start`` runs in a new session (``setsid``), and the daemons it forks (GCS, raylet,
    dashboard, agents, workers) stay in that session, so the session id finds exactly this
    node's processes — and no one else's, which matters because ``ray stop`` kills every Ray
    process on the machine, other users' test clusters included.
    """

    name: str
    args: list[str]
    sid: int = 0
    log: Path | None = None

    def pids(self) -> list[int]:
        """The live processes of this node."""
        return [pid for pid in _live_pids() if _session_of(pid) == self.sid]

    def raylet_pid(self) -> int | None:
        return next((pid for pid in self.pids() if _comm(pid) == "raylet"), None)

    def node_id(self) -> str:
        """The hex Ray node id (read from the raylet's command line)."""
        pid = self.raylet_pid()
        for arg in _cmdline(pid) if pid else []:
            if arg.startswith("--node_id="):
                return arg.split("=", 1)[1]
        raise RuntimeError(f"the {self.name} node has no raylet (log: {self.log})")

    def worker_pids(self) -> list[int]:
        """Ray worker processes of this node (those that run tasks and actors): the raylet's
        children other than its agents."""
        raylet = self.raylet_pid()
        agents = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
        return [
            pid
            for pid in self.pids()
            if _parent_of(pid) == raylet and not " ".join(_cmdline(pid)).startswith(agents)
        ]

    def kill(self, pids: list[int] | None = None) -> list[int]:
        """SIGKILL ``pids`` (default: every process of this node) and wait until they are gone.

        Only processes still in this node's session are signalled, so a recycled pid is safe.
        """
        pids = self.pids() if pids is None else pids
        killed = []
        for pid in pids:
            if _session_of(pid) == self.sid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        deadline = time.monotonic() + 10
        while any(_session_of(pid) == self.sid for pid in killed):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of the {self.name} node survived SIGKILL")
            time.sleep(0.05)
        return killed


def _live_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _stat(pid: int) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first); empty if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _session_of(pid: int) -> int | None:
    """The session id of a live (non-zombie) process, else None."""
    fields = _stat(pid)
    return int(fields[3]) if fields and fields[0] not in ("Z", "X") else None


def _parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


@dataclass
class LocalRayCluster:
    """A running local cluster: a head node and one worker node, each with ``num_cpus=1``.

    ``address`` is the GCS address (``ray.init(address=...)``, ``RAY_ADDRESS``);
    ``dashboard_url`` is for ``ray job submit --address``; ``env`` is ``os.environ`` with
    ``RAY_ADDRESS`` set (for subprocesses that should join the cluster).
    """

    address: str
    dashboard_url: str
    env: dict[str, str]
    temp_dir: Path
    head: RayNode
    workers: list[RayNode] = field(default_factory=list)

    def nodes(self) -> list[RayNode]:
        return [self.head, *self.workers]

    def kill_worker_node(self, index: int = 0) -> list[int]:
        """Kill every process of a worker node (raylet, agents, workers): a machine lost."""
        return self.workers[index].kill()

    def kill_workers_on(self, node: RayNode) -> list[int]:
        """Kill only the Ray worker processes of ``node`` (its raylet survives): tasks crash."""
        return node.kill(node.worker_pids())

    def restart_worker_node(self, index: int = 0, timeout: float = 60) -> RayNode:
        """Kill worker node ``index`` if still alive and start a fresh one in its place."""
        old = self.workers[index]
        old.kill()
        node = _start_node(old.name, _worker_args(self.address, self.temp_dir), self.env)
        self.workers[index] = node
        _wait_for_nodes(self, timeout)
        return node

    def stop(self) -> None:
        """Kill this cluster's processes only (never ``ray stop``: that kills every Ray
        process on the machine)."""
        for node in reversed(self.nodes()):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _node_ports() -> list[str]:
    """Ports a node would otherwise take from fixed defaults (client server 10001, agent
    52365, ...), which would clash with another cluster on the same machine."""
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]


COMMON_ARGS = [
    "--node-ip-address=127.0.0.1",
    "--num-cpus=1",
    "--num-gpus=0",
    "--object-store-memory=200000000",
    "--disable-usage-stats",
]


def _worker_args(address: str, temp_dir: Path) -> list[str]:
    return [
        f"--address={address}",
        *COMMON_ARGS,
        *_node_ports(),
        # A temp dir of its own (fresh on a restart): nodes sharing one would share
        # runtime_resources/ and delete each other's unpacked working dirs.
        f"--temp-dir={temp_dir / ('w' + uuid.uuid4().hex[:4])}",
    ]


def _start_node(name: str, args: list[str], env: dict[str, str]) -> RayNode:
    log = Path(env["TOKMIX_TEST_RAY_LOGS"]) / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [ray_executable(), "start", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        node = RayNode(name=name, args=args, sid=proc.pid, log=log)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            node.kill()
            rc = -1
    if rc != 0:
        node.kill()
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"`ray start` for the {name} node failed (rc={rc}):\n{tail}")
    return node


def alive_node_ids(dashboard_url: str) -> set[str]:
    """Node ids the cluster's state API reports ``ALIVE`` (empty while it is unreachable)."""
    url = f"{dashboard_url}/api/v0/nodes?limit=100&timeout=10&detail=false"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            body = json.load(response)
    except (OSError, ValueError):
        return set()
    rows = body.get("data", {}).get("result", {}).get("result", [])
    return {row["node_id"] for row in rows if row.get("state") == "ALIVE"}


def _wait_for_nodes(cluster: LocalRayCluster, timeout: float) -> None:
    """Wait until the cluster lists every node of ``cluster`` as alive."""
    wanted = {node.node_id() for node in cluster.nodes()}
    deadline = time.monotonic() + timeout
    alive: set[str] = set()
    while time.monotonic() < deadline:
        alive = alive_node_ids(cluster.dashboard_url)
        if wanted <= alive:
            return
        time.sleep(0.5)
    raise RuntimeError(f"Ray nodes {sorted(wanted - alive)} did not join within {timeout} s")


RAY_UNSET = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")

NO_TOKEN_AUTH = {"RAY_AUTH_MODE": "disabled"}
"""Explicitly off. Left unset, ``ray start --head`` turns token auth on whenever
``~/.ray/auth_token`` exists (any embedded ``ray.init()`` writes one) while ``ray start
--address`` does not send the token, so the worker node could not join."""

FAST_FAILURE_DETECTION = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
"""A killed node is declared dead in seconds rather than the default half minute."""


def start_local_ray_cluster(extra_env: dict[str, str]) -> LocalRayCluster:
    """Start a head node and one worker node on this machine (see the ``ray_cluster`` fixture);
    the caller owns the result and must ``stop()`` it."""
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    logs = temp_dir / "start-logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (*S3_UNSET, *RAY_UNSET)}
    env.update(extra_env)
    env.update(FAST_FAILURE_DETECTION)
    env.update(NO_TOKEN_AUTH)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    # ``python`` in a job's entrypoint is this interpreter, as a cluster image's python has Ray.
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env.setdefault("OMP_NUM_THREADS", "1")
    env["TOKMIX_TEST_RAY_LOGS"] = str(logs)
    port, dashboard_port = free_port(), free_port()
    head_args = [
        "--head",
        f"--port={port}",
        *COMMON_ARGS,
        *_node_ports(),
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={free_port()}",
        f"--temp-dir={temp_dir}",
    ]
    head = _start_node("head", head_args, env)
    # Ray advertises the machine's own IP even when asked for 127.0.0.1, and the GCS listens
    # on all interfaces, so the loopback address reaches it from this machine.
    address = f"127.0.0.1:{port}"
    env["RAY_ADDRESS"] = address
    cluster = LocalRayCluster(
        address=address,
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        env=env,
        temp_dir=temp_dir,
        head=head,
    )
    try:
        cluster.workers.append(_start_node("worker", _worker_args(address, temp_dir), env))
        _wait_for_nodes(cluster, timeout=90)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def ray_cluster(s3_env: dict[str, str]) -> Iterator[LocalRayCluster]:
    """A real two-node Ray cluster on 127.0.0.1 for the whole session (see LocalRayCluster).

    Its processes get this checkout first on ``PYTHONPATH`` (so workers import the tokmix under
    test), one thread per BLAS/OpenMP pool, and the moto S3 environment (``s3_env``). The temp
    dir is short (``/tmp/rtXXXXXX``) because Ray's unix socket paths live below it and are
    limited to ~107 bytes.
    """
    cluster = start_local_ray_cluster(s3_env)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ray_driver(ray_cluster: LocalRayCluster) -> Iterator[LocalRayCluster]:
    """This test process connected to ``ray_cluster`` as a driver (disconnected afterwards)."""
    import ray

    ray.init(address=ray_cluster.address, log_to_driver=False)
    try:
        yield ray_cluster
    finally:
        ray.shutdown()


# --- llama.cpp GGUF vocab files -----------------------------------------------------------


@pytest.fixture(scope="session")
def gguf_vocab_dir() -> Path:
    """llama.cpp's ``ggml-vocab-*.gguf`` files and test vectors (see ``tests/gguf_vocab.py``:
    ``$TOKMIX_GGUF_VOCAB_DIR``, a cache, or a pip download of the llama-cpp-python sdist), or
    skip with the reason."""
    from tests.gguf_vocab import locate

    folder, why = locate()
    if folder is None:
        pytest.skip(why)
    return folder
