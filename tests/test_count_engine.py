"""The count engine as an option (``count: {engine: ...}``, ``--count-engine``): checked when a
spec loads, carried by every counting verb to the count tasks, and never a reason to count
again, because both engines commit the same word tables (the ``regex`` path is the oracle)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import regex

from tests.helpers import REPO
from tokmix.bpe import fast_pretokenize as fp
from tokmix.bpe import pretokenizers as P
from tokmix.bpe import words
from tokmix.cli import main
from tokmix.errors import TokmixError
from tokmix.io.corpus import iter_documents
from tokmix.io.datasets import read_manifest
from tokmix.jobs import pipeline, runtime
from tokmix.jobs.count import read_group_word_tables, read_word_tables, word_counts_name
from tokmix.jobs.count_ray import run_count_ray
from tokmix.jobs.executors import LocalExecutor
from tokmix.jobs.spec import CategorySpec, SampleOptions
from tokmix.schemas.run_spec import CountEngine, CountOptions, RunSpec, load_run_spec

DEMO = REPO / "data" / "tokenizers" / "demo"
SAMPLES = REPO / "data" / "samples"
CATEGORIES = ["--category", f"books={SAMPLES / 'books.jsonl.gz'}"]
SMALL = ["--max-bytes", "20KB"]


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The engine of every word counter the count tasks make (tasks run in this process)."""
    seen: list[str] = []
    real = words.word_counter

    def spy(pretokenizer: P.Pretokenizer, engine: fp.Engine = "auto") -> fp.WordCounter:
        seen.append(engine)
        return real(pretokenizer, engine)

    monkeypatch.setattr(words, "word_counter", spy)
    return seen


def _uncompilable_tokenizer(tmp_path: Path) -> Path:
    """The demo tokenizer with a ``ByteLevel`` split that skips GPT-2's regex: no compiled form."""
    folder = tmp_path / "plain"
    folder.mkdir()
    doc = json.loads((DEMO / "tokenizer.json").read_text())
    doc["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}
    (folder / "tokenizer.json").write_text(json.dumps(doc))
    return folder


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("[tokmix")]
    assert "Traceback" not in err and len(errors) == 1, err
    return errors[0]


# ------------------------------------------------------------------ the options model


def test_the_schema_names_the_core_engines() -> None:
    """The schema layer may not import the core, so the two lists are kept equal here."""
    assert get_args(CountEngine) == fp.ENGINES
    assert CountOptions().engine == "auto"


def test_a_spec_names_its_engine(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    base = f"out: {tmp_path / 'out'}\ntokenizers: [{DEMO}]\ncategories: {{books: {{paths: x}}}}\n"
    spec.write_text(base + "count: {engine: regex}\n")
    assert load_run_spec(spec).count.engine == "regex"
    spec.write_text(base)
    assert load_run_spec(spec).count.engine == "auto"
    spec.write_text(base + "count: {engine: fast}\n")
    with pytest.raises(TokmixError, match=r"count\.engine: Input should be 'auto', 'compiled'"):
        load_run_spec(spec)
    spec.write_text(base + "count: {engin: regex}\n")
    with pytest.raises(TokmixError, match=r"count\.engin: Extra inputs"):
        load_run_spec(spec)


def test_the_engine_leaves_the_run_id_alone() -> None:
    """It picks speed, not results: a spec's default run id is the same under every engine
    (and the same as before the option existed)."""
    raw: dict[str, Any] = {"out": "o", "tokenizers": ["t"], "categories": {"a": {"paths": "p"}}}
    ids = {
        RunSpec.model_validate({**raw, "count": {"engine": e}}).effective_run_id for e in fp.ENGINES
    }
    assert ids == {RunSpec.model_validate(raw).effective_run_id}
    solver = RunSpec.model_validate({**raw, "solver": {"estimator": "paper"}})
    assert solver.effective_run_id not in ids  # a content option still changes it


def test_a_compiled_engine_without_a_compiled_form_is_refused_before_counting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engines: list[str]
) -> None:
    plain = str(_uncompilable_tokenizer(tmp_path))
    out = str(tmp_path / "out")
    args = [plain, *CATEGORIES, *SMALL, "--out", out, "--count-engine", "compiled"]
    for verb in ("infer", "count", "stats"):
        assert main([verb, *args]) == 2, verb
        line = _one_error_line(capsys)
        assert "--count-engine compiled: pre-tokenizer" in line, line
        assert "has no compiled form; use 'auto'" in line, line
    assert engines == []  # nothing was counted
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"out: {out}\ntokenizers: [{plain}]\ncategories: {{books: {{paths: x}}}}\n"
        "count: {engine: compiled}\n"
    )
    with pytest.raises(TokmixError, match=r"^run spec: count\.engine compiled: pre-tokenizer"):
        pipeline.prepare(load_run_spec(spec), LocalExecutor(), message_prefix="run spec: ")
    # auto counts it with the regex path
    assert main(["count", *args[:-1], "auto"]) == 0
    assert engines and set(engines) == {"auto"}


# ------------------------------------------------------------------ the flag reaches the count


@pytest.mark.parametrize("engine", ["regex", "compiled"])
def test_each_counting_verb_passes_its_flag_to_the_count_tasks(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], engines: list[str]
) -> None:
    common = [str(DEMO), *CATEGORIES, *SMALL, "--count-engine", engine]
    assert main(["count", *common, "--out", str(tmp_path / "count")]) == 0
    assert set(engines) == {engine}
    engines.clear()
    infer = ["infer", *common, "--merges", "50", "--groups", "1", "--out", str(tmp_path / "i")]
    assert main(infer) == 0
    assert set(engines) == {engine}
    engines.clear()
    assert main(["stats", *common, "--out", str(tmp_path / "stats")]) == 0
    assert set(engines) == {engine}
    capsys.readouterr()


def test_run_takes_the_spec_engine_and_the_flag_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tokmix run``: the spec's ``count.engine`` reaches the pipeline; ``--count-engine``
    replaces it (the pipeline's count stage hands ``spec.count.engine`` to its tasks, as the
    verbs above show for the same stage)."""
    given: list[RunSpec] = []

    def fake_pipeline(spec: RunSpec, **_kw: Any) -> dict[str, Any]:
        given.append(spec)
        return {"tokenizers": {}}

    @contextlib.contextmanager
    def no_ray(**_kw: Any) -> Iterator[None]:
        yield

    monkeypatch.setattr(pipeline, "run_pipeline", fake_pipeline)
    monkeypatch.setattr(runtime, "ray_session", no_ray)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"out: {tmp_path / 'out'}\ntokenizers: [{DEMO}]\ncategories: {{books: {{paths: x}}}}\n"
        "count: {engine: regex}\n"
    )
    assert main(["run", str(spec)]) == 0
    assert main(["run", str(spec), "--count-engine", "compiled"]) == 0
    assert [s.count.engine for s in given] == ["regex", "compiled"]
    assert given[0].effective_run_id == given[1].effective_run_id


# ------------------------------------------------------------------ both engines, one result


def test_both_engines_commit_the_same_word_tables_on_real_text(
    tmp_path: Path, corpora_dir: Path
) -> None:
    """The count stage on a real sample (prose, code, Japanese), sharded, with bootstrap
    groups: the committed word tables, groups and totals are equal, and so are the input
    hashes, so a count with one engine is reused by the other."""
    sources = {
        "books": corpora_dir / "domains" / "books" / "docs.jsonl.gz",
        "python": corpora_dir / "code" / "python" / "docs.jsonl.gz",
        "ja": corpora_dir / "languages" / "ja" / "docs.jsonl.gz",
    }
    categories = [CategorySpec(name, str(path)) for name, path in sources.items()]
    options = {c.name: SampleOptions(max_bytes=300_000) for c in categories}
    results = {}
    for engine in ("compiled", "regex"):
        out = str(tmp_path / engine)
        totals = run_count_ray(
            categories,
            options,
            P.CL100K,
            out,
            shard_bytes=200_000,
            groups=4,
            executor=LocalExecutor(),
            engine=engine,
        )
        tables = read_word_tables(out, P.CL100K)
        groups = read_group_word_tables(out, P.CL100K)
        inputs = read_manifest(out, word_counts_name(P.CL100K))["input_hashes"]
        results[engine] = (totals, tables, groups, inputs)
    compiled, regex_ = results["compiled"], results["regex"]
    assert compiled[0] == regex_[0]
    assert compiled[1] == regex_[1]
    assert compiled[2] == regex_[2]
    assert compiled[3] == regex_[3]
    assert all(t.bytes_ > 250_000 and len(t) > 1_000 for t in compiled[1].values())
    for spec in categories:  # an oracle outside tokmix's counters: regex.findall + Counter
        want: Counter[bytes] = Counter()
        for doc in iter_documents(spec.path, max_bytes=300_000):
            want.update(w.encode() for w in regex.findall(P.CL100K_PATTERN, doc.text))
        assert compiled[1][spec.name].counts == want, spec.name
    # a count made with one engine is not redone with the other
    logs: list[str] = []
    shutil.rmtree(tmp_path / "regex")
    run_count_ray(
        categories,
        options,
        P.CL100K,
        str(tmp_path / "compiled"),
        shard_bytes=200_000,
        groups=4,
        executor=LocalExecutor(),
        engine="regex",
        log=logs.append,
    )
    assert any("already committed; skipped" in line for line in logs), logs


def test_word_tables_switch_engines_without_losing_words() -> None:
    table = words.WordTable()
    table.add_text("hello world", P.GPT2, "compiled")
    table.add_text("hello there", P.GPT2, "regex")
    assert table.counts == Counter(P.GPT2.words("hello world")) + Counter(
        P.GPT2.words("hello there")
    )


class _RecordingExecutor(LocalExecutor):
    """Runs tasks in this process and keeps their arguments (what a Ray task would be sent)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def map(self, fn: Any, calls: Any, **kw: Any) -> list[Any]:
        self.calls += [(fn.__name__, tuple(call)) for call in calls]
        return super().map(fn, calls, **kw)


def test_the_engine_travels_with_each_count_task(tmp_path: Path) -> None:
    """On Ray a task gets only its arguments (no environment, no driver state): the engine is
    one of them."""
    executor = _RecordingExecutor()
    books = CategorySpec("books", str(SAMPLES / "books.jsonl.gz"))
    run_count_ray(
        [books],
        {"books": SampleOptions(max_bytes=20_000)},
        P.GPT2,
        str(tmp_path),
        shard_bytes=10**6,
        executor=executor,
        engine="regex",
    )
    counted = [args for name, args in executor.calls if name == "_count_shard"]
    assert counted and all(args[-1] == "regex" for args in counted)
