"""MTEB results files in: harness results (published rows, trec convention) from TaskResult files
in the results repository's layout (format: :mod:`harness.mteb.mapping`)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.models import find_model_by_hub_id
from harness.mteb.mapping import METRICS, NO_REVISION, SOURCE_PREFIX, MappedTask, mteb_tasks, mteb_tasks_for
from harness.records import ModelRecord, RetrievalRecord, SubsetScores, TaskRecord
from harness.results import Result, Results, read_json
from harness.tasks import get_task

log = logging.getLogger("harness.mteb")


class MtebImport(Results):
    """Imported results (a :class:`Results` list), plus ``skipped``: file -> why it gave no row."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


@dataclass
class _Part:
    """One parsed TaskResult file of a mapped task."""

    file: Path
    task: MappedTask
    data: dict[str, Any]
    subsets: list[SubsetScores]


def import_mteb_results(path: str | Path, *, model_id: str | None = None) -> MtebImport:
    """Harness results (published rows, trec convention) from MTEB TaskResult files.

    ``path`` is one TaskResult file or a folder searched for ``*.json`` in the results-repository
    layout. A file's model is named by the ``model_meta.json`` beside it (``name``, ``revision``,
    ``n_parameters``), else by its folders (``<org>__<model>/<revision>/``), unless ``model_id`` is
    given; a Hub id registered in ``harness.models`` takes its registered name, so the row sits beside
    harness runs of that model. Only the MTEB tasks of registered tasks (``Task.mteb``) give rows, one
    per harness task: a harness task made of several MTEB tasks needs all of them in the same
    folder. The rest land in ``skipped`` (file -> reason) and the log; in a folder, JSON that
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
    mapped = mteb_tasks()
    groups: dict[tuple[Path, str], list[_Part]] = {}
    for file in files:
        part = _parse_file(file, mapped, strict=file == path, skipped=out.skipped)
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
    for skipped, reason in out.skipped.items():
        log.info("%s: skipped (%s)", skipped, reason)
    return out


def _parse_file(
    file: Path, mapped: dict[str, MappedTask], *, strict: bool, skipped: dict[str, str]
) -> _Part | None:
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
    task = mapped.get(name)
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


def _subset(scores: dict[str, Any], split: str, name: str, task: MappedTask, file: str) -> SubsetScores:
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


def _model_record(folder: Path, model_id: str | None) -> ModelRecord:
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
    return ModelRecord(
        id=model_id or (info.name if info else str(name)),
        revision=None if revision in (None, NO_REVISION) else revision,
        kind="published",
        parameters=parameters if parameters is not None else (info.parameters if info else None),
        size_group=info.size_group if info else None,
    )


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
        task=TaskRecord(
            name=task.name,
            convention="trec",
            main_metric=task.main_metric,
            split=task.eval_split,
            source=f"MTEB {', '.join(p.task.name for p in parts)} (split {', '.join(splits)})",
        ),
        retrieval=RetrievalRecord("published"),
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
