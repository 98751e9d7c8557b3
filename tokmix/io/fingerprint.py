"""What a stage records as its inputs' identity: file contents, not names and dates.

Path, size and mtime are not an identity: ``cp -p``, ``rsync -a``, ``touch -r`` and many sync
tools rewrite a file and keep its size and mtime, and a stage that trusted them would reuse
word counts of text that is no longer there. So:

- a local file is identified by an xxh3-128 hash of its bytes (several GB/s, so well below the
  cost of counting it). The hash is cached per user, keyed on the file's device, inode, size,
  mtime and *ctime*: ctime changes with every write and cannot be set by user tools, so a
  rewrite always misses the cache and is hashed again;
- an object on S3 by its ETag (a digest of its content that S3 computes), version id and size;
  ``LastModified`` (one-second resolution) is never used. A store that gives no ETag is
  hashed like a local file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

import xxhash

from tokmix.io.cache import cache_dir
from tokmix.io.fs import filesystem_for, is_local, write_bytes_atomic

_CHUNK = 8 << 20


def content_fingerprint(url: str) -> str:
    """A string that changes whenever the bytes of ``url`` change."""
    fs, path = filesystem_for(url)
    if is_local(fs):
        return "xxh3_128:" + _local_digest(path)
    info = fs.info(path)
    etag = info.get("ETag") or info.get("etag")
    if etag:
        version = info.get("VersionId") or info.get("version_id") or ""
        return f"etag:{str(etag).strip(chr(34))}:{version}:{info.get('size')}"
    digest = xxhash.xxh3_128()
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return "xxh3_128:" + digest.hexdigest()


def _local_digest(path: str) -> str:
    st = os.stat(path)
    key = f"{os.path.realpath(path)}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}"
    key += f"\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
    entry = os.path.join(cache_dir("fingerprints"), hashlib.sha256(key.encode()).hexdigest())
    with contextlib.suppress(OSError):
        with open(entry, encoding="ascii") as f:
            cached = f.read().strip()
        if len(cached) == 32:
            return cached
    digest = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    ):  # not written to while we read it: safe to remember
        fs, _ = filesystem_for(entry)
        write_bytes_atomic(fs, entry, value.encode("ascii"))
    return value
