"""`tokmix report`: the derived values, escaping, sections, figures, the CLI on a real run, and
the page in a real headless Chromium (screenshot, figures, no console errors)."""

from __future__ import annotations

import ast
import base64
import io
import json
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tokenizers import Tokenizer

from tests.helpers import REPO
from tokmix.analytics import plots
from tokmix.analytics.report import (
    MixtureRow,
    RunData,
    build_report,
    diagnostics_rows,
    display_token,
    figure_name,
    mixture_rows,
    summarize_frequencies,
    token_ratios,
    top_tokens,
    vocabulary_use,
)
from tokmix.bpe.loaders import load_tokenizer
from tokmix.cli import main
from tokmix.errors import DatasetError
from tokmix.io.corpus import iter_documents
from tokmix.io.datasets import write_dataset
from tokmix.io.fs import filesystem_for
from tokmix.jobs.infer import run_infer
from tokmix.jobs.report import collect_run, run_report
from tokmix.schemas import MIXTURES, TOKEN_FREQUENCIES, TOKEN_STATS, UNDERTRAINED
from tokmix.schemas.run_spec import RunSpec

DEMO = REPO / "data" / "tokenizers" / "demo"
SAMPLES = REPO / "data" / "samples"
HOSTILE = 'rust <img src=x onerror="alert(1)"> &amp; $\\alpha$'
"""A category name that is HTML, an entity and TeX: it must show as typed, everywhere."""
INVALID_TOKEN = b"\xff<b>\xfe"

# --- fixtures: a real small run, plus stats datasets written per the contract ---------------


def _stats_tables(out: Path, sample: dict[str, str]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """token_stats / token_frequencies / undertrained of the demo tokenizer over the run's own
    samples, encoded by the `tokenizers` library (what `tokmix stats` must agree with)."""
    tok = Tokenizer.from_file(str(DEMO / "tokenizer.json"))
    loaded = load_tokenizer(DEMO)
    token_bytes = {i: b for b, i in loaded.vocab.items()}
    stats, freq_rows = [], []
    produced: set[int] = set()
    for category, path in sample.items():
        docs = [d.text for d in iter_documents([path], max_bytes=40_000)]
        counts: Counter[int] = Counter()
        for doc in docs:
            counts.update(tok.encode(doc).ids)
        produced |= set(counts)
        stats.append(
            {
                "tokenizer": "demo",
                "category": category,
                "pretokenizer": loaded.pretokenizer.key,
                "documents": len(docs),
                "bytes": sum(len(d.encode()) for d in docs),
                "chars": sum(len(d) for d in docs),
                "pretokens": sum(len(tok.pre_tokenizer.pre_tokenize_str(d)) for d in docs),
                "tokens": sum(counts.values()),
                "vocab_size": len(token_bytes),
                "tokens_used": len(counts),
            }
        )
        freq_rows += [
            {
                "tokenizer": "demo",
                "category": category,
                "token_id": i,
                "token": token_bytes[i],
                "count": n,
            }
            for i, n in sorted(counts.items())
        ]
    under = [
        {
            "tokenizer": "demo",
            "token_id": i,
            "token": token_bytes[i],
            "reason": "never_produced",
            "count": 0,
        }
        for i in sorted(set(token_bytes) - produced)
    ]
    under.append(
        {
            "tokenizer": "demo",
            "token_id": 99_999,
            "token": INVALID_TOKEN,
            "reason": "unreachable",
            "count": 0,
        }
    )
    return (
        pa.Table.from_pylist(stats, schema=TOKEN_STATS),
        pa.Table.from_pylist(freq_rows, schema=TOKEN_FREQUENCIES),
        pa.Table.from_pylist(under, schema=UNDERTRAINED),
    )


def _commit(out: Path, name: str, table: pa.Table, schema: pa.Schema) -> None:
    write_dataset(
        table, str(out), name, schema=schema, partition_cols=(), provenance={}, input_hashes={}
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tokmix infer` on three small demo samples (one category with a hostile name), the
    stats datasets of the contract, and a second tokenizer's mixture with intervals."""
    out = tmp_path_factory.mktemp("run") / "out"
    sample = {
        "books": str(SAMPLES / "books.jsonl.gz"),
        "python": str(SAMPLES / "python.jsonl.gz"),
        HOSTILE: str(SAMPLES / "rust.jsonl.gz"),
    }
    run_infer(
        RunSpec.model_validate(
            {
                "out": str(out),
                "tokenizers": [str(DEMO)],
                "categories": {n: {"paths": [p], "max_bytes": 40_000} for n, p in sample.items()},
                "merges": 150,
                "bootstrap": {"groups": 1},
            }
        )
    )
    stats, freqs, under = _stats_tables(out, sample)
    _commit(out, "token_stats/tokenizer=demo", stats, TOKEN_STATS)
    _commit(out, "token_frequencies/tokenizer=demo", freqs, TOKEN_FREQUENCIES)
    _commit(out, "undertrained/tokenizer=demo", under, UNDERTRAINED)
    _commit(out, "mixtures/tokenizer=boot", _interval_mixture(), MIXTURES)
    return out


def _interval_mixture() -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "tokenizer": "boot",
                "category": "en",
                "weight": 0.6,
                "byte_share": 0.55,
                "byte_share_low": 0.5,
                "byte_share_high": 0.61,
                "pairs": 10,
                "bytes": 20,
            },
            {
                "tokenizer": "boot",
                "category": HOSTILE,
                "weight": 0.4,
                "byte_share": 0.45,
                "byte_share_low": None,
                "byte_share_high": None,
                "pairs": 10,
                "bytes": 30,
            },
        ],
        schema=MIXTURES,
    )


# --- pure parts -----------------------------------------------------------------------------


@given(st.binary(max_size=12))
def test_display_token_is_a_literal_of_the_token(token: bytes) -> None:
    shown = display_token(token)
    value = ast.literal_eval(shown)  # an oracle independent of how the literal was made
    assert (value.encode("utf-8") if isinstance(value, str) else value) == token
    assert isinstance(value, str) == _is_utf8(token)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.2, 0.5, (0.1, 0.2)),
        (None, 0.5, None),
        (0.2, None, None),
        (math.nan, 0.5, None),
        (0.35, 0.5, (0.0, 0.2)),
    ],
)
def test_interval_errors(low: float | None, high: float | None, expected: Any) -> None:
    row = MixtureRow("c", 0.3, 0.3, low, high, 1, 1)
    assert row.errors == (pytest.approx(expected) if expected else None)


def test_mixture_rows_group_by_tokenizer_and_sort_by_share() -> None:
    other = [{**r, "tokenizer": "a"} for r in _interval_mixture().to_pylist()]
    table = pa.concat_tables([_interval_mixture(), pa.Table.from_pylist(other, schema=MIXTURES)])
    rows = mixture_rows(table)
    assert list(rows) == ["a", "boot"]
    assert [r.category for r in rows["boot"]] == ["en", HOSTILE]
    assert rows["boot"][1].errors is None


freq_rows = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2"]),
        st.sampled_from(["c1", "c2", "c3"]),
        st.integers(0, 20),
        st.integers(0, 50),
    ),
    max_size=60,
    unique_by=lambda r: r[:3],
)


@settings(max_examples=60, deadline=None)
@given(freq_rows)
def test_frequency_summary_and_vocabulary_use_match_brute_force(
    rows: list[tuple[Any, ...]],
) -> None:
    table = pa.Table.from_pylist(
        [
            {"tokenizer": t, "category": c, "token_id": i, "token": bytes([i]) * 2, "count": n}
            for t, c, i, n in rows
        ],
        schema=TOKEN_FREQUENCIES,
    )
    totals = summarize_frequencies(table)
    expected: Counter[tuple[str, int]] = Counter()
    for t, _c, i, n in rows:
        expected[(t, i)] += n
    got = {(r["tokenizer"], r["token_id"]): r for r in totals.to_pylist()}
    assert {k: r["count"] for k, r in got.items()} == dict(expected)
    assert all(r["token"] == bytes([r["token_id"]]) * 2 for r in got.values())
    ratios = [{"tokenizer": t, "vocab_size": 21} for t in ("t1", "t2")]
    use = {u["tokenizer"]: u for u in vocabulary_use(ratios, totals)}
    for t in ("t1", "t2"):
        union = {i for (tt, i), n in expected.items() if tt == t and n > 0}
        assert use[t]["used"] == (len(union) if any(k[0] == t for k in expected) else None)
    if rows:
        tok = rows[0][0]
        top = top_tokens(totals, tok, k=3)
        ranked = sorted(((n, -i) for (t, i), n in expected.items() if t == tok), reverse=True)
        assert [r["token_id"] for r in top] == [-i for _, i in ranked[:3]]


def test_token_ratios_are_ratios_of_sums() -> None:
    shards = [(1000, 900, 300, 250, 40), (3000, 2500, 700, 520, 60), (0, 0, 0, 0, 0)]
    table = pa.Table.from_pylist(
        [
            {
                "tokenizer": "t",
                "category": f"c{k}",
                "pretokenizer": "p",
                "documents": 1,
                "bytes": b,
                "chars": ch,
                "pretokens": w,
                "tokens": n,
                "vocab_size": 100,
                "tokens_used": u,
            }
            for k, (b, ch, n, w, u) in enumerate(shards)
        ],
        schema=TOKEN_STATS,
    )
    ratios = token_ratios(table)
    assert ratios[0]["bytes_per_token"] == pytest.approx(1000 / 300)
    assert ratios[1]["chars_per_token"] == pytest.approx(2500 / 700)
    assert ratios[1]["fertility"] == pytest.approx(700 / 520)
    assert ratios[0]["vocab_use"] == pytest.approx(0.4)
    assert ratios[2]["bytes_per_token"] is None and ratios[2]["fertility"] is None


def test_diagnostics_named_first_then_the_rest_by_key() -> None:
    rows = diagnostics_rows(
        {
            "zeta": True,
            "rounds": 17,
            "objective": 0.51823456,
            "alpha": {"count": 0.25},
            "missing_steps": list(range(1, 26)),
            "constraints": 78940,
            "merge_stride": 16,
        }
    )
    assert [k for k, _ in rows] == [
        "objective (total slack)",
        "LPs over 1 merge step in",
        "absent merges (steps)",
        "constraint-generation rounds",
        "constraints",
        "alpha",
        "zeta",
    ]
    values = dict(rows)
    assert values["objective (total slack)"] == "0.518235"
    assert values["constraints"] == "78,940"
    assert values["absent merges (steps)"].endswith("20, … (25 listed)")
    assert values["alpha"] == "count 0.25" and values["zeta"] == "True"


def test_figure_names_are_safe_and_distinct() -> None:
    names = ["demo", "../../etc/passwd", "a/b", "a_b", "", "日本語"]
    files = [figure_name("mixture", n) for n in names]
    assert len(set(files)) == len(files)
    assert all(re.fullmatch(r"mixture-[A-Za-z0-9._-]+\.png", f) for f in files)


def _pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def _is_drawn(png: bytes) -> bool:
    """Not a blank canvas: many colours, and some dark (text, axes) on a light page."""
    image = _pixels(png)
    colours = image.getcolors(maxcolors=1 << 16)
    dark = sum(image.convert("L").histogram()[:64])
    return (colours is None or len(colours) > 20) and dark > 100


def test_mixture_chart_draws_error_bars_only_with_an_interval() -> None:
    names, shares = ["a", "$b$", HOSTILE], [0.5, 0.3, 0.2]
    plain = plots.mixture_chart(names, shares, [None, None, None], "t")
    bars = plots.mixture_chart(names, shares, [(0.05, 0.05), None, (0.02, 0.1)], "t")
    assert _is_drawn(plain) and _is_drawn(bars)
    assert _pixels(plain).size[1] >= 200
    assert _pixels(plain).tobytes() != _pixels(bars).tobytes()


def test_grouped_bars_skip_missing_values() -> None:
    png = plots.grouped_bars(["x", "y"], {"t1": [1.0, None], "t2": [2.0, 3.0]}, "t", "v")
    assert _is_drawn(png)


class _Page(HTMLParser):
    """Tags, text per section and attributes of a report page, as a browser's parser sees it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.cells: list[str] = []
        self.sections: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag in ("td", "th"):
            self._cell = []
        if tag == "section":
            self.sections.append(dict(attrs)["id"] or "")
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "link",
    "title",
    "style",
    "body",
    "header",
    "h1",
    "h2",
    "h3",
    "p",
    "nav",
    "a",
    "main",
    "section",
    "figure",
    "img",
    "figcaption",
    "code",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "strong",
    "em",
    "ul",
    "li",
    "footer",
}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3, unique=True),
    st.text(max_size=12),
    st.binary(max_size=6),
)
def test_every_name_and_token_is_escaped(names: list[str], tokenizer: str, token: bytes) -> None:
    tokenizer = tokenizer or "t"
    mixtures = pa.Table.from_pylist(
        [
            {
                "tokenizer": tokenizer,
                "category": n,
                "weight": 1 / len(names),
                "byte_share": 1 / len(names),
                "byte_share_low": None,
                "byte_share_high": None,
                "pairs": 1,
                "bytes": 1,
            }
            for n in names
        ],
        schema=MIXTURES,
    )
    under = pa.Table.from_pylist(
        [
            {
                "tokenizer": tokenizer,
                "token_id": 7,
                "token": token,
                "reason": "unreachable",
                "count": 0,
            }
        ],
        schema=UNDERTRAINED,
    )
    run = RunData(
        source=f"<{tokenizer}>",
        mixtures=mixtures,
        undertrained=under,
        solutions={tokenizer: {"diagnostics": {"note": names[0]}}},
    )
    page = _parse(build_report(run).html)
    assert set(page.tags) <= ALLOWED_TAGS  # no markup got in through the data
    assert page.tags["script"] == 0
    assert set(names) <= set(page.cells)  # every name reads back exactly as typed
    assert display_token(token) in page.cells
    assert names[0] in page.cells  # the diagnostic value


def test_sections_follow_the_datasets_present(run_dir: Path) -> None:
    full = collect_run(str(run_dir))
    page = _parse(build_report(full).html)
    assert page.sections == [
        "mixture",
        "diagnostics",
        "compression",
        "vocabulary",
        "undertrained",
        "corpus",
    ]
    only_mixture = RunData(source="x", mixtures=full.mixtures)
    page = _parse(build_report(only_mixture).html)
    assert page.sections == ["mixture"]
    assert len(page.images) == 2  # one mixture chart per tokenizer
    assert "no interval" in page.cells and "50.00% – 61.00%" in page.cells


# --- the stage and the CLI on a real run ----------------------------------------------------


def test_collect_run_reads_every_committed_dataset(run_dir: Path) -> None:
    run = collect_run(str(run_dir))
    assert run.mixtures is not None
    assert sorted(set(run.mixtures["tokenizer"].to_pylist())) == ["boot", "demo"]
    assert run.solutions["demo"]["diagnostics"]["last_step"] == 150
    assert run.solutions["boot"] == {"diagnostics": {}}  # no JSON, no provenance diagnostics
    assert run.token_stats is not None and run.token_stats.num_rows == 3
    assert run.corpus_stats is not None
    assert sorted(run.corpus_stats["category"].to_pylist()) == sorted(["books", "python", HOSTILE])
    assert run.undertrained is not None and run.token_totals is not None
    assert run.skipped == []


def test_uncommitted_dataset_is_listed_not_read(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "token_stats" / "tokenizer=demo" / "_SUCCESS").unlink()
    run = collect_run(str(copy))
    assert run.token_stats is None
    assert len(run.skipped) == 1 and "token_stats/tokenizer=demo" in run.skipped[0]
    page = _parse(build_report(run).html)
    assert "compression" not in page.sections and "skipped" in page.sections


def test_empty_run_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DatasetError, match="tokmix infer"):
        collect_run(str(tmp_path))
    assert main(["report", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_cli_writes_page_and_the_same_figures(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "rep"
    assert main(["report", str(run_dir), "--out", str(dest)]) == 0
    index = Path(capsys.readouterr().out.strip())
    assert index == dest / "index.html"
    page = _parse(index.read_text(encoding="utf-8"))
    files = sorted(p.name for p in dest.glob("*.png"))
    assert sorted(str(i["data-file"]) for i in page.images) == files
    assert len(files) == 5  # 2 mixtures, bytes/token, fertility, vocabulary use
    for image in page.images:
        embedded = base64.b64decode(str(image["src"]).removeprefix("data:image/png;base64,"))
        assert embedded == (dest / str(image["data-file"])).read_bytes()
    assert HOSTILE in page.cells
    assert display_token(INVALID_TOKEN) in page.cells
    raw = index.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=\"(?!data:|#)", raw)  # nothing loads from elsewhere


def test_default_destination_is_inside_the_run(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert run_report(str(copy)) == str(copy / "report" / "index.html")


def test_report_of_a_run_on_s3(run_dir: Path, s3_root: str) -> None:
    fs, base = filesystem_for(s3_root)
    fs.put(f"{run_dir}/", base, recursive=True)
    local = build_report(collect_run(str(run_dir)))
    index = run_report(s3_root)
    assert index == f"{s3_root}/report/index.html"
    page = fs.cat_file(index).decode("utf-8")
    assert _parse(page).cells == _parse(local.html).cells
    assert sorted(p.rsplit("/", 1)[1] for p in fs.glob(f"{base}/report/*.png")) == sorted(
        f.file_name for f in local.figures
    )


def test_report_matches_the_solve_json(run_dir: Path) -> None:
    doc = json.loads((run_dir / "mixtures" / "demo.json").read_text())
    page = _parse(build_report(collect_run(str(run_dir))).html)
    for category in doc["categories"]:
        assert f"{100 * category['byte_share']:.2f}%" in page.cells
        assert f"{category['weight']:.4f}" in page.cells


# --- a real browser -------------------------------------------------------------------------

CHROMIUM = os.environ.get("TOKMIX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("TOKMIX_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
)
"""Debian's browser and driver; the variables point the test at another Chromium build."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by chromedriver; skips without it, except under CI."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    if missing:
        reason = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,1400",
        "--no-first-run",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _console_errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_console_errors_are_seen(browser: Any) -> None:
    """The console check below can fail: an error and a blocked external load are caught."""
    browser.get("data:text/html,<p>x</p><script>console.error('boom')</script>")
    assert any("boom" in e["message"] for e in _console_errors(browser))


def test_report_renders_in_a_real_browser(run_dir: Path, tmp_path: Path, browser: Any) -> None:
    index = Path(run_report(str(run_dir), str(tmp_path / "report")))
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(index.as_uri())
    state = browser.execute_script(
        """
        const imgs = [...document.images];
        return {
          ready: document.readyState,
          images: imgs.length,
          loaded: imgs.filter(i => i.complete && i.naturalWidth > 100).length,
          sections: [...document.querySelectorAll('section > h2')].map(h => h.textContent),
          mixtureRows: [...document.querySelectorAll('#mixture tbody')].map(b => b.rows.length),
          scripts: document.scripts.length,
          text: document.body.innerText,
        };
        """
    )
    assert state["ready"] == "complete"
    assert state["images"] == state["loaded"] == 5
    assert state["sections"] == [
        "Inferred mixture",
        "Solver diagnostics",
        "Compression and fertility",
        "Vocabulary use",
        "Under-trained token candidates",
        "Corpus samples",
    ]
    assert state["mixtureRows"] == [2, 3]  # boot, demo
    assert state["scripts"] == 0 and HOSTILE in state["text"]
    assert "share of the tokenizer's training bytes" in state["text"]
    shot = browser.get_screenshot_as_png()
    (tmp_path / "screenshot.png").write_bytes(shot)
    assert _pixels(shot).size == (1100, 1400) or _pixels(shot).size[0] >= 1000
    assert _is_drawn(shot)
    assert _console_errors(browser) == []


def test_accuracy_report_renders_in_a_real_browser(tmp_path: Path, browser: Any) -> None:
    """`tokmix evaluate`'s report.html: its plot shows, its tables are there, nothing runs."""
    from tests.helpers import synthetic_eval_results
    from tokmix.analytics.accuracy_report import write_report

    write_report(synthetic_eval_results(setting=HOSTILE), str(tmp_path), {"level": 0.9})
    browser.get_log("browser")
    browser.get((tmp_path / "report.html").as_uri())
    state = browser.execute_script(
        """
        const imgs = [...document.images];
        return {
          loaded: imgs.filter(i => i.complete && i.naturalWidth > 100).length,
          tables: document.querySelectorAll('table').length,
          scripts: document.scripts.length,
          text: document.body.innerText,
        };
        """
    )
    assert state["loaded"] == 1 and state["tables"] == 5 and state["scripts"] == 0
    assert HOSTILE in state["text"]
    assert _console_errors(browser) == []
