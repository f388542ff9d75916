"""Reports: the published transcription and the card re-rendered from it, checked against the seed
card (parsed here independently); the leaderboard page driven in headless Chromium."""

from __future__ import annotations

import gc
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from harness import report
from harness import stats as stats_mod
from harness.report import catalogue
from harness.report.catalogue import registered_name
from harness.results import ModelRecord, Result, RetrievalRecord, SubsetScores, TaskRecord, load_results
from harness.types import InputError
from tests.helpers import REPO_ROOT

PUBLISHED = REPO_ROOT / "results" / "published"
SEED = REPO_ROOT.parent / "shared" / "seeds" / "mxbai-edge-colbert-v0-17m-model-card.txt"
MODEL = "mxbai-edge-colbert-v0-17m"
# Column label of the card's BEIR table -> harness task (the BEIR dataset names).
BEIR_TASKS = {
    "MS MARCO": "BEIR/msmarco",
    "SciFact": "BEIR/scifact",
    "Touche": "BEIR/webis-touche2020",
    "FiQA": "BEIR/fiqa",
    "TREC-COVID": "BEIR/trec-covid",
    "NQ": "BEIR/nq",
    "DBPedia": "BEIR/dbpedia-entity",
}

pytestmark = pytest.mark.skipif(not SEED.exists(), reason=f"seed card not found at {SEED}")


# --------------------------------------------------------------------------- the seed, parsed independently


def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


def seed_model_index() -> dict[str, dict[str, tuple[float, str]]]:
    """dataset type -> MaxSim metric -> (value, display name), by regex over the flattened header."""
    header = seed_text().splitlines()[0]
    out = {}
    for block in header.split(" - task: ")[1:]:
        dataset = re.search(r"dataset: name: .+? type: (\S+) metrics:", block).group(1)
        metrics = re.findall(r"- type: (MaxSim_[\w@]+) value: ([0-9.eE+-]+) name: (Maxsim [\w@]+)", block)
        out[dataset] = {m: (float(v), name) for m, v, name in metrics}
    return out


def seed_table(heading: str, n_values: int) -> list[tuple[str, str, list[str]]]:
    """(group, model cell, value cells with their ** markers) of a flattened card table, by regex."""
    text = seed_text()
    start = text.index(heading)
    end = text.find("###", start + len(heading))
    region = text[start : end if end > 0 else len(text)]
    group_re = r"\| \*\*(?P<group>\w+ Models \([<>]\d+M\))\*\*(?: \|){" + str(n_values + 1) + "}"
    cell = r"\*?\*?\d\.\d{3}\*?\*? \| "
    row_re = r"\| (?P<name>\*?\*?[\w.() -]+?\*?\*?) \| (?P<values>(?:" + cell + "){" + str(n_values) + "})"
    rows, group = [], None
    for match in re.finditer(f"{group_re}|{row_re}", region):
        if match.group("group"):
            group = match.group("group")
        else:
            rows.append((group, match.group("name"), match.group("values").split(" | ")[:n_values]))
    return rows


def rendered_table(markdown: str, heading: str) -> list[tuple[str, str, list[str]]]:
    """(group, model cell, value cells) of a table in the rendered (multi-line) card."""
    lines = markdown[markdown.index(heading) :].splitlines()[1:]
    rows, group = [], None
    for line in lines:
        if line.startswith("###"):
            break
        if not line.startswith("| ") or ":---" in line or line.startswith("| Model"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not any(cells[1:]):
            group = cells[0].strip("*")
        else:
            rows.append((group, cells[0], cells[1:]))
    return rows


@pytest.fixture(scope="module")
def published() -> list[Result]:
    return load_results([PUBLISHED])


# --------------------------------------------------------------------------- transcription


def test_transcription_is_reproducible(tmp_path, monkeypatch):
    """The two transcriptions run afresh (the card: transcribe.py; MTEB's results repository:
    transcribe_mteb.py) write exactly the committed files (harness_version aside), and nothing else
    is there."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in results/published/
    for script, args in (("transcribe", ["--card", str(SEED)]), ("transcribe_mteb", [])):
        spec = importlib.util.spec_from_file_location(script, PUBLISHED / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main([*args, "--out", str(tmp_path)])
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    assert fresh == sorted(p.name for p in PUBLISHED.glob("*.json"))
    assert len(fresh) == 13 + 9 * (7 + 1) + 14 + 12 + 10  # card; BRIGHT and LoTTE from MTEB
    for name in fresh:
        new, old = (json.loads((d / name).read_text()) for d in (tmp_path, PUBLISHED))
        new.pop("harness_version"), old.pop("harness_version")
        assert new == old, name


def test_published_nanobeir_equals_the_card_exactly(published):
    card = seed_model_index()
    mine = {
        r.task_name: r for r in published if r.model_id == MODEL and report.family(r.task_name) == "NanoBEIR"
    }
    assert list(card)[:-1] == list(report.nanobeir_datasets()) and set(mine) == set(
        report.nanobeir_datasets()
    )
    for dataset, r in mine.items():
        (subset,) = r.subsets
        assert {f"MaxSim_{k}": v for k, v in subset.card.items()} == {
            m: v for m, (v, _) in card[dataset].items()
        }
        assert r.model.kind == "published" and r.retrieval.method == "published" and not subset.per_query
        assert r.model.parameters == 17_000_000 and r.model.size_group == "Small Models (<25M)"


def test_published_beir_and_longembed_equal_the_card(published):
    by_key = {(r.model_id, r.task_name): r for r in published}
    beir = seed_table("### **Results on BEIR**", 8)
    assert len(beir) == 9
    for group, name, values in beir:
        model = name.strip("*")
        avg = by_key[(model, "BEIR")]
        assert report.is_average_only(avg) and avg.main_score == float(values[0].strip("*"))
        for label, cell in zip(BEIR_TASKS, values[1:], strict=True):
            r = by_key[(model, BEIR_TASKS[label])]
            assert r.main_score == float(cell.strip("*")) and r.model.size_group == group
            assert r.task.convention == "trec" and r.task.main_metric == "ndcg@10"
    long = seed_table("### **Results on LongEmbed**", 1)
    assert len(long) == 14
    for group, name, values in long:
        r = by_key[(name.strip("*"), "LongEmbed")]
        assert report.is_average_only(r) and r.main_score == float(values[0].strip("*"))
        assert r.model.size_group == group
    assert by_key[("mxbai-edge-colbert-v0-32m (4k)", "LongEmbed")].model.parameters == 32_000_000
    assert by_key[("ColBERTv2", "LongEmbed")].model.parameters is None


# --------------------------------------------------------------------------- model card


def test_card_yaml_reproduces_the_seed(published):
    """Per-dataset values: exact. NanoBEIR mean: exact too — it is np.mean over the 13 datasets in
    card order, the aggregation (sentence-transformers NanoBEIREvaluator, aggregate_fn=np.mean) that
    wrote the card, so no tolerance is needed; a different summation order would differ by ~1e-16."""
    text = report.render_card_yaml(published, MODEL)
    document = yaml.safe_load(text.strip().strip("-"))
    (entry,) = document["model-index"]
    assert entry["name"] == MODEL
    card = seed_model_index()
    assert [r["dataset"]["type"] for r in entry["results"]] == list(card)
    for result in entry["results"]:
        expected = card[result["dataset"]["type"]]
        assert [m["type"] for m in result["metrics"]] == list(expected)
        for metric in result["metrics"]:
            assert (metric["value"], metric["name"]) == expected[metric["type"]]
    assert entry["results"][-1]["task"] == {"type": "nano-beir", "name": "Nano BEIR"}
    assert entry["results"][-1]["dataset"] == {"name": "NanoBEIR mean", "type": "NanoBEIR_mean"}
    # the whole front matter, whitespace aside, is the seed's first line: structure, names and order
    assert " ".join(text.split()) == " ".join(seed_text().splitlines()[0].split())


def test_model_card_tables_match_the_seed(published):
    """Same rows, groups, values and bold cells as the card's BEIR and LongEmbed tables (row order
    within a group may differ: the card's is not recorded in the results)."""
    card = report.render_model_card(published, MODEL)
    for heading, n_values in (("### **Results on BEIR**", 8), ("### **Results on LongEmbed**", 1)):
        expected, got = seed_table(heading, n_values), rendered_table(card, heading)
        assert list(dict.fromkeys(g for g, _, _ in got)) == list(dict.fromkeys(g for g, _, _ in expected))
        assert sorted(got) == sorted(expected), heading
    nano = card[card.index("### NanoBEIR") :].splitlines()
    mean_row = next(line for line in nano if line.startswith("| **NanoBEIR mean**"))
    assert f"**{seed_model_index()['NanoBEIR_mean']['MaxSim_ndcg@10'][0]:.4f}**" in mean_row


def test_catalogue_comes_from_the_task_registry():
    """Families, column order and labels are the registry's groups: the card's BEIR columns first
    (in the card's order, with its labels), then the other BEIR datasets sorted."""
    names = ["BEIR/hotpotqa", "BEIR/scifact", "BEIR/arguana", "BEIR/msmarco", "BEIR/nq"]
    assert catalogue.dataset_order("BEIR", names) == [
        "BEIR/msmarco",
        "BEIR/scifact",
        "BEIR/nq",
        "BEIR/arguana",
        "BEIR/hotpotqa",
    ]
    assert [label for label, _ in report.beir_card_columns()] == list(BEIR_TASKS)
    assert [task for _, task in report.beir_card_columns()] == list(BEIR_TASKS.values())
    assert [report.family(t) for t in ("NanoFEVER", "BEIR/fiqa", "LongEmbed/qmsum", "BEIR", "mini")] == [
        "NanoBEIR",
        "BEIR",
        "LongEmbed",
        "BEIR",
        "Other",
    ]
    assert catalogue.label("NanoSciFact") == "SciFact" and catalogue.label("mini") == "mini"


def test_size_groups_follow_label_bounds():
    assert report.size_group_for(17_000_000) == "Small Models (<25M)"
    assert report.size_group_for(33_000_000) == "Medium Models (<35M)"
    assert report.size_group_for(149_000_000) == "Large Models (>100M)"
    assert report.size_group_for(60_000_000) == "Other sizes"
    assert report.size_group_for(None) == "Unknown size"
    assert (
        report.size_group_for(40_000_000, ["Medium Models (<50M)", "Small Models (<25M)"])
        == "Medium Models (<50M)"
    )


# --------------------------------------------------------------------------- confidence intervals


def test_bootstrap_ci_agrees_with_scipy():
    """One stratum: our percentile bootstrap vs scipy.stats.bootstrap(percentile), both 5000 resamples
    on different random streams. Tolerance 0.25 bootstrap-SDs (sd/sqrt(n)): the Monte Carlo SE of a
    2.5% quantile from 5000 replicates is ~0.04 SD, ~0.055 for the difference of two, so ~4.5 SE."""
    x = np.random.default_rng(7).uniform(0, 1, 120)
    lo, hi = stats_mod.bootstrap_ci([(x, 1.0)], n_resamples=5000, seed=0)
    ref = stats.bootstrap(
        (x,), np.mean, method="percentile", n_resamples=5000, random_state=0
    ).confidence_interval
    sd = x.std() / math.sqrt(len(x))
    assert abs(lo - ref.low) < 0.25 * sd and abs(hi - ref.high) < 0.25 * sd
    assert stats_mod.bootstrap_ci([(x, 1.0)], n_resamples=5000, seed=0) == (lo, hi)  # seeded


def test_stratified_bootstrap_matches_the_normal_approximation():
    """Two strata weighted 1/2: the CI centre and width match mean ± 1.96·sqrt(Σ w² var/n) (symmetric
    data, n >= 40, so the percentile interval is close to normal); tolerance 0.3 SD of the estimate."""
    rng = np.random.default_rng(8)
    a, b = rng.uniform(0, 1, 40), rng.uniform(0.2, 0.6, 400)
    lo, hi = stats_mod.bootstrap_ci([(a, 0.5), (b, 0.5)], n_resamples=5000, seed=0)
    centre = 0.5 * a.mean() + 0.5 * b.mean()
    sd = math.sqrt(0.25 * a.var() / len(a) + 0.25 * b.var() / len(b))
    assert abs(lo - (centre - 1.959964 * sd)) < 0.3 * sd and abs(hi - (centre + 1.959964 * sd)) < 0.3 * sd


# --------------------------------------------------------------------------- leaderboard


def run_result(model: str, task: str, parameters: int, seed: int, convention: str = "trec") -> Result:
    """A harness-run result with per-query scores (main metric = their mean) and timings."""
    per_query = {f"q{i}": float(v) for i, v in enumerate(np.random.default_rng(seed).uniform(0.3, 1.0, 50))}
    table = {"ndcg@10": float(np.mean(list(per_query.values())))}
    card, trec = (table, None) if convention == "card" else (None, table)
    subset = SubsetScores(task.split("/")[-1], 50, card, trec, per_query)
    return Result(
        model=ModelRecord(model, parameters=parameters),
        task=TaskRecord(task, convention, "ndcg@10", "test"),  # type: ignore[arg-type]
        retrieval=RetrievalRecord("exact"),
        subsets=[subset],
        timings={"encode_documents_s": 2.0 + seed, "sources": {"encode_documents_s": "measured"}},
        tokens={"documents": 100_000},
    )


def shifted(result: Result, model: str, delta: float, seed: int) -> Result:
    """Another run on the same queries: ``result``'s per-query scores + ``delta`` + noise (sd 0.05)."""
    noise = np.random.default_rng(seed).normal(0.0, 0.05, 50)
    base = result.subsets[0]
    per_query = {q: float(v + delta + e) for (q, v), e in zip(base.per_query.items(), noise, strict=True)}
    table = {"ndcg@10": float(np.mean(list(per_query.values())))}
    subset = SubsetScores(
        base.name, 50, table if base.card else None, table if base.trec else None, per_query
    )
    return Result(
        model=replace(result.model, id=model),
        task=result.task,
        retrieval=result.retrieval,
        subsets=[subset],
        timings=result.timings,
        tokens=result.tokens,
    )


@pytest.fixture(scope="module")
def board(published, tmp_path_factory) -> tuple[list[Result], Path, Path, Path]:
    runs = [run_result("run-small", task, 17_000_000, i) for i, task in enumerate(BEIR_TASKS.values())]
    # a second small run on the same queries: clearly below run-small on some datasets, level on others
    runs += [shifted(r, "run-small-b", -0.08 * (i % 2), 30 + i) for i, r in enumerate(runs)]
    runs += [shifted(r, "run-small-c", -0.04, 50 + i) for i, r in enumerate(runs[:7])]  # Holm over 2
    runs += [
        run_result("run-small", task, 17_000_000, 40 + i, "card")
        for i, task in enumerate(catalogue.nanobeir_datasets())
    ]
    runs += [run_result("run-large", "BEIR/nq", 150_000_000, 4)]  # no SciFact: must sort last
    results = published + runs
    out = tmp_path_factory.mktemp("board")
    md, page = report.render_leaderboard(results, out, n_resamples=500)
    return results, out, md, page


def test_leaderboard_files_and_plots(board):
    results, out, md, page = board
    for stem in (
        "nanobeir_per_dataset",
        "beir_per_dataset",
        "beir_score_vs_parameters",
        "beir_score_vs_throughput",
        "longembed_average",
    ):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert ET.parse(out / f"{stem}.svg").getroot().tag.endswith("svg")
    text = page.read_text()
    # self-contained: nothing is loaded from elsewhere (links to model pages are navigation only)
    assert not re.search(r"""src\s*=\s*["']?(?:https?:)?//""", text) and "<link" not in text
    assert "@import" not in text and "url(" not in text
    assert text.count("data:image/png;base64,") == len(list(out.glob("*.png")))
    assert 'href="https://huggingface.co/lightonai/GTE-ModernColBERT-v1"' in text
    markdown = md.read_text()
    assert "## BEIR" in markdown and "| GTE-ModernColBERT-v1 † |" in markdown


def _chromium(profile: Path, width: int = 1400, dark: bool = False):
    """Headless Chromium with a fresh profile at ``width`` px (dark: ``prefers-color-scheme:
    dark`` emulated); skips when the browser is not installed."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None or not Path("/usr/bin/chromedriver").exists():
        pytest.skip(
            "chromium / chromedriver not installed (CI installs the Debian packages: make system-deps)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--window-size={width},1800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    if dark:
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
        )
    return driver


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the page tests save their screenshots: the test's temporary folder, or the folder
    ``$HARNESS_SCREENSHOTS_DIR`` names (``make screenshots``: reports/, the README's images)."""
    named = os.environ.get("HARNESS_SCREENSHOTS_DIR")
    folder = Path(named) if named else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _expected_significance(rows: list[tuple[str, dict[str, float] | None, float]]) -> dict[str, bool]:
    """Model -> marked, for one size group and dataset: the best run (per-query scores) against each
    other run on the same queries, scipy's paired t-test, statsmodels' Holm correction, p < 0.05."""
    from statsmodels.stats.multitest import multipletests

    runs = [(name, q, v) for name, q, v in rows if q]
    if len(runs) < 2:
        return {}
    best_name, best, _ = max(runs, key=lambda r: r[2])
    others = [(name, q) for name, q, _ in runs if name != best_name]
    keys = sorted(best)
    p = [stats.ttest_rel([best[k] for k in keys], [q[k] for k in keys]).pvalue for _, q in others]
    rejected = multipletests(p, method="holm")[0]
    return {name: bool(r) for (name, _), r in zip(others, rejected, strict=True)}


@pytest.mark.browser
def test_leaderboard_page_in_headless_chromium(board, tmp_path, screenshots):
    results, _, _, page = board
    driver = _chromium(tmp_path / "profile")
    try:
        driver.get(page.resolve().as_uri())
        from selenium.webdriver.common.by import By

        table = driver.find_element(By.ID, "table-beir")
        headers = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        column = headers.index("SciFact")

        def groups(col: int = column) -> dict[str, list[tuple[str, float | None, bool, bool]]]:
            out = {}
            for body in table.find_elements(By.TAG_NAME, "tbody"):
                rows = []
                for tr in body.find_elements(By.CSS_SELECTOR, "tr.row"):
                    cells = tr.find_elements(By.TAG_NAME, "td")
                    raw = cells[col].get_attribute("data-sort")
                    bold = bool(cells[col].find_elements(By.TAG_NAME, "b"))
                    marked = bool(cells[col].find_elements(By.CSS_SELECTOR, "sup.sig"))
                    rows.append(
                        (cells[0].get_attribute("data-sort"), float(raw) if raw else None, bold, marked)
                    )
                out[body.get_attribute("data-group")] = rows
            return out

        # expected rows and SciFact values, straight from the results
        runs = {"run-small", "run-small-b", "run-small-c", "run-large"}
        name = registered_name  # rows are named as the model registry names the model
        scifact = {
            (name(r.model_id), r.published is not None): r.main_score
            for r in results
            if r.task_name == "BEIR/scifact"
        }
        expected_groups: dict[str, set[str]] = {}
        for r in results:
            if report.family(r.task_name) == "BEIR" and r.published:
                expected_groups.setdefault(r.model.size_group, set()).add(name(r.model_id))
        expected_groups["Small Models (<25M)"] |= {"run-small", "run-small-b", "run-small-c"}  # 17M
        expected_groups["Large Models (>100M)"].add("run-large")  # 150M parameters
        shown = groups()
        assert {g: {name for name, *_ in rows} for g, rows in shown.items()} == expected_groups
        assert list(shown) == ["Large Models (>100M)", "Medium Models (<35M)", "Small Models (<25M)"]
        digits = 3  # the published BEIR figures' precision: every number of the table shows 3 decimals
        texts = [td.text for td in table.find_elements(By.CSS_SELECTOR, "tr.row td:not(:first-child)")]
        assert all(re.fullmatch(r"(\d\.\d{3}▾?|–)", t) for t in texts), texts
        for col in range(1, len(headers)):
            for rows in groups(col).values():
                values = [v for _, v, _, _ in rows if v is not None]
                best = max((round(v, digits) for v in values), default=None)
                expected = [
                    len(values) > 1 and v is not None and round(v, digits) == best for _, v, _, _ in rows
                ]
                assert [b for _, _, b, _ in rows] == expected, (headers[col], rows)  # bold: best of 2+
        for rows in shown.values():
            for name, value, _, _ in rows:
                assert value == scifact.get((name, name not in runs))

        # significance markers: every dataset column, against scipy + statsmodels
        marked_any = False
        by_task = {(r.model_id, r.task_name): r for r in results if not r.published}
        for col, task in enumerate(BEIR_TASKS.values(), start=1):
            assert headers[col] == catalogue.label(task)
            for rows in groups(col).values():
                inputs = []
                for name, value, _, _ in rows:
                    run = by_task.get((name, task)) if name in runs else None
                    inputs.append((name, run.subsets[0].per_query if run else None, value))
                expected = _expected_significance(inputs)
                got = {name for name, _, _, marked in rows if marked}
                assert got == {n for n, m in expected.items() if m}, (task, expected, got)
                marked_any |= any(expected.values())
        assert marked_any  # the fixture has a clearly worse run: the test compared something

        header = table.find_elements(By.CSS_SELECTOR, "thead th")[column]
        for click, descending in ((1, True), (2, False)):
            header.click()
            assert header.get_attribute("aria-sort") == ("descending" if descending else "ascending")
            for rows in groups().values():
                values = [v for _, v, _, _ in rows]
                present = sorted((v for v in values if v is not None), reverse=descending)
                assert values == present + [None] * (len(values) - len(present)), (click, values)

        # the published NanoBEIR mean of the model is the card's, to the last digit
        nano = driver.find_element(By.ID, "table-nanobeir")
        names = [th.text.strip() for th in nano.find_elements(By.CSS_SELECTOR, "thead th")]
        row = next(
            tr
            for tr in nano.find_elements(By.CSS_SELECTOR, "tr.row")
            if tr.find_element(By.TAG_NAME, "td").get_attribute("data-sort") == MODEL
        )
        mean = float(row.find_elements(By.TAG_NAME, "td")[names.index("Mean")].get_attribute("data-sort"))
        assert mean == seed_model_index()["NanoBEIR_mean"]["MaxSim_ndcg@10"][0]

        # at 1400 px every table's last column (Mean, Reported AVG) is in view without scrolling
        for element in driver.find_elements(By.CSS_SELECTOR, "table.sortable:not(.metrics)"):
            last = element.find_elements(By.CSS_SELECTOR, "thead th")[-1]
            right = driver.execute_script("return arguments[0].getBoundingClientRect().right", last)
            assert right <= driver.execute_script("return document.documentElement.clientWidth"), last.text
        scroll_width = driver.execute_script("return document.documentElement.scrollWidth")
        assert scroll_width <= driver.execute_script("return document.documentElement.clientWidth")

        # the filter hides other models' rows (and groups left empty); the CI toggle shows intervals
        box = driver.find_element(By.ID, "filter")
        box.send_keys("run-small")
        visible = [
            tr.get_attribute("data-model")
            for tr in table.find_elements(By.CSS_SELECTOR, "tr.row")
            if tr.is_displayed()
        ]
        assert sorted(visible) == ["run-small", "run-small-b", "run-small-c"]
        assert [b.is_displayed() for b in table.find_elements(By.TAG_NAME, "tbody")] == [False, False, True]
        box.clear()
        box.send_keys(" ")  # an input event with an empty needle: everything back
        assert all(tr.is_displayed() for tr in table.find_elements(By.CSS_SELECTOR, "tr.row"))
        ci = table.find_element(By.CSS_SELECTOR, "span.ci")
        assert not ci.is_displayed()
        driver.find_element(By.ID, "show-ci").click()
        assert ci.is_displayed() and re.fullmatch(r"\d\.\d{3}–\d\.\d{3}", ci.text)

        # every card metric of a dataset behind the toggle, for the run that has them
        details = driver.find_element(By.ID, "metrics-nanobeir")
        assert not details.find_element(By.TAG_NAME, "table").is_displayed()
        details.find_element(By.TAG_NAME, "summary").click()
        assert details.find_element(By.TAG_NAME, "table").is_displayed()

        images = driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
        assert images and all(w > 0 for w in images)
        driver.find_element(By.ID, "show-ci").click()  # the screenshot as a reader first sees it
        driver.find_element(By.TAG_NAME, "summary").click()
        assert driver.save_screenshot(str(screenshots / "leaderboard_1400.png"))
    finally:
        driver.quit()


def _background(driver) -> tuple[int, ...]:
    color = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    return tuple(int(x) for x in re.findall(r"\d+", color)[:3])


@pytest.mark.browser
def test_leaderboard_page_at_800px_keeps_the_model_column_in_view_and_has_a_dark_theme(
    board, tmp_path, screenshots
):
    *_, page = board
    from selenium.webdriver.common.by import By

    driver = _chromium(tmp_path / "narrow", width=800)
    try:
        driver.get(page.resolve().as_uri())
        assert sum(_background(driver)) > 600  # light by default
        table = driver.find_element(By.ID, "table-nanobeir")
        scroller = table.find_element(By.XPATH, "..")
        assert driver.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", scroller)
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 800  # the page fits
        first = table.find_element(By.CSS_SELECTOR, "tr.row td")
        left = driver.execute_script("return arguments[0].getBoundingClientRect().left", scroller)
        driver.execute_script("arguments[0].scrollLeft = arguments[0].scrollWidth", scroller)
        assert driver.execute_script("return arguments[0].scrollLeft", scroller) > 0
        assert driver.execute_script(
            "return arguments[0].getBoundingClientRect().left", first
        ) == pytest.approx(left, abs=1)
        last = table.find_elements(By.CSS_SELECTOR, "thead th")[-1]  # Mean scrolled into view
        assert driver.execute_script("return arguments[0].getBoundingClientRect().right", last) <= 800
        assert driver.save_screenshot(str(screenshots / "leaderboard_800.png"))
    finally:
        driver.quit()
    driver = _chromium(tmp_path / "dark", width=1400, dark=True)
    try:
        driver.get(page.resolve().as_uri())
        assert sum(_background(driver)) < 150  # the dark theme applies
        text = driver.execute_script("return getComputedStyle(document.querySelector('td')).color")
        assert sum(int(x) for x in re.findall(r"\d+", text)[:3]) > 500  # light text on it
        assert driver.save_screenshot(str(screenshots / "leaderboard_dark.png"))
    finally:
        driver.quit()


# ------------------------------------------------------------------ DataFrames and table formats


def test_dataframe_round_trip_equals_the_results_files(board, tmp_path):
    """``load_results(...).to_dataframe()`` holds every metric of every subset as the files do;
    ``wide=True`` holds each task's main score."""
    from harness.results import load_results, save_result

    results, *_ = board
    for result in results:
        save_result(result, tmp_path / ("published" if result.published else "runs"))
    loaded = load_results([tmp_path])
    long = loaded.to_dataframe()
    expected = {
        (r.model_id, r.task_name, s.name, convention, metric, r.published is not None): value
        for r in results
        for s in r.subsets
        for convention in ("card", "trec")
        for metric, value in s.metrics(convention).items()
    }
    keys = ["model", "task", "subset", "convention", "metric", "published"]
    got = {tuple(row[k] for k in keys): row["value"] for row in long.to_dict("records")}
    assert got == expected and len(long) == len(expected)
    wide = loaded.to_dataframe(wide=True)
    for r in results:
        assert wide.loc[(r.model_id, r.published is not None), r.task_name] == r.main_score


def test_report_table_formats_carry_the_leaderboard_numbers(board, tmp_path, capsys):
    """CSV (one tidy table, full precision), LaTeX and markdown of every leaderboard table, against
    the tables' cells."""
    import pandas as pd

    from harness.cli import main
    from harness.results import save_result

    results, *_ = board
    folder = tmp_path / "results"
    for result in results:
        save_result(result, folder / ("published" if result.published else "runs"))
    tables = report.leaderboard_tables(results, n_resamples=10)
    assert main(["report", "table", str(folder), "--format", "csv", "--out", str(tmp_path / "csv")]) == 0
    frame = pd.read_csv(tmp_path / "csv" / "leaderboard.csv")
    for table in tables:
        for row in table.rows:
            mine = frame[
                (frame["benchmark"] == table.family)
                & (frame["model"] == row.model_id)
                & (frame["origin"] == row.origin)
            ].set_index("column")["value"]
            for column, cell in zip(table.columns, row.cells, strict=True):
                assert mine.get(column) == cell.value or (cell.value is None and column not in mine)
        latex = report.format_table(table, "latex")
        assert latex.split("\\toprule")[1].count("\\\\") == 1 + len(table.groups) + len(table.rows)
        assert all(cell.text() in latex for row in table.rows for cell in row.cells if cell.value is not None)
        markdown = report.format_table(table, "markdown")
        assert len(markdown.splitlines()) == 2 + len(table.rows)
    capsys.readouterr()
    assert main(["report", "table", str(folder), "--format", "csv"]) == 0
    assert capsys.readouterr().out == (tmp_path / "csv" / "leaderboard.csv").read_text()


def test_a_card_for_a_model_with_beir_results_only(board):
    """No NanoBEIR run: no model-index and no NanoBEIR section, the BEIR table with the model among
    the published rows; a model with no results at all is an error."""
    results, *_ = board
    card = report.render_model_card(results, "run-large")
    front = yaml.safe_load(card.split("---\n")[1])
    assert "model-index" not in front and "metrics" not in front
    assert "### NanoBEIR" not in card and "### **Results on BEIR**" in card
    beir = card.split("### **Results on BEIR**")[1].split("###")[0]
    assert any(line.lstrip("| *").startswith("run-large") for line in beir.splitlines())
    assert "mxbai-edge-colbert-v0-17m" in card  # the published rows beside it
    with pytest.raises(InputError, match="no results of model 'nobody'"):
        report.render_model_card(results, "nobody")


def test_holm_equals_statsmodels(monkeypatch):
    """``stats.holm`` against statsmodels' ``multipletests(method="holm")``: families of 1-9 p-values
    with ties and values past 1 after scaling; a nan is left out of the family and stays nan."""
    from statsmodels.stats.multitest import multipletests

    # multipletests runs a full gc.collect() per call: ~0.15 s each in a process holding the suite's
    # models (180 calls). Collecting changes no result.
    monkeypatch.setattr(gc, "collect", lambda *args, **kwargs: 0)
    rng = np.random.default_rng(0)
    for size in range(1, 10):
        for _ in range(20):
            p = np.round(rng.random(size) ** 3, 2)  # rounding makes ties
            assert stats_mod.holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-15)
    adjusted = stats_mod.holm([0.01, math.nan, 0.04, 0.03])
    assert math.isnan(adjusted[1])
    assert [adjusted[i] for i in (0, 2, 3)] == pytest.approx(
        multipletests([0.01, 0.04, 0.03], method="holm")[1]
    )


def test_significance_of_a_multi_subset_task_tests_the_difference_the_table_shows():
    """Two subsets of different sizes: the per-query values the paired test sees average to the task
    score (the mean of subset means), so "best" and the test agree on which run is ahead."""
    from harness.report.tables import _weighted_queries

    subsets = [
        SubsetScores("a", 2, None, {"ndcg@10": 0.5}, {"q1": 0.0, "q2": 1.0}),
        SubsetScores("b", 6, None, {"ndcg@10": 0.25}, {f"q{i}": 0.25 for i in range(6)}),
    ]
    task = TaskRecord("T", "trec", "ndcg@10", "test")
    result = Result(ModelRecord("m"), task, RetrievalRecord("exact"), subsets)
    values = list(_weighted_queries(result).values())
    assert len(values) == 8 and np.mean(values) == pytest.approx(result.main_score) == pytest.approx(0.375)


def test_a_model_filed_under_an_alias_is_one_row_named_as_the_registry_names_it():
    """The card names one model ``snowflake-s`` (BEIR) and ``snowflake-arctic-embed-s`` (LongEmbed):
    the leaderboard shows the registry's name in both tables (one model, one colour)."""
    from tests.helpers import make_result

    beir = make_result("snowflake-s", "BEIR/scifact", {"scifact": {"q": 0.5}}, published=True)
    long = make_result("snowflake-arctic-embed-s", "LongEmbed/qmsum", {"qmsum": {"q": 0.4}}, published=True)
    tables = report.leaderboard_tables([beir, long], n_resamples=10)
    assert {row.model_id for table in tables for row in table.rows} == {"snowflake-arctic-embed-s"}
