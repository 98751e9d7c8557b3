"""No wrong answer from the cache: changed inputs, concurrent runs and foreign folders, through
the real `tokmix` command on the shipped demo data. The oracle for every reuse is a fresh run
into an empty root."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO
from tokmix.cli import main
from tokmix.errors import DatasetError
from tokmix.io.root import LOCK, MARKER, RootLease

DEMO_TOKENIZER = REPO / "data" / "tokenizers" / "demo"
SAMPLES = REPO / "data" / "samples"
MERGES = ["--merges", "300", "--groups", "0"]


def _corpus(root: Path, names: tuple[str, ...] = ("books", "python", "rust")) -> list[str]:
    """Plain JSON-lines copies of shipped samples (so a test can rewrite them in place)."""
    root.mkdir(parents=True, exist_ok=True)
    args = []
    for name in names:
        path = root / f"{name}.jsonl"
        path.write_bytes(gzip.decompress((SAMPLES / f"{name}.jsonl.gz").read_bytes()))
        args += ["--category", f"{name}={path}"]
    return args


def _infer(out: Path, cats: list[str], capsys: pytest.CaptureFixture[str], *extra: str) -> dict:  # type: ignore[type-arg]
    code = main(["infer", str(DEMO_TOKENIZER), *cats, "--out", str(out), "--json", *MERGES, *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc: dict = json.loads(captured.out)  # type: ignore[type-arg]
    doc["_log"] = captured.err
    return doc


def _shares(doc: dict) -> dict[str, float]:  # type: ignore[type-arg]
    return {c["name"]: round(c["byte_share"], 9) for c in doc["categories"]}


def test_a_rewrite_keeping_size_and_mtime_is_counted_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cp -p`` / ``rsync -a`` of other text with the same size and mtime over a corpus file:
    the next run counts it again (and says which stages it skipped), and its mixture is a fresh
    run's."""
    monkeypatch.setenv("TOKMIX_CACHE", str(tmp_path / "cache"))
    cats = _corpus(tmp_path / "corpus")
    first = _infer(tmp_path / "out", cats, capsys)
    again = _infer(tmp_path / "out", cats, capsys)
    assert "count: word tables" in again["_log"] and "skipped" in again["_log"]
    assert _shares(again) == _shares(first)

    books = tmp_path / "corpus" / "books.jsonl"
    stamp = books.stat()
    lines = books.read_bytes().splitlines(keepends=True)
    python = (tmp_path / "corpus" / "python.jsonl").read_bytes()
    swapped = b"".join(lines[: len(lines) // 4]) + python  # other text ...
    swapped = swapped[: stamp.st_size].ljust(stamp.st_size, b"\n")  # ... of the same size
    staged = tmp_path / "staged.jsonl"
    staged.write_bytes(swapped[: swapped.rfind(b"\n") + 1].ljust(stamp.st_size, b"\n"))
    os.utime(staged, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    shutil.copy2(staged, books)  # cp -p
    assert (books.stat().st_size, books.stat().st_mtime_ns) == (stamp.st_size, stamp.st_mtime_ns)

    changed = _infer(tmp_path / "out", cats, capsys)
    fresh = _infer(tmp_path / "fresh", cats, capsys)
    assert "count: word tables" not in changed["_log"] or "skipped" not in changed["_log"]
    assert _shares(changed) == _shares(fresh)
    assert _shares(changed) != _shares(first)


def test_a_second_run_into_a_root_in_use_fails_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cats = _corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    first = _infer(out, cats, capsys)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with RootLease(str(out), "someone-else"):
        code = main(["infer", str(DEMO_TOKENIZER), *cats[:4], "--out", str(out), *MERGES])
        err = capsys.readouterr().err
        assert code == 2
        assert "in use by run 'someone-else'" in err and "Traceback" not in err
        for verb in (["replay", str(DEMO_TOKENIZER)], ["solve", "--tokenizer", "demo"]):
            assert main([*verb, "--out", str(out)]) == 2
            assert "in use by run 'someone-else'" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not (out / LOCK).exists()
    assert _shares(_infer(out, cats, capsys)) == _shares(first)


def test_solve_refuses_trajectories_recommitted_while_it_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run commits new trajectories into the root between the solve's snapshot of its
    inputs and its read: the solve fails rather than record the old mixture as solved from the
    new trajectories (the poisoned cache of a later run)."""
    import tokmix.jobs.solve as solve

    cats = _corpus(tmp_path / "corpus")
    other = _corpus(tmp_path / "other", ("books", "python", "legal"))
    out = tmp_path / "out"
    _infer(out, cats, capsys)
    _infer(tmp_path / "other-out", other, capsys)
    real = solve.read_trajectories

    def racing(root: str, tokenizer: str):  # type: ignore[no-untyped-def]
        result = real(root, tokenizer)
        for name in ("trajectories", "replay_merges", "replay_totals"):
            src, dst = tmp_path / "other-out" / name, out / name
            if src.exists():
                shutil.rmtree(dst)
                shutil.copytree(src, dst)
        return result

    monkeypatch.setattr(solve, "read_trajectories", racing)
    with pytest.raises(DatasetError, match="changed while they were read"):
        solve.run_solve(str(out), "demo")


def test_a_foreign_folder_is_refused_and_kept_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder holding someone's Parquet files in tokmix-shaped paths: refused without
    --force; adopted with it, and none of its files is deleted or changed."""
    cats = _corpus(tmp_path / "corpus")
    theirs = tmp_path / "theirs"
    planted = {
        theirs / "word_counts" / "pretokenizer=x" / "category=books" / "part-00003.parquet": b"1",
        theirs / "trajectories" / "tokenizer=demo" / "_SUCCESS.tmp-1234": b"2",
        theirs / "mixtures" / "elsewhere.json": b"3",
        theirs / "notes.txt": b"4",
    }
    for path, data in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    code = main(["infer", str(DEMO_TOKENIZER), *cats, "--out", str(theirs), *MERGES])
    err = capsys.readouterr().err
    assert code == 2 and "not empty and was not written by tokmix" in err and "--force" in err
    assert not (theirs / MARKER).exists()
    _infer(theirs, cats, capsys, "--force")
    assert (theirs / MARKER).exists()
    for path, data in planted.items():
        assert path.read_bytes() == data, path


def test_out_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "result.json"
    target.write_text("{}")
    cats = _corpus(tmp_path / "corpus", ("books", "python"))
    assert main(["infer", str(DEMO_TOKENIZER), *cats, "--out", str(target), *MERGES]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(target) in err
    assert target.read_text() == "{}"


def test_report_flags_datasets_no_single_run_produced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Word tables recounted from another corpus after the solve: the report says the
    trajectories and the mixture no longer follow from what the root holds."""
    out = tmp_path / "out"
    cats = _corpus(tmp_path / "corpus")
    _infer(out, cats, capsys)
    assert main(["stats", str(DEMO_TOKENIZER), *cats, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    other = _corpus(tmp_path / "other", ("books", "legal"))
    assert main(["count", str(DEMO_TOKENIZER), *other, "--out", str(out), "--groups", "1"]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    assert "trajectories of demo were replayed from word tables this root no longer holds" in err
    assert "token statistics of demo were computed from a corpus sample other" in err
    page = (out / "report" / "index.html").read_text()
    assert "do not come from one set of inputs" in page


def test_invalid_utf8_is_reported_per_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cats = _corpus(tmp_path / "corpus", ("books", "python"))
    broken = tmp_path / "broken.txt"
    text = gzip.decompress((SAMPLES / "rust.jsonl.gz").read_bytes())[:20000]
    broken.write_bytes(b'fn main() {}\n\nlet s = "\xff\xfe";\n\n' + text.replace(b"\\n", b"\n"))
    doc = _infer(tmp_path / "out", [*cats, "--category", f"rust={broken}"], capsys)
    assert "warning: category rust: 1 document(s) in" in doc["_log"]
    assert str(broken) in doc["_log"] and "invalid UTF-8" in doc["_log"]
    assert "category books" not in doc["_log"].split("invalid UTF-8")[0].split("\n")[-1]
