"""``close_io`` stops fsspec's IO thread, and every process that opened an S3 filesystem runs
it at exit, before the interpreter's shutdown (against the moto server)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import fsspec.asyn

from tests.conftest import REPO
from tokmix.io.fs import close_io, filesystem_for, join


def _io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fsspecIO" and t.is_alive()]


def test_close_io_stops_the_io_thread_and_s3_works_after_it(s3_root: str) -> None:
    url = join(s3_root, "a.txt")
    fs, path = filesystem_for(url)
    fs.pipe_file(path, b"before")
    assert _io_threads(), "s3fs runs on fsspec's IO thread"

    close_io()
    assert not _io_threads()
    assert fsspec.asyn.loop[0] is None

    fs, path = filesystem_for(url)  # a fresh filesystem on a fresh loop
    assert fs.cat_file(path) == b"before"
    fs.pipe_file(path, b"after")
    assert fs.cat_file(path) == b"after"
    close_io()
    assert not _io_threads()


def test_close_io_without_a_loop_does_nothing() -> None:
    close_io()
    close_io()
    assert fsspec.asyn.loop[0] is None and not _io_threads()


def test_a_process_that_used_s3_exits_with_no_io_thread_running(s3_root: str) -> None:
    """A probe registered before tokmix is imported runs after tokmix's exit handler (atexit
    runs the last registered first): it must find fsspec's IO thread stopped, and the
    interpreter's shutdown after it must end the process cleanly."""
    script = textwrap.dedent(
        f"""
        import atexit, threading

        def probe():
            alive = [t.name for t in threading.enumerate() if t.name == "fsspecIO" and t.is_alive()]
            print("io threads at exit:", alive, flush=True)

        atexit.register(probe)
        from tokmix.io.fs import filesystem_for, join

        fs, path = filesystem_for(join({s3_root!r}, "b.txt"))
        fs.pipe_file(path, b"written")
        assert fs.cat_file(path) == b"written"
        """
    )
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "io threads at exit: []" in done.stdout, done.stdout + done.stderr
