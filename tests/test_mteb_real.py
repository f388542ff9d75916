"""MTEB interop against the real ``mteb`` package (the ``test`` extra installs it; tests that need
it skip, saying so, where it is absent): its task registry knows every mapped task, its loaders read
the exports with every value equal (one file of several HF subsets too: LoTTE's domains, MLDR's
languages), its ``to_dataframe()`` lists every exported model, files its
evaluator writes import with every value equal; and the checks of MTEB's results repository
(``embeddings-benchmark/results`` ``tests/``, not on PyPI: reimplemented below, cited per check)
pass on an export with a pinned revision."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import ModuleType

import pytest

from harness.metrics import trec_metrics
from harness.mteb import export_mteb, import_mteb_results, mteb_tasks, mteb_tasks_for
from harness.mteb.mapping import harness_metric
from harness.records import ModelRecord, RetrievalRecord, SubsetScores, TaskRecord
from harness.results import Result
from harness.tasks import get_task
from tasks.beir import CQADUPSTACK_FORUMS

REVISION = "c1647d10d6edc6f70837f42f0a978f2df53f51dd"
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

EXPORTED = {  # harness task -> subsets: one task of each MTEB shape (one split, dev, lengths, 12 files)
    "BEIR/scifact": ["scifact"],
    "BEIR/msmarco": ["msmarco"],
    "NanoSciFact": ["NanoSciFact"],
    "LongEmbed/passkey": [f"passkey_{n}" for n in LENGTHS],
    "BEIR/cqadupstack": [f"cqadupstack_{f}" for f in CQADUPSTACK_FORUMS],
}
# model_meta.json keeps ModelMeta.to_dict's keys, is_cross_encoder included (mteb 2.26 still writes it)
pytestmark = pytest.mark.filterwarnings("ignore:is_cross_encoder is deprecated:DeprecationWarning")
RANK = {"ndcg", "map", "recall", "precision", "mrr", "hit_rate"}  # MTEB's rank metrics: <name>_at_<k>


@pytest.fixture(scope="module")
def mteb() -> ModuleType:
    return pytest.importorskip(
        "mteb", reason="the real mteb package is not installed (pip install -e '.[test]' installs it)"
    )


def run_result(task_name: str, subsets: list[str], **model: object) -> Result:
    """A saved-run-like result of all-MiniLM-L6-v2 (``model`` changes its record): each subset's
    trec table (with the task's extra metrics) computed by harness.metrics over a random run."""
    rng = random.Random(task_name)
    task = get_task(task_name)
    tables = []
    for _ in subsets:
        qrels = {f"q{q}": {f"d{d}": rng.randint(1, 2) for d in rng.sample(range(60), 4)} for q in range(8)}
        run = {f"q{q}": {f"d{d}": rng.random() for d in range(60)} for q in range(8)}
        tables.append(trec_metrics(qrels, run, extra=task.metrics).means)
    fields: dict = {"id": "all-MiniLM-L6-v2", "revision": "abc123", "kind": "dense", "parameters": 22713216}
    return Result(
        model=ModelRecord(**(fields | model)),
        task=TaskRecord(task.name, task.convention, task.main_metric, task.eval_split, source="test"),
        retrieval=RetrievalRecord("exact", 1000),
        subsets=[SubsetScores(n, 8, None, t, {"q1": 0.5}) for n, t in zip(subsets, tables, strict=True)],
        timings={"total_s": 12.5},
        created="2026-11-25T21:00:00+00:00",
    )


def export_all(root: Path, **changes) -> dict[str, Result]:
    """Every task of ``EXPORTED`` exported for one model under ``root/results``: task -> run."""
    runs = {task: run_result(task, subsets, **changes) for task, subsets in EXPORTED.items()}
    for run in runs.values():
        export_mteb(run, root / "results")
    return runs


def test_mteb_knows_every_mapped_task_its_splits_and_main_score(mteb: ModuleType):
    """Every (MTEB task, HF subset) of the mapping: the task, its split, its subset with the languages
    MTEB writes for it, and its main score, the harness task's main metric (``hit_rate_at_5`` is
    LoTTE's success@5)."""
    for key, mapped in mteb_tasks().items():
        metadata = mteb.get_task(mapped.name).metadata
        assert metadata.type == "Retrieval", key
        assert {split for split, _ in mapped.splits} <= set(metadata.eval_splits), key
        assert mapped.hf_subset in metadata.hf_subsets, key
        assert metadata.hf_subsets_to_langscripts[mapped.hf_subset] == list(mapped.languages), key
        assert metadata.main_score == mapped.main_score, key
        assert harness_metric(metadata.main_score) == get_task(mapped.harness_task).main_metric, key


def test_mteb_loads_the_exports_with_every_value_equal(mteb: ModuleType, tmp_path: Path):
    runs = export_all(tmp_path, revision=REVISION)
    loaded = mteb.ResultCache(cache_path=tmp_path).load_results(include_remote=False)
    (model,) = loaded.model_results
    assert (model.model_name, model.model_revision) == ("sentence-transformers/all-MiniLM-L6-v2", REVISION)
    by_task = {r.task_name: r for r in model.task_results}
    for harness_task, run in runs.items():
        subsets = {s.name: s for s in run.subsets}
        for mapped in mteb_tasks_for(harness_task):
            result = by_task[mapped.name]
            checked = result.validate_and_filter_scores(task=mteb.get_task(mapped.name))
            assert set(checked.scores) == {split for split, _ in mapped.splits}  # nothing filtered out
            for split, subset in mapped.splits:
                (entry,) = result.scores[split]
                trec = subsets[subset].trec
                assert {k.replace("_at_", "@"): v for k, v in entry.items() if "_at_" in k} == trec
                assert entry["main_score"] == trec[mapped.main_score.replace("_at_", "@")]
            splits = [split for split, _ in mapped.splits]
            assert result.get_score(splits=splits) == pytest.approx(
                sum(subsets[s].trec[mapped.main_score.replace("_at_", "@")] for _, s in mapped.splits)
                / len(splits)
            )


NANO_SETS = [s for t in mteb_tasks_for("NanoBEIR-fr") for _, s in t.splits]
SEVERAL_SUBSETS = {  # MTEB task -> two of its harness tasks (HF subsets) -> their subsets
    "LoTTE": {"LoTTE/writing/search": ["writing_search"], "LoTTE/science/forum": ["science_forum"]},
    "MLDR": {"MLDR/fr": ["fr"], "MLDR/ja": ["ja"]},
    "NanoBEIR-multilingual": {"NanoBEIR-ko": NANO_SETS, "NanoBEIR-fr": NANO_SETS},
}


@pytest.mark.parametrize("family", SEVERAL_SUBSETS)
@pytest.mark.filterwarnings("ignore:.*Missing (subsets|splits):UserWarning")  # mteb: those not exported
def test_mteb_loads_an_export_of_several_subsets_with_every_value_equal(
    mteb: ModuleType, tmp_path: Path, family: str
):
    """Two harness tasks of one MTEB task, exported together: one file per MTEB task, which mteb's
    loaders read with every value of each subset's entry equal to the run's (LoTTE's main score
    ``hit_rate_at_5`` its success@5), the languages mteb's task gives the subset, its validation
    keeping both entries and its scores per language the runs'; the files import back exactly."""
    tasks = SEVERAL_SUBSETS[family]
    runs = [run_result(task, subsets, revision=REVISION) for task, subsets in tasks.items()]
    written = export_mteb(runs, tmp_path / "results")
    assert len(written) == len(mteb_tasks_for(runs[0].task_name)) + 1  # + model_meta.json
    loaded = mteb.ResultCache(cache_path=tmp_path).load_results(include_remote=False)
    (model,) = loaded.model_results
    by_task = {r.task_name: r for r in model.task_results}
    for run in runs:
        subsets = {s.name: s for s in run.subsets}
        for mapped in mteb_tasks_for(run.task_name):
            result, task = by_task[mapped.name], mteb.get_task(mapped.name)
            checked = result.validate_and_filter_scores(task=task)
            languages = task.metadata.hf_subsets_to_langscripts[mapped.hf_subset]
            for split, subset in mapped.splits:
                assert len(result.scores[split]) == len(runs)  # one file, an entry per run
                (entry,) = [e for e in result.scores[split] if e["hf_subset"] == mapped.hf_subset]
                trec = subsets[subset].trec
                assert {harness_metric(k): v for k, v in entry.items() if "_at_" in k} == trec
                assert entry["main_score"] == trec[run.task.main_metric] == entry[mapped.main_score]
                assert entry["languages"] == languages
                assert entry in checked.scores[split]  # mteb's filter keeps it as it is
                if family != "LoTTE":  # a language per subset: mteb's score of that language is the run's
                    assert result.get_score(splits=[split], languages=languages) == entry["main_score"]
    back = {r.task_name: r for r in import_mteb_results(tmp_path / "results")}
    assert sorted(back) == sorted(tasks)
    for run in runs:
        row = back[run.task_name]
        assert [(s.name, s.trec) for s in row.subsets] == [(s.name, s.trec) for s in run.subsets]
        assert row.model.revision == REVISION and row.model_id == run.model_id


def test_mteb_to_dataframe_lists_every_exported_model(mteb: ModuleType, tmp_path: Path):
    """A pinned model and a model without a revision (BM25, a local folder: filed as
    ``no_revision_available``, which a null revision in model_meta.json made MTEB drop)."""
    from mteb.models.model_meta import ModelMeta

    export_mteb(run_result("BEIR/scifact", ["scifact"], revision=REVISION), tmp_path / "results")
    bm25 = run_result("BEIR/scifact", ["scifact"], id="bm25", kind="bm25", revision=None)
    written = export_mteb(bm25, tmp_path / "results", model_name="me/bm25s")
    frame = mteb.ResultCache(cache_path=tmp_path).load_results(include_remote=False).to_dataframe()
    assert {"sentence-transformers/all-MiniLM-L6-v2", "me/bm25s"} <= set(frame.columns)
    assert frame.loc[frame["task_name"] == "SciFact", "me/bm25s"].item() == bm25.main_score
    meta = ModelMeta.model_validate_json_resolved(written[-1].read_text())
    assert (meta.name, meta.revision, meta.model_type) == ("me/bm25s", "no_revision_available", ["sparse"])


def test_files_mteb_writes_import_with_every_value_equal(mteb: ModuleType, tmp_path: Path):
    """MTEB's own evaluator (pytrec_eval, its MRR, hit rate) on a run, written by ``TaskResult.to_disk``:
    every rank metric imports equal to the file, and equal to the harness's trec figures where both
    compute one (MTEB rounds pytrec_eval's means to 5 decimals: ``parse_metrics_from_scores``)."""
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores, make_score_dict
    from mteb.results import TaskResult

    rng = random.Random(5)
    qrels = {f"q{q}": {f"d{d}": rng.randint(1, 2) for d in rng.sample(range(80), 3)} for q in range(12)}
    run = {f"q{q}": {f"d{d}": rng.random() for d in range(80)} for q in range(12)}
    scores = calculate_retrieval_scores(run, qrels, [1, 3, 5, 10, 20, 100, 1000])
    entry = make_score_dict(
        ndcg=scores.ndcg,
        _map=scores.map,
        recall=scores.recall,
        precision=scores.precision,
        mrr=scores.mrr,
        naucs=scores.naucs,
        naucs_mrr=scores.naucs_mrr,
        hit_rate=scores.hit_rate,
        task_scores={},
    )
    entry["main_score"] = entry["ndcg_at_10"]
    task = mteb.get_task("SciFact")
    folder = tmp_path / "org__model" / REVISION
    folder.mkdir(parents=True)
    TaskResult.from_task_results(task, {"test": {"default": entry}}, 1.0).to_disk(folder / "SciFact.json")

    rows = import_mteb_results(folder)
    (row,) = rows
    written = json.loads((folder / "SciFact.json").read_text())["scores"]["test"][0]
    ours = trec_metrics(qrels, run, extra=[f"success@{k}" for k in (1, 3, 5, 10, 20, 100, 1000)]).means
    kept = row.subsets[0].trec
    assert kept == {harness_metric(k): v for k, v in written.items() if k.split("_at_")[0] in RANK}
    assert "success@5" in kept and "hit_rate@5" not in kept  # MTEB's hit rate is the harness's success
    assert {m: kept[m] for m in ours} == pytest.approx(ours, abs=5e-6)  # 32 metrics, to 5 decimals
    assert set(rows.dropped[str(folder / "SciFact.json")]) == {
        k for k in written if k.split("_at_")[0] not in RANK
    } - {"main_score", "hf_subset", "languages", "mteb_version"}


# --- the results repository's checks (embeddings-benchmark/results, tests/) ---------------------


def results_repository_errors(results: Path) -> list[str]:
    """What the results repository's metadata and layout tests say of ``results/`` (every model and
    revision folder in it is a new addition), as one message per failure:

    * ``test_correct_folder_structure.py::test_correct_folder_structure``: ``results/<name with / ->
      __, spaces -> _>/<revision>/`` holds model_meta.json and at least one JSON file;
    * ``test_ensure_correct_metadata.py``: ``test_model_meta_in_folders``,
      ``test_revision_is_specified_for_new_additions`` (not ``no_revision_available`` /
      ``external``; a 40-character lower-case sha1 or one character), ``test_organization_is_
      specified_for_new_additions`` (``/`` in the name), ``test_that_revision_match`` (the folder
      is the revision), ``test_no_duplicate_revisions``;
    * ``test_task_name_matches_filename.py``: each result file is named after its ``task_name``.
    """
    errors = []
    for model_folder in sorted(p for p in results.iterdir() if p.is_dir()):
        revisions = set()
        for rev_folder in sorted(p for p in model_folder.iterdir() if p.is_dir()):
            meta_file = rev_folder / "model_meta.json"
            if not meta_file.is_file():
                errors.append(f"{rev_folder}: no model_meta.json")
                continue
            meta = json.loads(meta_file.read_text())
            name, rev = meta["name"], meta["revision"]
            if results / name.replace(" ", "_").replace("/", "__") / (rev or rev_folder.name) != rev_folder:
                errors.append(f"{rev_folder}: not results/<name>/<revision>")
            if not list(rev_folder.glob("*.json")):
                errors.append(f"{rev_folder}: no result files")
            is_sha1 = len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)
            if rev.lower() in ("no_revision_available", "external") or not (is_sha1 or len(rev) == 1):
                errors.append(f"{rev_folder}: revision {rev!r} is not specified")
            if "/" not in name:
                errors.append(f"{rev_folder}: no organisation in {name!r}")
            if rev != rev_folder.name:
                errors.append(f"{rev_folder}: revision {rev!r} does not match the folder")
            if rev in revisions:
                errors.append(f"{rev_folder}: duplicate revision {rev!r}")
            revisions.add(rev)
            for file in rev_folder.glob("*.json"):
                data = json.loads(file.read_text())
                if file.name != "model_meta.json" and file.stem != data.get("task_name"):
                    errors.append(f"{file}: task_name {data.get('task_name')!r}")
    return errors


def test_results_repository_checks_pass_on_an_export_with_a_pinned_revision(tmp_path: Path):
    export_all(tmp_path / "pinned", revision=REVISION)
    bm25 = run_result("BEIR/scifact", ["scifact"], id="bm25", kind="bm25", revision=None)
    export_mteb(bm25, tmp_path / "pinned" / "results", model_name="me/bm25s", revision="1")
    assert results_repository_errors(tmp_path / "pinned" / "results") == []

    # without one (or with a short one) the check fails, as the export's notes say
    notes = export_mteb(bm25, tmp_path / "bare" / "results", model_name="me/bm25s").notes
    assert any("--revision" in n for n in notes)
    (error,) = results_repository_errors(tmp_path / "bare" / "results")
    assert "'no_revision_available' is not specified" in error
    export_mteb(run_result("BEIR/scifact", ["scifact"]), tmp_path / "short" / "results")
    (error,) = results_repository_errors(tmp_path / "short" / "results")
    assert "'abc123' is not specified" in error


def test_hub_revisions_are_the_ones_mteb_pins(mteb: ModuleType):
    """LoTTE and LongEmbed read the repo MTEB reads at the revision it pins, and their published sizes
    are mteb's statistics of that revision (documents + queries per subset); BRIGHT is not pinned
    because mteb's pin of the same repo holds other aops and theoremqa sets (tasks/bright.py)."""
    import json

    import tasks.bright
    import tasks.longembed
    import tasks.lotte

    stats_dir = Path(mteb.__file__).parent / "descriptive_stats" / "Retrieval"

    def pinned(name: str) -> tuple[str, str]:
        dataset = mteb.get_task(name).metadata.dataset
        return dataset["path"], dataset["revision"]

    lotte = json.loads((stats_dir / "LoTTE.json").read_text())["test"]["hf_subset_descriptive_stats"]
    assert pinned("LoTTE") == (tasks.lotte.REPO, tasks.lotte.REVISION)
    for domain in tasks.lotte.DOMAINS:
        for query_set in tasks.lotte.QUERY_SETS:
            task = get_task(f"LoTTE/{domain}/{query_set}")
            assert task.n_queries + task.n_documents == lotte[f"{domain}_{query_set}"]["num_samples"]
    readers = set()  # the LongEmbed configs whose MTEB task reads dwzhu/LongEmbed (passkey: mteb's copy)
    for config, (name, _) in tasks.longembed.MTEB.items():
        mteb_name = f"LEMB{name}Retrieval"
        if pinned(mteb_name)[0] == tasks.longembed.REPO:
            assert pinned(mteb_name)[1] == tasks.longembed.REVISION, config
            readers.add(config)
        splits = json.loads((stats_dir / f"{mteb_name}.json").read_text()).values()
        task = get_task(f"LongEmbed/{config}")
        assert task.n_queries + task.n_documents == sum(split["num_samples"] for split in splits), config
    assert readers == set(tasks.longembed.CONFIGS) - {"passkey"}
    bright = json.loads((stats_dir / "BrightRetrieval.json").read_text())["standard"]
    assert pinned("BrightRetrieval")[0] == tasks.bright.REPO
    differ = {
        domain
        for domain, (queries, documents, _) in tasks.bright.SIZES.items()
        if queries + documents != bright["hf_subset_descriptive_stats"][domain]["num_samples"]
    }
    assert differ == {"aops", "theoremqa_questions", "theoremqa_theorems"}
