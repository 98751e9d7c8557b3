"""The options model (``tokmix.schemas.run_spec.RunSpec``): every value checked when a spec
loads or the CLI builds one, before any stage runs; one set of defaults for every verb."""

from __future__ import annotations

import base64
import inspect
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO
from tokmix.bpe.loaders import load_tokenizer
from tokmix.cli import build_parser, main
from tokmix.errors import TokenizerFormatError, TokmixError
from tokmix.jobs.infer import run_infer
from tokmix.jobs.pipeline import run_pipeline
from tokmix.schemas.run_spec import BootstrapOptions, RunSpec, SolverOptions, load_run_spec
from tokmix.solvers.mixture_lp import solve_mixture

DEMO = REPO / "data" / "tokenizers" / "demo"
BOOKS = REPO / "data" / "samples" / "books.jsonl.gz"
SPEC = """\
out: {out}
tokenizers: [{tokenizer}]
categories:
  books: {{paths: {books}, max_bytes: 20KB}}
  legal: {{paths: {legal}, max_bytes: 20KB}}
bootstrap: {{groups: 1}}
"""


def _spec(tmp_path: Path, extra: str = "", tokenizer: Path = DEMO) -> Path:
    path = tmp_path / "spec.yaml"
    text = SPEC.format(
        out=tmp_path / "out",
        tokenizer=tokenizer,
        books=BOOKS,
        legal=REPO / "data" / "samples" / "legal.jsonl.gz",
    )
    path.write_text(text + extra)
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``tokmix: error:`` line (log lines may come before it), no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("[tokmix")]
    assert "Traceback" not in err and len(errors) == 1, err
    assert errors[0].startswith("tokmix: error: "), err
    return errors[0]


# ------------------------------------------------------------------ merge ranges


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('merge_range: "5:3"\n', "merge_range: merge range is A:B with integers 0 <= A < B"),
        ('merge_range: "a:b"\n', "merge_range: merge range is A:B"),
        ('merge_range: "100"\n', "merge_range: merge range is A:B"),
        ('merges: 100\nmerge_range: "0:50"\n', "give merges or merge_range, not both"),
        ("solver: {merge_stride: 0}\n", "solver.merge_stride: Input should be greater than"),
        (
            "solver: {estimator: likelihood, merge_stride: 2}\n",
            "the likelihood estimator uses every merge step",
        ),
    ],
)
def test_a_malformed_range_is_refused_when_the_spec_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, message: str
) -> None:
    """Refused at load, naming the spec's key, and `tokmix run` writes nothing."""
    with pytest.raises(TokmixError, match=message):
        load_run_spec(_spec(tmp_path, extra))
    assert main(["run", str(_spec(tmp_path, extra))]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_range_past_the_tokenizer_is_refused_before_counting(tmp_path: Path) -> None:
    """The demo has 1500 merges: ``0:2000`` passes the load (syntax) and is refused as soon as
    the tokenizer loads, before any stage writes (no Ray is started either)."""
    spec = load_run_spec(_spec(tmp_path, 'merge_range: "0:2000"\n'))
    with pytest.raises(TokmixError, match=r"merge_range '0:2000' must satisfy .* <= 1500"):
        run_pipeline(spec)
    with pytest.raises(TokmixError, match=r"merge_range '0:2000' must satisfy .* <= 1500"):
        run_infer(spec)
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_without_merges_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ranks = tmp_path / "cl100k_bytes.tiktoken"
    ranks.write_bytes(b"".join(base64.b64encode(bytes([b])) + b" %d\n" % b for b in range(256)))
    assert load_tokenizer(ranks).n_merges == 0
    code = main(["infer", str(ranks), "-c", f"books={BOOKS}", "--out", str(tmp_path / "out")])
    assert code == 2
    err = _one_error_line(capsys)
    assert "has no merges" in err and "between 1 and 0" not in err


# ------------------------------------------------------------------ the spec file


def test_duplicate_keys_are_refused_with_their_lines(tmp_path: Path) -> None:
    """Plain YAML keeps the last of two ``books:`` entries: one category, books 100 %."""
    path = _spec(tmp_path)
    text = path.read_text().replace(
        "bootstrap:", f"  books: {{paths: {REPO / 'data/samples/rust.jsonl.gz'}}}\nbootstrap:"
    )
    path.write_text(text)
    with pytest.raises(TokmixError, match=r"duplicate key 'books' at line 6 \(first at line 4\)"):
        load_run_spec(path)


def test_out_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "taken.txt"
    afile.write_text("mine")
    assert main(["infer", str(DEMO), "-c", f"books={BOOKS}", "--out", str(afile)]) == 2
    assert "--out" in _one_error_line(capsys)
    assert main(["run", str(_spec(tmp_path)), "--out", str(afile)]) == 2
    assert "is a file" in _one_error_line(capsys)
    assert main(["count", str(DEMO), "-c", f"books={BOOKS}", "--out", str(afile)]) == 2
    assert "is a file" in _one_error_line(capsys)
    assert afile.read_text() == "mine"


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("name", ["bo\nks", "books\x1b[2J", "a\rb", "tab\tbed"])
def test_category_names_are_printable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    with pytest.raises(ValueError, match="control characters or line breaks"):
        RunSpec.model_validate(
            {"out": "o", "tokenizers": ["t"], "categories": {name: {"paths": ["p"]}}}
        )
    assert main(["infer", str(DEMO), "-c", f"{name}={BOOKS}", "--out", str(tmp_path)]) == 2
    assert "control characters" in _one_error_line(capsys)


def test_tokenizer_names_are_printable(tmp_path: Path) -> None:
    folder = tmp_path / "demo\n[tokmix] forged"
    shutil.copytree(DEMO, folder)
    with pytest.raises(TokenizerFormatError, match="control characters or line breaks"):
        load_tokenizer(folder)


# ------------------------------------------------------------------ one set of defaults


def test_spec_and_cli_share_their_defaults() -> None:
    """``tokmix run`` (the spec) and ``tokmix infer``/``solve`` (flags) start from the same
    values; the spec's max_rounds once was 100 where the solver's was 10 000, so GPT-2 failed
    under `run` and solved under `infer`."""
    lp_defaults = inspect.signature(solve_mixture).parameters
    solver = SolverOptions()
    for name in ("max_rounds", "per_step", "threads"):
        assert getattr(solver, name) == lp_defaults[name].default, name
    args = build_parser().parse_args(["infer", "tok", "-c", "a=b"])
    boot = BootstrapOptions()
    assert (args.groups, args.replicates, args.level, args.bootstrap_seed, args.merge_block) == (
        boot.groups,
        boot.replicates,
        boot.level,
        boot.seed,
        boot.merge_block,
    )
    assert args.estimator == solver.estimator
    solve = build_parser().parse_args(["solve", "--tokenizer", "t"])
    assert (solve.replicates, solve.level, solve.estimator) == (
        boot.replicates,
        boot.level,
        solver.estimator,
    )
