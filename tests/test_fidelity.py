"""Index fidelity and quality against cost (issue 29, items 2 and 4): a PLAID or rerank run's results
file holds its overlap / recall of the exact top k and the paired delta against the exact run of the
same model and data, equal to a computation by hand from the two runs' files (TREC runs, per-query
scores, ``harness.stats``); found in the output folder or computed; ``harness check`` gates a variant
against its exact run; the trade-off table orders by cost and marks significance; its figure renders."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text

from harness.check import check
from harness.cli import main
from harness.fidelity import find_reference, is_approximate, is_reference_of, variant_label
from harness.records import (
    BatchedSearch,
    EfficiencyRecord,
    Hardware,
    ModelRecord,
    RetrievalRecord,
    SingleQuerySearch,
    SubsetScores,
    TaskRecord,
)
from harness.report import render_leaderboard, tradeoff_markdown, tradeoff_tables
from harness.report.figures import build_figures, leaderboard_figures
from harness.report.style import PAGE, PAPER
from harness.results import Result, load_result, save_result
from harness.run import evaluate
from harness.stats import bootstrap_ci, sign_flip_test
from tests.helpers import needs_scifact, small_beir

N_QUERIES = 12
VARIANTS = {  # results-file stem -> the run's settings (all of one model, its id set by model_name)
    "tiny": {},
    "tiny-plaid": {"index": "plaid", "plaid_nbits": 2},
    "tiny-rerank": {"first_stage": "bm25", "rerank_depth": 20},
}


@pytest.fixture(scope="module")
def runs(bert_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Result]]:
    """The exact run, a PLAID run and a BM25 rerank of one model into one output folder, TREC runs saved."""
    root = tmp_path_factory.mktemp("fidelity")
    small_beir(root / "data" / "mini", n_docs=80, n_queries=N_QUERIES)
    common = {"data_dir": root / "data", "output_dir": root / "out", "cache_dir": root / "cache"}
    common |= {"show_progress": False, "save_run": True}
    results = {}
    for name, settings in VARIANTS.items():
        [results[name]] = evaluate(str(bert_checkpoint), ["mini"], model_name=name, **common, **settings)
    return root, results


def ranked_by_hand(path: Path) -> dict[str, list[str]]:
    """Each query's doc ids in a TREC run file's rank order."""
    ranked: dict[str, list[tuple[int, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, doc, position, _, _ = line.split()
        ranked.setdefault(qid, []).append((int(position), doc))
    return {q: [d for _, d in sorted(docs)] for q, docs in ranked.items()}


def written_at(folder: Path) -> dict[Path, int]:
    """Every file under ``folder`` with its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def per_query(path: Path) -> dict[str, float]:
    [subset] = json.loads(path.read_text())["subsets"]
    return subset["per_query"]


@needs_scifact
@pytest.mark.parametrize("name", ["tiny-plaid", "tiny-rerank"])
def test_an_approximate_run_records_its_fidelity_against_the_exact_run(name, runs):
    root, results = runs
    out = root / "out"
    exact_file, file = out / "tiny__mini.json", out / f"{name}__mini.json"
    record = json.loads(file.read_text())["fidelity"]
    assert record["reference_source"] == "results file" and record["reference_file"] == str(exact_file)
    assert record["reference_model"] == "tiny" and record["metric"] == "ndcg@10"
    exact = ranked_by_hand(out / "runs" / "tiny__mini__mini.trec")
    found = ranked_by_hand(out / "runs" / f"{name}__mini__mini.trec")
    assert record["queries"] == len(exact) == N_QUERIES
    for k in (10, 100):
        top = {q: set(docs[:k]) for q, docs in exact.items()}
        overlap = [len(top[q] & set(found.get(q, [])[:k])) / len(top[q]) for q in exact]
        recall = [len(top[q] & set(found.get(q, []))) / len(top[q]) for q in exact]
        assert record[f"overlap_at_{k}"] == pytest.approx(float(np.mean(overlap)), abs=1e-12)
        assert record[f"recall_of_exact_at_{k}"] == pytest.approx(float(np.mean(recall)), abs=1e-12)
    base, cand = per_query(exact_file), per_query(file)
    d = np.array([cand[q] - base[q] for q in base])
    assert record["delta"] == pytest.approx(float(d.mean()), abs=1e-12)
    assert record["reference_score"] == json.loads(exact_file.read_text())["main_score"]
    assert (record["ci_low"], record["ci_high"]) == pytest.approx(
        bootstrap_ci([(d, 1.0)], n_resamples=10_000, seed=0, level=0.95), abs=1e-12
    )
    assert record["p_value"] == pytest.approx(sign_flip_test(d, n_resamples=10_000, seed=0), abs=1e-12)
    test = (record["test"], record["level"], record["n_resamples"], record["seed"])
    assert test == ("permutation", 0.95, 10_000, 0)
    assert load_result(file).fidelity == results[name].fidelity  # the file reads back to the same record
    if name == "tiny-rerank":  # 20 candidates: at most 20 of the exact top 100 (the corpus: fewer than 100)
        assert record["overlap_at_100"] <= 20 / len(next(iter(exact.values()))) + 1e-12


@needs_scifact
def test_without_the_exact_run_the_reference_is_computed_with_the_same_numbers(runs, bert_checkpoint):
    """PLAID into a folder without the exact run: exact search runs on the queries (embeddings from the
    cache), and every number equals the record made from the exact run's files."""
    root, results = runs
    settings = VARIANTS["tiny-plaid"] | {"data_dir": root / "data", "cache_dir": root / "cache"}
    shards = written_at(root / "cache")
    [alone] = evaluate(str(bert_checkpoint), ["mini"], model_name="tiny-plaid", output_dir=root / "alone",
                       show_progress=False, **settings)  # fmt: skip
    assert alone.fidelity is not None and alone.fidelity.reference_source == "computed"
    assert alone.fidelity.reference_file is None
    assert written_at(root / "cache") == shards  # the cache's embeddings (and the index) read, none made
    exact_file = str(root / "out" / "tiny__mini.json")
    same = replace(alone.fidelity, reference_source="results file", reference_file=exact_file)
    assert replace(same, reference_model="tiny") == results["tiny-plaid"].fidelity
    [no_output] = evaluate(str(bert_checkpoint), ["mini"], model_name="tiny-plaid", output_dir=None,
                           show_progress=False, **settings)  # fmt: skip
    assert no_output.fidelity == alone.fidelity


@needs_scifact
def test_a_compression_variant_is_measured_against_the_plain_model(runs, bert_checkpoint, tmp_path):
    """Token pooling beside a copy of the exact run's files: that run is its reference; truncated
    dimensions alone: the plain model is loaded and searched exactly, giving the exact run's scores."""
    root, results = runs
    (tmp_path / "runs").mkdir()
    shutil.copy(root / "out" / "tiny__mini.json", tmp_path)
    shutil.copy(root / "out" / "runs" / "tiny__mini__mini.trec", tmp_path / "runs")
    common = {"data_dir": root / "data", "cache_dir": root / "cache", "show_progress": False}
    [pooled] = evaluate(str(bert_checkpoint), ["mini"], pool_factor=2, output_dir=tmp_path, **common)
    assert pooled.model.settings["pool_factor"] == 2 and pooled.fidelity is not None
    assert (pooled.fidelity.reference_source, pooled.fidelity.reference_model) == ("results file", "tiny")
    [narrow] = evaluate(str(bert_checkpoint), ["mini"], truncate_dim=12, output_dir=None, **common)
    fidelity, exact = narrow.fidelity, results["tiny"]
    assert fidelity is not None and fidelity.reference_source == "computed"
    assert fidelity.reference_score == exact.main_score and fidelity.reference_model != narrow.model_id
    base, cand = exact.subsets[0].per_query, narrow.subsets[0].per_query
    d = np.array([cand[q] - base[q] for q in base])
    assert fidelity.delta == pytest.approx(float(d.mean()), abs=1e-12)
    assert fidelity.p_value == pytest.approx(sign_flip_test(d, n_resamples=10_000, seed=0), abs=1e-12)


@needs_scifact
def test_exact_runs_have_no_fidelity_and_files_round_trip(runs, tmp_path):
    root, results = runs
    assert results["tiny"].fidelity is None
    assert "fidelity" not in json.loads((root / "out" / "tiny__mini.json").read_text())
    for name in VARIANTS:  # read and saved again: the same bytes (older files without the key too)
        file = root / "out" / f"{name}__mini.json"
        again = save_result(load_result(file), tmp_path)
        assert again.read_bytes() == file.read_bytes()
    written = json.loads((root / "out" / "tiny-plaid__mini.json").read_text())
    assert list(written)[-1] == "fidelity"  # last: an older file keeps its order


@needs_scifact
def test_which_exact_run_is_the_reference(runs, tmp_path):
    root, results = runs
    plaid, exact = results["tiny-plaid"], json.loads((root / "out" / "tiny__mini.json").read_text())
    assert is_reference_of(exact, plaid.model, plaid.task)
    other = {**exact, "model": {**exact["model"], "fingerprint": "f" * 64}}
    assert not is_reference_of(other, plaid.model, plaid.task)  # another model
    data = {**exact, "task": {**exact["task"], "dataset_fingerprints": {"mini": "0" * 64}}}
    assert not is_reference_of(data, plaid.model, plaid.task)  # other data
    indexed = {**exact, "retrieval": {**exact["retrieval"], "method": "plaid"}}
    assert not is_reference_of(indexed, plaid.model, plaid.task)  # not exact
    pooled_settings = {**exact["model"]["settings"], "pool_factor": 2}
    pooled = {**exact, "model": {**exact["model"], "settings": pooled_settings}}
    assert not is_reference_of(pooled, plaid.model, plaid.task)  # a variant is no reference
    # a variant's reference is the plain model's exact run: settings equal but for the variant keys
    variant = replace(plaid.model, settings={**plaid.model.settings, "pool_factor": 2, "dtype": "bfloat16"})
    assert is_reference_of(exact, variant, plaid.task)
    assert is_approximate(variant, RetrievalRecord("exact"))
    assert not is_approximate(results["tiny"].model, RetrievalRecord("exact"))
    # the exact run's results file without its TREC runs is not a reference
    shutil.copy(root / "out" / "tiny__mini.json", tmp_path / "tiny__mini.json")
    assert find_reference(tmp_path, plaid.model, plaid.task) is None
    shutil.copytree(root / "out" / "runs", tmp_path / "runs")
    found = find_reference(tmp_path, plaid.model, plaid.task)
    assert found is not None and found[0].file == tmp_path / "tiny__mini.json"


@needs_scifact
def test_check_gates_a_variant_against_its_exact_run(runs, capsys):
    root, results = runs
    out = root / "out"
    exact, plaid = out / "tiny__mini.json", out / "tiny-plaid__mini.json"
    # file to file: the model ids differ, the tasks pair; the numbers are the fidelity record's
    report = check([load_result(exact)], [load_result(plaid)], abs_tol=1.0)
    [task] = report.tasks
    fidelity = results["tiny-plaid"].fidelity
    assert (task.delta, task.permutation_pvalue, task.delta_ci) == (
        fidelity.delta,
        fidelity.p_value,
        (fidelity.ci_low, fidelity.ci_high),
    )
    assert main(["check", "--baseline", str(exact), "--candidate", str(plaid), "--abs-tol", "1"]) == 0
    drop = -results["tiny-plaid"].fidelity.delta
    code = main(["check", "--baseline", str(exact), "--candidate", str(plaid), "--abs-tol", str(drop / 2)])
    assert code == (1 if fidelity.p_value < 0.05 else 0)  # beyond the tolerance: fails only if significant
    capsys.readouterr()
    # a folder of variants: one run per task is required, unless paired by variant
    assert main(["check", "--baseline", str(exact), "--candidate", str(out)]) == 2
    assert "holds task 'mini' twice" in capsys.readouterr().err
    variants = ["--candidate", str(out), "--pair-by", "variant", "--abs-tol", "1"]
    assert main(["check", "--baseline", str(exact), *variants]) == 0
    text = capsys.readouterr().out
    assert "mini [tiny-plaid · PLAID 2-bit" in text and "mini [tiny-rerank · rerank bm25 top 20]" in text


# --------------------------------------------------------------------------- quality against cost


def result(
    model: str,
    scores: np.ndarray,
    *,
    fingerprint: str,
    method: str = "exact",
    settings: dict | None = None,
    index: float | None = None,
    qps: float = 100.0,
    p95: float = 5.0,
) -> Result:
    """A run of ``model`` on BEIR/scifact with per-query ``scores`` and an efficiency record (PLAID:
    ``index`` bytes per token)."""
    per_query = {f"q{i}": float(v) for i, v in enumerate(scores)}
    n = len(per_query)
    single = SingleQuerySearch(100, n, n, n * p95 / 1000, qps, p95 / 2, p95, p95 * 1.2, True)
    hardware = Hardware("cpu", 2, 2, "cpu", None)
    efficiency = EfficiencyRecord(None, None, 3, BatchedSearch(n, n / qps, qps), single, 1, "test", hardware)
    sizes = None if index is None else {"scifact": {"bytes_per_token_total": index}}
    params = {"nbits": 2, "search": {"n_probe": 4}} if method == "plaid" else {}
    settings = {"dim": 128, "dtype": "float32"} | (settings or {})
    return Result(
        model=ModelRecord(model, fingerprint=fingerprint, settings=settings),
        task=TaskRecord("BEIR/scifact", "trec", "ndcg@10", "test"),
        retrieval=RetrievalRecord(method, 100, params, sizes),
        subsets=[SubsetScores("scifact", n, None, {"ndcg@10": float(np.mean(scores))}, per_query)],
        efficiency=efficiency,
    )


def costly_results() -> list[Result]:
    """Two models: ``org/m`` exact, PLAID (2-bit, 40 bytes a token), pool 2 (much worse), dim 64
    (slower, as good); ``other`` exact and int8."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.9, 60)
    m, other = {"fingerprint": "a" * 64}, {"fingerprint": "b" * 64}
    return [
        result("org/m", base, **m, p95=8.0),
        result("org/m", base + rng.normal(0, 0.01, 60), **m, method="plaid", index=40.0, p95=2.0),
        result("org/m (pool 2)", base - 0.15, **m, settings={"pool_factor": 2}, p95=4.0),
        result("org/m (dim 64)", base + rng.normal(0, 0.01, 60), **m, settings={"truncate_dim": 64}, p95=6.0),
        result("other", base - 0.05, **other, p95=3.0),
        result("other (int8)", base - 0.05 + rng.normal(0, 0.005, 60), **other, settings={"quantize": "int8"},
               p95=2.5, qps=300.0),
    ]  # fmt: skip


def test_the_tradeoff_table_orders_by_cost_and_marks_significance():
    [table] = tradeoff_tables(costly_results(), n_resamples=200)
    assert table.task == "BEIR/scifact" and table.metric == "ndcg@10"
    order = [(r.run, r.bytes_per_token, r.p95_ms) for r in table.rows]
    assert order == [
        ("org/m · PLAID 2-bit, n_probe 4", 40.0, 2.0),  # the index's bytes per token
        ("org/m (pool 2)", 256.0, 4.0),  # 128 x 4 bytes / pool factor 2
        ("org/m (dim 64)", 256.0, 6.0),  # 64 x 4 bytes; tie broken by p95
        ("other (int8)", 512.0, 2.5),
        ("other", 512.0, 3.0),
        ("org/m", 512.0, 8.0),
    ]
    rows = {r.run: r for r in table.rows}
    assert rows["org/m"].exact and rows["org/m"].cell.p_value is None and rows["org/m"].delta is None
    assert rows["org/m (pool 2)"].cell.significant and rows["org/m (pool 2)"].delta == pytest.approx(-0.15)
    assert not rows["org/m · PLAID 2-bit, n_probe 4"].cell.significant
    assert rows["other (int8)"].cell.reference == "other" and rows["other (int8)"].line == "b" * 64
    assert {r.model for r in table.rows} == {"org/m", "other"}  # a line per model
    assert variant_label(costly_results()[2]) == "pool 2" and rows["org/m"].label == "exact"
    text = tradeoff_markdown([table])
    lines = [line for line in text.splitlines() if line.startswith("| org/m (pool 2)")]
    assert len(lines) == 1 and "▾" in lines[0]
    assert "▾" not in next(line for line in text.splitlines() if line.startswith("| org/m · PLAID"))
    assert "x 4 bytes" in text and "| org/m (exact) |" in text


def test_no_tradeoff_table_without_a_second_run_of_a_model():
    runs = costly_results()
    assert tradeoff_tables([runs[0], runs[4]], n_resamples=50) == []


def texts(fig) -> list[Text]:
    """Every drawn text: labels, annotations, legends, and the tick labels inside each axis's range
    (matplotlib keeps the labels of ticks beyond it, undrawn)."""
    found = [t for legend in fig.legends for t in legend.get_texts()]
    for ax in fig.axes:
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        found += [*ax.texts, ax.xaxis.label, ax.yaxis.label]
        found += [t for t in ax.get_xticklabels() if x0 <= t.get_position()[0] <= x1]
        found += [t for t in ax.get_yticklabels() if y0 <= t.get_position()[1] <= y1]
    return [t for t in found if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("size", [PAGE, PAPER], ids=lambda s: s.name)
def test_the_tradeoff_figure_renders_without_overlaps(size, tmp_path):
    tables = tradeoff_tables(costly_results(), n_resamples=200)
    [(stem, caption, fig)] = build_figures([], size, tradeoffs=tables)
    assert stem == "beir_scifact_quality_vs_cost" and "nDCG@10" in caption
    assert [ax.get_xlabel() for ax in fig.axes] == [
        "bytes per document token", "queries per second (batched)", "single-query p95 latency"
    ]  # fmt: skip
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), Text.get_window_extent(t, renderer)) for t in texts(fig)]
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        assert all(frame.contains(*Text.get_window_extent(t, renderer).p0) for t in ax.texts)
    colours = {}
    for ax in fig.axes:  # a line per model, one colour per model in every panel
        for line in ax.get_lines():
            if (gid := line.get_gid() or "").startswith("line:"):
                colours.setdefault(gid, set()).add(to_hex(line.get_color()))
    assert set(colours) == {"line:org/m", "line:other"} and all(len(c) == 1 for c in colours.values())
    assert len({next(iter(c)) for c in colours.values()}) == 2
    [(name, _, png)] = leaderboard_figures([], tmp_path, tradeoffs=tables)
    assert name == f"{stem}.png" and png.startswith(b"\x89PNG") and (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "paper" / f"{stem}.pdf").is_file()


def test_the_leaderboard_shows_quality_against_cost(tmp_path):
    md_path, html_path = render_leaderboard(costly_results(), tmp_path, n_resamples=100)
    markdown, page = md_path.read_text(), html_path.read_text()
    assert "## Quality against cost" in markdown and "### BEIR/scifact" in markdown
    assert "![BEIR/scifact nDCG@10 against cost" in markdown
    assert 'id="quality-against-cost"' in page and 'id="cost-beir_scifact"' in page
    assert (tmp_path / "beir_scifact_quality_vs_cost.png").stat().st_size > 1000
