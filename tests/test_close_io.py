"""``close_io`` stops fsspec's IO thread for a clean interpreter shutdown, and S3 works again
after it (against the moto server)."""

from __future__ import annotations

import threading

import fsspec.asyn

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
