"""Harness runs out in MTEB's layout: TaskResult files and ``model_meta.json`` that MTEB's loaders
read (format: :mod:`harness.mteb.mapping`), with notes on what a submission to MTEB's results
repository still needs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.fileio import write_json_atomic
from harness.models import find_model
from harness.mteb.mapping import (
    NO_REVISION,
    MappedTask,
    harness_metric,
    is_length_variant,
    mapped_families,
    mteb_metric,
    mteb_tasks,
    mteb_tasks_for,
)
from harness.records import SubsetScores
from harness.results import Result, read_json

NO_DATASET_REVISION = "dataset revision not available"  # MTEB's placeholder (pre-1.11 files)
# The results repository's checks (embeddings-benchmark/results tests/): a new model_meta.json
# revision is a full commit sha1 (or one character, API versions): test_ensure_correct_metadata.py
PINNED_REVISION = re.compile(r"[0-9a-f]{40}|\w")
NOT_MTEB_RUN = (
    "mteb_version is null and there is no run_settings.jsonl: MTEB did not run these figures. MTEB's "
    "loaders read them; the results repository takes new results only as MTEB writes them "
    "(tests/test_new_results_run_settings.py: mteb_version > 2.0.0, run_settings.jsonl)"
)


class MtebExport(list[Path]):
    """The files an export wrote (a list, model_meta.json last), plus ``notes``: the placeholders it
    wrote and what a submission to the results repository still needs (printed by the CLI)."""

    def __init__(self, paths: list[Path], notes: list[str]) -> None:
        super().__init__(paths)
        self.notes = notes


@dataclass
class ExportPlan:
    """Runs' MTEB files, checked and not yet written: ``documents`` (path -> TaskResult),
    ``model_metas`` (path -> ``model_meta.json`` document; each written unless one is there) and
    ``notes``."""

    documents: dict[Path, dict[str, Any]]
    model_metas: dict[Path, dict[str, Any]]
    notes: list[str]

    def write(self) -> MtebExport:
        """Write the files atomically; returns them (the model_meta.json files written last)."""
        for path, document in self.documents.items():
            write_json_atomic(path, document)
        written = list(self.documents)
        for meta, document in self.model_metas.items():
            if not meta.exists():
                write_json_atomic(meta, document, indent=4)
                written.append(meta)
        return MtebExport(written, self.notes)


@dataclass(frozen=True)
class _Part:
    """One run's entries in one MTEB file: split -> entry of ``task.hf_subset``; ``whole``: the run
    maps to this file alone (its time is the file's)."""

    run: Result
    task: MappedTask
    entries: dict[str, dict[str, Any]]
    whole: bool


def export_mteb(
    results: Result | Iterable[Result],
    out_dir: str | Path,
    *,
    model_name: str | None = None,
    revision: str | None = None,
    dataset_revision: str | None = None,
) -> MtebExport:
    """Write harness runs as MTEB TaskResult files, atomically: :func:`plan_export`, then write."""
    return plan_export(
        results, out_dir, model_name=model_name, revision=revision, dataset_revision=dataset_revision
    ).write()


def plan_export(
    results: Result | Iterable[Result],
    out_dir: str | Path,
    *,
    model_name: str | None = None,
    revision: str | None = None,
    dataset_revision: str | None = None,
) -> ExportPlan:
    """Harness runs' MTEB files, checked, nothing written.

    Files: ``out_dir/<org>__<model>/<revision>/<TaskName>.json``, one per MTEB task of each harness
    task (``Task.mteb``), and ``model_meta.json`` beside them unless one is there. The runs of one
    model that map to one MTEB task share its file, one entry per HF subset (``LoTTE.json``: a
    domain's run each), in the mapping's order; an export of the same task and dataset revision
    already in that file keeps its other subsets (as MTEB merges a rerun), a note says so. Scores
    are the run's trec-convention table (MTEB's pytrec_eval figures), as fractions, unrounded, under
    MTEB's keys (``success@5`` -> ``hit_rate_at_5``); ``main_score`` is MTEB's main metric,
    ``hf_subset`` and ``languages`` the subset's (:class:`~harness.mteb.mapping.MappedTask`). The
    model is ``model_name``, else the Hub id of the registered model (one whose overrides are
    prompts only is the model as MTEB runs it), else the model id: an ``org/name`` (MTEB's
    ``ModelMeta`` refuses other names). The revision is ``revision``, else the run's; without one it
    is MTEB's ``no_revision_available`` (folder and ``model_meta.json``: MTEB's loaders list the
    model), and a note says the results repository wants a pinned commit. ``dataset_revision``
    defaults to MTEB's placeholder (the harness does not load MTEB's dataset copies) and
    ``mteb_version`` is null (MTEB did not run): notes say so. ``evaluation_time`` is the sum of the
    runs' ``total_s`` where each run maps to that file alone, else null.

    InputError: a published figure (not a run), a task without an MTEB name, a subset missing or
    unknown to MTEB's task, a subset without a trec table holding the main metric (card-convention
    figures are not MTEB's), a model name not ``org/name`` or a revision unfit for a folder, a
    registered length variant without ``model_name``, two runs giving one entry of one file, a file
    there of another run (mteb_version, dataset revision) holding subsets the export would drop.
    """
    runs = [results] if isinstance(results, Result) else list(results)
    notes = [NOT_MTEB_RUN]
    if dataset_revision is None:
        notes.append(
            f"dataset_revision is {NO_DATASET_REVISION!r}: the harness loads its own copies of the "
            "datasets, not MTEB's at a recorded revision"
        )
    parts: dict[Path, list[_Part]] = {}
    metas: dict[Path, dict[str, Any]] = {}
    for run in runs:
        tasks = _checked_tasks(run)
        folder, name = _folder(run, Path(out_dir), model_name, revision, notes)
        by_name = {s.name: (i, s) for i, s in enumerate(run.subsets)}
        for t in tasks:
            part = _Part(run, t, _entries(t, by_name), len(tasks) == 1)
            parts.setdefault(folder / f"{t.name}.json", []).append(part)
        metas.setdefault(folder / "model_meta.json", _model_meta(run, name, folder.name))
    order = [t.key for t in mteb_tasks().values()]
    documents = {
        path: _task_result(path, group, dataset_revision, order, notes) for path, group in parts.items()
    }
    return ExportPlan(documents, metas, list(dict.fromkeys(notes)))


def _checked_tasks(result: Result) -> tuple[MappedTask, ...]:
    """The run's MTEB tasks, after checking that it is a run of a mapped task with MTEB's subsets."""
    if result.published is not None or result.model.kind == "published":
        raise InputError("a published figure, not a harness run: only runs are exported", field="published")
    tasks = mteb_tasks_for(result.task_name)
    if not tasks:
        raise InputError(
            f"{result.task_name!r} has no MTEB task (mapped: {mapped_families()})", field="task.name"
        )
    names = {s.name for s in result.subsets}
    expected = [name for t in tasks for _, name in t.splits]
    unknown, missing = sorted(names - set(expected)), [n for n in expected if n not in names]
    if unknown or missing:
        raise InputError(f"subsets must be {expected}: missing {missing}, unknown {unknown}", field="subsets")
    return tasks


def _folder(
    result: Result, out_dir: Path, model_name: str | None, revision: str | None, notes: list[str]
) -> tuple[Path, str]:
    """The run's ``<org>__<model>/<revision>`` folder and MTEB model name; notes on its revision."""
    name = _mteb_model_name(result, model_name)
    pinned = revision or result.model.revision
    where = "revision" if revision else "model.revision"
    folder_revision = pinned or NO_REVISION
    if not re.fullmatch(r"[\w.\-]+", folder_revision) or not folder_revision.strip("."):
        raise InputError(f"{folder_revision!r} cannot name a folder", field=where)
    if pinned is None:
        notes.append(
            f"{name}: no model revision, filed as {NO_REVISION!r} (what MTEB writes for a model without "
            "one; its loaders list it); the results repository wants a pinned commit: pass --revision SHA"
        )
    elif not PINNED_REVISION.fullmatch(pinned):
        notes.append(
            f"{name}: revision {pinned!r} is not a full 40-character commit, which the results "
            "repository wants (tests/test_ensure_correct_metadata.py): pass --revision SHA"
        )
    return out_dir / name.replace("/", "__").replace(" ", "_") / folder_revision, name


def _mteb_model_name(result: Result, override: str | None) -> str:
    """``override``, else the registered model's Hub id, else the model id; checked: ``org/name``,
    fit for a folder."""
    name, where = override, "model_name"
    if name is None:
        info, where = find_model(result.model_id), "model.id"
        if info is not None and is_length_variant(info):
            raise InputError(
                f"{result.model_id!r} is {info.hub_id} loaded with {dict(info.overrides)}: MTEB files "
                "results by model name and revision, so name this variant (--model-name org/name)",
                field="model_name",
            )
        name = info.hub_id if info is not None else result.model_id
    if not re.fullmatch(r"[\w.\- ]+/[\w.\- ]+", name) or ".." in name:
        raise InputError(
            f"{name!r} is not an MTEB model name: MTEB's ModelMeta wants 'organization/model_name' "
            "(pass --model-name org/name)",
            field=where,
        )
    return name


def _entries(task: MappedTask, by_name: dict[str, tuple[int, SubsetScores]]) -> dict[str, dict[str, Any]]:
    """Split -> the ``scores`` entry of ``task.hf_subset``, keys in the order MTEB writes them."""
    scores = {}
    for split, name in task.splits:
        i, subset = by_name[name]
        trec, main = subset.trec or {}, str(harness_metric(task.main_score))
        if main not in trec:
            raise InputError(
                f"no trec-convention {main}: MTEB reports pytrec_eval (trec_eval) figures, not card ones",
                field=f"subsets[{i}].trec",
            )
        entry: dict[str, Any] = {}
        for metric, value in trec.items():
            key = mteb_metric(metric)
            if key is not None:
                entry[key] = value
        scores[split] = entry | {
            "main_score": trec[main],
            "hf_subset": task.hf_subset,
            "languages": list(task.languages),
        }
    return scores


def _task_result(
    path: Path,
    parts: list[_Part],
    revision: str | None,
    order: list[tuple[str, str]],
    notes: list[str],
) -> dict[str, Any]:
    """One TaskResult document from the runs' parts (and the entries kept from the file at ``path``),
    keys in the order MTEB writes them, entries in the mapping's ``order``."""
    name = parts[0].task.name
    given: dict[tuple[str, str], _Part] = {}
    for part in sorted(parts, key=lambda p: order.index(p.task.key)):
        for split in part.entries:
            other = given.setdefault((split, part.task.hf_subset), part)
            if other is not part:
                raise InputError(
                    f"{other.run.file or other.run.task_name} and {part.run.file or part.run.task_name} both "
                    f"give {name} split {split} hf_subset {part.task.hf_subset}: export one of them",
                    field="results",
                )
    scores: dict[str, list[dict[str, Any]]] = {}
    for (split, _), part in given.items():
        scores.setdefault(split, []).append(part.entries[split])
    times = [t for p in parts if isinstance(t := p.run.timings.get("total_s"), (int, float))]
    dates = [_timestamp(p.run.created) for p in parts]
    document = {
        "dataset_revision": revision or NO_DATASET_REVISION,
        "task_name": name,
        "mteb_version": None,
        "scores": scores,
        "evaluation_time": sum(times) if all(p.whole for p in parts) and len(times) == len(parts) else None,
        "kg_co2_emissions": None,
        "date": max((d for d in dates if d is not None), default=None),
    }
    kept = _kept(path, document)
    if kept:
        rank = {sub: i for i, sub in enumerate(sub for task, sub in order if task == name)}
        for split, entry in kept:
            scores.setdefault(split, []).append(entry)
        for entries in scores.values():
            entries.sort(key=lambda e: rank.get(str(e.get("hf_subset")), len(rank)))
        document["evaluation_time"] = None
        subsets = sorted({str(e.get("hf_subset")) for _, e in kept})
        notes.append(f"{path}: kept the entries already there of hf_subset {', '.join(subsets)}")
    return document


def _kept(path: Path, document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (split, entry) pairs of the TaskResult at ``path`` that ``document`` does not replace,
    where it is an export of the same task, dataset revision and mteb_version (MTEB merges a rerun
    so); InputError where it is another run's and holds such entries (the export would drop them)."""
    old = read_json(path, "MTEB results file") if path.is_file() else None
    scores = old.get("scores") if isinstance(old, dict) else None
    if not isinstance(old, dict) or not isinstance(scores, dict):
        return []
    ours = {(split, e["hf_subset"]) for split, entries in document["scores"].items() for e in entries}
    kept = [
        (split, entry)
        for split, entries in scores.items()
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict) and (split, entry.get("hf_subset", "default")) not in ours
    ]
    same = ("task_name", "dataset_revision", "mteb_version")
    if kept and any(old.get(key) != document[key] for key in same):
        raise InputError(
            f"holds {len(kept)} entries of another run ({', '.join(f'{k} {old.get(k)!r}' for k in same)}) "
            "that this export would drop: export to another folder",
            file=str(path),
        )
    return kept


def _timestamp(created: str) -> float | None:
    """A run's ``created`` as MTEB's ``date`` (a POSIX timestamp), or None."""
    try:
        return datetime.fromisoformat(created).timestamp()
    except ValueError:
        return None


def _model_meta(result: Result, name: str, revision: str) -> dict[str, Any]:
    """``model_meta.json`` with ModelMeta.to_dict's keys: what the harness knows, null elsewhere."""
    kind = result.model.kind
    return {
        "loader_kwargs": {},
        "name": name,
        "revision": revision,
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
