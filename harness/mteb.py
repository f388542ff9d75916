"""MTEB interop: MTEB results files in, harness results out in MTEB's layout.

MTEB's results format (read from ``embeddings-benchmark/mteb``: ``mteb/results/task_result.py``
``TaskResult``, ``mteb/cache/result_cache.py``, ``mteb/_evaluators/retrieval_metrics.py``; and
from files in ``embeddings-benchmark/results``):

* Layout: ``<org>__<model>/<revision>/<TaskName>.json`` (``/`` -> ``__``, spaces -> ``_``;
  revision ``no_revision_available`` when unknown), beside ``model_meta.json`` (``ModelMeta.to_dict``:
  ``name``, ``revision``, ``n_parameters``, ...). The results repository puts it under ``results/``.
* A TaskResult file: ``{"dataset_revision", "task_name", "mteb_version", "scores",
  "evaluation_time", "kg_co2_emissions", "date"}`` where ``scores`` is ``{split: [{metric: value,
  ..., "main_score", "hf_subset", "languages"}]}``, one dict per HF subset (``"default"`` for
  monolingual tasks). Files before mteb 1.11 instead hold ``mteb_dataset_name`` and
  ``{split: {metric: value}}`` at the top level (MTEB still reads them; so does this module).
* Retrieval metrics are fractions (0.76333, not 76.333) computed by pytrec_eval, i.e. the harness's
  *trec* convention: ``ndcg_at_k`` (ndcg_cut), ``map_at_k`` (map_cut, / |R|), ``recall_at_k``,
  ``precision_at_k`` (P), for k in 1, 3, 5, 10, 20, 100, 1000, and ``mrr_at_k`` (1 / rank of the
  first relevant doc within k). Other keys (``nauc_*``, ``hit_rate_at_k``, ``accuracy``) are not
  harness metrics and are ignored; they may be ``NaN`` (non-standard JSON that MTEB writes).
* ``main_score`` copies the task's main metric: ``ndcg_at_10``, ``ndcg_at_1`` for
  LEMBPasskeyRetrieval / LEMBNeedleRetrieval, whose splits ``test_256`` ... ``test_32768`` are
  the context lengths (the task score is the mean over the splits).

Caveat: MTEB ignores identical query/doc ids only for some tasks (ArguAna, FEVER, FiQA2018, MSMARCO,
QuoraRetrieval); the harness does for every BEIR task, so on the others a figure may differ where a
query id is also a document id.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.fileio import write_json_atomic
from harness.metrics import TREC_K, TREC_MRR_K
from harness.models import find_model, find_model_by_hub_id
from harness.results import Result, Results, SubsetScores, read_json
from harness.tasks import get_task

SOURCE_PREFIX = "MTEB results: "  # how an imported row's ``published.source`` begins
log = logging.getLogger(__name__)

NO_REVISION = "no_revision_available"  # MTEB's revision folder for a model without one
NO_DATASET_REVISION = "dataset revision not available"  # MTEB's placeholder (pre-1.11 files)
LANGUAGES = ["eng-Latn"]  # every mapped task is English
# MTEB metric key -> the harness's trec-convention key (only metrics both sides compute).
METRICS = {
    **{f"{m}_at_{k}": f"{m}@{k}" for m in ("ndcg", "map", "recall", "precision") for k in TREC_K},
    f"mrr_at_{TREC_MRR_K}": f"mrr@{TREC_MRR_K}",
}
HARNESS_METRICS = {harness: mteb for mteb, harness in METRICS.items()}


@dataclass(frozen=True)
class MtebTask:
    """One MTEB task and where its figures go: ``splits`` pairs each MTEB split (its ``"default"``
    subset) with the harness subset it scores; ``main_score`` is MTEB's main metric key."""

    name: str
    harness_task: str
    splits: tuple[tuple[str, str], ...]
    main_score: str = "ndcg_at_10"


def _beir(name: str, folder: str, split: str = "test") -> MtebTask:
    return MtebTask(name, f"BEIR/{folder}", ((split, folder),))


_FORUMS = ("android", "english", "gaming", "gis", "mathematica", "physics", "programmers", "stats")
_FORUMS += ("tex", "unix", "webmasters", "wordpress")
# NanoBEIR: MTEB's Nano<key>Retrieval -> the harness's Nano<value>
_NANO = {"ArguAna": "ArguAna", "ClimateFever": "ClimateFEVER", "DBPedia": "DBPedia", "FEVER": "FEVER"}
_NANO |= {"FiQA2018": "FiQA2018", "HotpotQA": "HotpotQA", "MSMARCO": "MSMARCO", "NFCorpus": "NFCorpus"}
_NANO |= {"NQ": "NQ", "Quora": "QuoraRetrieval", "SCIDOCS": "SCIDOCS", "SciFact": "SciFact"}
_NANO |= {"Touche2020": "Touche2020"}
_LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
_LEMB = {"NarrativeQA": ("narrativeqa", "test"), "QMSum": ("qmsum", "test")}
_LEMB |= {"WikimQA": ("2wikimqa", "test"), "SummScreenFD": ("summ_screen_fd", "validation")}

TASKS: dict[str, MtebTask] = {
    t.name: t
    for t in (
        _beir("ArguAna", "arguana"),
        _beir("ClimateFEVER", "climate-fever"),
        _beir("DBPedia", "dbpedia-entity"),
        _beir("FEVER", "fever"),
        _beir("FiQA2018", "fiqa"),
        _beir("HotpotQA", "hotpotqa"),
        _beir("MSMARCO", "msmarco", "dev"),
        _beir("NFCorpus", "nfcorpus"),
        _beir("NQ", "nq"),
        _beir("QuoraRetrieval", "quora"),
        _beir("SCIDOCS", "scidocs"),
        _beir("SciFact", "scifact"),
        _beir("TRECCOVID", "trec-covid"),
        _beir("Touche2020", "webis-touche2020"),
        *(
            MtebTask(
                f"CQADupstack{f.capitalize()}Retrieval", "BEIR/cqadupstack", (("test", f"cqadupstack_{f}"),)
            )
            for f in _FORUMS
        ),
        *(MtebTask(f"Nano{m}Retrieval", f"Nano{h}", (("train", f"Nano{h}"),)) for m, h in _NANO.items()),
        *(MtebTask(f"LEMB{n}Retrieval", f"LongEmbed/{c}", ((s, c),)) for n, (c, s) in _LEMB.items()),
        *(
            MtebTask(
                f"LEMB{n}Retrieval",
                f"LongEmbed/{c}",
                tuple((f"test_{k}", f"{c}_{k}") for k in _LENGTHS),
                "ndcg_at_1",
            )
            for n, c in (("Passkey", "passkey"), ("Needle", "needle"))
        ),
    )
}


def mteb_tasks_for(harness_task: str) -> tuple[MtebTask, ...]:
    """The MTEB tasks whose files make up one harness task (12 for ``BEIR/cqadupstack``), in order."""
    return tuple(t for t in TASKS.values() if t.harness_task == harness_task)


class MtebImport(Results):
    """Imported results (a :class:`Results` list), plus ``skipped``: file -> why it gave no row."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


@dataclass
class _Part:
    """One parsed TaskResult file of a mapped task."""

    file: Path
    task: MtebTask
    data: dict[str, Any]
    subsets: list[SubsetScores]


# --- import --------------------------------------------------------------------------------------


def import_mteb_results(path: str | Path, *, model_id: str | None = None) -> MtebImport:
    """Harness results (published rows, trec convention) from MTEB TaskResult files.

    ``path`` is one TaskResult file or a folder searched for ``*.json`` in the results-repository
    layout. A file's model is named by the ``model_meta.json`` beside it (``name``, ``revision``,
    ``n_parameters``), else by its folders (``<org>__<model>/<revision>/``), unless ``model_id`` is
    given; a Hub id registered in ``harness.models`` takes its registered name, so the row sits beside
    harness runs of that model. Only mapped retrieval tasks (:data:`TASKS`) give rows, one per harness
    task: a harness task made of several MTEB tasks (CQADupstack's 12 forums) needs all of them in
    the same folder. The rest land in ``skipped`` (file -> reason) and the log; in a folder, JSON that
    is not a TaskResult is skipped too. Each row is marked ``published`` with source ``MTEB results:
    <file>``. A malformed mapped file (or a given file that is no TaskResult) is an InputError naming
    the file and the field.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("not found", file=str(path))
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*.json") if p.name != "model_meta.json")
    )
    out = MtebImport()
    groups: dict[tuple[Path, str], list[_Part]] = {}
    for file in files:
        part = _parse_file(file, strict=file == path, skipped=out.skipped)
        if part is not None:
            groups.setdefault((file.parent, part.task.harness_task), []).append(part)
    for (folder, harness_task), parts in groups.items():
        missing = [t.name for t in mteb_tasks_for(harness_task) if t.name not in {p.task.name for p in parts}]
        if missing:
            for part in parts:
                out.skipped[str(part.file)] = (
                    f"{harness_task} needs every one of its MTEB tasks; missing {missing}"
                )
            continue
        out.append(_result(folder, harness_task, parts, model_id))
    for file, reason in out.skipped.items():
        log.info("%s: skipped (%s)", file, reason)
    return out


def _parse_file(file: Path, *, strict: bool, skipped: dict[str, str]) -> _Part | None:
    """The mapped task's subsets of one file; None (reason in ``skipped``) for a file left out."""
    data = read_json(file, "MTEB results file")
    name = data.get("task_name", data.get("mteb_dataset_name")) if isinstance(data, dict) else None
    if not isinstance(name, str):
        if strict:
            raise InputError(
                "not an MTEB TaskResult (no string task_name)", file=str(file), field="task_name"
            )
        skipped[str(file)] = "not an MTEB TaskResult (no task_name)"
        return None
    task = TASKS.get(name)
    if task is None:
        skipped[str(file)] = f"MTEB task {name} has no harness task"
        return None
    scores = _scores(data, str(file))
    subsets = [_subset(scores, split, subset, task, str(file)) for split, subset in task.splits]
    return _Part(file, task, data, subsets)


def _scores(data: dict[str, Any], file: str) -> dict[str, Any]:
    """``{split: [subset dict]}``; files before mteb 1.11 (``{split: {metric: value}}`` at the top
    level, or ``{split: {hf_subset: {metric: value}}}``) are converted as MTEB converts them."""
    if "scores" not in data and "mteb_dataset_name" in data:
        meta = {"mteb_dataset_name", "mteb_version", "dataset_revision", "evaluation_time"}
        splits = {k: v for k, v in data.items() if k not in meta and isinstance(v, dict)}
        return {
            split: [{**v, "hf_subset": k} for k, v in values.items() if isinstance(v, dict)]
            if any(isinstance(v, dict) for v in values.values())
            else [{**values, "hf_subset": "default"}]
            for split, values in splits.items()
        }
    scores = data.get("scores")
    if not isinstance(scores, dict):
        raise InputError(
            f"expected an object of split -> list, got {type(scores).__name__}", file=file, field="scores"
        )
    return scores


def _subset(scores: dict[str, Any], split: str, name: str, task: MtebTask, file: str) -> SubsetScores:
    """The ``"default"`` entry of ``scores[split]`` as a harness subset: its trec table."""
    entries = scores.get(split)
    if not isinstance(entries, list):
        raise InputError(
            f"missing (the split {task.name} is scored on) or not a list", file=file, field=f"scores.{split}"
        )
    subsets = [e.get("hf_subset") if isinstance(e, dict) else None for e in entries]
    if "default" not in subsets:
        raise InputError(
            f"no entry with hf_subset 'default' (found {subsets})", file=file, field=f"scores.{split}"
        )
    i = subsets.index("default")
    entry, where = entries[i], f"scores.{split}[{i}]."
    trec = {METRICS[k]: _number(v, file, where + k) for k, v in entry.items() if k in METRICS}
    main_key = METRICS[task.main_score]
    if "main_score" in entry or main_key not in trec:  # pre-1.11 files have no main_score
        main = _number(entry.get("main_score"), file, where + "main_score")
        if abs(trec.setdefault(main_key, main) - main) > 1e-6:
            raise InputError(
                f"{main!r} disagrees with {task.main_score} {trec[main_key]!r}",
                file=file,
                field=where + "main_score",
            )
    return SubsetScores(name=name, n_queries=0, card=None, trec=trec, per_query={})


def _number(value: Any, file: str, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"expected a finite number, got {value!r}", file=file, field=field_name)
    return float(value)


def _model_record(folder: Path, model_id: str | None) -> dict[str, Any]:
    """The ``model`` of an imported row: ``model_id`` if given, else from ``model_meta.json`` when
    present, else from the folders when they are the results layout (``<org>__<model>/<revision>/``);
    a file in any other folder, without either, is an error (its folders name no model)."""
    meta_file = folder / "model_meta.json"
    layout = "__" in folder.parent.name
    name = folder.parent.name.replace("__", "/") if layout else None
    revision, parameters = (folder.name if layout else None), None
    if meta_file.is_file():
        meta = read_json(meta_file, "MTEB model_meta.json")
        if not isinstance(meta, dict) or not isinstance(meta.get("name") or name, str):
            raise InputError(
                "expected the model's name (a string or null)", file=str(meta_file), field="name"
            )
        name, revision = meta.get("name") or name, meta.get("revision", revision)
        parameters = meta.get("n_parameters")
        if parameters is not None and (isinstance(parameters, bool) or not isinstance(parameters, int)):
            raise InputError(
                f"expected an integer or null, got {parameters!r}", file=str(meta_file), field="n_parameters"
            )
        if revision is not None and not isinstance(revision, str):
            raise InputError(
                f"expected a string or null, got {revision!r}", file=str(meta_file), field="revision"
            )
    if not (model_id or name):
        raise InputError(
            "no model name: no model_meta.json and not in <org>__<model>/<revision>/ (pass --model-name)",
            file=str(folder),
        )
    info = find_model_by_hub_id(name) if name else None
    return {
        "id": model_id or (info.name if info else name),
        "fingerprint": None,
        "revision": None if revision in (None, NO_REVISION) else revision,
        "kind": "published",
        "parameters": parameters if parameters is not None else (info.parameters if info else None),
        "size_group": info.size_group if info else None,
        "settings": {},
    }


def _result(folder: Path, harness_task: str, parts: list[_Part], model_id: str | None) -> Result:
    """One published row from the files of one harness task, subsets in the mapping's order."""
    order = {t.name: i for i, t in enumerate(mteb_tasks_for(harness_task))}
    parts = sorted(parts, key=lambda p: order[p.task.name])
    task = get_task(harness_task)
    first = parts[0].data
    files = str(parts[0].file) if len(parts) == 1 else f"{folder} ({', '.join(p.file.name for p in parts)})"
    splits = list(dict.fromkeys(s for p in parts for s, _ in p.task.splits))
    revisions = sorted({str(p.data.get("dataset_revision")) for p in parts})
    return Result(
        model=_model_record(folder, model_id),
        task={
            "name": task.name,
            "convention": "trec",
            "main_metric": task.main_metric,
            "split": task.eval_split,
            "source": f"MTEB {', '.join(p.task.name for p in parts)} (split {', '.join(splits)})",
            "dataset_fingerprints": {},
        },
        retrieval={"method": "published"},
        subsets=[s for p in parts for s in p.subsets],
        timings={
            k: None for k in ("encode_queries_s", "encode_documents_s", "index_s", "retrieve_s", "total_s")
        },
        tokens={"queries": None, "documents": None},
        published={
            "source": f"{SOURCE_PREFIX}{files}",
            "note": f"MTEB figures (pytrec_eval: trec convention), mteb_version {first.get('mteb_version')}, "
            f"dataset_revision {', '.join(revisions)}; imported, not a harness run",
        },
        environment={},
        created=_created(first.get("date")),
    )


def _created(date: Any) -> str:
    """MTEB's ``date`` (a POSIX timestamp, mteb >= 2) as ISO 8601 UTC; now when absent or unusable."""
    try:
        when = datetime.fromtimestamp(date, timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        when = datetime.now(timezone.utc)
    return when.isoformat(timespec="seconds")


# --- export --------------------------------------------------------------------------------------


def export_mteb(
    result: Result,
    out_dir: str | Path,
    *,
    model_name: str | None = None,
    dataset_revision: str | None = None,
) -> list[Path]:
    """Write a harness run as MTEB TaskResult files, atomically, for a submission to MTEB's results.

    Files: ``out_dir/<org>__<model>/<revision or no_revision_available>/<TaskName>.json``, one per
    MTEB task of the harness task (12 for ``BEIR/cqadupstack``), and ``model_meta.json`` beside them
    unless one is there. Scores are the run's trec-convention table (MTEB's pytrec_eval figures),
    as fractions, unrounded, under MTEB's keys; ``main_score`` is MTEB's main metric. The model is
    ``model_name``, else the Hub id of the registered model, else the model id; ``dataset_revision``
    defaults to MTEB's placeholder (the harness does not load MTEB's dataset copies) and
    ``mteb_version`` is null (MTEB did not run). Returns the files written (model_meta.json last).

    InputError (nothing written): a published figure (not a run), a task without an MTEB name, a
    subset missing or unknown to MTEB's task, a subset without a trec table holding the main metric
    (card-convention figures are not MTEB's), a model name or revision unfit for a folder, a
    registered loader variant without ``model_name``.
    """
    if result.published is not None or result.model.get("kind") == "published":
        raise InputError("a published figure, not a harness run: only runs are exported", field="published")
    tasks = mteb_tasks_for(result.task_name)
    if not tasks:
        raise InputError(
            f"{result.task_name!r} has no MTEB task (mapped: BEIR, NanoBEIR, LongEmbed)", field="task.name"
        )
    by_name = {s.name: (i, s) for i, s in enumerate(result.subsets)}
    expected = [name for t in tasks for _, name in t.splits]
    unknown, missing = sorted(set(by_name) - set(expected)), [n for n in expected if n not in by_name]
    if unknown or missing:
        raise InputError(f"subsets must be {expected}: missing {missing}, unknown {unknown}", field="subsets")
    name = _mteb_model_name(result, model_name)
    revision = result.model.get("revision") or NO_REVISION
    if not isinstance(revision, str) or not re.fullmatch(r"[\w.\-]+", revision) or not revision.strip("."):
        raise InputError(f"{revision!r} cannot name a folder", field="model.revision")
    folder = Path(out_dir) / name.replace("/", "__").replace(" ", "_") / revision
    documents = {
        folder / f"{t.name}.json": _task_result(result, t, by_name, dataset_revision, len(tasks) == 1)
        for t in tasks
    }
    for path, document in documents.items():
        write_json_atomic(path, document)
    written = list(documents)
    meta = folder / "model_meta.json"
    if not meta.exists():
        write_json_atomic(meta, _model_meta(result, name), indent=4)
        written.append(meta)
    return written


def _mteb_model_name(result: Result, override: str | None) -> str:
    """``override``, else the registered model's Hub id, else the model id; checked fit for a folder."""
    name, where = override, "model_name"
    if name is None:
        info, where = find_model(result.model_id), "model.id"
        if info is not None and info.overrides:
            raise InputError(
                f"{result.model_id!r} is {info.hub_id} loaded with {dict(info.overrides)}: MTEB files "
                "results by model name and revision, so name this variant (model_name=...)",
                field="model_name",
            )
        name = info.hub_id if info is not None else result.model_id
    if not re.fullmatch(r"[\w.\- ]+(/[\w.\- ]+)?", name) or ".." in name:
        raise InputError(
            f"{name!r} is not an MTEB model name ('org/model'); pass model_name=...", field=where
        )
    return name


def _task_result(
    result: Result,
    task: MtebTask,
    by_name: dict[str, tuple[int, SubsetScores]],
    revision: str | None,
    whole: bool,
) -> dict[str, Any]:
    """One TaskResult document, keys in the order MTEB writes them."""
    scores = {}
    for split, name in task.splits:
        i, subset = by_name[name]
        trec, main = subset.trec or {}, METRICS[task.main_score]
        if main not in trec:
            raise InputError(
                f"no trec-convention {main}: MTEB reports pytrec_eval (trec_eval) figures, not card ones",
                field=f"subsets[{i}].trec",
            )
        entry: dict[str, Any] = {HARNESS_METRICS[k]: v for k, v in trec.items() if k in HARNESS_METRICS}
        scores[split] = [
            {**entry, "main_score": trec[main], "hf_subset": "default", "languages": list(LANGUAGES)}
        ]
    try:
        date: float | None = datetime.fromisoformat(result.created).timestamp()
    except ValueError:
        date = None
    return {
        "dataset_revision": revision or NO_DATASET_REVISION,
        "task_name": task.name,
        "mteb_version": None,
        "scores": scores,
        "evaluation_time": result.timings.get("total_s") if whole else None,
        "kg_co2_emissions": None,
        "date": date,
    }


def _model_meta(result: Result, name: str) -> dict[str, Any]:
    """``model_meta.json`` with ModelMeta.to_dict's keys: what the harness knows, null elsewhere."""
    kind = result.model.get("kind")
    return {
        "loader_kwargs": {},
        "name": name,
        "revision": result.model.get("revision"),
        "release_date": None,
        "languages": None,
        "n_parameters": result.model.get("parameters"),
        "n_active_parameters_override": None,
        "n_embedding_parameters": None,
        "memory_usage_mb": None,
        "max_tokens": None,
        "embed_dim": None,
        "license": None,
        "open_weights": None,
        "public_training_code": None,
        "public_training_data": None,
        "framework": [],
        "reference": None,
        "similarity_fn_name": "MaxSim" if kind == "colbert" else None,
        "use_instructions": None,
        "training_datasets": None,
        "adapted_from": None,
        "superseded_by": None,
        "modalities": ["text"],
        "model_type": [{"colbert": "late-interaction", "bm25": "sparse"}.get(kind, "dense")],
        "citation": None,
        "contacts": None,
        "experiment_kwargs": None,
        "loader": None,
        "is_cross_encoder": False,
    }
