"""An output root that tokmix owns, written by one run at a time.

Two guards keep a root from giving a wrong answer or losing someone's files:

- **Ownership.** A root carries a marker (``_tokmix_root.json``). A run into a folder that is
  neither empty nor marked is refused (the folder is someone else's, or a typo), unless the user
  says ``--force``; then the folder is marked and adopted. Clean-up inside a root only ever
  removes files that tokmix's own manifests listed (``tokmix.io.datasets``).
- **One writer.** A run holds a lease (``_tokmix_root.lock``) for as long as it writes. The
  lease is taken with an exclusive create: ``O_EXCL`` on local disks, a conditional PUT
  (``If-None-Match: *``) on S3, so two runs racing for it cannot both win. The holder renews it
  every :data:`RENEW_SECONDS`; a lease not renewed for :data:`STALE_SECONDS` (a killed driver)
  is broken by the next run, which says so. A second live run fails at once with a message that
  names the holder rather than mixing its datasets into the first run's.

Ray workers write inside the root without the lease: the driver that holds it owns the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import fsspec

from tokmix.errors import OutputRootError
from tokmix.io.fs import filesystem_for, is_local, to_url, write_bytes_atomic

MARKER = "_tokmix_root.json"
LOCK = "_tokmix_root.lock"
RENEW_SECONDS = 20.0
STALE_SECONDS = 120.0


def claim_root(root_url: str, *, force: bool = False) -> None:
    """Make sure ``root_url`` is a tokmix output root, creating or adopting it.

    Refuses a path that is a file, and a non-empty folder without the marker unless ``force``.
    """
    fs, path = filesystem_for(root_url)
    marker = posixpath.join(path, MARKER)
    if fs.isfile(path):
        raise OutputRootError(f"output root {root_url} is a file; give a folder (new or tokmix's)")
    if fs.exists(marker):
        return
    if _holds_anything(fs, path) and not force and not _written_by_tokmix(fs, path):
        raise OutputRootError(
            f"output root {root_url} is not empty and was not written by tokmix (no {MARKER}); "
            "choose a new or empty folder, or pass --force to adopt it (tokmix then removes "
            "only files its own manifests list)"
        )
    body = {"tokmix_root": 1, "created": _now()}
    write_bytes_atomic(fs, marker, json.dumps(body, sort_keys=True).encode())


def _written_by_tokmix(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """A root from before roots were marked: it holds a tokmix dataset manifest."""
    for pattern in ("*/_SUCCESS", "*/*/_SUCCESS"):
        for manifest in fs.glob(posixpath.join(path, pattern))[:20]:
            try:
                doc = json.loads(fs.cat_file(manifest))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("format") == 1 and "dataset" in doc:
                return True
    return False


def _holds_anything(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    if not fs.exists(path):
        return False
    if is_local(fs):
        return fs.isdir(path) and any(True for _ in os.scandir(path))
    return bool(fs.find(path, maxdepth=None, withdirs=False)[:1])


class RootLease:
    """The one-writer lease on an output root; use as a context manager (see module doc)."""

    def __init__(self, root_url: str, run_id: str, *, stale_seconds: float = STALE_SECONDS):
        self.root_url = root_url
        self.run_id = run_id
        self.stale_seconds = stale_seconds
        self.fs, root = filesystem_for(root_url)
        self.path = posixpath.join(root, LOCK)
        self.broken: dict[str, Any] | None = None
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> RootLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _body(self) -> bytes:
        info = {
            "token": self.token,
            "run_id": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed": time.time(),
            "renewed_at": _now(),
        }
        return json.dumps(info, sort_keys=True).encode()

    def acquire(self) -> None:
        """Take the lease, breaking a stale one; :class:`OutputRootError` if a live run holds
        it."""
        for _ in range(3):
            if _create_exclusive(self.fs, self.path, self._body()):
                self._start_renewing()
                return
            holder = self._holder()
            if holder is None:
                continue  # released between our create and our read: try again
            if self._is_ours(holder):
                self._start_renewing()  # our create went through, its reply was lost
                return
            if not self._is_stale(holder):
                raise OutputRootError(
                    f"output root {self.root_url} is in use by run {holder.get('run_id')!r} "
                    f"(host {holder.get('host')}, pid {holder.get('pid')}, lease renewed "
                    f"{holder.get('renewed_at')}); wait for it to finish, or write to another "
                    "--out"
                )
            self.broken = holder
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)
        raise OutputRootError(
            f"output root {self.root_url}: could not take its lease ({LOCK}) after 3 tries; "
            "another run is starting there"
        )

    def _holder(self) -> dict[str, Any] | None:
        try:
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        try:
            holder: dict[str, Any] = json.loads(data)
        except ValueError:
            return {"run_id": "?", "renewed": 0.0, "renewed_at": "unreadable lease"}
        return holder

    def _is_ours(self, holder: dict[str, Any]) -> bool:
        return holder.get("token") == self.token

    def _is_stale(self, holder: dict[str, Any]) -> bool:
        if holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid")):
            return True  # its driver died on this machine
        return time.time() - float(holder.get("renewed", 0.0)) > self.stale_seconds

    def _start_renewing(self) -> None:
        def renew() -> None:
            while not self._stop.wait(min(RENEW_SECONDS, self.stale_seconds / 4)):
                with contextlib.suppress(Exception):  # a missed renewal is retried next tick
                    write_bytes_atomic(self.fs, self.path, self._body())

        self._renewer = threading.Thread(target=renew, name="tokmix-root-lease", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Give the lease back (only if it is still ours)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        holder = self._holder()
        if holder is not None and self._is_ours(holder):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)


_HELD: dict[str, RootLease] = {}
"""Leases this process holds, by root: a stage verb that runs stages holds its root once."""


@contextlib.contextmanager
def owned_root(root_url: str, run_id: str, *, force: bool = False) -> Iterator[RootLease]:
    """Claim ``root_url`` and hold its lease for the duration of a run (re-entrant within a
    process)."""
    key = root_url.rstrip("/")
    if key in _HELD:
        yield _HELD[key]
        return
    claim_root(root_url, force=force)
    with RootLease(root_url, run_id) as lease:
        _HELD[key] = lease
        try:
            yield lease
        finally:
            del _HELD[key]


def _create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists; whether this call created it."""
    if is_local(fs):
        os.makedirs(posixpath.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    bucket, key, _ = fs.split_path(path)
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except Exception as exc:  # botocore maps 412 to a ClientError, s3fs to OSError
        if _precondition_failed(exc):
            return False
        raise OutputRootError(f"{to_url(fs, path)}: could not create the lease: {exc}") from exc
    return True


def _precondition_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        if "PreconditionFailed" in text or "412" in text or "ConditionalRequestConflict" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
