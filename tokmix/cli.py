"""The ``tokmix`` command: one verb per stage, plus ``infer`` for the whole inference.

    tokmix infer TOKENIZER --category NAME=PATH ... [--out DIR] [--json]
    tokmix count TOKENIZER --category NAME=PATH ... --out DIR      (word tables only)
    tokmix replay TOKENIZER --out DIR                               (from committed word tables)
    tokmix solve --tokenizer NAME --out DIR                         (from committed trajectories)
    tokmix report RUN_DIR [--out DIR]                               (HTML report of a run)
    tokmix stats TOKENIZER... --category NAME=PATH ... --out DIR   (token statistics)
    tokmix evaluate --corpora DIR [--settings ...] [--n 5,10] ...   (the accuracy experiment)

Where the code lives: stages in ``tokmix/jobs/``, the replay engine in ``tokmix/bpe/replay.py``,
the LP in ``tokmix/solvers/mixture_lp.py``, Parquet schemas in ``tokmix/schemas``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any, get_args

from pydantic import ValidationError

from tokmix.analytics.groups import parse_group
from tokmix.errors import TokmixError
from tokmix.jobs.spec import CategorySpec, SampleOptions, parse_merge_range
from tokmix.schemas.mixture import MixtureResult
from tokmix.schemas.run_spec import (
    BootstrapOptions,
    CountEngine,
    CountOptions,
    RunSpec,
    SolverOptions,
    check_out_root,
    load_run_spec,
    validation_problems,
)
from tokmix.units import parse_size

DEFAULT_OUT = "tokmix-out"


def _log(msg: str) -> None:
    print(f"[tokmix] {msg}", file=sys.stderr, flush=True)


def _add_tokenizer(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "tokenizer",
        help="tokenizer.json, vocab.json+merges.txt directory, "
        "*.tiktoken, SentencePiece *.model, or a directory holding one",
    )
    p.add_argument(
        "--pretokenizer",
        help="pre-tokenizer family when the file does not say "
        "(tiktoken files not named r50k/p50k/cl100k/o200k): gpt2, cl100k, o200k, ...",
    )


def _add_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--category",
        "-c",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a category and its text: file, directory, glob or s3:// prefix of "
        ".txt/.jsonl/.parquet (optionally .gz/.zst); repeat per category",
    )
    p.add_argument(
        "--max-bytes",
        type=_size,
        default=None,
        help="byte budget per category (whole documents), e.g. 500MB; default: all",
    )
    p.add_argument("--seed", type=int, default=None, help="shuffle file order with this seed")
    p.add_argument("--text-field", default="text", help="JSON field / Parquet column of the text")
    p.add_argument(
        "--txt-mode",
        choices=("file", "line", "paragraph"),
        default="file",
        help=".txt documents: one per file (default), per line, or per blank-line block",
    )


def _add_range(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--merges", "-T", type=int, help="replay the first T merges (default 30000 or all)"
    )
    g.add_argument(
        "--merge-range",
        metavar="A:B",
        help="replay merges A+1..B only: what an extension of another tokenizer was trained "
        "on; 'auto': the extension of the longest known base (--base)",
    )


def _add_bases(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="TOKENIZER",
        help="a tokenizer this one may extend (repeatable; also every tokenizer in the "
        "directories of $TOKMIX_KNOWN_TOKENIZERS); --merge-range auto solves the extension",
    )


def _add_workers(p: argparse.ArgumentParser, what: str = "solve the bootstrap replicates") -> None:
    p.add_argument(
        "--workers",
        "-j",
        type=int,
        default=0,
        metavar="N",
        help=f"processes that {what} (default 0: every CPU this process may use; 1: all in "
        "this process); the results are the same whatever N",
    )


def _workers(value: int) -> int:
    """``--workers``: 0 is every CPU this process may use."""
    from tokmix.jobs.executors import default_processes

    if value < 0:
        raise TokmixError(f"--workers must be >= 0 (0: every CPU), got {value}")
    return value or default_processes()


_ESTIMATOR_NAMES = {"scaled": "the noise-scaled LP", "likelihood": "the merge-race likelihood"}


def _add_estimator(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--estimator",
        choices=("scaled", "paper", "likelihood"),
        default=_default(SolverOptions, "estimator"),
        help="scaled: the noise-scaled LP (default, more accurate on the controlled "
        "experiment); paper: the paper's LP unchanged; likelihood: the merge-race "
        "likelihood (needs torch, the gpu extra)",
    )
    p.add_argument(
        "--merge-stride",
        type=int,
        default=_default(SolverOptions, "merge_stride"),
        metavar="K",
        help="solve the LPs over every K-th merge step of the range only (default 1: every "
        "step): about the cost of a K times shorter range, keeping its late merges; an "
        "approximation of the whole LP, measured in the README (--merge-stride)",
    )
    _add_device(p, default=_default(SolverOptions, "device"))


def _add_device(p: argparse.ArgumentParser, *, default: str | None) -> None:
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=default,
        help="where the solve's violation sweep and the likelihood run: auto (CUDA when "
        "torch sees a GPU), cpu, or cuda (needs the gpu extra's torch and a GPU); the "
        "result is the same" + ("" if default else "; default: the spec's solver.device"),
    )


def _add_count_engine(p: argparse.ArgumentParser, *, spec_default: bool = False) -> None:
    """``--count-engine`` (a run spec's ``count: {engine: ...}``); ``spec_default``: the
    flag overrides a spec's value and defaults to it."""
    default = None if spec_default else _default(CountOptions, "engine")
    p.add_argument(
        "--count-engine",
        choices=get_args(CountEngine),
        default=default,
        help="how words are counted: auto (compiled where the pre-tokenizer has a compiled "
        "form, else regex), compiled (refuse a pre-tokenizer without one) or regex (the "
        "reference); all count the same words, so committed counts are reused across them "
        + ("(default: the spec's count.engine, else auto)" if spec_default else "(default auto)"),
    )


def _add_bootstrap(p: argparse.ArgumentParser, *, groups: bool = True) -> None:
    """Interval options (as a run spec's ``bootstrap:``); ``--seed`` is the file shuffle's."""
    if groups:
        p.add_argument(
            "--groups",
            type=int,
            default=_default(BootstrapOptions, "groups"),
            help="bootstrap document groups per category (default %(default)s; 0 or 1: no "
            "intervals)",
        )
    p.add_argument(
        "--replicates",
        type=int,
        default=_default(BootstrapOptions, "replicates"),
        help="bootstrap replicates, each one LP solve (default %(default)s"
        + ("" if groups else "; 0: no intervals")
        + ")",
    )
    p.add_argument(
        "--level",
        type=float,
        default=_default(BootstrapOptions, "level"),
        help="interval level (default %(default)s)",
    )
    p.add_argument(
        "--bootstrap-seed",
        type=int,
        default=_default(BootstrapOptions, "seed"),
        help="seed of the resampling",
    )
    p.add_argument(
        "--merge-block",
        type=int,
        default=_default(BootstrapOptions, "merge_block"),
        help="replicates also redraw blocks of this many merges (default %(default)s; 0: "
        "documents only)",
    )


def _default(model: type[Any], field: str) -> Any:
    """A flag's default is the options model's (one set of defaults for every verb)."""
    return model.model_fields[field].default


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tokmix run`` (and of ``python -m tokmix run``, the same command)."""
    parser.add_argument("spec", help="run spec (YAML); see ray_cluster/example-spec.yaml")
    parser.add_argument("--out", "-o", help="override the spec's output root")
    parser.add_argument("--force", action="store_true", help="recompute committed stages")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    parser.add_argument(
        "--num-cpus", type=int, help="CPUs of an embedded Ray (default: all of this machine)"
    )
    _add_device(parser, default=None)
    _add_count_engine(parser, spec_default=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokmix", description="Infer what a BPE tokenizer was trained on, from its merges."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("infer", help="count, replay and solve: the inferred training mixture")
    _add_tokenizer(p)
    _add_corpus(p)
    _add_range(p)
    _add_estimator(p)
    _add_bootstrap(p)
    _add_count_engine(p)
    p.add_argument("--out", "-o", default=DEFAULT_OUT, help="output root (local or s3://)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--force", action="store_true", help="recompute committed stages")
    _add_workers(p)
    _add_bases(p)
    p.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME=GLOB",
        help="a category group (e.g. code='code-*'; repeatable): its share, with an interval "
        "over the bootstrap replicates",
    )

    p = sub.add_parser(
        "lineage",
        help="which tokenizers' merge lists start with another's (an extension, a copy)",
    )
    p.add_argument("tokenizers", nargs="+", metavar="TOKENIZER", help="files or directories")
    _add_bases(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "run",
        help="the whole pipeline from a YAML run spec, on Ray (embedded, or RAY_ADDRESS)",
        description="Run count -> replay -> solve from a run spec on Ray. Committed stages "
        "are skipped, so re-running a killed run resumes it. The same as "
        "`ray job submit --working-dir . -- python -m tokmix run SPEC`.",
    )
    _add_run_arguments(p)

    p = sub.add_parser("count", help="word tables of each category (Parquet)")
    _add_tokenizer(p)
    _add_corpus(p)
    p.add_argument(
        "--groups", type=int, default=1, help="also count per bootstrap document group (10)"
    )
    _add_count_engine(p)
    p.add_argument("--out", "-o", default=DEFAULT_OUT)
    p.add_argument("--force", action="store_true")

    p = sub.add_parser("replay", help="pair-count trajectories from committed word tables")
    _add_tokenizer(p)
    _add_range(p)
    p.add_argument("--out", "-o", default=DEFAULT_OUT)
    p.add_argument("--force", action="store_true")

    p = sub.add_parser("stats", help="token statistics of tokenizers side by side (Parquet)")
    p.add_argument(
        "tokenizers", nargs="+", metavar="TOKENIZER", help="tokenizer files to compare (as infer)"
    )
    p.add_argument("--pretokenizer", help="pre-tokenizer family for tiktoken files (as infer)")
    _add_corpus(p)
    p.add_argument(
        "--parallel",
        action="append",
        default=[],
        metavar="A,B",
        help="categories A and B hold the same text (translations): print tokens_A/tokens_B",
    )
    _add_count_engine(p)
    p.add_argument("--out", "-o", default=DEFAULT_OUT, help="output root (local or s3://)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--force", action="store_true", help="recompute committed stages")

    p = sub.add_parser("solve", help="the mixture LP from committed trajectories")
    p.add_argument(
        "--tokenizer", required=True, help="tokenizer name as in trajectories/tokenizer=NAME"
    )
    _add_estimator(p)
    _add_bootstrap(p, groups=False)
    p.add_argument("--out", "-o", default=DEFAULT_OUT)
    p.add_argument("--json", action="store_true")
    _add_workers(p)

    p = sub.add_parser("report", help="a self-contained HTML report (and PNG figures) of a run")
    p.add_argument("run_dir", help="a run's output root (local or s3://)")
    p.add_argument("--out", "-o", default=None, help="report directory (default RUN_DIR/report)")
    p = sub.add_parser(
        "evaluate",
        help="controlled experiment: train tokenizers on known mixtures, infer, score",
    )
    p.add_argument("--corpora", required=True, help="directory holding languages/, code/, domains/")
    p.add_argument("--settings", default="languages,code,domains", help="comma-separated")
    p.add_argument("--n", default="5,10", help="categories per trial, comma-separated; 0 = all")
    p.add_argument("--trials", type=int, default=5, help="trials per setting and n")
    p.add_argument(
        "--train-bytes", type=_size, default=3_000_000, help="training text per tokenizer"
    )
    p.add_argument(
        "--sample-bytes", type=_size, default=2_500_000, help="attacker sample per category"
    )
    p.add_argument("--vocab-merges", type=int, default=2000, help="merges each tokenizer learns")
    p.add_argument("--merges", "-T", type=int, help="merges replayed (default: all)")
    p.add_argument("--groups", type=int, default=8, help="document groups per sample (bootstrap)")
    p.add_argument("--replicates", type=int, default=20, help="bootstrap replicates")
    p.add_argument("--level", type=float, default=0.95, help="interval level")
    p.add_argument(
        "--scaled-power",
        type=float,
        default=0.5,
        help="scaled-lp: a pair's slack costs peak^(-P/2) (0 = the paper's LP)",
    )
    p.add_argument(
        "--merge-block",
        type=int,
        default=20,
        help="bootstrap also resamples blocks of this many merges (0 = documents only)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--curve-steps", default="", help="extra T values, e.g. 250,500,1000")
    p.add_argument("--curve-sample-bytes", default="", help="extra sample sizes, e.g. 500KB,1MB")
    p.add_argument("--leave-out", action="store_true", help="also: one category unknown")
    p.add_argument("--shift", action="store_true", help="also: samples from other sources")
    p.add_argument(
        "--no-paper-bootstrap",
        action="store_true",
        help="skip the paper LP's own bootstrap interval (halves the bootstrap's cost)",
    )
    _add_workers(p, "run the trials")
    p.add_argument("--out", "-o", default="tokmix-eval")
    return parser


def _categories(args: argparse.Namespace) -> list[CategorySpec]:
    specs = [CategorySpec.parse(c) for c in args.category]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise TokmixError(f"category names must be unique: {names}")
    return specs


def _options(args: argparse.Namespace) -> SampleOptions:
    return SampleOptions(
        max_bytes=args.max_bytes, seed=args.seed, text_field=args.text_field, txt_mode=args.txt_mode
    )


_FLAGS = {
    "merges": "--merges",
    "merge_range": "--merge-range",
    "pretokenizer": "--pretokenizer",
    "out": "--out",
    "solver.estimator": "--estimator",
    "solver.device": "--device",
    "solver.merge_stride": "--merge-stride",
    "bootstrap.groups": "--groups",
    "bootstrap.replicates": "--replicates",
    "bootstrap.level": "--level",
    "bootstrap.seed": "--bootstrap-seed",
    "bootstrap.merge_block": "--merge-block",
    "count.engine": "--count-engine",
}
"""Run spec keys as the CLI's flags, for messages."""


def _validated(model: type[Any], raw: dict[str, Any], flags: dict[str, str]) -> Any:
    """Build an options model from flags; a bad value is one line naming the flag."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise TokmixError(f"bad options: {validation_problems(exc, flags)}") from None


def _solver_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The solver options ``infer`` and ``solve`` take as flags (:func:`_add_estimator`)."""
    return {"estimator": args.estimator, "device": args.device, "merge_stride": args.merge_stride}


def _infer_spec(args: argparse.Namespace) -> RunSpec:
    """The run spec of ``tokmix infer``'s flags: the one options model ``tokmix run`` reads."""
    sample = {
        "max_bytes": args.max_bytes,
        "seed": args.seed,
        "text_field": args.text_field,
        "txt_mode": args.txt_mode,
    }
    raw = {
        "out": args.out,
        "tokenizers": [args.tokenizer],
        "categories": {c.name: {"paths": [c.path], **sample} for c in _categories(args)},
        "merges": args.merges,
        "merge_range": args.merge_range,
        "bases": args.base,
        "groups": dict(parse_group(g) for g in args.group),
        "pretokenizer": args.pretokenizer,
        "solver": _solver_flags(args),
        "count": {"engine": args.count_engine},
        "bootstrap": {
            "groups": max(args.groups, 1),
            "replicates": args.replicates,
            "level": args.level,
            "seed": args.bootstrap_seed,
            "merge_block": args.merge_block,
        },
    }
    flags = {**_FLAGS, **{f"categories.{c}": f"--category {c}" for c in raw["categories"]}}
    spec: RunSpec = _validated(RunSpec, raw, flags)
    return spec


def _print_mixture(result: MixtureResult) -> None:
    rows = sorted(result.categories, key=lambda r: -r.byte_share)
    width = max(len(r.name) for r in rows)
    d = result.diagnostics
    interval = d.get("interval")
    print(f"Inferred training mixture of {result.tokenizer}")
    head = f"  {'category':<{width}}  byte share"
    if interval:
        head += f"   {interval['level']:.0%} interval"
    print(head + "   weight (pair units)")
    for r in rows:
        line = f"  {r.name:<{width}}  {r.byte_share:>9.2%}"
        if interval and r.byte_share_low is not None and r.byte_share_high is not None:
            line += f"   {r.byte_share_low:>6.1%} – {r.byte_share_high:<6.1%}"
        print(f"{line}   {r.weight:.4f}")
    print(
        f"  steps {d['first_step']}..{d['last_step']}, {d['constraints']} constraints in "
        f"{d['rounds']} rounds, objective {d['objective']:.4g}, "
        f"{d['missing_merges']} merges absent from every category"
        + (f"; LPs over 1 step in {d['merge_stride']}" if d.get("merge_stride", 1) > 1 else "")
    )
    if "paper_lp" in d:
        paper = d["paper_lp"]["byte_share"]
        print(
            f"  estimator: {_ESTIMATOR_NAMES.get(d.get('estimator', ''), 'the noise-scaled LP')}; "
            "the paper's LP gives " + ", ".join(f"{r.name} {paper[r.name]:.1%}" for r in rows)
        )
    if interval and "replicates" not in interval:  # the likelihood's model intervals
        print(f"  intervals: {interval['method']}")
    elif interval:
        blocks = interval.get("merge_block", 0)
        print(
            f"  intervals: {interval['replicates']} bootstrap replicates over "
            f"{min(interval['groups'].values())}+ document groups per category"
            + (f" and blocks of {blocks} merges" if blocks else "")
        )
    if "stage_seconds" in d:
        print("  seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in d["stage_seconds"].items()))


def _cmd_infer(args: argparse.Namespace) -> None:
    from tokmix.jobs.infer import run_infer

    keys = (_FLAGS["merges"], _FLAGS["merge_range"])
    result = run_infer(
        _infer_spec(args),
        force=args.force,
        workers=_workers(args.workers),
        log=_log,
        range_keys=keys,
        engine_key=_FLAGS["count.engine"],
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        _print_mixture(result)
        for g in result.diagnostics.get("groups", []):
            span = ""
            if g["byte_share_low"] is not None:
                span = f"   {g['byte_share_low']:>6.1%} – {g['byte_share_high']:<6.1%}"
            print(f"  group {g['group']:<12} {g['byte_share']:>9.2%}{span}")
        for warning in result.warnings:
            print(f"  WARNING: {warning}")


def _cmd_lineage(args: argparse.Namespace) -> None:
    from tokmix.bpe.lineage import find_lineage
    from tokmix.jobs.merge_checks import known_bases
    from tokmix.jobs.tokenizers import load_tokenizer

    given = [load_tokenizer(p) for p in args.tokenizers]
    hashes = {t.sha256 for t in given}
    extra = [t for t in known_bases(args.base) if t.sha256 not in hashes]
    asked = {t.name for t in given}
    found = [f for f in find_lineage(given + extra) if f.child in asked or f.base in asked]
    if args.json:
        rows = [{**dataclasses.asdict(f), "extends": f.extends} for f in found]
        print(json.dumps(rows, indent=1))
        return
    for f in found:
        print(f.describe())
    if not found:
        print(f"no lineage among {len(given) + len(extra)} tokenizers (shared prefixes < 1000)")


def _cmd_count(args: argparse.Namespace) -> None:
    """The count stage alone, its tasks in this process (the stage ``tokmix run`` runs)."""
    from tokmix.jobs.count_ray import run_count_ray
    from tokmix.jobs.executors import LocalExecutor
    from tokmix.jobs.tokenizers import load_tokenizer

    tok = load_tokenizer(args.tokenizer, pretokenizer=args.pretokenizer)
    categories = _categories(args)
    totals = run_count_ray(
        categories,
        {c.name: _options(args) for c in categories},
        tok.pretokenizer,
        args.out,
        shard_bytes=_default(RunSpec, "shard_bytes"),
        groups=max(args.groups, 1),
        force=args.force,
        log=_log,
        executor=LocalExecutor(),
        engine=args.count_engine,
        engine_key=_FLAGS["count.engine"],
    )
    for name, t in totals.items():
        print(
            f"{name}: {t['documents']} documents, {t['bytes']:,} bytes, "
            f"{t['distinct_words']:,} distinct words"
        )


def _cmd_replay(args: argparse.Namespace) -> None:
    """The replay stage alone, its tasks in this process (the stage ``tokmix run`` runs)."""
    from tokmix.io import catalog
    from tokmix.jobs.executors import LocalExecutor
    from tokmix.jobs.replay_ray import run_replay_ray
    from tokmix.jobs.tokenizers import load_tokenizer

    tok = load_tokenizer(args.tokenizer, pretokenizer=args.pretokenizer)
    first, last = parse_merge_range(args.merge_range, args.merges, tok.n_merges)
    run_replay_ray(
        tok,
        args.out,
        first,
        last,
        pretokenizer=args.pretokenizer,
        force=args.force,
        log=_log,
        executor=LocalExecutor(),
    )
    for row in catalog.REPLAY_TOTALS.read(args.out, tok.name).to_pylist():
        print(f"{row['category']}: steps {first}..{last}, {row['pairs']:,} pairs")


def _cmd_solve(args: argparse.Namespace) -> None:
    from tokmix.jobs.executors import LocalExecutor
    from tokmix.jobs.solve import bootstrap_options, run_solve

    bootstrap = None
    if args.replicates:  # intervals when the run has bootstrap groups
        flags = {k.removeprefix("bootstrap."): v for k, v in _FLAGS.items()}
        raw = {
            "replicates": args.replicates,
            "level": args.level,
            "seed": args.bootstrap_seed,
            "merge_block": args.merge_block,
        }
        bootstrap = bootstrap_options(_validated(BootstrapOptions, raw, flags))
    solver = _validated(
        SolverOptions,
        _solver_flags(args),
        {k.removeprefix("solver."): v for k, v in _FLAGS.items()},
    )
    result = run_solve(
        args.out,
        args.tokenizer,
        bootstrap=bootstrap,
        map_fn=LocalExecutor(fan_out=_workers(args.workers)).map_fn(),
        log=_log,
        **solver.model_dump(),
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        _print_mixture(result)


def run_spec_of(args: argparse.Namespace) -> RunSpec:
    """``tokmix run``'s spec: the file, with ``--out``, ``--device`` and ``--count-engine``
    over its values."""
    spec = load_run_spec(args.spec, out=args.out)
    if args.device is not None:
        solver = spec.solver.model_copy(update={"device": args.device})
        spec = spec.model_copy(update={"solver": solver})
    if args.count_engine is not None:
        spec = spec.model_copy(update={"count": CountOptions(engine=args.count_engine)})
    return spec


def _cmd_run(args: argparse.Namespace) -> None:
    from tokmix.jobs.pipeline import run_pipeline
    from tokmix.jobs.runtime import ray_session, stderr_log

    spec = run_spec_of(args)
    log = stderr_log(spec.effective_run_id)
    with ray_session(num_cpus=args.num_cpus, log=log):
        summary = run_pipeline(spec, force=args.force, log=log)
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        for doc in summary["tokenizers"].values():
            _print_mixture(MixtureResult.from_json(doc))
        _print_groups(summary)


def _print_groups(summary: dict[str, Any]) -> None:
    """The tokenizers side by side over the spec's category groups, and where the chart is."""
    from tokmix.analytics.group_comparison import GroupComparison

    comparison = GroupComparison.from_solutions(summary["tokenizers"])
    if comparison:
        print()
        print("\n".join(comparison.table_lines()))
    if "groups_chart" in summary:
        print(f"  chart: {summary['groups_chart']}")


def _cmd_report(args: argparse.Namespace) -> None:
    from tokmix.jobs.report import run_report

    print(run_report(args.run_dir, args.out, warn=_log))


def _cmd_stats(args: argparse.Namespace) -> None:
    from tokmix.analytics.token_stats import derived_ratios, parity
    from tokmix.jobs.stats import run_stats

    pairs = [tuple(p.split(",")) for p in args.parallel]
    names = {s.name for s in _categories(args)}
    bad = [",".join(p) for p in pairs if len(p) != 2 or not set(p) <= names]
    if bad:
        raise TokmixError(f"--parallel takes A,B with two categories of this run, got {bad}")
    table = run_stats(
        args.tokenizers,
        _categories(args),
        args.out,
        _options(args),
        pretokenizer=args.pretokenizer,
        force=args.force,
        log=_log,
        engine=args.count_engine,
        engine_key=_FLAGS["count.engine"],
    )
    rows = [{**r, **derived_ratios(r)} for r in table.to_pylist()]
    par = {f"{a}/{b}": parity(rows, a, b) for a, b in pairs}
    if args.json:
        print(json.dumps({"token_stats": rows, "parity": par, "out": args.out}, indent=1))
        return
    tw = max(len("tokenizer"), *(len(r["tokenizer"]) for r in rows))
    cw = max(len("category"), *(len(r["category"]) for r in rows))
    print(
        f"{'tokenizer':<{tw}}  {'category':<{cw}}  bytes/token  chars/token  fertility"
        "  vocab use       tokens"
    )
    for r in rows:
        vals = [r["bytes_per_token"], r["chars_per_token"], r["fertility"], r["vocab_use"]]
        b, c, f, v = (float("nan") if x is None else x for x in vals)
        print(
            f"{r['tokenizer']:<{tw}}  {r['category']:<{cw}}  {b:>11.3f}  {c:>11.3f}"
            f"  {f:>9.3f}  {v:>9.2%}  {r['tokens']:>11,}"
        )
    for label, by_tok in par.items():
        shown = ", ".join(f"{t} {x:.3f}" if x else f"{t} -" for t, x in by_tok.items())
        print(f"parity tokens {label}: {shown}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from tokmix.jobs.evaluate import EvalConfig, run_evaluate

    def ints(text: str) -> tuple[int, ...]:
        return tuple(int(x) for x in text.split(",") if x.strip())

    config = EvalConfig(
        corpora=args.corpora,
        settings=tuple(s.strip() for s in args.settings.split(",") if s.strip()),
        ns=ints(args.n),
        trials=args.trials,
        train_bytes=args.train_bytes,
        sample_bytes=args.sample_bytes,
        merges=args.vocab_merges,
        steps=args.merges,
        groups=args.groups,
        replicates=args.replicates,
        level=args.level,
        scaled_power=args.scaled_power,
        merge_block=args.merge_block,
        seed=args.seed,
        curve_sample_bytes=tuple(_size(x) for x in args.curve_sample_bytes.split(",") if x),
        curve_steps=ints(args.curve_steps),
        leave_out=args.leave_out,
        shift=args.shift,
        paper_bootstrap=not args.no_paper_bootstrap,
    )
    run_evaluate(config, args.out, log=_log, workers=_workers(args.workers))
    print(f"report: {args.out}/report.md, results: {args.out}/results/")


COMMANDS = {
    "run": _cmd_run,
    "infer": _cmd_infer,
    "lineage": _cmd_lineage,
    "count": _cmd_count,
    "replay": _cmd_replay,
    "solve": _cmd_solve,
    "report": _cmd_report,
    "stats": _cmd_stats,
    "evaluate": _cmd_evaluate,
}


STAGE_VERBS = ("count", "replay", "solve", "stats")
"""Verbs that write one stage into an output root: they claim and lease it as a run does."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "run" and getattr(args, "out", None):
            check_out_root(args.out, "--out")
        if args.command in STAGE_VERBS:  # run and infer hold the root in run_stages
            from tokmix.io.root import owned_root

            force = getattr(args, "force", False)
            with owned_root(args.out, f"tokmix-{args.command}", force=force):
                COMMANDS[args.command](args)
        else:
            COMMANDS[args.command](args)
    except TokmixError as exc:
        print(f"tokmix: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: a person's choice, not a crash, so no traceback
        print(
            "tokmix: interrupted. Committed stages and finished solves are kept (and an LP's "
            "state every minute, a Ray count's shards): the same command goes on from them.",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
