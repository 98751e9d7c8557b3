"""Output roots: ownership marker, the one-writer lease (local and on the real moto S3 server),
content fingerprints and the per-user cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokmix.errors import OutputRootError, TokmixError
from tokmix.io.cache import cache_dir
from tokmix.io.fingerprint import content_fingerprint
from tokmix.io.fs import filesystem_for
from tokmix.io.root import LOCK, MARKER, RootLease, claim_root, owned_root

# --- ownership ----------------------------------------------------------------------------


def test_new_and_empty_roots_are_claimed(tmp_path: Path) -> None:
    claim_root(str(tmp_path / "new"))
    assert (tmp_path / "new" / MARKER).is_file()
    (tmp_path / "empty").mkdir()
    claim_root(str(tmp_path / "empty"))
    claim_root(str(tmp_path / "empty"))  # marked: claimed again without complaint
    assert json.loads((tmp_path / "empty" / MARKER).read_text())["tokmix_root"] == 1


def test_foreign_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    (theirs / "word_counts" / "category=x").mkdir(parents=True)
    mine = theirs / "word_counts" / "category=x" / "part-00000.parquet"
    mine.write_bytes(b"someone's data")
    with pytest.raises(OutputRootError, match="not empty and was not written by tokmix"):
        claim_root(str(theirs))
    assert not (theirs / MARKER).exists()
    claim_root(str(theirs), force=True)
    assert (theirs / MARKER).exists() and mine.read_bytes() == b"someone's data"


def test_a_file_is_not_a_root(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("{}")
    with pytest.raises(OutputRootError, match="is a file"):
        claim_root(str(target), force=True)


# --- one writer ---------------------------------------------------------------------------


def test_second_writer_fails_while_the_first_holds_the_lease(tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    with owned_root(root, "first"), pytest.raises(OutputRootError, match="in use by run 'first'"):
        RootLease(root, "second").acquire()
    with owned_root(root, "second") as lease:  # released: the next run gets it
        assert lease.broken is None
    assert not (tmp_path / "run" / LOCK).exists()


def test_lease_of_a_killed_driver_is_broken(tmp_path: Path) -> None:
    """A driver killed with its lease still on disk: the next run breaks it and says whose."""
    root = tmp_path / "run"
    code = (
        "import os, sys; from tokmix.io.root import RootLease; "
        f"RootLease({str(root)!r}, 'killed').acquire(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    assert json.loads((root / LOCK).read_text())["run_id"] == "killed"
    with RootLease(str(root), "next") as lease:
        assert lease.broken is not None and lease.broken["run_id"] == "killed"


def test_stale_lease_from_another_host_is_broken_only_when_old(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    holder = {"run_id": "far", "host": "elsewhere", "pid": 1, "renewed": time.time()}
    (root / LOCK).write_text(json.dumps(holder))
    with pytest.raises(OutputRootError, match="in use by run 'far'"):
        RootLease(str(root), "near").acquire()
    (root / LOCK).write_text(json.dumps({**holder, "renewed": time.time() - 3600}))
    with RootLease(str(root), "near") as lease:
        assert lease.broken is not None and lease.broken["host"] == "elsewhere"


def test_lease_is_renewed_while_held(tmp_path: Path) -> None:
    root = tmp_path / "run"
    with RootLease(str(root), "long", stale_seconds=0.4):
        first = json.loads((root / LOCK).read_text())["renewed"]
        time.sleep(0.5)
        assert json.loads((root / LOCK).read_text())["renewed"] > first
        with pytest.raises(OutputRootError, match="in use"):
            RootLease(str(root), "other", stale_seconds=0.4).acquire()


def test_s3_lease_is_exclusive(s3_root: str) -> None:
    """On S3 the lease is a conditional PUT: the real (moto) server refuses a second one."""
    claim_root(s3_root)
    with RootLease(s3_root, "first"), pytest.raises(OutputRootError, match="in use by run 'first'"):
        RootLease(s3_root, "second").acquire()
    fs, path = filesystem_for(s3_root)
    assert not fs.exists(f"{path}/{LOCK}")
    with RootLease(s3_root, "second"):
        pass


# --- fingerprints -------------------------------------------------------------------------


def test_same_size_same_mtime_rewrite_changes_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cp -p`` / ``touch -r``: a rewrite that keeps size and mtime is still a new input."""
    monkeypatch.setenv("TOKMIX_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "docs.jsonl"
    corpus.write_bytes(b'{"text": "aaaa"}\n')
    before = content_fingerprint(str(corpus))
    assert content_fingerprint(str(corpus)) == before  # cached, same answer
    stamp = corpus.stat()
    other = tmp_path / "other.jsonl"
    other.write_bytes(b'{"text": "bbbb"}\n')
    os.utime(other, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    shutil.copy2(other, corpus)  # cp -p
    os.utime(corpus, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert corpus.stat().st_size == stamp.st_size
    assert corpus.stat().st_mtime_ns == stamp.st_mtime_ns
    assert content_fingerprint(str(corpus)) != before
    assert content_fingerprint(str(corpus)) == content_fingerprint(str(other))


def test_s3_fingerprint_follows_content_not_dates(s3_root: str) -> None:
    fs, _ = filesystem_for(s3_root)
    url = f"{s3_root}/docs.jsonl"
    fs.pipe_file(url, b"one")
    first = content_fingerprint(url)
    fs.pipe_file(url, b"two")  # same size, same second
    assert content_fingerprint(url) != first
    fs.pipe_file(url, b"one")
    assert content_fingerprint(url) == first


# --- cache --------------------------------------------------------------------------------


def test_cache_is_private_and_refuses_a_planted_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKMIX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = Path(cache_dir("tokenizers"))
    assert path == tmp_path / "xdg" / "tokmix" / "tokenizers"
    assert (tmp_path / "xdg" / "tokmix").stat().st_mode & 0o777 == 0o700
    os.chmod(path, 0o777)
    cache_dir("tokenizers")
    assert path.stat().st_mode & 0o777 == 0o700
    planted = tmp_path / "planted"
    planted.mkdir()
    monkeypatch.setenv("TOKMIX_CACHE", str(tmp_path / "link"))
    (tmp_path / "link").symlink_to(planted)
    with pytest.raises(TokmixError, match="not a folder of this user's"):
        cache_dir()


def test_fetched_copy_is_verified_before_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached tokenizer whose bytes changed after the fetch is fetched again, not loaded."""
    import fsspec

    from tokmix.io.cache import local_copy

    monkeypatch.setenv("TOKMIX_CACHE", str(tmp_path / "cache"))
    url = "memory://tokmix-test-cache/tok/tokenizer.json"
    fsspec.filesystem("memory").pipe(url, b'{"model": "the real one"}')
    first = Path(local_copy(url))
    assert first.read_bytes() == b'{"model": "the real one"}'
    assert (tmp_path / "cache") in first.parents
    first.write_bytes(b'{"model": "planted"}')
    again = Path(local_copy(url))
    assert again == first and again.read_bytes() == b'{"model": "the real one"}'


def test_owned_root_is_reentrant_in_one_process(tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    with owned_root(root, "verb") as outer, owned_root(root + "/", "stages") as inner:
        assert inner is outer
        assert (tmp_path / "run" / LOCK).exists()
    assert not (tmp_path / "run" / LOCK).exists()
