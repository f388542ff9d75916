"""MTEB interop: files written here as MTEB writes them (embeddings-benchmark/mteb
``TaskResult.to_disk``; the layout and values of embeddings-benchmark/results, e.g.
``results/lightonai__GTE-ModernColBERT-v1/c1647d1.../SciFact.json``), imported as published rows;
harness runs exported and checked against that format; round trips; malformed input."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.metrics import trec_metrics
from harness.mteb import export_mteb, import_mteb_results, mteb_tasks, mteb_tasks_for
from harness.mteb.mapping import harness_metric, mteb_metric
from harness.report.catalogue import family, is_published
from harness.results import (
    ModelRecord,
    Result,
    RetrievalRecord,
    SubsetScores,
    TaskRecord,
    load_results,
    save_result,
)
from harness.tasks import get_task, list_groups
from tasks.beir import CQADUPSTACK_FORUMS

K = (1, 3, 5, 10, 20, 100, 1000)  # MTEB's RetrievalEvaluator k_values
REVISION = "c1647d10d6edc6f70837f42f0a978f2df53f51dd"
FORUMS = ("Android", "English", "Gaming", "Gis", "Mathematica", "Physics", "Programmers", "Stats")
FORUMS += ("Tex", "Unix", "Webmasters", "Wordpress")
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
# The keys MTEB >= 1.12 writes for a retrieval subset (mteb/_evaluators/retrieval_metrics.py make_score_dict)
MTEB_KEYS = {f"{m}_at_{k}" for m in ("ndcg", "map", "recall", "precision", "mrr", "hit_rate") for k in K}
ENVELOPE = {
    "dataset_revision",
    "task_name",
    "mteb_version",
    "scores",
    "evaluation_time",
    "kg_co2_emissions",
    "date",
}


# --- MTEB's side, written as MTEB writes it --------------------------------------------------------


def mteb_subset(seed: int, main: str = "ndcg_at_10", **fixed: float) -> dict:
    """One ``scores[split]`` entry as mteb 2.x writes it: every metric at every k, ``accuracy``,
    ``nauc_*`` (NaN where undefined, as in real files), ``hit_rate_at_k``, then main_score,
    hf_subset, languages."""
    rng = random.Random(seed)
    entry: dict = {}
    for metric in ("ndcg", "map", "recall"):
        entry |= {f"{metric}_at_{k}": round(rng.random(), 5) for k in K}
    entry["accuracy"] = entry["recall_at_1"]
    entry |= {f"precision_at_{k}": round(rng.random() / k, 5) for k in K}
    entry |= {f"mrr_at_{k}": round(rng.random(), 6) for k in K}
    for metric in ("ndcg", "map", "recall", "precision", "mrr"):
        entry |= {f"nauc_{metric}_at_{k}_{s}": float("nan") for k in K for s in ("max", "std", "diff1")}
    entry |= {f"hit_rate_at_{k}": round(rng.random(), 5) for k in K}
    entry |= fixed
    return entry | {"main_score": entry[main], "hf_subset": "default", "languages": ["eng-Latn"]}


def task_result(
    name: str, splits: dict[str, dict], revision: str = "d56462d0e63a25450459c4f213e49ffdb866f7f9"
):
    return {
        "dataset_revision": revision,
        "task_name": name,
        "mteb_version": "2.10.3",
        "scores": {split: [entry] for split, entry in splits.items()},
        "evaluation_time": 16.05632495880127,
        "kg_co2_emissions": None,
        "date": 1772706994.77024,
    }


def write(path: Path, document: object, indent: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=indent))  # NaN written as NaN, like MTEB's json.dump
    return path


def model_meta(name: str, revision: str | None, n_parameters: int | None) -> dict:
    return {
        "loader_kwargs": {},
        "name": name,
        "revision": revision,
        "release_date": "2025-04-30",
        "languages": ["eng-Latn"],
        "n_parameters": n_parameters,
        "max_tokens": 8192.0,
        "framework": ["PyLate", "ColBERT"],
        "similarity_fn_name": "MaxSim",
        "model_type": ["late-interaction"],
        "loader": "MultiVectorModel",
        "is_cross_encoder": False,
    }


@pytest.fixture
def gte_folder(tmp_path: Path) -> Path:
    """``results/lightonai__GTE-ModernColBERT-v1/<revision>/`` as in the results repository."""
    folder = tmp_path / "results" / "lightonai__GTE-ModernColBERT-v1" / REVISION
    write(folder / "model_meta.json", model_meta("lightonai/GTE-ModernColBERT-v1", REVISION, 149000000), 4)
    return folder


# --- the harness's side --------------------------------------------------------------------------


def trec_table(seed: int, extra: tuple[str, ...] = ()) -> dict[str, float]:
    """A real trec-convention table from harness.metrics over a random run (plus a task's ``extra``
    metrics: LoTTE's ``success@5``)."""
    rng = random.Random(seed)
    qrels = {f"q{q}": {f"d{d}": rng.randint(1, 2) for d in rng.sample(range(60), 4)} for q in range(8)}
    run = {f"q{q}": {f"d{d}": rng.random() for d in range(60)} for q in range(8)}
    return trec_metrics(qrels, run, extra=extra).means


def run_result(
    task_name: str, subset_names: list[str], model_id: str = "all-MiniLM-L6-v2", seed: int = 0, **changes
) -> Result:
    task = get_task(task_name)
    subsets = [
        SubsetScores(n, 8, {"ndcg@10": 0.123}, trec_table(i + seed, task.metrics), {"q1": 0.5})
        for i, n in enumerate(subset_names)
    ]
    model = ModelRecord(model_id, "f" * 64, "abc123", "dense", 22713216)
    return Result(
        model=replace(model, **changes),
        task=TaskRecord(task.name, task.convention, task.main_metric, task.eval_split, source="test"),
        retrieval=RetrievalRecord("exact", 1000),
        subsets=subsets,
        timings={"total_s": 12.5},
        created="2026-11-25T21:00:00+00:00",
    )  # fmt: skip


# --- the mapping -----------------------------------------------------------------------------------


def test_every_suite_task_has_its_mteb_task_with_the_same_main_metric():
    for suite in ("BEIR", "NanoBEIR", "LongEmbed"):
        for name in list_groups()[suite]:
            assert mteb_tasks_for(name), name
    tasks = mteb_tasks()
    for task in tasks.values():
        assert get_task(task.harness_task).main_metric == harness_metric(task.main_score), task.name
    cqa = mteb_tasks_for("BEIR/cqadupstack")
    assert [t.name for t in cqa] == [f"CQADupstack{f}Retrieval" for f in FORUMS]
    assert [t.splits[0][1] for t in cqa] == [f"cqadupstack_{f}" for f in CQADUPSTACK_FORUMS]
    # names as MTEB spells them (mteb/tasks/retrieval/eng/*.py)
    assert tasks["NanoClimateFeverRetrieval", "default"].harness_task == "NanoClimateFEVER"
    assert tasks["NanoQuoraRetrieval", "default"].harness_task == "NanoQuoraRetrieval"
    assert tasks["Touche2020", "default"].harness_task == "BEIR/webis-touche2020"
    assert tasks["MSMARCO", "default"].splits == (("dev", "msmarco"),)
    assert tasks["LEMBSummScreenFDRetrieval", "default"].splits == (("validation", "summ_screen_fd"),)


def test_one_mteb_task_holds_several_harness_tasks_by_hf_subset():
    """LoTTE, MLDR and multilingual NanoBEIR: the mapping is keyed by (MTEB name, HF subset), each
    subset with the languages MTEB writes for it; LoTTE's main score is MTEB's hit rate."""
    tasks = mteb_tasks()
    lotte = [t for t in tasks.values() if t.name == "LoTTE"]
    assert len(lotte) == 10 and {t.main_score for t in lotte} == {"hit_rate_at_5"}
    writing = tasks["LoTTE", "writing_search"]
    assert (writing.harness_task, writing.splits, writing.languages) == (
        "LoTTE/writing/search",
        (("test", "writing_search"),),
        ("eng-Latn",),
    )
    assert tasks["MultiLongDocRetrieval", "zh"].harness_task == "MLDR/zh"
    assert tasks["MultiLongDocRetrieval", "zh"].languages == ("cmn-Hans",)
    assert tasks["MultiLongDocRetrieval", "ko"].languages == ("kor-Hang",)
    nano_ko = tasks["MultilingualNanoArguAnaRetrieval", "ko"]
    assert (nano_ko.harness_task, nano_ko.languages) == ("NanoBEIR-ko", ("kor-Kore",))  # as mteb spells it
    assert [t.name for t in mteb_tasks_for("NanoBEIR-fr")][:2] == [
        "MultilingualNanoClimateFeverRetrieval",
        "MultilingualNanoDBPediaRetrieval",
    ]
    assert {t.hf_subset for t in mteb_tasks_for("NanoBEIR-fr")} == {"fr"}
    assert tasks["SciFact", "default"].languages == ("eng-Latn",)


def test_success_is_mteb_hit_rate_both_ways():
    assert harness_metric("hit_rate_at_5") == "success@5" and mteb_metric("success@5") == "hit_rate_at_5"
    assert harness_metric("ndcg_at_20") == "ndcg@20" and mteb_metric("map@100") == "map_at_100"
    assert mteb_metric("hit_rate@5") is None and harness_metric("success_at_5") is None
    assert mteb_metric("accuracy@5") is None and harness_metric("accuracy") is None
    # files before mteb's rename call the hit rate cv_recall (mteb PR #4128, #4142); exports use the new name
    assert harness_metric("cv_recall_at_5") == "success@5"
    assert harness_metric("cv_recall_at_1000") == "success@1000"
    assert harness_metric("cv_recallx_at_5") is None and mteb_metric("success@1") == "hit_rate_at_1"


def test_hit_rate_and_cv_recall_that_disagree_are_refused(gte_folder: Path):
    figures = mteb_subset(1, ndcg_at_10=0.5)
    figures["cv_recall_at_5"] = round(figures["hit_rate_at_5"] + 0.01, 5)  # one figure, two values
    scifact = write(gte_folder / "SciFact.json", task_result("SciFact", {"test": figures}))
    with pytest.raises(InputError, match=r"scores\.test\[0\]\.cv_recall_at_5"):
        import_mteb_results(scifact)
    figures["cv_recall_at_5"] = figures["hit_rate_at_5"]  # the same value under both names: one metric
    write(scifact, task_result("SciFact", {"test": figures}))
    (row,) = import_mteb_results(scifact)
    assert row.subsets[0].trec["success@5"] == figures["hit_rate_at_5"]


# --- import --------------------------------------------------------------------------------------


def test_import_results_repo_folder_gives_a_published_beir_row(gte_folder: Path, tmp_path: Path):
    # the figures of the real GTE-ModernColBERT-v1 SciFact.json (mteb 2.10.3)
    real = {"ndcg_at_10": 0.76333, "map_at_100": 0.72341, "recall_at_1000": 0.99667, "mrr_at_10": 0.733489}
    scifact = write(gte_folder / "SciFact.json", task_result("SciFact", {"test": mteb_subset(1, **real)}))
    classification = {"accuracy": 0.8, "main_score": 0.8, "hf_subset": "default", "languages": ["eng-Latn"]}
    banking = write(
        gte_folder / "Banking77Classification.json",
        task_result("Banking77Classification", {"test": classification}),
    )
    (gte_folder / "run_settings.jsonl").write_text("{}\n")

    rows = import_mteb_results(tmp_path / "results")

    assert len(rows) == 1
    row = rows[0]
    assert row.model_id == "GTE-ModernColBERT-v1"  # the registered name of lightonai/GTE-ModernColBERT-v1
    assert row.model.revision == REVISION and row.model.parameters == 149000000
    assert row.task_name == "BEIR/scifact" and family(row.task_name) == "BEIR"
    assert (row.task.convention, row.task.main_metric, row.task.split) == ("trec", "ndcg@10", "test")
    assert is_published(row) and row.published["source"] == f"MTEB results: {scifact}"
    assert "mteb_version 2.10.3" in row.published["note"]
    (subset,) = row.subsets
    assert subset.name == "scifact" and subset.card is None
    assert subset.trec["ndcg@10"] == 0.76333 and row.main_score == 0.76333
    assert subset.trec["map@100"] == 0.72341 and subset.trec["recall@1000"] == 0.99667
    assert subset.trec["mrr@10"] == 0.733489
    # every rank metric MTEB wrote is kept, under the harness's spelling; the rest is listed
    source = mteb_subset(1, **real)
    assert subset.trec["ndcg@20"] == source["ndcg_at_20"] and subset.trec["mrr@1"] == source["mrr_at_1"]
    assert subset.trec["success@5"] == source["hit_rate_at_5"]  # MTEB's hit rate is Success@k
    assert len(subset.trec) == 6 * len(K)
    assert "accuracy" in rows.dropped[str(scifact)] and "nauc_ndcg_at_10_max" in rows.dropped[str(scifact)]
    assert "not kept (no harness metric): accuracy, nauc_* (105 keys)" in row.published["note"]
    assert "Banking77Classification" in rows.skipped[str(banking)]
    assert row.created.startswith("2026-03-05")  # MTEB's "date"
    # a leaderboard input: saved and loaded as any results file
    back = load_results([save_result(row, tmp_path / "out")])[0]
    assert back.subsets[0].trec == subset.trec and is_published(back)


def test_import_msmarco_reads_the_dev_split(tmp_path: Path):
    folder = tmp_path / "org__m" / "rev"
    write(folder / "MSMARCO.json", task_result("MSMARCO", {"dev": mteb_subset(2, ndcg_at_10=0.4)}))
    (row,) = import_mteb_results(folder)
    assert row.task_name == "BEIR/msmarco" and row.task.split == "dev" and row.main_score == 0.4
    wrong = write(tmp_path / "x" / "MSMARCO.json", task_result("MSMARCO", {"test": mteb_subset(2)}))
    with pytest.raises(InputError) as err:
        import_mteb_results(wrong)
    assert (err.value.file, err.value.field) == (str(wrong), "scores.dev")


def test_import_passkey_context_lengths_are_subsets(gte_folder: Path):
    splits = {f"test_{n}": mteb_subset(n, "ndcg_at_1", ndcg_at_1=i / 8) for i, n in enumerate(LENGTHS)}
    write(gte_folder / "LEMBPasskeyRetrieval.json", task_result("LEMBPasskeyRetrieval", splits))
    (row,) = import_mteb_results(gte_folder)
    assert row.task_name == "LongEmbed/passkey" and row.task.main_metric == "ndcg@1"
    assert [s.name for s in row.subsets] == [f"passkey_{n}" for n in LENGTHS]
    assert [s.trec["ndcg@1"] for s in row.subsets] == [i / 8 for i in range(8)]
    assert row.main_score == pytest.approx(sum(range(8)) / 64)


def test_import_cqadupstack_needs_all_twelve_forums(gte_folder: Path):
    for i, forum in enumerate(FORUMS):
        name = f"CQADupstack{forum}Retrieval"
        write(gte_folder / f"{name}.json", task_result(name, {"test": mteb_subset(i, ndcg_at_10=i / 100)}))
    aggregate = {"ndcg_at_10": 0.41, "main_score": 0.41, "hf_subset": "default", "languages": ["eng-Latn"]}
    write(
        gte_folder / "CQADupstackRetrieval.json",
        task_result("CQADupstackRetrieval", {"test": aggregate}, "1"),
    )

    rows = import_mteb_results(gte_folder)
    (row,) = rows
    assert row.task_name == "BEIR/cqadupstack"
    assert [s.name for s in row.subsets] == [f"cqadupstack_{f.lower()}" for f in FORUMS]
    assert row.main_score == pytest.approx(sum(range(12)) / 1200)
    assert "CQADupstackRetrieval" in rows.skipped[str(gte_folder / "CQADupstackRetrieval.json")]

    (gte_folder / "CQADupstackTexRetrieval.json").unlink()
    partial = import_mteb_results(gte_folder)
    assert list(partial) == []
    reason = partial.skipped[str(gte_folder / "CQADupstackAndroidRetrieval.json")]
    assert "CQADupstackTexRetrieval" in reason


def test_import_nanobeir_and_model_named_by_folders(tmp_path: Path):
    folder = tmp_path / "my-org__my model" / "no_revision_available"
    write(
        folder / "NanoClimateFeverRetrieval.json",
        task_result("NanoClimateFeverRetrieval", {"train": mteb_subset(3)}),
    )
    (row,) = import_mteb_results(folder)
    assert row.task_name == "NanoClimateFEVER" and family(row.task_name) == "NanoBEIR"
    assert row.task.convention == "trec"  # MTEB's figures, though harness NanoBEIR runs report card ones
    assert row.subsets[0].name == "NanoClimateFEVER"
    assert (row.model_id, row.model.revision, row.model.parameters) == ("my-org/my model", None, None)
    assert import_mteb_results(folder, model_id="Mine")[0].model_id == "Mine"


def test_import_pre_1_11_file(tmp_path: Path):
    # mteb < 1.11: mteb_dataset_name and {split: {metric: value}} at the top level, no main_score
    test = {"evaluation_time": 12.3, "ndcg_at_1": 0.5, "ndcg_at_10": 0.64508, "map_at_10": 0.59}
    old = {"mteb_version": "1.1.1", "dataset_revision": None, "mteb_dataset_name": "SciFact", "test": test}
    path = write(tmp_path / "sentence-transformers__all-MiniLM-L6-v2" / "r1" / "SciFact.json", old)
    (row,) = import_mteb_results(path)
    assert row.model_id == "all-MiniLM-L6-v2" and row.task_name == "BEIR/scifact"
    assert row.subsets[0].trec == {"ndcg@1": 0.5, "ndcg@10": 0.64508, "map@10": 0.59}


def _malformed(entry: dict) -> dict:
    return task_result("SciFact", {"test": entry})


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({**_malformed(mteb_subset(4)), "scores": [1]}, "scores"),
        (_malformed(mteb_subset(4) | {"ndcg_at_10": "0.5"}), "scores.test[0].ndcg_at_10"),
        (_malformed(mteb_subset(4) | {"map_at_100": float("nan")}), "scores.test[0].map_at_100"),
        (_malformed(mteb_subset(4) | {"main_score": 0.99}), "scores.test[0].main_score"),
        (_malformed(mteb_subset(4) | {"hf_subset": "en"}), "scores.test"),
        (task_result("SciFact", {"dev": mteb_subset(4)}), "scores.test"),
        ({"scores": {}}, "task_name"),
    ],
)
def test_malformed_file_names_file_and_field(tmp_path: Path, document: dict, field: str):
    path = write(tmp_path / "SciFact.json", document)
    with pytest.raises(InputError) as err:
        import_mteb_results(path)
    assert (err.value.file, err.value.field) == (str(path), field)
    assert str(path) in str(err.value) and field in str(err.value)


def test_malformed_model_meta_and_json(gte_folder: Path):
    write(gte_folder / "SciFact.json", task_result("SciFact", {"test": mteb_subset(5)}))
    meta = write(
        gte_folder / "model_meta.json", model_meta("lightonai/GTE-ModernColBERT-v1", REVISION, "149M")
    )
    with pytest.raises(InputError) as err:
        import_mteb_results(gte_folder)
    assert (err.value.file, err.value.field) == (str(meta), "n_parameters")
    broken = gte_folder / "NQ.json"
    broken.write_text('{\n  "task_name": "NQ",\n  "scores": {\n')
    with pytest.raises(InputError) as err:
        import_mteb_results(broken)
    assert err.value.file == str(broken) and err.value.line is not None


# --- export --------------------------------------------------------------------------------------


def test_export_writes_mteb_layout(tmp_path: Path):
    result = run_result("BEIR/scifact", ["scifact"])
    paths = export_mteb(result, tmp_path)
    folder = tmp_path / "sentence-transformers__all-MiniLM-L6-v2" / "abc123"
    assert paths == [folder / "SciFact.json", folder / "model_meta.json"]
    document = json.loads(paths[0].read_text())
    assert set(document) == ENVELOPE
    assert document["task_name"] == "SciFact" and document["mteb_version"] is None
    assert document["evaluation_time"] == 12.5 and isinstance(document["date"], float)
    assert list(document["scores"]) == ["test"]
    (entry,) = document["scores"]["test"]
    assert entry["hf_subset"] == "default" and entry["languages"] == ["eng-Latn"]
    trec = result.subsets[0].trec
    assert entry["main_score"] == trec["ndcg@10"] == entry["ndcg_at_10"]
    metrics = set(entry) - {"main_score", "hf_subset", "languages"}
    assert metrics <= MTEB_KEYS and not any("@" in k for k in metrics)
    assert {"ndcg_at_10", "map_at_100", "recall_at_1000", "precision_at_1", "mrr_at_10"} <= metrics
    assert entry["map_at_100"] == trec["map@100"] and entry["precision_at_5"] == trec["precision@5"]
    assert all(0.0 <= entry[k] <= 1.0 for k in metrics)  # fractions, as MTEB stores them
    meta = json.loads(paths[1].read_text())
    assert (meta["name"], meta["revision"], meta["n_parameters"]) == (
        "sentence-transformers/all-MiniLM-L6-v2",
        "abc123",
        22713216,
    )
    assert meta["model_type"] == ["dense"] and meta["is_cross_encoder"] is False


def test_export_split_and_file_per_mteb_task(tmp_path: Path):
    (msmarco, _) = export_mteb(run_result("BEIR/msmarco", ["msmarco"]), tmp_path)
    assert list(json.loads(msmarco.read_text())["scores"]) == ["dev"]
    passkey = export_mteb(run_result("LongEmbed/passkey", [f"passkey_{n}" for n in LENGTHS]), tmp_path)
    assert [p.name for p in passkey] == ["LEMBPasskeyRetrieval.json"]  # model_meta.json already there
    document = json.loads(passkey[0].read_text())
    assert list(document["scores"]) == [f"test_{n}" for n in LENGTHS]
    assert all(s[0]["main_score"] == s[0]["ndcg_at_1"] for s in document["scores"].values())
    cqa = export_mteb(
        run_result("BEIR/cqadupstack", [f"cqadupstack_{f}" for f in CQADUPSTACK_FORUMS]), tmp_path
    )
    assert [p.name for p in cqa] == [f"CQADupstack{f}Retrieval.json" for f in FORUMS]
    assert json.loads(cqa[0].read_text())["evaluation_time"] is None  # the run's time covers all 12


@pytest.mark.parametrize(
    ("task", "subsets"),
    [
        ("BEIR/scifact", ["scifact"]),
        ("NanoSciFact", ["NanoSciFact"]),
        ("LongEmbed/needle", [f"needle_{n}" for n in LENGTHS]),
        ("BEIR/cqadupstack", [f"cqadupstack_{f}" for f in CQADUPSTACK_FORUMS]),
    ],
)
def test_round_trip_keeps_every_shared_metric(tmp_path: Path, task: str, subsets: list[str]):
    result = run_result(task, subsets)
    export_mteb(result, tmp_path)
    (back,) = import_mteb_results(tmp_path)
    assert (back.model_id, back.model.revision, back.task_name) == ("all-MiniLM-L6-v2", "abc123", task)
    assert [s.name for s in back.subsets] == subsets
    for mine, theirs in zip(result.subsets, back.subsets, strict=True):
        assert theirs.trec == mine.trec  # every harness trec metric is an MTEB one
    assert back.main_score == pytest.approx(
        sum(s.trec[result.task.main_metric] for s in result.subsets) / len(subsets)
    )


def test_export_refusals_write_nothing(tmp_path: Path):
    cases = [
        (run_result("BEIR/scifact", ["scifact"], kind="published"), "published"),
        (run_result("LongEmbed/passkey", ["passkey_256"]), "subsets"),
        (run_result("BEIR/scifact", ["scifact"], model_id="GTE-ModernColBERT-v1 (32k)"), "model_name"),
        (run_result("BEIR/scifact", ["scifact"], model_id="/home/me/model"), "model.id"),
        (run_result("BEIR/scifact", ["scifact"], revision="../.."), "model.revision"),
    ]
    adhoc = run_result("BEIR/scifact", ["scifact"])
    adhoc = replace(adhoc, task=replace(adhoc.task, name="myfolder"))
    card_only = run_result("NanoSciFact", ["NanoSciFact"])
    card_only = replace(card_only, subsets=[replace(card_only.subsets[0], trec=None)])
    cases += [(adhoc, "task.name"), (card_only, "subsets[0].trec")]
    for result, field in cases:
        with pytest.raises(InputError) as err:
            export_mteb(result, tmp_path)
        assert err.value.field == field
    assert list(tmp_path.iterdir()) == []
    # a variant exports once named; an MTEB model_meta.json already there is kept
    variant = run_result("BEIR/scifact", ["scifact"], model_id="GTE-ModernColBERT-v1 (32k)", kind="colbert")
    folder = tmp_path / "me__gte-32k" / "abc123"
    write(
        folder / "model_meta.json", {"name": "me/gte-32k", "revision": "abc123", "framework": ["PyLate"]}, 4
    )
    assert export_mteb(variant, tmp_path, model_name="me/gte-32k") == [folder / "SciFact.json"]
    assert json.loads((folder / "model_meta.json").read_text())["framework"] == ["PyLate"]


def test_cli_export_then_import_puts_the_run_on_the_leaderboard_as_an_mteb_row(tmp_path: Path, capsys):
    """``harness mteb export`` of a saved run, then ``harness mteb import`` of what it wrote: one
    published BEIR row with the run's trec table, its source the MTEB file; both commands say where."""
    from harness.cli import main
    from harness.report import leaderboard_tables
    from harness.results import load_results, save_result

    run = run_result("BEIR/scifact", ["scifact"])
    save_result(run, tmp_path / "runs")
    assert main(["mteb", "export", str(tmp_path / "runs"), "--output", str(tmp_path / "mteb")]) == 0
    assert f"under {tmp_path / 'mteb'}/" in capsys.readouterr().out
    [file] = (tmp_path / "mteb").rglob("SciFact.json")
    assert main(["mteb", "import", str(tmp_path / "mteb"), "--output", str(tmp_path / "rows")]) == 0
    assert f"to {tmp_path / 'rows'}/" in capsys.readouterr().out
    [row] = load_results([tmp_path / "rows"])
    assert row.published["source"] == f"MTEB results: {file}"
    shared = set(row.subsets[0].trec) & set(run.subsets[0].trec)
    assert shared and all(row.subsets[0].trec[m] == run.subsets[0].trec[m] for m in shared)
    [table] = leaderboard_tables([row], n_resamples=10)
    assert table.family == "BEIR" and table.rows[0].published
    assert main(["mteb", "import", str(tmp_path / "runs"), "--output", str(tmp_path / "x")]) == 2


def test_a_file_outside_the_results_layout_needs_a_model_name(tmp_path: Path):
    """Folders that are not ``<org>__<model>/<revision>/`` name no model: an error, unless
    ``model_id`` names it (then no revision is made up from a folder name)."""
    file = write(tmp_path / "plain" / "SciFact.json", task_result("SciFact", {"test": mteb_subset(3)}))
    with pytest.raises(InputError, match="--model-name") as err:
        import_mteb_results(file)
    assert err.value.file == str(file.parent)
    (row,) = import_mteb_results(file, model_id="my-model")
    assert row.model_id == "my-model" and row.model.revision is None


def test_mteb_rows_stay_apart_from_the_model_cards_rows(gte_folder: Path):
    """The same model's figures from its model card and from MTEB's files: two rows, each labelled
    with where it comes from."""
    from harness.report import leaderboard_tables
    from harness.results import load_results

    card = [r for r in load_results([Path(__file__).parents[1] / "results" / "published"])]
    write(gte_folder / "SciFact.json", task_result("SciFact", {"test": mteb_subset(7, ndcg_at_10=0.7)}))
    imported = import_mteb_results(gte_folder)
    [beir] = [t for t in leaderboard_tables(card + list(imported), n_resamples=10) if t.family == "BEIR"]
    labels = [r.label for r in beir.rows if r.model_id == "GTE-ModernColBERT-v1"]
    assert sorted(labels) == ["GTE-ModernColBERT-v1 @c1647d1 † MTEB", "GTE-ModernColBERT-v1 †"]
    mteb_row = next(r for r in beir.rows if r.label.endswith("MTEB"))
    assert (
        mteb_row.source.startswith("MTEB results: ")
        and mteb_row.cells[beir.columns.index("SciFact")].value == 0.7
    )


# --- issue 28: what MTEB's tools accept, notes, names ------------------------------------------


def test_export_without_a_revision_files_it_as_mteb_does_and_says_so(tmp_path: Path):
    """No revision: ``no_revision_available`` in the folder *and* model_meta.json (a null revision
    makes MTEB's ``to_dataframe()`` drop the model), with a note asking for ``--revision``; a pinned
    commit gives no such note, a short one a note that the results repository wants 40 characters."""
    bare = export_mteb(run_result("BEIR/scifact", ["scifact"], revision=None), tmp_path / "a")
    folder = tmp_path / "a" / "sentence-transformers__all-MiniLM-L6-v2" / "no_revision_available"
    assert bare == [folder / "SciFact.json", folder / "model_meta.json"]
    assert json.loads((folder / "model_meta.json").read_text())["revision"] == "no_revision_available"
    assert any("no model revision" in n and "--revision" in n for n in bare.notes)
    pinned = export_mteb(
        run_result("BEIR/scifact", ["scifact"], revision=None), tmp_path / "b", revision=REVISION
    )
    assert pinned[0].parent.name == REVISION and not any("--revision" in n for n in pinned.notes)
    assert json.loads(pinned[1].read_text())["revision"] == REVISION
    short = export_mteb(run_result("BEIR/scifact", ["scifact"]), tmp_path / "c")
    assert any("'abc123' is not a full 40-character commit" in n for n in short.notes)


def test_export_says_what_it_wrote_as_placeholders(tmp_path: Path):
    """``mteb_version: null`` and MTEB's dataset-revision placeholder are written with a note each."""
    export = export_mteb(run_result("BEIR/scifact", ["scifact"]), tmp_path, revision=REVISION)
    assert json.loads(export[0].read_text())["mteb_version"] is None
    assert any(n.startswith("mteb_version is null") and "run_settings.jsonl" in n for n in export.notes)
    assert any("'dataset revision not available'" in n for n in export.notes)
    given = export_mteb(run_result("BEIR/scifact", ["scifact"]), tmp_path / "d", dataset_revision="r1")
    assert not any("dataset revision" in n for n in given.notes)
    assert json.loads(given[0].read_text())["dataset_revision"] == "r1"


def test_export_needs_an_organisation_in_the_model_name(tmp_path: Path):
    """MTEB's ModelMeta refuses ``bm25``: an InputError asking for ``--model-name org/name``."""
    bm25 = run_result("BEIR/scifact", ["scifact"], model_id="bm25", kind="bm25", revision=None)
    with pytest.raises(InputError, match="org/name") as err:
        export_mteb(bm25, tmp_path)
    assert err.value.field == "model.id" and list(tmp_path.iterdir()) == []
    with pytest.raises(InputError) as err:
        export_mteb(bm25, tmp_path, model_name="bm25s")
    assert err.value.field == "model_name"
    paths = export_mteb(bm25, tmp_path, model_name="me/bm25s", revision="1")
    meta = json.loads(paths[-1].read_text())
    assert (meta["name"], meta["revision"], meta["model_type"]) == ("me/bm25s", "1", ["sparse"])


def test_cli_export_of_a_folder_skips_adhoc_runs_and_prints_the_notes(tmp_path: Path, capsys):
    """An ad-hoc task's file is skipped with a note naming it; every run is checked before any file
    is written (a run the export refuses leaves the output folder empty)."""
    from harness.cli import main

    runs = tmp_path / "runs"
    save_result(run_result("BEIR/scifact", ["scifact"]), runs)
    adhoc = run_result("BEIR/scifact", ["scifact"], model_id="other")
    adhoc_file = save_result(replace(adhoc, task=replace(adhoc.task, name="myfolder")), runs)
    out = tmp_path / "mteb"
    assert main(["mteb", "export", str(runs), "--revision", REVISION, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"note: skipped {adhoc_file}: myfolder has no MTEB task" in printed
    assert "note: mteb_version is null" in printed and "dataset revision not available" in printed
    assert sorted(p.name for p in out.rglob("*.json")) == ["SciFact.json", "model_meta.json"]
    assert next(out.rglob("SciFact.json")).parent.name == REVISION

    save_result(run_result("BEIR/nq", ["nq"], model_id="bm25", kind="bm25", revision=None), runs)
    assert main(["mteb", "export", str(runs), "--output", str(tmp_path / "none")]) == 2
    assert "org/name" in capsys.readouterr().err and not (tmp_path / "none").exists()
    only_adhoc = tmp_path / "adhoc"
    save_result(replace(adhoc, task=replace(adhoc.task, name="myfolder")), only_adhoc)
    assert main(["mteb", "export", str(only_adhoc), "--output", str(tmp_path / "x")]) == 2


def test_cli_import_lists_the_keys_it_did_not_keep(gte_folder: Path, tmp_path: Path, capsys):
    from harness.cli import main

    write(gte_folder / "SciFact.json", task_result("SciFact", {"test": mteb_subset(9)}))
    assert main(["mteb", "import", str(gte_folder), "--output", str(tmp_path / "rows")]) == 0
    assert "not kept: accuracy, nauc_* (105 keys)" in capsys.readouterr().out


def _model_folder(root: Path, hub_id: str, max_tokens: int | None) -> Path:
    folder = root / hub_id.replace("/", "__") / REVISION
    write(folder / "model_meta.json", model_meta(hub_id, REVISION, None) | {"max_tokens": max_tokens}, 4)
    return folder


def test_import_names_rows_as_the_registry_and_the_card_do(tmp_path: Path, monkeypatch):
    """MTEB's ``BAAI/bge-small-en-v1.5`` is the registered ``bge-small-en-v1.5`` (its prompt override
    is MTEB's instruction too) and its run exports back under the Hub id; a LongEmbed figure lands on
    the registered length variant at the model's ``max_tokens``, the BEIR figure of the same folder
    on the default-length model."""
    from harness.models import find_model

    bge = _model_folder(tmp_path / "bge", "BAAI/bge-small-en-v1.5", 512)
    write(bge / "SciFact.json", task_result("SciFact", {"test": mteb_subset(1)}))
    (row,) = import_mteb_results(bge)
    assert row.model_id == "bge-small-en-v1.5"
    assert row.model.size_group == find_model("bge-small-en-v1.5").size_group
    arctic = _model_folder(tmp_path / "arctic", "Snowflake/snowflake-arctic-embed-s", 512)
    write(arctic / "SciFact.json", task_result("SciFact", {"test": mteb_subset(2)}))
    assert import_mteb_results(arctic)[0].model_id == "snowflake-arctic-embed-s"
    assert import_mteb_results(arctic, model_id="snowflake-s")[0].model_id == "snowflake-arctic-embed-s"
    exported = export_mteb(
        run_result("BEIR/scifact", ["scifact"], model_id="bge-small-en-v1.5"), tmp_path / "x"
    )
    assert exported[0].parent.parent.name == "BAAI__bge-small-en-v1.5"

    gte = _model_folder(tmp_path / "gte", "lightonai/GTE-ModernColBERT-v1", 4096)
    write(gte / "SciFact.json", task_result("SciFact", {"test": mteb_subset(3)}))
    write(gte / "LEMBQMSumRetrieval.json", task_result("LEMBQMSumRetrieval", {"test": mteb_subset(4)}))
    ids = {r.task_name: r for r in import_mteb_results(gte)}
    assert ids["BEIR/scifact"].model_id == "GTE-ModernColBERT-v1"
    assert ids["LongEmbed/qmsum"].model_id == "GTE-ModernColBERT-v1 (4k)"
    assert "documents up to max_tokens 4096" in ids["LongEmbed/qmsum"].published["note"]

    # MTEB's real figure is at 8192 tokens: the registered "(8k)" entry, not the default-length row
    write(gte / "model_meta.json", model_meta("lightonai/GTE-ModernColBERT-v1", REVISION, None), 4)
    ids = {r.task_name: r.model_id for r in import_mteb_results(gte)}
    assert ids == {"BEIR/scifact": "GTE-ModernColBERT-v1", "LongEmbed/qmsum": "GTE-ModernColBERT-v1 (8k)"}


# --- one MTEB task, several harness tasks (HF subsets: LoTTE's domains, MLDR's languages) ----------

NANO = [t.name for t in mteb_tasks_for("NanoBEIR-fr")]  # the 13 MultilingualNano<Name>Retrieval
NANO_SETS = [s for t in mteb_tasks_for("NanoBEIR-fr") for _, s in t.splits]  # NanoBEIR-<lang>'s subsets


def subset_entry(seed: int, hf_subset: str, languages: list[str], main: str = "ndcg_at_10") -> dict:
    return mteb_subset(seed, main) | {"hf_subset": hf_subset, "languages": languages}


def test_import_a_file_of_several_subsets_gives_a_row_per_harness_task(gte_folder: Path):
    """``LoTTE.json`` as MTEB writes it (one entry per subset it ran): each mapped subset a row of its
    harness task, its hit rate the harness's success@k, its main score MTEB's ``hit_rate_at_5``."""
    entries = [
        subset_entry(i, s, ["eng-Latn"], "hit_rate_at_5")
        for i, s in enumerate(("writing_search", "science_forum"))
    ]
    document = task_result("LoTTE", {}) | {"scores": {"test": entries}}
    lotte = write(gte_folder / "LoTTE.json", document)
    mldr = [subset_entry(7, "fr", ["fra-Latn"]), subset_entry(8, "ja", ["jpn-Jpan"])]
    write(
        gte_folder / "MultiLongDocRetrieval.json",
        task_result("MultiLongDocRetrieval", {}) | {"scores": {"test": mldr}},
    )

    rows = {r.task_name: r for r in import_mteb_results(gte_folder)}
    assert sorted(rows) == ["LoTTE/science/forum", "LoTTE/writing/search", "MLDR/fr", "MLDR/ja"]
    for entry in entries:
        domain, query_set = entry["hf_subset"].split("_")
        row = rows[f"LoTTE/{domain}/{query_set}"]
        (subset,) = row.subsets
        assert subset.name == entry["hf_subset"] and row.task.main_metric == "success@5"
        assert row.main_score == subset.trec["success@5"] == entry["hit_rate_at_5"] == entry["main_score"]
        assert row.published["source"] == f"MTEB results: {lotte}"
        assert row.task.source == f"MTEB LoTTE (hf_subset {entry['hf_subset']}, split test)"
    assert rows["MLDR/ja"].main_score == mldr[1]["ndcg_at_10"] and rows["MLDR/ja"].subsets[0].name == "ja"
    assert "accuracy" in import_mteb_results(gte_folder).dropped[str(lotte)]

    # a file of the task with no mapped subset names the field; a default-subset task still needs its own
    bad = write(gte_folder.parent / "x" / "LoTTE.json", task_result("LoTTE", {"test": mteb_subset(1)}))
    with pytest.raises(InputError, match="writing_search") as err:
        import_mteb_results(bad, model_id="m")
    assert (err.value.file, err.value.field) == (str(bad), "scores")


def test_import_multilingual_nanobeir_needs_its_13_files_per_language(gte_folder: Path):
    for i, name in enumerate(NANO):
        entries = [subset_entry(i, "fr", ["fra-Latn"]), subset_entry(50 + i, "ko", ["kor-Kore"])]
        write(gte_folder / f"{name}.json", task_result(name, {}) | {"scores": {"test": entries}})
    rows = {r.task_name: r for r in import_mteb_results(gte_folder)}
    assert sorted(rows) == ["NanoBEIR-fr", "NanoBEIR-ko"]
    assert [s.name for s in rows["NanoBEIR-ko"].subsets] == NANO_SETS
    assert rows["NanoBEIR-ko"].subsets[0].trec["ndcg@10"] == subset_entry(50, "ko", [])["ndcg_at_10"]
    assert rows["NanoBEIR-fr"].task.convention == "trec" and "hf_subset fr" in rows["NanoBEIR-fr"].task.source

    (gte_folder / f"{NANO[3]}.json").unlink()
    partial = import_mteb_results(gte_folder)
    assert list(partial) == []
    reason = partial.skipped[str(gte_folder / f"{NANO[0]}.json")]
    assert "NanoBEIR-fr needs" in reason and "NanoBEIR-ko needs" in reason and NANO[3] in reason


def test_export_merges_a_models_runs_of_one_mteb_task_into_one_file(tmp_path: Path):
    """Two LoTTE domains: one ``LoTTE.json``, an entry per subset (hf_subset, languages, hit_rate_at_5
    as main score), in the mapping's order whatever the runs' order; the time is the runs' sum. The
    round trip gives both rows back with every trec metric."""
    science = run_result("LoTTE/science/forum", ["science_forum"], seed=3)
    writing = run_result("LoTTE/writing/search", ["writing_search"], seed=5)
    paths = export_mteb([science, writing], tmp_path)
    folder = tmp_path / "sentence-transformers__all-MiniLM-L6-v2" / "abc123"
    assert paths == [folder / "LoTTE.json", folder / "model_meta.json"]
    document = json.loads(paths[0].read_text())
    assert set(document) == ENVELOPE and document["evaluation_time"] == 25.0
    assert list(document["scores"]) == ["test"]
    entries = document["scores"]["test"]
    assert [e["hf_subset"] for e in entries] == [
        "writing_search",
        "science_forum",
    ]  # LoTTE's registration order
    for entry, run in zip(entries, (writing, science), strict=True):
        trec = run.subsets[0].trec
        assert entry["languages"] == ["eng-Latn"]
        assert entry["main_score"] == entry["hit_rate_at_5"] == trec["success@5"] == run.main_score
        assert "success_at_5" not in entry and entry["ndcg_at_10"] == trec["ndcg@10"]

    back = {r.task_name: r for r in import_mteb_results(tmp_path)}
    for run in (science, writing):
        assert back[run.task_name].subsets[0].trec == run.subsets[0].trec
        assert back[run.task_name].main_score == run.main_score


def test_export_of_multilingual_tasks_writes_each_subsets_languages(tmp_path: Path):
    runs = [run_result(f"NanoBEIR-{lang}", NANO_SETS, seed=i) for i, lang in enumerate(("ko", "fr"))]
    runs.append(run_result("MLDR/ko", ["ko"], seed=9))
    paths = export_mteb(runs, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        [f"{n}.json" for n in NANO] + ["MultiLongDocRetrieval.json", "model_meta.json"]
    )
    for path in paths[:-1]:
        document = json.loads(path.read_text())
        languages = {e["hf_subset"]: e["languages"] for e in document["scores"]["test"]}
        if path.stem == "MultiLongDocRetrieval":
            assert languages == {"ko": ["kor-Hang"]} and document["evaluation_time"] == 12.5
        else:
            assert languages == {"fr": ["fra-Latn"], "ko": ["kor-Kore"]}  # fr first: the registry's order
            assert (
                list(languages) == ["fr", "ko"] and document["evaluation_time"] is None
            )  # a run spans 13 files
    back = {r.task_name: r for r in import_mteb_results(tmp_path)}
    assert sorted(back) == ["MLDR/ko", "NanoBEIR-fr", "NanoBEIR-ko"]
    for run in runs:
        assert [s.trec for s in back[run.task_name].subsets] == [s.trec for s in run.subsets]


def test_export_keeps_the_subsets_an_earlier_export_wrote_and_refuses_to_drop_mtebs(tmp_path: Path):
    """A second export of the same model and task (same dataset revision) adds its subset to the file
    and says so; a file MTEB ran, holding other subsets, is not overwritten (nothing is written)."""
    export_mteb(run_result("LoTTE/writing/search", ["writing_search"]), tmp_path)
    second = export_mteb(run_result("LoTTE/lifestyle/forum", ["lifestyle_forum"], seed=4), tmp_path)
    (file,) = [p for p in second if p.name == "LoTTE.json"]
    document = json.loads(file.read_text())
    assert [e["hf_subset"] for e in document["scores"]["test"]] == ["writing_search", "lifestyle_forum"]
    assert document["evaluation_time"] is None  # the first export's time is not known apart
    assert any("kept the entries already there of hf_subset writing_search" in n for n in second.notes)
    again = export_mteb(run_result("LoTTE/writing/search", ["writing_search"], seed=6), tmp_path)
    entries = json.loads(again[0].read_text())["scores"]["test"]
    assert [e["hf_subset"] for e in entries] == ["writing_search", "lifestyle_forum"]  # replaced, kept

    mteb_run = task_result("LoTTE", {}) | {
        "scores": {"test": [subset_entry(1, "science_search", ["eng-Latn"], "hit_rate_at_5")]}
    }
    theirs = write(tmp_path / "o" / "org__m" / "abc123" / "LoTTE.json", mteb_run)
    with pytest.raises(InputError, match="mteb_version '2.10.3'") as err:
        export_mteb(
            run_result("LoTTE/writing/search", ["writing_search"]), tmp_path / "o", model_name="org/m"
        )
    assert err.value.file == str(theirs) and json.loads(theirs.read_text()) == json.loads(
        json.dumps(mteb_run)
    )
    assert not (theirs.parent / "model_meta.json").exists()


def test_export_refuses_two_runs_of_one_entry(tmp_path: Path):
    one, other = (run_result("MLDR/fr", ["fr"], seed=s) for s in (1, 2))
    with pytest.raises(InputError, match="both give MultiLongDocRetrieval split test hf_subset fr") as err:
        export_mteb([one, other], tmp_path)
    assert err.value.field == "results" and list(tmp_path.iterdir()) == []
    # of two models, each has its own file
    paths = export_mteb([one, run_result("MLDR/fr", ["fr"], model_id="me/x", seed=2)], tmp_path)
    assert len([p for p in paths if p.name == "MultiLongDocRetrieval.json"]) == 2


def test_cli_export_of_lotte_runs_writes_one_file(tmp_path: Path, capsys):
    from harness.cli import main

    runs = tmp_path / "runs"
    for i, task in enumerate(("LoTTE/writing/search", "LoTTE/writing/forum", "LoTTE/science/search")):
        save_result(run_result(task, [task.split("/", 1)[1].replace("/", "_")], seed=i), runs)
    out = tmp_path / "mteb"
    assert main(["mteb", "export", str(runs), "--revision", REVISION, "--output", str(out)]) == 0
    assert "wrote 2 MTEB files" in capsys.readouterr().out
    [file] = out.rglob("LoTTE.json")
    subsets = [e["hf_subset"] for e in json.loads(file.read_text())["scores"]["test"]]
    assert subsets == ["writing_search", "science_search", "writing_forum"]
    assert main(["mteb", "import", str(out), "--output", str(tmp_path / "rows")]) == 0
    assert len(load_results([tmp_path / "rows"])) == 3
