"""The controlled experiment (ARCHITECTURE.md §8): train tokenizers on known mixtures, infer, score.

One *trial* draws ``n`` categories of a setting (languages, code, domains) and weights
uniformly from the simplex, trains a byte-level BPE (GPT-2 regex, digits split) with the
``tokenizers`` BpeTrainer on that mixture of training text, and infers the mixture from
attacker samples of each category that share no document with the training text. Each trial
scores, on the same tokenizer and samples:

- ``paper-lp``: the paper's estimator, :func:`tokmix.solvers.mixture_lp.solve_mixture`
  unchanged;
- ``scaled-lp``: the noise-scaled LP of :mod:`tokmix.solvers.noise_scaled_lp` (slack priced
  by each pair's count noise, ``scaled_power``), tokmix's default;
- ``likelihood``: the merge-race likelihood of :mod:`tokmix.solvers.likelihood`
  (warm-started from the paper LP's α), with its own model-based 95 % interval (base variant
  only: a fit costs several LP solves);
- ``bagged-lp``: the mean byte share of scaled-lp's bootstrap replicates (document groups and
  merge blocks, :mod:`tokmix.solvers.bootstrap`) — bootstrap aggregation;
- the baselines of :mod:`tokmix.solvers.baselines` (uniform, random, TC, TEE);

plus the 95 % bootstrap intervals of both LPs (the same resamples, each solved by its own
LP; ``paper_bootstrap=False`` skips the paper LP's) and the likelihood's model interval of every
category (their coverage of the truth is measured), curve points (smaller samples, fewer
merges T) and robustness variants (a training category unknown to the attacker; attacker text
from other sources than the training text), each scored for both LPs.

Each trial commits its rows as one dataset ``trials/<trial id>`` (ARCHITECTURE.md §7); a re-run
skips committed trials, so an interrupted evaluation resumes. :func:`run_evaluate` then writes the
``results`` dataset (all trials), ``report.md`` and ``accuracy.png`` under the output root.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tokmix.bpe.replay import PairTrajectory, replay_merges
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.bpe.training import train_bytelevel_bpe
from tokmix.bpe.words import WordTable, count_words
from tokmix.errors import CorpusReadError, DatasetError, SolverError, TokmixError
from tokmix.io.datasets import is_committed, read_dataset, read_manifest, write_dataset
from tokmix.io.fs import filesystem_for, join
from tokmix.schemas import EVAL_RESULTS
from tokmix.solvers.baselines import (
    encoding_efficiency_shares,
    log10_mse,
    random_simplex_shares,
    token_classification_shares,
    uniform_shares,
)
from tokmix.solvers.bootstrap import BootstrapResult, bootstrap_mixture, document_groups
from tokmix.solvers.likelihood import DEFAULT_PAIR_COST, solve_mixture_likelihood
from tokmix.solvers.mixture_lp import MixtureSolution, solve_mixture
from tokmix.solvers.noise_scaled_lp import solve_mixture_scaled
from tokmix.solvers.problem import MixtureProblem, build_problem

SETTINGS = ("languages", "code", "domains")
ESTIMATORS = ("paper-lp", "scaled-lp", "likelihood", "bagged-lp", "uniform", "random", "tc", "tee")

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalConfig:
    """Parameters of an evaluation; every one is a ``tokmix evaluate`` flag."""

    corpora: str
    settings: tuple[str, ...] = ("languages", "code", "domains")
    ns: tuple[int, ...] = (5, 10)
    trials: int = 5
    train_bytes: int = 3_000_000
    sample_bytes: int = 2_500_000
    merges: int = 2000
    steps: int | None = None
    groups: int = 8
    replicates: int = 20
    scaled_power: float = 0.5
    likelihood_pair_cost: float = DEFAULT_PAIR_COST
    merge_block: int = 20
    level: float = 0.95
    seed: int = 0
    curve_sample_bytes: tuple[int, ...] = ()
    curve_steps: tuple[int, ...] = ()
    leave_out: bool = False
    shift: bool = False
    paper_bootstrap: bool = True

    def params(self) -> dict[str, Any]:
        """What decides a trial's rows (the resume key), without the output-only fields."""
        d = asdict(self)
        for key in ("settings", "ns", "trials"):
            d.pop(key)
        d["corpora"] = str(Path(self.corpora).resolve())
        return d


@dataclass
class Document:
    text: str
    source: str
    bytes_: int


# --- corpus side (I/O) ---------------------------------------------------------------------


@lru_cache(maxsize=64)
def _documents(path: str) -> tuple[Document, ...]:
    docs: list[Document] = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f):
                rec = json.loads(line)
                text = rec["text"]
                docs.append(Document(text, str(rec.get("source", i)), len(text.encode())))
    except (OSError, ValueError, KeyError) as exc:
        raise CorpusReadError(
            f"{path}: not a readable docs.jsonl.gz with a 'text' field ({exc})"
        ) from exc
    return tuple(docs)


def setting_categories(corpora: str, setting: str) -> list[str]:
    """Categories of a setting: directories ``corpora/SETTING/NAME/docs.jsonl.gz``."""
    root = Path(corpora) / setting
    names = sorted(p.parent.name for p in root.glob("*/docs.jsonl.gz"))
    if not names:
        raise CorpusReadError(
            f"{root}: no NAME/docs.jsonl.gz under it; pass --corpora pointing at the directory "
            "holding languages/, code/, domains/"
        )
    return names


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def split_documents(
    docs: Sequence[Document], sample_bytes: int, *, shift: bool
) -> tuple[list[Document], list[Document]]:
    """(attacker sample, training pool), disjoint. The sample takes documents in the order
    of a hash of ``source#index`` (independent of how the corpus file is ordered) up to
    ``sample_bytes``; with ``shift`` it takes whole source directories (ordered by a hash of
    their name), so training text comes from other sources than the sample."""
    if not shift:
        order = sorted(range(len(docs)), key=lambda i: _stable_hash(f"{docs[i].source}#{i}"))
        sample: list[Document] = []
        used = 0
        for k, i in enumerate(order):
            d = docs[i]
            if used + d.bytes_ > sample_bytes and sample:
                return sample, [docs[j] for j in order[k:]]
            sample.append(d)
            used += d.bytes_
        return sample, []
    by_dir: dict[str, list[Document]] = {}
    for d in docs:
        by_dir.setdefault(posixpath.dirname(d.source) or d.source, []).append(d)
    sample, pool, used = [], [], 0
    for name in sorted(by_dir, key=_stable_hash):
        group = by_dir[name]
        if used < sample_bytes:
            sample += group
            used += sum(d.bytes_ for d in group)
        else:
            pool += group
    return sample, pool


def training_text(pool: Sequence[Document], budget: float, rng: np.random.Generator) -> list[str]:
    """Whole documents of ``pool`` in a random order, skipping those that overshoot, up to
    ``budget`` bytes: close to the target share while never splitting a document."""
    chosen, used = [], 0
    for k in rng.permutation(len(pool)):
        d = pool[int(k)]
        if used + d.bytes_ <= budget:
            chosen.append(d.text)
            used += d.bytes_
    return chosen


# --- one trial ------------------------------------------------------------------------------


@dataclass
class _Sample:
    """An attacker sample split into document groups: word tables and their trajectories."""

    tables: list[WordTable]
    trajectories: list[PairTrajectory] = field(default_factory=list)

    @property
    def group_bytes(self) -> list[int]:
        return [t.bytes_ for t in self.tables]

    @property
    def bytes_(self) -> int:
        return sum(self.group_bytes)

    def total(self) -> PairTrajectory:
        out = self.trajectories[0]
        for t in self.trajectories[1:]:
            out = out + t
        return out

    def table(self) -> WordTable:
        out = self.tables[0]
        for t in self.tables[1:]:
            out = out + t
        return out


def _grouped_sample(
    docs: Sequence[Document], groups: int, tokenizer: LoadedTokenizer, steps: int
) -> _Sample:
    keys = [d.source + f"#{i}" for i, d in enumerate(docs)]
    g = document_groups(keys, groups)
    tables = [
        count_words([docs[int(i)].text for i in np.flatnonzero(g == j)], tokenizer.pretokenizer)
        for j in range(groups)
    ]
    tables = [t for t in tables if t.documents] or tables[:1]
    trajs = [replay_merges(t.counts, tokenizer.merge_list, last_step=steps) for t in tables]
    return _Sample(tables, trajs)


def _prefix_sample(docs: Sequence[Document], max_bytes: int) -> list[Document]:
    out: list[Document] = []
    used = 0
    for d in docs:
        if used + d.bytes_ > max_bytes and out:
            break
        out.append(d)
        used += d.bytes_
    return out


def truncate(traj: PairTrajectory, steps: int) -> PairTrajectory:
    """The trajectory of the first ``steps`` merges (rows after them dropped)."""
    keep = traj.step <= steps
    return PairTrajectory(
        traj.step[keep],
        traj.left[keep],
        traj.right[keep],
        traj.delta[keep],
        traj.first_step,
        steps,
        traj.pairs,
    )


def token_counts(table: WordTable, tokenizer_json: Path, vocab_size: int) -> tuple[np.ndarray, int]:
    """How often the sample uses each token id (encoding each distinct word once, weighted by
    its count, with the tokenizer's own encoder), and the total token count."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    words, counts = table.sorted_items()
    texts = [w.decode("utf-8", errors="replace") for w in words]
    enc = tok.encode(texts, is_pretokenized=True)
    ids = np.asarray(enc.ids, dtype=np.int64)
    word_ids = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
    ok = word_ids >= 0
    weights = counts[word_ids[ok]].astype(np.float64)
    out = np.bincount(ids[ok], weights=weights, minlength=vocab_size)[:vocab_size]
    return out, int(out.sum())


def _diag(sol: MixtureSolution | None) -> dict[str, Any]:
    if sol is None:
        return {}
    d = sol.diagnostics
    return {
        "objective": float(sol.objective),
        "constraints": int(d.get("constraints", 0)),
        "missing_merges": int(d.get("missing_merges", 0)),
        "slack_steps": int(d.get("slack_steps", 0)),
    }


def _rows(
    meta: dict[str, Any],
    estimator: str,
    categories: Sequence[str],
    truth: np.ndarray,
    estimate: np.ndarray,
    *,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    diag: dict[str, Any] | None = None,
    seconds: float = 0.0,
) -> list[dict[str, Any]]:
    score = log10_mse(estimate, truth)
    out = []
    for i, cat in enumerate(categories):
        out.append(
            {
                **meta,
                "estimator": estimator,
                "category": cat,
                "truth": float(truth[i]),
                "estimate": float(estimate[i]),
                "low": None if low is None else float(low[i]),
                "high": None if high is None else float(high[i]),
                "log10_mse": score,
                "objective": None,
                "constraints": None,
                "missing_merges": None,
                "slack_steps": None,
                "seconds": seconds,
                **(diag or {}),
            }
        )
    return out


def _score_lps(
    meta: dict[str, Any],
    categories: Sequence[str],
    truth: np.ndarray,
    problem: MixtureProblem,
    power: float,
    pair_cost: float | None = None,
) -> tuple[MixtureSolution, MixtureSolution, list[dict[str, Any]]]:
    """The paper's LP and the noise-scaled LP on one problem, and their rows; with
    ``pair_cost``, the likelihood's too (with its model interval; none when its fit fails)."""
    t0 = time.perf_counter()
    paper = solve_mixture(problem)
    t1 = time.perf_counter()
    scaled = solve_mixture_scaled(problem, reference_alpha=paper.alpha, power=power)
    t2 = time.perf_counter()
    rows = _rows(
        meta, "paper-lp", categories, truth, paper.byte_share, diag=_diag(paper), seconds=t1 - t0
    )
    rows += _rows(
        meta,
        "scaled-lp",
        categories,
        truth,
        scaled.byte_share,
        diag=_diag(scaled),
        seconds=t2 - t0,  # it needs the paper LP's α first
    )
    if pair_cost is None:
        return paper, scaled, rows
    t3 = time.perf_counter()
    try:
        lik = solve_mixture_likelihood(problem, start_alpha=paper.alpha, pair_cost=pair_cost)
    except SolverError:
        return paper, scaled, rows
    rows += _rows(
        meta,
        "likelihood",
        categories,
        truth,
        lik.byte_share,
        low=np.asarray(lik.diagnostics["byte_share_low"]),
        high=np.asarray(lik.diagnostics["byte_share_high"]),
        diag={
            "objective": float(lik.objective),
            "missing_merges": lik.diagnostics["missing_merges"],
        },
        seconds=time.perf_counter() - t3 + t1 - t0,  # it starts from the paper LP's α
    )
    return paper, scaled, rows


def run_trial(
    config: EvalConfig, setting: str, n: int, trial: int, log: Log = lambda _m: None
) -> pa.Table:
    """One trial's rows (every estimator, variant and category), schema ``EVAL_RESULTS``."""
    names = setting_categories(config.corpora, setting)
    if n > len(names):
        raise TokmixError(f"{setting} has {len(names)} categories, cannot draw n={n}")
    setting_key = SETTINGS.index(setting) if setting in SETTINGS else _stable_hash(setting) % 2**32
    rng = np.random.default_rng([config.seed, setting_key, n, trial])
    chosen = sorted(rng.choice(names, size=n, replace=False).tolist())
    weights = rng.dirichlet(np.ones(n))
    base_meta = {"setting": setting, "n": n, "trial": trial, "train_merges": config.merges}
    rows: list[dict[str, Any]] = []

    variants = [("base", False)] + ([("shift", True)] if config.shift else [])
    for variant, shift in variants:
        t_start = time.perf_counter()
        samples: dict[str, list[Document]] = {}
        train: list[str] = []
        train_bytes = np.zeros(n)
        for k, (cat, w) in enumerate(zip(chosen, weights, strict=True)):
            docs = _documents(str(Path(config.corpora) / setting / cat / "docs.jsonl.gz"))
            sample, pool = split_documents(docs, config.sample_bytes, shift=shift)
            text = training_text(pool, w * config.train_bytes, rng)
            samples[cat] = sample
            train += text
            train_bytes[k] = sum(len(t.encode()) for t in text)
        if (train_bytes == 0).all():
            raise TokmixError(f"trial {setting} n={n} #{trial}: no training text left")
        truth = train_bytes / train_bytes.sum()
        with tempfile.TemporaryDirectory() as tmp:
            order = np.random.default_rng(trial).permutation(len(train))
            tok = train_bytelevel_bpe(
                [train[i] for i in order], config.merges, Path(tmp), split_digits=True
            )
            steps = min(config.steps or tok.n_merges, tok.n_merges)
            grouped = {
                cat: _grouped_sample(samples[cat], config.groups, tok, steps) for cat in chosen
            }
            vocab = 256 + tok.n_merges
            counts = {
                cat: token_counts(grouped[cat].table(), Path(tmp) / "tokenizer.json", vocab)
                for cat in chosen
            }
        prep_seconds = time.perf_counter() - t_start
        meta = {
            **base_meta,
            "variant": variant,
            "steps": steps,
            "train_bytes": int(train_bytes.sum()),
            "sample_bytes": int(np.mean([grouped[c].bytes_ for c in chosen])),
        }
        merge_ids = tok.merge_list.merge_ids
        totals = {c: grouped[c].total() for c in chosen}
        nbytes = {c: grouped[c].bytes_ for c in chosen}

        problem = build_problem(totals, merge_ids, nbytes)
        sol, scaled, lp_rows = _score_lps(
            meta,
            chosen,
            truth,
            problem,
            config.scaled_power,
            config.likelihood_pair_cost if variant == "base" else None,
        )
        log(
            f"{setting} n={n} #{trial} {variant}: log10 MSE paper-lp "
            f"{log10_mse(sol.byte_share, truth):.2f}, scaled-lp "
            f"{log10_mse(scaled.byte_share, truth):.2f}, likelihood "
            + ", ".join(
                f"{r['log10_mse']:.2f}" for r in lp_rows[-1:] if r["estimator"] == "likelihood"
            )
            + " (prep "
            f"{prep_seconds:.1f} s)"
        )
        if variant != "base":
            rows += lp_rows
            continue
        boot = None
        t0 = time.perf_counter()
        try:
            if config.replicates < 2:
                raise SolverError("bootstrap off (replicates < 2)")
            boot = _trial_bootstrap(
                config,
                grouped,
                chosen,
                merge_ids,
                trial,
                partial(solve_mixture_scaled, reference_alpha=sol.alpha, power=config.scaled_power),
                scaled,
            )
        except SolverError as exc:
            log(f"bootstrap failed: {exc}")
        boot_seconds = time.perf_counter() - t0
        paper_boot = None
        if config.paper_bootstrap and config.replicates >= 2:
            paper_boot = _paper_bootstrap(config, grouped, chosen, merge_ids, sol, trial, log)
        for row in lp_rows:
            interval = {"scaled-lp": boot, "paper-lp": paper_boot}.get(row["estimator"])
            if interval is not None:
                i = chosen.index(row["category"])
                row["low"] = float(interval.byte_share_low[i])
                row["high"] = float(interval.byte_share_high[i])
        rows += lp_rows
        if boot is not None:
            rows += _rows(
                meta,
                "bagged-lp",
                chosen,
                truth,
                boot.mean_byte_share,
                low=boot.byte_share_low,
                high=boot.byte_share_high,
                seconds=boot_seconds,
            )
            log(
                f"  bagged-lp {log10_mse(boot.mean_byte_share, truth):.2f}, interval "
                f"coverage {boot.covers(truth).mean():.2f} ({boot_seconds:.1f} s)"
            )
        tok_counts = np.array([counts[c][0][256:] for c in chosen])
        n_tokens = np.array([counts[c][1] for c in chosen])
        rows += _rows(meta, "uniform", chosen, truth, uniform_shares(n))
        rows += _rows(meta, "random", chosen, truth, random_simplex_shares(n, rng))
        rows += _rows(meta, "tc", chosen, truth, token_classification_shares(tok_counts))
        rows += _rows(
            meta,
            "tee",
            chosen,
            truth,
            encoding_efficiency_shares(np.array([nbytes[c] for c in chosen]), n_tokens),
        )
        rows += _curve_rows(config, meta, chosen, truth, grouped, merge_ids, samples, tok)
        if config.leave_out and n > 2:
            rows += _leave_out_rows(config, meta, chosen, truth, totals, merge_ids, nbytes, trial)
    return pa.Table.from_pylist(rows, schema=EVAL_RESULTS)


def _trial_bootstrap(
    config: EvalConfig,
    grouped: dict[str, _Sample],
    chosen: list[str],
    merge_ids: np.ndarray,
    trial: int,
    solve: Callable[..., MixtureSolution],
    center: MixtureSolution,
) -> BootstrapResult:
    """A trial's bootstrap interval with ``solve``: the seed depends on the trial only, so
    every estimator's interval of a trial is computed on the same resamples."""
    return bootstrap_mixture(
        {c: grouped[c].trajectories for c in chosen},
        {c: grouped[c].group_bytes for c in chosen},
        merge_ids,
        replicates=config.replicates,
        level=config.level,
        seed=config.seed + trial,
        solve=solve,
        center=center,
        merge_block=config.merge_block,
    )


def _paper_bootstrap(
    config: EvalConfig,
    grouped: dict[str, _Sample],
    chosen: list[str],
    merge_ids: np.ndarray,
    center: MixtureSolution,
    trial: int,
    log: Log,
) -> BootstrapResult | None:
    """The paper LP's own bootstrap interval: the same draws as scaled-lp's (same seed), each
    solved by the paper's LP, so the two LPs' coverage is compared on identical resamples."""
    t0 = time.perf_counter()
    try:
        boot = _trial_bootstrap(config, grouped, chosen, merge_ids, trial, solve_mixture, center)
    except SolverError as exc:
        log(f"paper-lp bootstrap failed: {exc}")
        return None
    log(f"  paper-lp bootstrap ({time.perf_counter() - t0:.1f} s)")
    return boot


def _curve_rows(
    config: EvalConfig,
    meta: dict[str, Any],
    chosen: list[str],
    truth: np.ndarray,
    grouped: dict[str, _Sample],
    merge_ids: np.ndarray,
    samples: dict[str, list[Document]],
    tok: LoadedTokenizer,
) -> list[dict[str, Any]]:
    """Paper-LP points of the accuracy curve on the same tokenizer: fewer merges T (the same
    samples, trajectories truncated) and smaller samples (prefixes of the same samples)."""
    rows: list[dict[str, Any]] = []
    totals = {c: grouped[c].total() for c in chosen}
    nbytes = {c: grouped[c].bytes_ for c in chosen}
    for t in config.curve_steps:
        if t >= meta["steps"]:
            continue
        problem = build_problem({c: truncate(totals[c], t) for c in chosen}, merge_ids, nbytes)
        meta_t = {**meta, "variant": f"steps={t}", "steps": t}
        rows += _score_lps(meta_t, chosen, truth, problem, config.scaled_power)[2]
    for size in config.curve_sample_bytes:
        if size >= config.sample_bytes:
            continue
        trajs, sizes = {}, {}
        for c in chosen:
            docs = _prefix_sample(samples[c], size)
            table = count_words([d.text for d in docs], tok.pretokenizer)
            trajs[c] = replay_merges(table.counts, tok.merge_list, last_step=meta["steps"])
            sizes[c] = table.bytes_
        meta_s = {
            **meta,
            "variant": f"sample={size}",
            "sample_bytes": int(np.mean(list(sizes.values()))),
        }
        problem = build_problem(trajs, merge_ids, sizes)
        rows += _score_lps(meta_s, chosen, truth, problem, config.scaled_power)[2]
    return rows


def _leave_out_rows(
    config: EvalConfig,
    meta: dict[str, Any],
    chosen: list[str],
    truth: np.ndarray,
    totals: dict[str, PairTrajectory],
    merge_ids: np.ndarray,
    nbytes: dict[str, int],
    trial: int,
) -> list[dict[str, Any]]:
    """The attacker misses one training category (the trial picks which): the estimate over
    the others is scored against their renormalized true shares; slack grows (diagnostic)."""
    drop = trial % len(chosen)
    kept = [c for k, c in enumerate(chosen) if k != drop]
    problem = build_problem({c: totals[c] for c in kept}, merge_ids, nbytes)
    kept_truth = np.delete(truth, drop)
    kept_truth = kept_truth / kept_truth.sum()
    meta_l = {**meta, "variant": f"leave-out={chosen[drop]}"}
    return _score_lps(meta_l, kept, kept_truth, problem, config.scaled_power)[2]


# --- the whole evaluation -------------------------------------------------------------------


def trial_name(setting: str, n: int, trial: int) -> str:
    return f"trials/setting={setting}/n={n}/trial={trial}"


def committed_trials(out: str, params: dict[str, Any]) -> dict[tuple[str, int, int], pa.Table]:
    """Every committed trial under ``out`` run with ``params`` (whatever settings, n and
    trial counts each invocation asked for): the report covers all of them."""
    fs, base = filesystem_for(join(out, "trials"))
    found: dict[tuple[str, int, int], pa.Table] = {}
    for manifest_path in sorted(fs.glob(posixpath.join(base, "setting=*/n=*/trial=*/_SUCCESS"))):
        rel = posixpath.relpath(posixpath.dirname(manifest_path), base)
        name = f"trials/{rel}"
        try:
            hashes = read_manifest(out, name).get("input_hashes", {})
        except DatasetError:
            continue
        if hashes.get("params") != json.loads(json.dumps(params)):
            continue
        table = read_dataset(out, name, EVAL_RESULTS)
        found[(hashes["setting"], int(hashes["n"]), int(hashes["trial"]))] = table
    return found


def _commit_trial(config: EvalConfig, out: str, log: Log, setting: str, n: int, trial: int) -> str:
    """Run one trial and commit its rows: the task a pool worker runs. Committing in the
    worker, not in the parent, means a trial that finished is kept even when another fails
    or the evaluation is killed."""
    name = trial_name(setting, n, trial)
    write_dataset(
        run_trial(config, setting, n, trial, log),
        out,
        name,
        schema=EVAL_RESULTS,
        partition_cols=(),
        provenance={"params": config.params()},
        input_hashes=_trial_hashes(config, setting, n, trial),
    )
    return name


def _trial_hashes(config: EvalConfig, setting: str, n: int, trial: int) -> dict[str, Any]:
    """A trial's resume key: what decides its rows."""
    return {"params": config.params(), "setting": setting, "n": n, "trial": trial}


def trial_keys(config: EvalConfig, log: Log = lambda _m: None) -> list[tuple[str, int, int]]:
    """``(setting, n, trial)`` of every trial the config asks for, each once, in order: ``n``
    0 is all of a setting's categories (so ``--n 0,30`` on 30 categories names one trial
    twice, and two pool workers must not run it at once); an ``n`` over the setting's
    categories is skipped with a log line."""
    keys: list[tuple[str, int, int]] = []
    for setting in config.settings:
        available = len(setting_categories(config.corpora, setting))
        for n in config.ns:
            n_eff = available if n <= 0 else n
            if n_eff > available:
                log(f"{setting}: only {available} categories, skipping n={n}")
                continue
            keys.extend((setting, n_eff, trial) for trial in range(config.trials))
    return list(dict.fromkeys(keys))


def run_evaluate(
    config: EvalConfig, out: str, log: Log = lambda _m: None, *, workers: int = 1
) -> pa.Table:
    """Run (or resume) every trial, then write ``results``, ``report.md`` and the plot.

    The trials are independent, so ``workers > 1`` runs them in a pool of that many
    processes (:func:`tokmix.jobs.executors.pool_map`); a trial's rows depend only on the
    config and its (setting, n, trial), so the results are the same whatever ``workers``."""
    from tokmix.jobs.executors import pool_map

    params = config.params()
    trials = trial_keys(config, log)
    pending = []
    for key in trials:
        name = trial_name(*key)
        if is_committed(out, name, _trial_hashes(config, *key), schema=EVAL_RESULTS):
            log(f"{name}: committed, skipped")
        else:
            pending.append(key)
    for _ in pool_map(partial(_commit_trial, config, out, log), pending, workers, star=True):
        pass
    committed = committed_trials(out, params)  # this call's trials first, then the others
    collected = {
        key: committed[key]
        if key in committed
        else read_dataset(out, trial_name(*key), EVAL_RESULTS)
        for key in trials
    }
    for key, table in committed.items():
        collected.setdefault(key, table)
    tables = list(collected.values())
    results = pa.concat_tables(tables) if tables else EVAL_RESULTS.empty_table()
    write_dataset(
        results,
        out,
        "results",
        schema=EVAL_RESULTS,
        partition_cols=(),
        provenance={"params": params},
        input_hashes={"params": params, "rows": results.num_rows},
    )
    from tokmix.analytics.accuracy_report import write_report

    write_report(results, out, params)
    return results
