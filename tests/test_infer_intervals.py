"""Bootstrap intervals of the one-process pipeline (`tokmix infer`, the stages alone).

Oracles: a brute-force group split (blake2b of each document's text, written out here), an
ungrouped replay of the whole word table (the group trajectories must add up to it exactly),
and the point estimate (each interval must hold it). That the intervals equal the Ray
pipeline's is tested in tests/test_ray_pipeline.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import REPO, sample_documents
from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.replay import PairTrajectory
from tokmix.bpe.words import count_words
from tokmix.cli import main
from tokmix.jobs.count import read_group_word_tables, run_count_groups
from tokmix.jobs.replay import read_group_trajectories, read_trajectories, run_replay
from tokmix.jobs.solve import run_solve
from tokmix.jobs.spec import CategorySpec, SampleOptions

DEMO = REPO / "data" / "tokenizers" / "demo"
NAMES = ("books", "python", "rust")
MAX_BYTES = 60_000
GROUPS = 5


def _specs() -> list[CategorySpec]:
    return [CategorySpec(n, str(REPO / "data" / "samples" / f"{n}.jsonl.gz")) for n in NAMES]


def test_groups_split_the_sample_and_their_trajectories_add_up(tmp_path: Path) -> None:
    tok = load_tokenizer(str(DEMO))
    options = SampleOptions(max_bytes=MAX_BYTES)
    out = str(tmp_path / "grouped")
    tables, groups = run_count_groups(_specs(), tok.pretokenizer, out, options, groups=GROUPS)
    assert groups is not None

    for name in NAMES:  # brute force: hash each document's text, count each group apart
        docs = sample_documents(name, MAX_BYTES)
        by_group: dict[int, list[str]] = {}
        for text in docs:
            digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
            by_group.setdefault(int.from_bytes(digest, "little") % GROUPS, []).append(text)
        assert len(by_group) >= 2, name
        assert set(groups[name]) == set(by_group), name
        for g, texts in by_group.items():
            want = count_words(texts, tok.pretokenizer)
            assert groups[name][g].counts == want.counts, (name, g)
            assert groups[name][g].bytes_ == want.bytes_
        assert tables[name].counts == count_words(docs, tok.pretokenizer).counts
    # what the stage committed reads back as it was counted
    committed = read_group_word_tables(out, tok.pretokenizer)
    assert committed is not None
    for name in NAMES:
        assert {g: t.counts for g, t in committed[name].items()} == {
            g: t.counts for g, t in groups[name].items()
        }

    run_replay(tok, tables, out, 1, 400, group_tables=groups)
    plain = str(tmp_path / "plain")  # the oracle: one replay of each whole word table
    shutil.copytree(Path(out) / "word_counts", Path(plain) / "word_counts")  # its committed input
    run_replay(tok, tables, plain, 1, 400)
    want, _, want_bytes = read_trajectories(plain, tok.name)
    got, _, got_bytes = read_trajectories(out, tok.name)
    assert got_bytes == want_bytes
    read = read_group_trajectories(out, tok.name)
    assert read is not None
    group_trajs, group_bytes = read
    for name in NAMES:
        total = PairTrajectory.total(group_trajs[name])
        for field in ("step", "left", "right", "delta"):
            assert (getattr(total, field) == getattr(want[name], field)).all(), (name, field)
            assert (getattr(got[name], field) == getattr(want[name], field)).all(), (name, field)
        assert total.pairs == want[name].pairs == got[name].pairs
        assert sum(group_bytes[name]) == tables[name].bytes_

    doc = run_solve(out, tok.name, bootstrap={"replicates": 6, "level": 0.9, "seed": 1}).to_json()
    interval = doc["diagnostics"]["interval"]
    assert interval["replicates"] == 6 and interval["level"] == 0.9
    assert interval["groups"] == {n: len(groups[n]) for n in NAMES}
    for row in doc["categories"]:
        assert row["byte_share_low"] <= row["byte_share"] <= row["byte_share_high"], row
        assert row["byte_share_high"] - row["byte_share_low"] > 1e-4, row  # it resampled
    mix = pq.read_table(Path(out) / "mixtures" / "tokenizer=demo").to_pylist()
    assert {(r["category"], r["byte_share_low"], r["byte_share_high"]) for r in mix} == {
        (r["name"], r["byte_share_low"], r["byte_share_high"]) for r in doc["categories"]
    }


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_infer_intervals_from_the_cli_equal_the_stages_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cats = [a for s in _specs() for a in ("-c", f"{s.name}={s.path}")]
    common = [*cats, "--max-bytes", str(MAX_BYTES)]
    boot = ["--replicates", "5", "--level", "0.8", "--bootstrap-seed", "7"]
    a = str(tmp_path / "a")
    doc = _cli_json(
        capsys,
        "infer",
        str(DEMO),
        *common,
        "-T",
        "300",
        "--groups",
        "4",
        *boot,
        "--workers",
        "2",
        "--out",
        a,
        "--json",
    )
    assert doc["diagnostics"]["interval"]["level"] == 0.8
    for row in doc["categories"]:
        assert row["byte_share_low"] <= row["byte_share"] <= row["byte_share_high"], row

    b = str(tmp_path / "b")
    assert main(["count", str(DEMO), *common, "--groups", "4", "--out", b]) == 0
    assert main(["replay", str(DEMO), "-T", "300", "--out", b]) == 0
    capsys.readouterr()
    # the replicates solved in this process: what the pool of 2 gave, bit for bit
    serial = ["--workers", "1", "--out", b, "--json"]
    alone = _cli_json(capsys, "solve", "--tokenizer", "demo", *boot, *serial)
    assert alone["categories"] == doc["categories"]

    # without groups: point estimates, the same ones, and null intervals in Parquet
    c = str(tmp_path / "c")
    point = _cli_json(
        capsys, "infer", str(DEMO), *common, "-T", "300", "--groups", "0", "--out", c, "--json"
    )
    assert "interval" not in point["diagnostics"]
    assert [r["byte_share"] for r in point["categories"]] == [
        r["byte_share"] for r in doc["categories"]
    ]
    mix = pq.read_table(Path(c) / "mixtures" / "tokenizer=demo")
    assert mix["byte_share_low"].null_count == len(NAMES)

    # the table a person reads shows the interval
    assert main(["solve", "--tokenizer", "demo", *boot, "--out", b]) == 0
    text = capsys.readouterr().out
    assert "80% interval" in text and "5 bootstrap replicates over" in text
    books = next(r for r in doc["categories"] if r["name"] == "books")
    assert f"{books['byte_share_low']:.1%} – {books['byte_share_high']:.1%}" in text


def test_bad_interval_options_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cats = [a for s in _specs()[:2] for a in ("-c", f"{s.name}={s.path}")]
    assert main(["infer", str(DEMO), *cats, "--workers", "-1", "--out", str(tmp_path)]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["infer", str(DEMO), *cats, "--replicates", "1", "--out", str(tmp_path)]) == 2
    assert "--replicates" in capsys.readouterr().err
    assert main(["infer", str(DEMO), *cats, "--level", "1.5", "--out", str(tmp_path)]) == 2
    assert "--level" in capsys.readouterr().err
    assert not (tmp_path / "word_counts").exists()


def test_default_estimator_is_the_noise_scaled_lp_and_paper_lp_is_reported(tmp_path: Path) -> None:
    """The solve's default is the noise-scaled LP (solved here again from the committed
    trajectories, the oracle); ``--estimator paper`` gives the paper's LP, whose shares the
    default run also reports."""
    from tokmix.solvers.mixture_lp import solve_mixture
    from tokmix.solvers.noise_scaled_lp import solve_mixture_scaled
    from tokmix.solvers.problem import build_problem

    cats = [f"{n}={REPO / 'data' / 'samples' / f'{n}.jsonl.gz'}" for n in NAMES]
    common = ["--max-bytes", str(MAX_BYTES), "-T", "300", "--groups", "0", "--json"]
    docs = {}
    for estimator in ("scaled", "paper"):
        out = str(tmp_path / estimator)
        args = ["infer", str(DEMO), *[a for c in cats for a in ("--category", c)], *common]
        assert main([*args, "--estimator", estimator, "--out", out]) == 0
        docs[estimator] = json.loads((tmp_path / estimator / "mixtures" / "demo.json").read_text())
    trajs, merge_ids, nbytes = read_trajectories(str(tmp_path / "scaled"), "demo")
    problem = build_problem(trajs, merge_ids, nbytes)
    paper = solve_mixture(problem)
    scaled = solve_mixture_scaled(problem, reference_alpha=paper.alpha)

    default = docs["scaled"]
    assert default["diagnostics"]["estimator"] == "scaled"
    shares = {r["name"]: r["byte_share"] for r in default["categories"]}
    want = dict(zip(scaled.categories, scaled.byte_share, strict=True))
    assert shares == pytest.approx(want, abs=1e-9)
    paper_doc = {r["name"]: r["byte_share"] for r in docs["paper"]["categories"]}
    want = dict(zip(paper.categories, paper.byte_share, strict=True))
    assert paper_doc == pytest.approx(want, abs=1e-9)
    assert default["diagnostics"]["paper_lp"]["byte_share"] == pytest.approx(paper_doc, abs=1e-12)
    assert shares != pytest.approx(paper_doc, abs=1e-6)  # the two estimators differ here
    assert "paper_lp" not in docs["paper"]["diagnostics"]


def test_likelihood_estimator_solves_the_committed_trajectories(tmp_path: Path) -> None:
    """``--estimator likelihood`` gives the likelihood fit of the committed trajectories
    (solved here again, the oracle), with the model's own intervals and the paper's LP
    reported beside it."""
    from tokmix.solvers.likelihood import solve_mixture_likelihood
    from tokmix.solvers.mixture_lp import solve_mixture
    from tokmix.solvers.problem import build_problem

    pytest.importorskip("torch", reason="the likelihood estimator needs the gpu extra")
    cats = [f"{n}={REPO / 'data' / 'samples' / f'{n}.jsonl.gz'}" for n in NAMES]
    args = ["infer", str(DEMO), *[a for c in cats for a in ("--category", c)]]
    common = ["--max-bytes", str(MAX_BYTES), "-T", "300", "--groups", "0", "--json"]
    out = str(tmp_path / "lik")
    assert main([*args, *common, "--estimator", "likelihood", "--out", out]) == 0
    doc = json.loads((tmp_path / "lik" / "mixtures" / "demo.json").read_text())
    trajs, merge_ids, nbytes = read_trajectories(out, "demo")
    problem = build_problem(trajs, merge_ids, nbytes)
    paper = solve_mixture(problem)
    want = solve_mixture_likelihood(problem, start_alpha=paper.alpha)
    assert doc["diagnostics"]["estimator"] == "likelihood"
    shares = {r["name"]: r["byte_share"] for r in doc["categories"]}
    assert shares == pytest.approx(dict(zip(want.categories, want.byte_share, strict=True)))
    for r in doc["categories"]:
        assert r["byte_share_low"] <= r["byte_share"] <= r["byte_share_high"]
    assert doc["diagnostics"]["temperature"] == pytest.approx(want.diagnostics["temperature"])
    paper_shares = dict(zip(paper.categories, paper.byte_share.tolist(), strict=True))
    assert doc["diagnostics"]["paper_lp"]["byte_share"] == pytest.approx(paper_shares)
