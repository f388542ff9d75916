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
from harness.models import find_model
from harness.mteb.mapping import (
    BOOKKEEPING,
    NO_REVISION,
    SOURCE_PREFIX,
    MappedTask,
    harness_metric,
    long_document_task,
    mteb_tasks,
    mteb_tasks_for,
    registered_model,
)
from harness.records import ModelRecord, RetrievalRecord, SubsetScores, TaskRecord
from harness.results import Result, Results, read_json
from harness.tasks import get_task

log = logging.getLogger("harness.mteb")


class MtebImport(Results):
    """Imported results (a :class:`Results` list), plus ``skipped``: file -> why it gave no row, and
    ``dropped``: file -> the MTEB keys of its rows that are no harness metric (:func:`dropped_keys`)."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}
        self.dropped: dict[str, list[str]] = {}


@dataclass
class _Part:
    """One mapped (MTEB task, HF subset) of a parsed TaskResult file."""

    file: Path
    task: MappedTask
    data: dict[str, Any]
    subsets: list[SubsetScores]
    dropped: list[str]
    other_splits: list[str]  # splits of the file holding this HF subset that the harness task is not


def import_mteb_results(path: str | Path, *, model_id: str | None = None) -> MtebImport:
    """Harness results (published rows, trec convention) from MTEB TaskResult files.

    ``path`` is one TaskResult file or a folder searched for ``*.json`` in the results-repository
    layout. A file's model is named by the ``model_meta.json`` beside it (``name``, ``revision``,
    ``n_parameters``), else by its folders (``<org>__<model>/<revision>/``), unless ``model_id`` is
    given; a Hub id registered in ``harness.models`` takes its registered name, so the row sits beside
    harness runs of that model (:func:`~harness.mteb.mapping.registered_model`; a LongEmbed row goes to
    the length variant at the ``max_tokens`` of ``model_meta.json`` when one is registered). Every
    shared rank metric is kept (``ndcg_at_20`` -> ``ndcg@20``; ``hit_rate_at_5`` and its older name
    ``cv_recall_at_5`` -> ``success@5``); the other keys (``accuracy``, ``nauc_*``) are listed in
    ``dropped`` and the row's note, as are the file's other splits of the same subset (LoTTE's
    ``dev`` beside ``test``). Only the MTEB tasks of registered tasks (``Task.mteb``) give rows, one
    per harness task: each entry's ``hf_subset`` picks the harness task (a file holding several
    subsets, as ``LoTTE.json``, gives several rows; a mapped subset absent from it gives none; a task
    of one ``"default"`` subset needs that entry); a harness task made of several MTEB tasks needs all
    of them in the same folder. The rest land in ``skipped`` (file -> reason) and the log; in a
    folder, JSON that is not a TaskResult is skipped too. Each row is marked ``published`` with source
    ``MTEB results: <file>``. A malformed mapped file (or a given file that is no TaskResult) is an
    InputError naming the file and field.
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
        parts = _parse_file(file, mapped, strict=file == path, skipped=out.skipped)
        for part in parts:
            groups.setdefault((file.parent, part.task.harness_task), []).append(part)
        dropped = sorted({key for part in parts for key in part.dropped})
        if dropped:
            out.dropped[str(file)] = dropped
    for (folder, harness_task), parts in groups.items():
        have = {p.task.key for p in parts}
        missing = [t.name for t in mteb_tasks_for(harness_task) if t.key not in have]
        if missing:
            reason = f"{harness_task} needs every one of its MTEB tasks; missing {missing}"
            for part in parts:  # a file of several subsets may give other rows, or be skipped for several
                earlier = out.skipped.get(str(part.file))
                out.skipped[str(part.file)] = f"{earlier}; {reason}" if earlier else reason
            continue
        out.append(_result(folder, harness_task, parts, model_id))
    for skipped, reason in out.skipped.items():
        log.info("%s: skipped (%s)", skipped, reason)
    return out


def _parse_file(
    file: Path, mapped: dict[tuple[str, str], MappedTask], *, strict: bool, skipped: dict[str, str]
) -> list[_Part]:
    """One part per mapped HF subset the file holds (a task of one ``"default"`` subset: that one,
    required); none (reason in ``skipped``) for a file left out."""
    data = read_json(file, "MTEB results file")
    name = data.get("task_name", data.get("mteb_dataset_name")) if isinstance(data, dict) else None
    if not isinstance(name, str):
        if strict:
            raise InputError(
                "not an MTEB TaskResult (no string task_name)", file=str(file), field="task_name"
            )
        skipped[str(file)] = "not an MTEB TaskResult (no task_name)"
        return []
    tasks = [t for t in mapped.values() if t.name == name]
    if not tasks:
        skipped[str(file)] = f"MTEB task {name} has no harness task"
        return []
    scores = _scores(data, str(file))
    held = [t for t in tasks if any(_entry(scores.get(s), t.hf_subset) is not None for s, _ in t.splits)]
    if not held and len(tasks) > 1:
        raise InputError(
            f"no entry of an hf_subset mapped to a harness task ({', '.join(t.hf_subset for t in tasks)})",
            file=str(file),
            field="scores",
        )
    parts = []
    for task in held or tasks:
        dropped: set[str] = set()
        subsets = [_subset(scores, split, subset, task, str(file), dropped) for split, subset in task.splits]
        read = {split for split, _ in task.splits}
        other = sorted(s for s in scores if s not in read and _entry(scores[s], task.hf_subset) is not None)
        parts.append(_Part(file, task, data, subsets, sorted(dropped), other))
    return parts


def _entry(entries: Any, hf_subset: str) -> int | None:
    """The index of the ``hf_subset`` entry in a split's list, or None."""
    found = [e.get("hf_subset") if isinstance(e, dict) else None for e in entries or ()]
    return found.index(hf_subset) if isinstance(entries, list) and hf_subset in found else None


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


def _subset(
    scores: dict[str, Any], split: str, name: str, task: MappedTask, file: str, dropped: set[str]
) -> SubsetScores:
    """The ``task.hf_subset`` entry of ``scores[split]`` as a harness subset: its trec table (every
    shared rank metric); the keys that are no harness metric are added to ``dropped``."""
    entries = scores.get(split)
    if not isinstance(entries, list):
        raise InputError(
            f"missing (the split {task.name} is scored on) or not a list", file=file, field=f"scores.{split}"
        )
    i = _entry(entries, task.hf_subset)
    if i is None:
        found = [e.get("hf_subset") if isinstance(e, dict) else None for e in entries]
        raise InputError(
            f"no entry with hf_subset {task.hf_subset!r} (found {found})", file=file, field=f"scores.{split}"
        )
    entry, where = entries[i], f"scores.{split}[{i}]."
    trec: dict[str, float] = {}
    for key, value in entry.items():
        metric = harness_metric(key)
        if metric is not None:
            number = _number(value, file, where + key)
            if abs(trec.setdefault(metric, number) - number) > 1e-6:  # hit_rate_at_k beside cv_recall_at_k
                raise InputError(
                    f"{number!r} disagrees with {trec[metric]!r}, another key for {metric}",
                    file=file,
                    field=where + key,
                )
        elif key not in BOOKKEEPING:
            dropped.add(key)
    main_key = str(harness_metric(task.main_score))
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


def _model_record(folder: Path, model_id: str | None, harness_task: str) -> tuple[ModelRecord, str]:
    """The ``model`` of an imported row and what the note says of its length: ``model_id`` if given,
    else from ``model_meta.json`` when present, else from the folders when they are the results
    layout (``<org>__<model>/<revision>/``); a file in any other folder, without either, is an error
    (its folders name no model); a registered ``model_id`` (or alias) gives the registered name. A
    LongEmbed row of a model whose ``max_tokens`` is a registered length variant's document length
    is filed under that variant."""
    meta_file = folder / "model_meta.json"
    layout = "__" in folder.parent.name
    name = folder.parent.name.replace("__", "/") if layout else None
    revision, parameters, max_tokens = (folder.name if layout else None), None, None
    if meta_file.is_file():
        meta = read_json(meta_file, "MTEB model_meta.json")
        if not isinstance(meta, dict) or not isinstance(meta.get("name") or name, str):
            raise InputError(
                "expected the model's name (a string or null)", file=str(meta_file), field="name"
            )
        name, revision = meta.get("name") or name, meta.get("revision", revision)
        parameters, max_tokens = meta.get("n_parameters"), meta.get("max_tokens")
        if parameters is not None and (isinstance(parameters, bool) or not isinstance(parameters, int)):
            raise InputError(
                f"expected an integer or null, got {parameters!r}", file=str(meta_file), field="n_parameters"
            )
        if revision is not None and not isinstance(revision, str):
            raise InputError(
                f"expected a string or null, got {revision!r}", file=str(meta_file), field="revision"
            )
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, float)) or max_tokens % 1
        ):
            raise InputError(
                f"expected a whole number or null, got {max_tokens!r}",
                file=str(meta_file),
                field="max_tokens",
            )
    if not (model_id or name):
        raise InputError(
            "no model name: no model_meta.json and not in <org>__<model>/<revision>/ (pass --model-name)",
            file=str(folder),
        )
    length = int(max_tokens) if max_tokens is not None and long_document_task(harness_task) else None
    given = find_model(model_id) if model_id else None  # a registered alias names the model as the registry
    info = given or (registered_model(name, document_length=length) if name else None)
    at_length = info is not None and length is not None and info.overrides.get("document_length") == length
    record = ModelRecord(
        id=given.name if given else model_id or (info.name if info else str(name)),
        revision=None if revision in (None, NO_REVISION) else revision,
        kind="published",
        parameters=parameters if parameters is not None else (info.parameters if info else None),
        size_group=info.size_group if info else None,
    )
    return record, (f", documents up to max_tokens {length} (model_meta.json)" if at_length else "")


def _result(folder: Path, harness_task: str, parts: list[_Part], model_id: str | None) -> Result:
    """One published row from the files of one harness task, subsets in the mapping's order; its
    note says which MTEB keys were not kept."""
    order = {t.key: i for i, t in enumerate(mteb_tasks_for(harness_task))}
    parts = sorted(parts, key=lambda p: order[p.task.key])
    task = get_task(harness_task)
    first = parts[0].data
    files = str(parts[0].file) if len(parts) == 1 else f"{folder} ({', '.join(p.file.name for p in parts)})"
    splits = list(dict.fromkeys(s for p in parts for s, _ in p.task.splits))
    hf_subsets = [s for s in dict.fromkeys(p.task.hf_subset for p in parts) if s != "default"]
    within = f"hf_subset {', '.join(hf_subsets)}, " if hf_subsets else ""
    revisions = sorted({str(p.data.get("dataset_revision")) for p in parts})
    model, length = _model_record(folder, model_id, harness_task)
    dropped = dropped_keys({k for p in parts for k in p.dropped})
    other_splits = sorted({s for p in parts for s in p.other_splits})
    return Result(
        model=model,
        task=TaskRecord(
            name=task.name,
            convention="trec",
            main_metric=task.main_metric,
            split=task.eval_split,
            source=f"MTEB {', '.join(p.task.name for p in parts)} ({within}split {', '.join(splits)})",
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
            f"dataset_revision {', '.join(revisions)}{length}; imported, not a harness run"
            + (f"; not kept (no harness metric): {dropped}" if dropped else "")
            + (f"; not read (not this task's split): {', '.join(other_splits)}" if other_splits else ""),
        },
        environment={},
        created=_created(first.get("date")),
    )


def dropped_keys(keys: set[str] | list[str]) -> str:
    """MTEB keys left out, for a note: sorted, the ``nauc_*`` family as one entry with its count."""
    nauc = [k for k in keys if k.startswith("nauc_")]
    named = sorted(k for k in keys if not k.startswith("nauc_"))
    return ", ".join(named + ([f"nauc_* ({len(nauc)} keys)"] if nauc else []))


def _created(date: Any) -> str:
    """MTEB's ``date`` (a POSIX timestamp, mteb >= 2) as ISO 8601 UTC; now when absent or unusable."""
    try:
        when = datetime.fromtimestamp(date, timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        when = datetime.now(timezone.utc)
    return when.isoformat(timespec="seconds")
