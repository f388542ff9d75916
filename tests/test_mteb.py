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


def trec_table(seed: int) -> dict[str, float]:
    """A real trec-convention table from harness.metrics over a random run."""
    rng = random.Random(seed)
    qrels = {f"q{q}": {f"d{d}": rng.randint(1, 2) for d in rng.sample(range(60), 4)} for q in range(8)}
    run = {f"q{q}": {f"d{d}": rng.random() for d in range(60)} for q in range(8)}
    return trec_metrics(qrels, run).means


def run_result(
    task_name: str, subset_names: list[str], model_id: str = "all-MiniLM-L6-v2", **changes
) -> Result:
    task = get_task(task_name)
    subsets = [
        SubsetScores(n, 8, {"ndcg@10": 0.123}, trec_table(i), {"q1": 0.5}) for i, n in enumerate(subset_names)
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
        main = task.main_score.replace("_at_", "@")
        assert get_task(task.harness_task).main_metric == main, task.name
    cqa = mteb_tasks_for("BEIR/cqadupstack")
    assert [t.name for t in cqa] == [f"CQADupstack{f}Retrieval" for f in FORUMS]
    assert [t.splits[0][1] for t in cqa] == [f"cqadupstack_{f}" for f in CQADUPSTACK_FORUMS]
    # names as MTEB spells them (mteb/tasks/retrieval/eng/*.py)
    assert tasks["NanoClimateFeverRetrieval"].harness_task == "NanoClimateFEVER"
    assert tasks["NanoQuoraRetrieval"].harness_task == "NanoQuoraRetrieval"
    assert tasks["Touche2020"].harness_task == "BEIR/webis-touche2020"
    assert tasks["MSMARCO"].splits == (("dev", "msmarco"),)
    assert tasks["LEMBSummScreenFDRetrieval"].splits == (("validation", "summ_screen_fd"),)


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
    assert "ndcg@20" not in subset.trec and "mrr@1" not in subset.trec  # the harness has no such metric
    assert len(subset.trec) == 25
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
