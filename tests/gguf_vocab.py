"""llama.cpp's GGUF vocabulary files and test vectors, for the GGUF loader's tests.

llama.cpp keeps about twenty ``ggml-vocab-*.gguf`` files (GPT-2, Llama SPM and BPE, Falcon, MPT,
StarCoder, DeepSeek, Qwen2, Command-R, Phi-3, Gemma 4, BERT, ...) with ``*.gguf.inp`` (texts)
and ``*.gguf.out`` (llama.cpp's token ids for them) beside them; the ``llama-cpp-python`` sdist
on PyPI ships them under ``vendor/llama.cpp/models/``. Where the tests find them, in order:

1. ``$TOKMIX_GGUF_VOCAB_DIR``, a folder holding the files (no download);
2. ``$XDG_CACHE_HOME/tokmix/gguf-vocab-<version>`` (``~/.cache/...``) if an earlier run filled
   it;
3. a download: ``pip download --no-deps --no-binary :all: llama-cpp-python==<version>`` (76 MB,
   from PyPI), of which only those files are extracted into the cache above.

Otherwise the tests skip, saying why. ``python tests/gguf_vocab.py [DEST]`` fills ``DEST`` (or
the cache) by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.3.36"
MEMBER_DIR = "vendor/llama.cpp/models/"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tokmix" / f"gguf-vocab-{VERSION}"


def has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("ggml-vocab-*.gguf"))


def fetch(dest: Path) -> Path:
    """Download the sdist with pip and extract the vocab files and vectors into ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                f"llama-cpp-python=={VERSION}", "-d", tmp, "-q",
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )  # fmt: skip
        (sdist,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
        partial = dest.with_name(dest.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = member.name.split("/", 1)[-1]
                base = Path(name).name
                if (
                    name.startswith(MEMBER_DIR)
                    and base.startswith("ggml-vocab-")
                    and member.isfile()
                ):
                    source = tar.extractfile(member)
                    assert source is not None
                    (partial / base).write_bytes(source.read())
        partial.rename(dest)  # atomic: a half-filled folder is never taken for a full one
    return dest


def locate() -> tuple[Path | None, str]:
    """The folder of vocab files, or None and why not."""
    env = os.environ.get("TOKMIX_GGUF_VOCAB_DIR")
    if env:
        folder = Path(env)
        return (folder, "") if has_files(folder) else (None, f"no ggml-vocab-*.gguf in {env}")
    cached = cache_dir()
    if has_files(cached):
        return cached, ""
    try:
        return fetch(cached), ""
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return None, (
            f"llama.cpp's GGUF vocab files are not available (set TOKMIX_GGUF_VOCAB_DIR, or let "
            f"pip download llama-cpp-python=={VERSION} from PyPI: {exc})"
        )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else cache_dir()
    print(fetch(target) if not has_files(target) else target)
