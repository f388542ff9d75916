"""TREC run files and per-query CSV: round trips checked against pytrec_eval and the csv module."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import pytrec_eval

from harness.export import write_per_query_csv
from harness.results import ModelRecord, Result, RetrievalRecord, SubsetScores, TaskRecord
from harness.runfile import read_trec_run, write_trec_run
from harness.types import InputError
from tests.helpers import needs_scifact, small_beir

MEASURES = {"ndcg_cut_10", "map", "recall_100", "P_5", "recip_rank", "ndcg_cut_1000"}


def synthetic_run(seed: int = 0, n_queries: int = 40, n_docs: int = 300) -> tuple[dict, dict]:
    """Random qrels and a run with rounded scores, so ties between doc ids occur."""
    rng = np.random.default_rng(seed)
    run, qrels = {}, {}
    for q in range(n_queries):
        docs = rng.choice(n_docs, size=150, replace=False)
        run[f"q{q}"] = {f"d{d}": float(np.round(rng.normal(), 1)) for d in docs}
        qrels[f"q{q}"] = {f"d{d}": int(rng.integers(1, 3)) for d in rng.choice(n_docs, size=5, replace=False)}
    return run, qrels


def test_trec_run_round_trip_gives_same_metrics(tmp_path):
    run, qrels = synthetic_run()
    path = write_trec_run(run, tmp_path / "run.trec", tag="unit")
    back = read_trec_run(path)
    assert back == run  # scores written with repr read back bit-identical
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, MEASURES)
    assert evaluator.evaluate(back) == evaluator.evaluate(run)
    lines = path.read_text().splitlines()
    first = lines[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "unit"
    # ranks follow score descending, ties by doc id descending (trec_eval's order)
    q0 = [line.split() for line in lines if line.startswith("q0 ")]
    keys = [(float(p[4]), p[2]) for p in q0]
    assert keys == sorted(keys, reverse=True)
    assert [int(p[3]) for p in q0] == list(range(1, len(q0) + 1))


def test_depth_truncates_per_query(tmp_path):
    run, qrels = synthetic_run(seed=1)
    back = read_trec_run(write_trec_run(run, tmp_path / "run.trec", depth=10))
    assert all(len(docs) == 10 for docs in back.values())
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"})
    assert evaluator.evaluate(back) == evaluator.evaluate(run)  # the top 10 is all nDCG@10 reads


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("q1 Q0 d1 1 0.5", "tag"),  # 5 fields: the tag is missing
        ("q1 Q0 d1 1 0.5 tag extra", "tag"),
        ("q1 Q0 d1 first 0.5 tag", "rank"),
        ("q1 Q0 d1 0 0.5 tag", "rank"),
        ("q1 Q0 d1 1 high tag", "score"),
        ("q1 Q0 d1 1 nan tag", "score"),
        ("q1 Q0 d0 2 0.5 tag", "docid"),  # d0 already listed for q1
    ],
)
def test_malformed_lines_name_file_line_field(tmp_path, line, field):
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 d0 1 0.9 tag\n\n" + line + "\n")
    with pytest.raises(InputError) as info:
        read_trec_run(path)
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 3, field)


def test_unwritable_ids_and_missing_file(tmp_path):
    with pytest.raises(InputError):
        write_trec_run({"q1": {"doc with space": 1.0}}, tmp_path / "r.trec")
    with pytest.raises(InputError):
        write_trec_run({"q1": {"d": 1.0}}, tmp_path / "r.trec", tag="two words")
    assert not (tmp_path / "r.trec").exists()
    with pytest.raises(InputError, match="not found"):
        read_trec_run(tmp_path / "absent.trec")


def test_per_query_csv(tmp_path):
    subsets = [
        SubsetScores("passkey_256", 2, None, {"ndcg@1": 0.5}, {"a": 1.0, "b": 0.0}),
        SubsetScores("passkey_512", 1, None, {"ndcg@1": 1 / 3}, {"a,1": 1 / 3}),
    ]
    task = TaskRecord("LongEmbed/passkey", "trec", "ndcg@1", "test")
    result = Result(ModelRecord("m"), task, RetrievalRecord("exact"), subsets)
    with open(write_per_query_csv(result, tmp_path / "pq.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = [(s.name, q, v) for s in subsets for q, v in s.per_query.items()]  # an older file: main only
    assert [(r["subset"], r["query_id"], float(r["score"])) for r in rows] == expected
    assert {(r["model"], r["task"], r["metric"]) for r in rows} == {("m", "LongEmbed/passkey", "ndcg@1")}


def test_export_cli_takes_folders_and_writes_to_stdout(tmp_path, capsys):
    """``harness export DIR --out -``: every results file of the folder, CSV on standard output;
    ``--out FILE`` writes the same bytes."""
    from harness.cli import main
    from harness.results import save_result

    task = TaskRecord("T", "trec", "ndcg@10", "test")
    for model, scores in (("a", {"q1": 0.5}), ("b", {"q1": 0.25, "q2": 1.0})):
        subsets = [SubsetScores("T", len(scores), None, {"ndcg@10": 0.5}, scores)]
        save_result(Result(ModelRecord(model), task, RetrievalRecord("exact"), subsets), tmp_path / "results")
    assert main(["export", str(tmp_path / "results"), "--out", "-"]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(text.splitlines()))
    assert [(r["model"], r["query_id"], float(r["score"])) for r in rows] == [
        ("a", "q1", 0.5),
        ("b", "q1", 0.25),
        ("b", "q2", 1.0),
    ]
    assert not (tmp_path / "-").exists()
    assert main(["export", str(tmp_path / "results"), "--out", str(tmp_path / "pq.csv")]) == 0
    assert (tmp_path / "pq.csv").read_text() == text
    assert main(["export", str(tmp_path / "empty"), "--out", "-"]) == 2


@needs_scifact
def test_per_query_csv_holds_every_metric_equal_to_pytrec_eval_per_query(tmp_path):
    """A BM25 run on SciFact queries: the CSV's trec rows equal pytrec_eval's per-query values on the
    run file the harness saved (1e-12: both float64 over the same ranking), and its card rows
    average to the card means of the results file."""
    from harness.cli import main
    from harness.results import load_results
    from harness.runfile import read_trec_run

    data = small_beir(tmp_path / "data" / "mini", n_docs=80, n_queries=10)
    out = tmp_path / "out"
    args = ["evaluate", "--model", "bm25", "--tasks", "mini", "--data-dir", str(data.parent)]
    assert main([*args, "--output", str(out), "--save-run", "--quiet"]) == 0
    assert main(["export", str(out), "--output", str(tmp_path / "pq.csv")]) == 0
    with open(tmp_path / "pq.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    [result] = load_results([out])
    [run_file] = (out / "runs").glob("*.trec")
    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    measures = {
        "ndcg@10": "ndcg_cut_10",
        "recall@100": "recall_100",
        "precision@5": "P_5",
        "map@100": "map_cut_100",
    }
    expected = pytrec_eval.RelevanceEvaluator(qrels, set(measures.values())).evaluate(read_trec_run(run_file))
    trec = {(r["query_id"], r["metric"]): float(r["score"]) for r in rows if r["convention"] == "trec"}
    for metric, measure in measures.items():
        for qid, values in expected.items():
            assert trec[(qid, metric)] == pytest.approx(values[measure], abs=1e-12), (qid, metric)
    card: dict[str, list[float]] = {}
    for r in rows:
        if r["convention"] == "card":
            card.setdefault(r["metric"], []).append(float(r["score"]))
    subset = result.subsets[0]
    assert set(card) == set(subset.card) and len(card["ndcg@10"]) == subset.n_queries == 10
    for metric, values in card.items():
        assert np.mean(values) == pytest.approx(subset.card[metric], abs=1e-12)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"bm25": {}}, "subsets[0].per_query_metrics"),
        ({"trec": []}, "subsets[0].per_query_metrics.trec"),
        ({"trec": {"ndcg@10": {"q1": "high"}}}, "subsets[0].per_query_metrics.trec.ndcg@10.q1"),
    ],
)
def test_malformed_per_query_metrics_name_the_field(tmp_path, value, field):
    from harness.results import result_from_dict

    task = TaskRecord("T", "trec", "ndcg@10", "test")
    result = Result(
        ModelRecord("m"), task, RetrievalRecord("exact"), [SubsetScores("T", 1, None, {"ndcg@10": 0.5}, {})]
    )
    data = result.to_dict()
    data["subsets"][0]["per_query_metrics"] = value
    with pytest.raises(InputError) as info:
        result_from_dict(data, "f.json")
    assert (info.value.file, info.value.field) == ("f.json", field)
