"""The compiled counter against an earlier revision of itself, in one process, interleaved.

    python -m benchmarks.counter_ab --before REV [--families sentencepiece-digits,gpt2]

On a machine shared with other work the load changes from minute to minute, and so does CPU
time (shared caches): two benchmark runs minutes apart do not compare. Here
``tokmix/bpe/fast_pretokenize.py`` at ``REV`` (``git show``) is loaded as a second module beside
the current one, and the two count the same documents in turns, the whole path as the count
stage runs it (``add(text)`` per document, then ``drain``), best of ``--repeat`` CPU times
each. Their counts are checked equal first.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from benchmarks.counting import default_texts
from tests.helpers import read_jsonl_gz
from tokmix.bpe import fast_pretokenize
from tokmix.bpe import pretokenizers as P

REPO = Path(__file__).resolve().parents[1]
MODULE = "tokmix/bpe/fast_pretokenize.py"


def module_at(rev: str, folder: Path) -> ModuleType:
    """``fast_pretokenize`` as it was at ``rev``, loaded under another name (its numba cache
    goes beside the copy, in ``folder``)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{MODULE}"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    path = folder / "fast_pretokenize_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fast_pretokenize_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def whole_path(module: ModuleType, pre: P.Pretokenizer, docs: list[str]) -> Callable[[], object]:
    plan = module.compile_plan(pre)

    def run() -> Counter[bytes]:
        counter = module.CompiledWordCounter(pre, plan)
        for doc in docs:
            counter.add(doc)
        out: Counter[bytes] = counter.drain()
        return out

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", required=True, help="git revision to compare against")
    ap.add_argument("--families", default="sentencepiece-digits,sentencepiece,gpt2")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    texts = {kind: read_jsonl_gz(path) for kind, path in default_texts().items()}
    with tempfile.TemporaryDirectory() as tmp:
        before = module_at(args.before, Path(tmp))
        for kind, docs in texts.items():
            mb = sum(len(t.encode()) for t in docs) / 1e6
            for name in args.families.split(","):
                pre = P.named(name)
                runs = {
                    args.before: whole_path(before, pre, docs),
                    "now": whole_path(fast_pretokenize, pre, docs),
                }
                first, second = (fn() for fn in runs.values())  # compiles, and checks
                assert first == second, f"{kind} / {name}: the two revisions count differently"
                best = dict.fromkeys(runs, float("inf"))
                for _ in range(args.repeat):
                    for label, fn in runs.items():
                        t0 = time.process_time()
                        fn()
                        best[label] = min(best[label], time.process_time() - t0)
                rates = ", ".join(f"{label} {mb / s:5.1f} MB/s cpu" for label, s in best.items())
                ratio = best[args.before] / best["now"]
                print(f"{kind:5} {mb:4.1f} MB {name:21}: {rates} ({ratio:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
