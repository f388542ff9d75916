"""``harness explain``: the settings two runs differ in (named as their flags), a run against its
published row and the registry's record of that row's model, the per-query deltas and paired tests
(the same as ``harness check``'s), refusals (exit 2); ``harness results`` telling runs apart; the
model card of a dense model and of a model with ad-hoc tasks only."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli import main
from harness.results import RetrievalRecord, SubsetScores, TaskRecord, load_result, save_result
from tests.helpers import REPO_ROOT, make_result, needs_scifact, scores, small_beir

BGE_QUERY = "Represent this sentence for searching relevant passages: "


def _explain(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["explain", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _changing(found: dict) -> set[str]:
    return {d["name"] for d in found["differences"] if d["changes_scores"]}


def _edit(path: Path, model_settings: dict, settings: dict) -> None:
    """Set keys of a results file's ``model.settings`` and ``settings`` (a run made by hand)."""
    data = json.loads(path.read_text())
    data["model"]["settings"] |= model_settings
    data["settings"] |= settings
    path.write_text(json.dumps(data))


def _bm25(tmp_path: Path, out: str, *flags: str) -> Path:
    data = tmp_path / "data" / "mini"
    if not data.exists():
        small_beir(data, n_docs=40, n_queries=8)
    args = ["evaluate", "--model", "bm25", "--tasks", "mini", "--data-dir", str(data.parent)]
    assert main([*args, "--output", str(tmp_path / out), "--no-cache", "--quiet", *flags]) == 0
    return tmp_path / out / "bm25__mini.json"


@needs_scifact
def test_two_runs_differing_in_k_and_document_length_name_exactly_those(tmp_path, capsys):
    """BM25 run at --k 10 and --k 100; the second's document length (flag and the model's effective
    value) made different by hand: the settings that can change the scores are exactly k and
    document_length; the output folder differs too, listed apart as one that cannot."""
    a, b = _bm25(tmp_path, "r1", "--k", "10"), _bm25(tmp_path, "r2", "--k", "100")
    _edit(a, {"document_length": 180}, {})
    _edit(b, {"document_length": 300}, {"document_length": 300})
    capsys.readouterr()
    found = _explain(capsys, str(a), str(b))
    assert _changing(found) == {"k", "document_length"}
    by_name = {d["name"]: d for d in found["differences"]}
    assert (by_name["k"]["a"], by_name["k"]["b"]) == (10, 100)
    assert set(by_name["k"]["fields"]) == {"retrieval.k", "settings.k"}
    assert (by_name["document_length"]["a"], by_name["document_length"]["b"]) == (180, 300)  # effective
    assert by_name["output"]["changes_scores"] is False
    assert found["subsets"][0]["fingerprint"] == "same" and found["subsets"][0]["n_queries"] == [8, 8]
    assert found["deltas"]["n_paired"] == 8
    assert main(["explain", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    changing = text.split("settings that can change the scores")[1].split("settings that cannot")[0]
    assert "document_length  180  300" in changing and "k                10   100" in changing
    assert "output" not in changing


@needs_scifact
def test_a_colbert_model_run_at_two_lengths_and_depths(tmp_path, capsys, bert_checkpoint):
    """The same, end to end with a ColBERT model: --k and --document-length are all that can change
    the scores; the model ids the lengths give (``model (32 tokens)``) name the same weights."""
    data = small_beir(tmp_path / "data" / "mini", n_docs=30, n_queries=6)
    files = []
    for out, k, length in (("r1", "10", "32"), ("r2", "100", "48")):
        args = [
            "evaluate",
            "--model",
            str(bert_checkpoint),
            "--tasks",
            "mini",
            "--data-dir",
            str(data.parent),
        ]
        args += ["--output", str(tmp_path / out), "--k", k, "--document-length", length, "--quiet"]
        assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
        [file] = (tmp_path / out).glob("*.json")
        files.append(file)
    capsys.readouterr()
    found = _explain(capsys, *map(str, files))
    assert _changing(found) == {"k", "document_length"}
    by_name = {d["name"]: d for d in found["differences"]}
    assert (by_name["document_length"]["a"], by_name["document_length"]["b"]) == (32, 48)
    assert by_name["model"]["changes_scores"] is False


def _gte_run(tmp_path: Path, model: str = "GTE-ModernColBERT-v1", length: int | None = 300) -> Path:
    """A hand-made run of the registered GTE-ModernColBERT on BEIR/scifact."""
    run = make_result(model, "BEIR/scifact", {"scifact": scores(np.linspace(0, 1, 10))})
    settings = {"document_length": length, "query_length": None, "query_prompt": None}
    model_settings = {"document_length": length or 300, "query_length": 32, "query_prompt": ""}
    run = replace(run, model=replace(run.model, settings=model_settings), settings=settings)
    return save_result(run, tmp_path / "runs")


def test_a_run_against_its_published_row_names_what_the_registry_records(tmp_path, capsys):
    """The card's row of the 32k variant (registry: document_length 32768) against a run at 300
    tokens: document_length differs, and nothing else the registry records."""
    row = make_result("GTE-ModernColBERT-v1 (32k)", "BEIR/scifact", {"scifact": {"q0": 0.7}}, published=True)
    save_result(row, tmp_path / "published")
    run = _gte_run(tmp_path)
    args = ["--published", "gte-moderncolbert-v1 (32k)", "--published-dir", str(tmp_path / "published")]
    found = _explain(capsys, str(run), *args)
    registry = found["registry"]
    assert registry["entry"] == "GTE-ModernColBERT-v1 (32k)"
    assert [d["name"] for d in registry["differences"]] == ["document_length"]
    assert registry["differences"][0] | {"name": None} == {
        "name": None,
        "run": 300,
        "registry": 32768,
        "ran_with": 300,
    }
    assert found["differences"] == []  # a row records no settings: only its task's fields compare
    assert found["deltas"] is None and "no per-query scores in B" in found["notes"][0]
    assert main(["explain", str(run), *args]) == 0
    assert "A against the registry's 'GTE-ModernColBERT-v1 (32k)'" in capsys.readouterr().out


def test_the_repositorys_published_row_as_B(tmp_path, capsys):
    """B a file under results/published: the registry loads GTE-ModernColBERT-v1 at the checkpoint's
    length, the run asked for 300 tokens; a run at the checkpoint's own settings differs in nothing."""
    published = REPO_ROOT / "results" / "published" / "GTE-ModernColBERT-v1__BEIR_scifact.json"
    found = _explain(capsys, str(_gte_run(tmp_path)), str(published))
    assert [(d["name"], d["run"], d["registry"]) for d in found["registry"]["differences"]] == [
        ("document_length", 300, None)
    ]
    found = _explain(capsys, str(_gte_run(tmp_path, length=None)), str(published))
    assert found["registry"]["differences"] == []


def test_a_dense_run_without_the_registered_query_prompt(tmp_path, capsys):
    """bge-small-en-v1.5's row: the registry loads it with MTEB's query instruction; a run of the Hub
    id (loaded without it) differs in query_prompt only, the registered name's run in nothing."""
    row = make_result("bge-small-en-v1.5", "BEIR/scifact", {"scifact": {"q0": 0.6}}, published=True)
    save_result(row, tmp_path / "published")
    for model, prompt, expected in (
        ("BAAI/bge-small-en-v1.5", "", ["query_prompt"]),
        ("bge-small-en-v1.5", BGE_QUERY, []),
    ):
        run = make_result(model, "BEIR/scifact", {"scifact": {"q0": 0.5}})
        run = replace(run, model=replace(run.model, kind="dense", settings={"query_prompt": prompt}))
        path = save_result(run, tmp_path / model.replace("/", "_"))
        args = ["--published", "bge-small-en-v1.5", "--published-dir", str(tmp_path / "published")]
        found = _explain(capsys, str(path), *args)
        assert [d["name"] for d in found["registry"]["differences"]] == expected


def test_per_query_deltas_tests_and_movers_agree_with_check(tmp_path, capsys):
    """Two subsets of unequal size: the mean delta is the task score's, inside its CI, with the same
    p-value as ``harness check``; the top query and subset are the ones that move the score most."""
    from harness.check import check

    rng = np.random.default_rng(0)
    base = {"s1": rng.uniform(0, 1, 30), "s2": rng.uniform(0, 1, 12)}
    moved = {"s1": base["s1"] + 0.02, "s2": base["s2"].copy()}
    moved["s2"][3] -= 0.9  # one query of the small subset drops hard
    a = make_result("m", "t", {name: scores(v) for name, v in base.items()})
    b = make_result("m2", "t", {name: scores(v) for name, v in moved.items()})
    pa, pb = save_result(a, tmp_path / "a"), save_result(b, tmp_path / "b")
    found = _explain(capsys, str(pa), str(pb), "--top", "3")
    d = found["deltas"]
    assert d["mean"] == pytest.approx(b.main_score - a.main_score) == pytest.approx(found["delta"])
    assert d["ci95"][0] < d["mean"] < d["ci95"][1]
    gate = check([load_result(pa)], [load_result(pb)]).tasks[0]
    assert d["permutation_pvalue"] == gate.permutation_pvalue and d["t_pvalue"] == gate.t_pvalue
    assert d["better_worse_equal"] == [30, 1, 11] and d["quantiles"]["50%"] == pytest.approx(0.02)
    top = found["top_queries"]
    assert (top[0]["subset"], top[0]["query"]) == ("s2", "q3") and len(top) == 3
    assert top[0]["contribution"] == pytest.approx(-0.9 / (2 * 12))
    assert [s["subset"] for s in found["top_subsets"]] == ["s2", "s1"]
    assert sum(s["contribution"] for s in found["top_subsets"]) == pytest.approx(found["delta"])
    assert found["differences"][0]["name"] == "model"


def test_conventions_and_data_that_differ_are_said(tmp_path, capsys):
    """A card-convention result against a trec one: no paired tests, A's score in B's convention;
    dataset fingerprints that differ are reported per subset."""
    a = make_result("m", "t", {"s": {"q0": 0.5, "q1": 0.7}})
    table = {"ndcg@10": 0.6}
    a = replace(
        a,
        task=replace(a.task, convention="card", dataset_fingerprints={"s": "x"}),
        subsets=[SubsetScores("s", 2, {"ndcg@10": 0.55}, table, {"q0": 0.5, "q1": 0.6})],
    )
    b = make_result("m", "t", {"s": {"q0": 0.5, "q1": 0.9}})
    b = replace(b, task=replace(b.task, dataset_fingerprints={"s": "y"}))
    found = _explain(capsys, str(save_result(a, tmp_path / "a")), str(save_result(b, tmp_path / "b")))
    assert "convention" in _changing(found) and found["a_in_b_metric"] == pytest.approx(0.6)
    assert found["deltas"] is None and any("main metrics differ" in n for n in found["notes"])
    assert found["subsets"][0]["fingerprint"] == "differs"


def test_refusals_exit_2(tmp_path, capsys):
    """Results of two tasks, an unreadable file, no B, and a published model without a row: exit 2,
    saying why."""
    a = save_result(make_result("m", "BEIR/scifact", {"s": {"q": 1.0}}), tmp_path / "a")
    b = save_result(make_result("m", "BEIR/nfcorpus", {"s": {"q": 1.0}}), tmp_path / "b")
    assert main(["explain", str(a), str(b)]) == 2
    assert "'BEIR/scifact'" in (err := capsys.readouterr().err) and "'BEIR/nfcorpus'" in err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["explain", str(a), str(tmp_path / "bad.json")]) == 2
    assert "bad.json" in capsys.readouterr().err
    assert main(["explain", str(a)]) == 2
    published = str(REPO_ROOT / "results" / "published")
    assert main(["explain", str(a), "--published", "nobody", "--published-dir", published]) == 2
    assert "ColBERTv2" in capsys.readouterr().err  # the models that have a row of the task


def test_results_listing_shows_the_settings_that_tell_runs_apart(tmp_path, capsys):
    """Two runs of one model and task at different depths and lengths: columns k and document_length;
    one run per model and task: no extra column."""
    run = make_result("m", "t", {"s": {"q0": 0.5}})
    for out, k, length in (("r1", 10, 180), ("r2", 100, 300)):
        model = replace(run.model, settings={"document_length": length})
        save_result(replace(run, model=model, retrieval=RetrievalRecord("exact", k)), tmp_path / out)
    assert main(["results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        *("model", "task", "metric", "score", "queries", "retrieval"),
        *("document_length", "k", "p95", "ms", "QPS", "created"),
    ]
    assert [line.split()[7:9] for line in lines[2:4]] == [["180", "10"], ["300", "100"]]
    assert main(["results", str(tmp_path / "r1")]) == 0
    assert "document_length" not in capsys.readouterr().out


def _front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_card_of_a_dense_model_is_a_sentence_transformers_card():
    """A dense model's card: library sentence-transformers, no ColBERT tags, cosine metrics in the
    model-index; a ColBERT model's stays PyLate's."""
    from harness.metrics import CARD_METRICS
    from harness.report import render_model_card
    from harness.report.catalogue import nanobeir_datasets

    def nano(model: str, kind: str) -> list:
        out = []
        for name in nanobeir_datasets():
            r = make_result(model, name, {name: {"q0": 0.5}})
            subset = SubsetScores(name, 1, dict.fromkeys(CARD_METRICS, 0.5), {"ndcg@10": 0.5})
            out.append(
                replace(
                    r,
                    model=replace(r.model, kind=kind),
                    task=TaskRecord(name, "card", "ndcg@10", "train"),
                    subsets=[subset],
                )
            )
        return out

    front = _front_matter(render_model_card(nano("my-dense", "dense"), "my-dense"))
    assert front["library_name"] == "sentence-transformers"
    assert "PyLate" not in front["tags"] and "ColBERT" not in front["tags"]
    assert "sentence-transformers" in front["tags"] and front["metrics"][0] == "cosine_accuracy@1"
    result = front["model-index"][0]["results"][0]
    assert result["task"]["type"] == "information-retrieval"
    front = _front_matter(render_model_card(nano("my-colbert", "colbert"), "my-colbert"))
    assert front["library_name"] == "PyLate" and front["metrics"][0] == "MaxSim_accuracy@1"


def test_card_of_a_model_with_ad_hoc_tasks_only_says_why_it_has_no_table():
    """No NanoBEIR / BEIR / LongEmbed results: the Evaluation section says so and lists the tasks."""
    from harness.report import render_model_card

    results = [make_result("mine", task, {"s": {"q0": 0.25}}) for task in ("my-docs", "other-docs")]
    card = render_model_card(results, "mine")
    evaluation = card.split("## Evaluation")[1]
    assert "No results on the card's benchmarks" in evaluation
    assert "| my-docs | nDCG@10 (trec) | 0.2500 |" in evaluation and "| other-docs |" in evaluation
