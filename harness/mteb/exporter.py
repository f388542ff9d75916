"""Harness runs out in MTEB's layout: TaskResult files and ``model_meta.json``, ready for a pull
request to MTEB's results repository (format: :mod:`harness.mteb.mapping`)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.fileio import write_json_atomic
from harness.models import find_model
from harness.mteb.mapping import (
    HARNESS_METRICS,
    METRICS,
    NO_REVISION,
    MappedTask,
    mapped_families,
    mteb_tasks_for,
)
from harness.records import SubsetScores
from harness.results import Result

NO_DATASET_REVISION = "dataset revision not available"  # MTEB's placeholder (pre-1.11 files)
LANGUAGES = ["eng-Latn"]  # every mapped task is English


def export_mteb(
    result: Result,
    out_dir: str | Path,
    *,
    model_name: str | None = None,
    dataset_revision: str | None = None,
) -> list[Path]:
    """Write a harness run as MTEB TaskResult files, atomically, for a submission to MTEB's results.

    Files: ``out_dir/<org>__<model>/<revision or no_revision_available>/<TaskName>.json``, one per
    MTEB task of the harness task (``Task.mteb``), and ``model_meta.json`` beside them unless one
    is there. Scores are the run's trec-convention table (MTEB's pytrec_eval figures),
    as fractions, unrounded, under MTEB's keys; ``main_score`` is MTEB's main metric. The model is
    ``model_name``, else the Hub id of the registered model, else the model id; ``dataset_revision``
    defaults to MTEB's placeholder (the harness does not load MTEB's dataset copies) and
    ``mteb_version`` is null (MTEB did not run). Returns the files written (model_meta.json last).

    InputError (nothing written): a published figure (not a run), a task without an MTEB name, a
    subset missing or unknown to MTEB's task, a subset without a trec table holding the main metric
    (card-convention figures are not MTEB's), a model name or revision unfit for a folder, a
    registered loader variant without ``model_name``.
    """
    if result.published is not None or result.model.kind == "published":
        raise InputError("a published figure, not a harness run: only runs are exported", field="published")
    tasks = mteb_tasks_for(result.task_name)
    if not tasks:
        raise InputError(
            f"{result.task_name!r} has no MTEB task (mapped: {mapped_families()})", field="task.name"
        )
    by_name = {s.name: (i, s) for i, s in enumerate(result.subsets)}
    expected = [name for t in tasks for _, name in t.splits]
    unknown, missing = sorted(set(by_name) - set(expected)), [n for n in expected if n not in by_name]
    if unknown or missing:
        raise InputError(f"subsets must be {expected}: missing {missing}, unknown {unknown}", field="subsets")
    name = _mteb_model_name(result, model_name)
    revision = result.model.revision or NO_REVISION
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
    task: MappedTask,
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
    kind = result.model.kind
    return {
        "loader_kwargs": {},
        "name": name,
        "revision": result.model.revision,
        "release_date": None,
        "languages": None,
        "n_parameters": result.model.parameters,
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
        "model_type": [{"colbert": "late-interaction", "bm25": "sparse"}.get(str(kind), "dense")],
        "citation": None,
        "contacts": None,
        "experiment_kwargs": None,
        "loader": None,
        "is_cross_encoder": False,
    }
