"""One filesystem layer for local paths and ``s3://`` URLs (fsspec underneath).

Every tokmix reader and writer goes through :func:`filesystem_for`, so a run behaves the same on
a laptop and against an object store. S3 settings come from the usual environment variables
(``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_PROFILE``): the endpoint is passed to s3fs
explicitly, the credentials are left to botocore's own lookup, and neither is ever logged or put
in an error message.

Paths handed back by this module are plain absolute paths for local files and full URLs
(``s3://bucket/key``) for everything else, so they can be given back to :func:`filesystem_for`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os
import posixpath
import uuid
from collections.abc import Iterable
from typing import Any

import fsspec
import fsspec.asyn
from fsspec.implementations.local import LocalFileSystem

GLOB_CHARS = frozenset("*?[")
"""A path holding any of these is a glob pattern."""


def filesystem_for(url: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem that serves ``url`` and the path of ``url`` on it (protocol stripped).

    S3 listings are not cached: datasets are committed by other processes (Ray workers, an
    earlier run), and a stale listing would make a committed dataset look uncommitted.
    """
    protocol = fsspec.utils.get_protocol(url)
    options = dict(storage_options)
    if protocol in ("s3", "s3a"):
        options.setdefault("use_listings_cache", False)
        options.setdefault("config_kwargs", _s3_client_config())
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            client = dict(options.get("client_kwargs") or {})
            client.setdefault("endpoint_url", endpoint)
            options["client_kwargs"] = client
    fs, path = fsspec.core.url_to_fs(url, **options)
    if getattr(fs, "async_impl", False):
        _close_io_at_exit()
    return fs, path


@functools.cache
def _close_io_at_exit() -> None:
    """Register :func:`close_io` to run at this process's exit, once, at its first async
    filesystem: a process that never touches S3 starts no IO thread to stop."""
    atexit.register(close_io)


S3_ATTEMPTS = 10
"""Tries per S3 request: object stores answer 503 SlowDown under load and drop connections."""


def _s3_client_config() -> dict[str, Any]:
    """botocore settings for flaky object stores: ``standard`` retries (exponential backoff
    with jitter on throttling, 5xx and dropped or timed-out connections) and a read timeout,
    so a stalled request is retried instead of hanging the run. ``TOKMIX_S3_TIMEOUT``
    (seconds, default 60) sets the connect and read timeouts."""
    timeout = float(os.environ.get("TOKMIX_S3_TIMEOUT", "60"))
    return {
        "retries": {"max_attempts": S3_ATTEMPTS, "mode": "standard"},
        "connect_timeout": timeout,
        "read_timeout": timeout,
    }


def close_io(timeout: float = 5.0) -> None:
    """Stop fsspec's IO thread and forget the filesystems bound to it.

    fsspec runs every async filesystem (s3fs) on one daemon thread whose event loop nobody
    stops: at exit it would go on running, with the S3 client's connections and the loop's
    worker threads, while the interpreter tears down the modules it runs, which can crash
    the process after all the work is committed. So every process that opens an S3
    filesystem through :func:`filesystem_for` (the ``tokmix`` command, a Ray driver, a pool
    worker, a test session) runs this at exit, before the interpreter's shutdown. A
    filesystem asked for afterwards starts a fresh loop; one obtained before must not be used
    again.
    """
    loop, thread = fsspec.asyn.loop[0], fsspec.asyn.iothread[0]
    if loop is None:
        return
    _forget_async_filesystems()
    gc.collect()  # s3fs closes the sessions of collected instances on the loop, while it runs
    if loop.is_running():
        with contextlib.suppress(Exception):  # the loop's worker threads (DNS lookups)
            fsspec.asyn.sync(loop, loop.shutdown_default_executor, timeout=timeout)
        loop.call_soon_threadsafe(loop.stop)
    if thread is not None:
        thread.join(timeout)
    if not loop.is_running():
        loop.close()  # closes what the S3 sessions left open
    fsspec.asyn.reset_lock()


def _forget_async_filesystems() -> None:
    """Empty the instance cache of every async filesystem class: each cached instance is
    bound to the loop being stopped."""
    pending = [fsspec.asyn.AsyncFileSystem]
    while pending:
        cls = pending.pop()
        cls.clear_instance_cache()
        pending.extend(cls.__subclasses__())


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local disk (where directories exist and renames are atomic)."""
    return isinstance(fs, LocalFileSystem)


def to_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """``path`` on ``fs`` as something :func:`filesystem_for` accepts again."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined with ``/`` (URLs and POSIX paths alike)."""
    pieces = [p.strip("/") for p in parts if p.strip("/")]
    if not pieces:
        return base
    head = base if base.endswith("://") else base.rstrip("/")
    if head and not head.endswith("/"):
        head += "/"
    return head + "/".join(pieces)


def expand(specs: str | Iterable[str]) -> list[str]:
    """The files a path spec names, sorted and without duplicates.

    A spec is one of: a file; a directory or ``s3://`` prefix ending in ``/`` (every file
    below it, recursively); a glob (``*``, ``?``, ``[...]``, ``**``; a matched directory is
    expanded recursively); or, on object stores, a key prefix (``s3://b/data/part-`` names
    every key starting with it). Files found by listing whose path below the spec has a part
    starting with ``.`` or ``_`` (``.git``, ``_SUCCESS``, editor droppings) are skipped; a file
    named explicitly is always kept. A spec matching nothing contributes nothing; callers decide
    whether that is an error (see :func:`describe_missing`).
    """
    if isinstance(specs, str):
        specs = [specs]
    found: set[str] = set()
    for spec in specs:
        found.update(_expand_one(spec))
    return sorted(found)


def _expand_one(spec: str) -> list[str]:
    fs, path = filesystem_for(spec)
    if any(c in GLOB_CHARS for c in path):
        return _expand_glob(fs, path)
    if fs.isfile(path):
        return [to_url(fs, path)]
    if fs.isdir(path):
        return _listed(fs, path, fs.find(path))
    if not is_local(fs):
        parent, prefix = posixpath.split(path)
        if parent and prefix:
            return _listed(fs, parent, fs.find(parent, prefix=prefix))
    return []


def _expand_glob(fs: fsspec.AbstractFileSystem, pattern: str) -> list[str]:
    root = _glob_root(pattern)
    files: list[str] = []
    for match in fs.glob(pattern):
        if fs.isdir(match):
            files.extend(_listed(fs, match, fs.find(match)))
        else:
            files.extend(_listed(fs, root, [match]))
    return files


def _glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard."""
    parts = pattern.split("/")
    fixed = []
    for part in parts:
        if any(c in GLOB_CHARS for c in part):
            break
        fixed.append(part)
    return "/".join(fixed)


def _listed(fs: fsspec.AbstractFileSystem, root: str, paths: Iterable[str]) -> list[str]:
    root = root.rstrip("/")
    kept = []
    for path in paths:
        below = path[len(root) :].lstrip("/") if path.startswith(root) else posixpath.basename(path)
        if not any(part.startswith((".", "_")) for part in below.split("/")):
            kept.append(to_url(fs, path))
    return kept


def describe_missing(spec: str) -> str:
    """Why ``spec`` gave no files, in words for an error message."""
    fs, path = filesystem_for(spec)
    if any(c in GLOB_CHARS for c in path):
        return f"the pattern {spec} matches no files"
    if fs.isdir(path):
        return f"the directory {spec} holds no files (hidden and _-prefixed files are skipped)"
    if fs.exists(path):
        return f"{spec} is not a regular file"
    return f"{spec} does not exist"


def relative_to(root: str, url: str) -> str:
    """``url`` below ``root`` (both as :func:`expand` returns them)."""
    root = root.rstrip("/") + "/"
    return url[len(root) :] if url.startswith(root) else url


def common_root(urls: Iterable[str]) -> str:
    """The deepest directory holding every one of ``urls`` (for location-free file keys)."""
    dirs = [u.rsplit("/", 1)[0] for u in urls]
    if not dirs:
        return ""
    split = [d.split("/") for d in dirs]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/".join(common)


def ensure_parent(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Create ``path``'s directory on filesystems that have directories (object stores don't)."""
    if is_local(fs):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)


def write_bytes_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` so readers see the old content or the new, never half of it.

    Local: a temporary sibling renamed over the target. Object stores: one PUT, which is
    atomic there already.
    """
    ensure_parent(fs, path)
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_tree(url: str) -> None:
    """Remove a working folder and everything under it; nothing there is fine. Locally the
    emptied parent goes too (``OUT/_work`` once its last job is done); object stores have no
    folders to leave behind."""
    fs, path = filesystem_for(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=True)
    if is_local(fs):
        with contextlib.suppress(OSError):
            os.rmdir(posixpath.dirname(path))  # only when empty
