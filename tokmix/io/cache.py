"""tokmix's per-user cache directory (fetched tokenizers, file fingerprints).

It lives in ``$TOKMIX_CACHE``, else ``$XDG_CACHE_HOME/tokmix``, else ``~/.cache/tokmix``: a
user's own folder, created ``0700``. A shared ``/tmp`` folder would let another local user plant
a file that a later run loads as a tokenizer; so a cache folder owned by someone else is
refused, and one of ours that others can write into is closed before use.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import uuid

from tokmix.errors import TokmixError
from tokmix.io.fs import filesystem_for


def cache_dir(*parts: str) -> str:
    """The cache folder (or a sub-folder of it), created ``0700`` and checked to be ours."""
    base = os.environ.get("TOKMIX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "tokmix",
    )
    path = os.path.join(base, *parts)
    os.makedirs(path, mode=0o700, exist_ok=True)
    for folder in _own_folders(base, path):
        info = os.lstat(folder)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            raise TokmixError(
                f"cache folder {folder} is not a folder of this user's; remove it or set "
                "TOKMIX_CACHE to a folder of your own"
            )
        if info.st_mode & 0o077:
            os.chmod(folder, 0o700)
    return path


def _own_folders(base: str, path: str) -> list[str]:
    """``base`` and every folder from it down to ``path``."""
    folders = [base]
    rel = os.path.relpath(path, base)
    if rel != ".":
        current = base
        for part in rel.split(os.sep):
            current = os.path.join(current, part)
            folders.append(current)
    return folders


def local_copy(url: str) -> str:
    """A local copy of a remote file or prefix (a tokenizer on s3), fetched once per content.

    Entries are keyed by the URL and the objects' sizes and ETags, and carry the sha256 of
    what was fetched; an entry whose bytes no longer hash to it (truncated, tampered with) is
    fetched again. Returns the local path, keeping ``url``'s basename (loaders name a
    tokenizer after it)."""
    fs, path = filesystem_for(url)
    if not fs.exists(path):
        raise FileNotFoundError(f"{url}: no such file or prefix")
    infos = fs.find(path, detail=True) if fs.isdir(path) else {path: fs.info(path)}
    stamp = hashlib.sha256(url.encode())
    for key in sorted(infos):
        info = infos[key]
        stamp.update(f"{key}\0{info.get('size')}\0{info.get('ETag') or info.get('mtime')}".encode())
    entry = cache_dir("fetched", stamp.hexdigest()[:32])
    target = os.path.join(entry, posixpath.basename(path.rstrip("/")) or "tokenizer")
    seal = target + ".sha256"
    if os.path.exists(target) and os.path.exists(seal):
        with open(seal, encoding="ascii") as f:
            if f.read().strip() == _tree_sha256(target):
                return target
    staging = os.path.join(entry, f".staging-{uuid.uuid4().hex}")
    try:
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", staging + "/", recursive=True)
        else:
            fs.get_file(path, staging)
        digest = _tree_sha256(staging)
        _remove(target)
        os.replace(staging, target)
    finally:
        _remove(staging)
    tmp = f"{seal}.{uuid.uuid4().hex}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(digest)
    os.replace(tmp, seal)
    return target


def _tree_sha256(path: str) -> str:
    """sha256 of a file, or of a folder's relative names and file contents."""
    digest = hashlib.sha256()
    files = (
        [path]
        if os.path.isfile(path)
        else sorted(os.path.join(d, n) for d, _, names in os.walk(path) for n in names)
    )
    for name in files:
        digest.update(os.path.relpath(name, path).encode() + b"\0")
        with open(name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
