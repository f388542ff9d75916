"""Tasks, task groups and the plugin registry.

A :class:`Task` says how to load one benchmark, how to score it and which MTEB tasks hold its
figures (:class:`MtebTask`); a :class:`TaskGroup` names a list of tasks and, when it is a report
family, how reports show it. The core names no dataset: what it knows of one comes from here.

Plugins
-------
Tasks come from entry points in the group ``harness.tasks``. Each entry point names a
zero-argument callable returning an iterable of :class:`Task` and :class:`TaskGroup`
objects. A third party adds tasks with, in its ``pyproject.toml``::

    [project.entry-points."harness.tasks"]
    mybench = "mypkg.harness_tasks:register"

    # mypkg/harness_tasks.py
    def register():
        def loader(split, local, cache_dir):      # local: DIR/<folder_name> if it exists
            return [load_beir_folder(local or download(...), split)]
        return [Task("MyBench", "mybench", "trec", "ndcg@10", "test", True, loader),
                TaskGroup("MyGroup", ("MyBench",), report_order=9)]  # its own leaderboard table

Names are unique across plugins, case-insensitively (a clash is an error naming both).

Name resolution (:func:`resolve_tasks`): a registered task, then a group (expanded), then,
with ``data_dir``, a folder ``data_dir/<name>`` in BEIR layout (or holding BEIR folders, one
subset each) becomes an ad-hoc task (trec convention, ``ndcg@10``, split ``test``). Lookups
ignore case. A registered task loads from ``data_dir/<folder_name>`` when that exists.

A folder named as one registered task's ``folder_name`` is that task only when it holds the task's
published sizes (``n_queries`` of the evaluation split, ``n_documents``), counted cheaply
(:func:`harness.data.count_beir`); otherwise it is an ad-hoc task under its folder name, with a
warning saying why, so a subset is never filed as the benchmark. A layout that cannot be counted
before loading (a Hub snapshot) is checked when loaded: a mismatch is an InputError. A folder name
must stay inside ``data_dir`` (no absolute path, no ``..`` leading out).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path, PurePath
from typing import Literal

from harness.data import count_beir, load_beir_tree
from harness.plugins import load_plugins
from harness.types import Dataset, HarnessError, InputError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "harness.tasks"

# loader(split, local_dir, cache_dir) -> one Dataset per subset. ``local_dir`` is
# ``data_dir/<folder_name>`` when that folder exists, else None (go to the Hub / network).
Loader = Callable[[str, Path | None, Path | None], list[Dataset]]


@dataclass(frozen=True)
class MtebTask:
    """An MTEB task holding a harness task's figures (or part of them): ``splits`` pairs each of its
    splits (in MTEB's HF subset ``hf_subset``: ``"default"``, or a language or domain of a task with
    several) with the harness subset it scores. Its main score is the harness task's main metric."""

    name: str
    splits: tuple[tuple[str, str], ...]
    hf_subset: str = "default"


@dataclass(frozen=True)
class Task:
    """One benchmark: how to load it and how to score it.

    ``convention`` picks the metric code ("card": sentence-transformers, "trec": pytrec_eval);
    the task score is the unweighted mean of ``main_metric`` over the subsets ``load`` returns.
    Reports read their catalogue from the registry: a group's members give the column order,
    ``label`` the column header.
    """

    name: str
    folder_name: str
    convention: Literal["card", "trec"]
    main_metric: str
    eval_split: str
    ignore_identical_ids: bool
    loader: Loader
    description: str = ""
    label: str = ""  # short name in report columns (default: the name after "/")
    n_queries: int | None = None  # the evaluation split's size as published (None: not recorded)
    n_documents: int | None = None
    mteb: tuple[MtebTask, ...] = ()  # the MTEB tasks making up this task, in order (none: not in MTEB)
    metrics: tuple[str, ...] = ()  # trec metrics beyond the standard set (trec_metrics' extra=): success@5

    @property
    def short_label(self) -> str:
        return self.label or self.name.rsplit("/", 1)[-1]

    def load(
        self,
        split: str | None = None,
        data_dir: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
    ) -> list[Dataset]:
        """Load the subsets of ``split`` (default ``eval_split``); ``data_dir/<folder_name>`` first."""
        local = Path(data_dir) / self.folder_name if data_dir is not None else None
        local = local if local is not None and local.is_dir() else None
        datasets = self.loader(split or self.eval_split, local, Path(cache_dir) if cache_dir else None)
        if not datasets:
            raise HarnessError(f"task {self.name!r} loaded no datasets")
        return datasets


CardTable = Literal["metrics", "columns", "average"]


@dataclass(frozen=True)
class TaskGroup:
    """A named list of task names, expanded by :func:`resolve_tasks`.

    A group with ``report_order`` is a report family: one leaderboard table (families sorted by
    it), whose dataset columns are ``columns`` (default: the members) in that order, headed by
    each task's ``label``. ``card_table`` is the family's table in the model card: ``metrics``
    (every card metric per dataset and their mean; the card's model-index), ``columns`` (the main
    metric per column) or ``average`` (the mean only).
    """

    name: str
    members: tuple[str, ...]
    report_order: int | None = None
    columns: tuple[str, ...] = ()
    card_table: CardTable | None = None

    @property
    def report_columns(self) -> tuple[str, ...]:
        return self.columns or self.members


@dataclass(frozen=True)
class _Registry:
    tasks: dict[str, Task]  # lower-cased name -> task, in registration order
    groups: dict[str, TaskGroup]  # lower-cased name -> group, in registration order


@functools.cache
def _registry() -> _Registry:
    items = load_plugins(entry_points(group=ENTRY_POINT_GROUP), (Task, TaskGroup), lambda item: [item.name])
    tasks = {key: item for key, item in items.items() if isinstance(item, Task)}
    groups = {key: item for key, item in items.items() if isinstance(item, TaskGroup)}
    for group in groups.values():
        missing = [m for m in (*group.members, *group.columns) if m.lower() not in tasks]
        if missing:
            raise HarnessError(f"group {group.name!r} names unregistered tasks {missing}")
    return _Registry(tasks, groups)


def reload_registry() -> None:
    """Forget the discovered plugins (the next lookup reads the entry points again)."""
    _registry.cache_clear()


def list_tasks() -> list[Task]:
    """All registered tasks, plugin by plugin in registration order."""
    return list(_registry().tasks.values())


def list_groups() -> dict[str, tuple[str, ...]]:
    """Group name -> member task names."""
    return {g.name: g.members for g in _registry().groups.values()}


def report_groups() -> list[TaskGroup]:
    """The groups that are report families, in report order."""
    found = [g for g in _registry().groups.values() if g.report_order is not None]
    return sorted(found, key=lambda g: g.report_order or 0)


def get_task(name: str) -> Task:
    """The registered task called ``name`` (any case)."""
    task = _registry().tasks.get(name.lower())
    if task is None:
        raise InputError(_unknown_message(name), field="--tasks")
    return task


def resolve_tasks(names: Iterable[str], data_dir: str | Path | None = None) -> list[Task]:
    """Task names / groups (comma-separated lists allowed) -> tasks, groups expanded, duplicates dropped."""
    out: dict[str, Task] = {}
    for raw in names:
        for name in filter(None, (n.strip() for n in raw.split(","))):
            for task in _lookup(name, data_dir):
                out.setdefault(task.name, task)
    return list(out.values())


def _lookup(name: str, data_dir: str | Path | None) -> list[Task]:
    """One name: a registered task or group (a warning for each that will read a local folder not
    holding its published sizes), else the task of folder ``data_dir/name``."""
    reg, key = _registry(), name.lower()
    if key in reg.tasks or key in reg.groups:
        group = reg.groups.get(key)
        found = [reg.tasks[m.lower()] for m in group.members] if group else [reg.tasks[key]]
        if data_dir is not None:
            for task in found:
                folder = Path(data_dir) / task.folder_name
                counts = count_beir(folder, task.eval_split) if task.n_queries and folder.is_dir() else None
                mismatch = _mismatch(task, *counts) if counts else ""
                if mismatch:
                    log.warning("%s: %s reads it, but %s", folder, task.name, mismatch)
        return found
    if data_dir is not None:
        rel = _inside(name, data_dir)
        if (Path(data_dir) / rel).is_dir():
            return [_folder(rel, Path(data_dir))]
    raise InputError(_unknown_message(name, data_dir), field="--tasks")


def _inside(name: str, data_dir: str | Path) -> str:
    """``name`` normalised as a folder below ``data_dir``; InputError naming --tasks when it is absolute
    or leads out of it. Lexical: a symbolic link inside ``data_dir`` is the user's, and followed."""
    rel = PurePath(os.path.normpath(name))
    if rel.is_absolute() or rel.parts[:1] in (("..",), ()):
        raise InputError(f"{name!r} is not a folder inside --data-dir {data_dir}", field="--tasks")
    return rel.as_posix()


def _folder(name: str, data_dir: Path) -> Task:
    """The task of folder ``data_dir/name``: the one registered task whose ``folder_name`` it is when
    the folder holds that task's published sizes (so the same data always lands in the same table),
    else an ad-hoc task; the log says which and why."""
    folder = data_dir / name
    matches = [t for t in _registry().tasks.values() if t.folder_name == name]  # the loader reads that folder
    if len(matches) != 1:
        return folder_task(folder, name, folder_name=name)
    task = matches[0]
    if not task.n_queries:
        log.info(
            "%s: the registered task %s (its folder under %s; no published sizes)", name, task.name, data_dir
        )
        return task
    counts = count_beir(folder, task.eval_split)
    mismatch = _mismatch(task, *counts) if counts else ""
    if mismatch:
        log.warning(
            "%s: an ad-hoc task %r, not the registered task %s: %s", folder, name, task.name, mismatch
        )
        return folder_task(folder, name, folder_name=name)
    how = "published sizes" if counts else "sizes checked on loading"
    log.info("%s: the registered task %s (its folder under %s; %s)", name, task.name, data_dir, how)
    # a layout counted only by loading it (a Hub snapshot) is checked then
    return task if counts else dataclasses.replace(task, loader=functools.partial(_checked_load, task))


def _mismatch(task: Task, n_queries: int, n_documents: int) -> str:
    """Empty when the counts are ``task``'s published sizes, else what differs, in words."""
    found = [(n_queries, task.n_queries, "queries"), (n_documents, task.n_documents, "documents")]
    if all(published is None or n == published for n, published, _ in found):
        return ""
    have = ", ".join(f"{n} {what}" for n, _, what in found)
    published = ", ".join(f"{p} {what}" for _, p, what in found if p is not None)
    return f"it holds {have} (split {task.eval_split!r}), published: {published}"


def _checked_load(task: Task, split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
    """``task.loader``; then, for the evaluation split of a local folder, InputError naming it when
    what was read is not the published size (the folder was taken for the task by its name)."""
    datasets = task.loader(split, local, cache_dir)
    if local is not None and split == task.eval_split:
        mismatch = _mismatch(
            task, sum(len(d.queries) for d in datasets), sum(len(d.corpus) for d in datasets)
        )
        if mismatch:
            raise InputError(
                f"not the registered task {task.name}: {mismatch}; a copy in BEIR layout under another "
                "folder name runs as an ad-hoc task",
                file=str(local),
            )
    return datasets


def folder_task(path: str | Path, name: str | None = None, *, folder_name: str | None = None) -> Task:
    """An ad-hoc BEIR-folder task: trec convention, nDCG@10, split ``test``; it loads
    ``data_dir/<folder_name>`` (default: the folder's name) when given a ``data_dir`` holding one.

    A folder without ``corpus.jsonl`` whose subfolders are BEIR folders (like CQADupStack)
    gives one subset per subfolder.
    """
    path = Path(path)

    def loader(split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
        return load_beir_tree(local or path, split)

    folder = folder_name or path.name
    return Task(name or path.name, folder, "trec", "ndcg@10", "test", True, loader, f"BEIR folder {path}")


def _unknown_message(name: str, data_dir: str | Path | None = None) -> str:
    reg = _registry()
    known = [t.name for t in reg.tasks.values()] + [g.name for g in reg.groups.values()]
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
    close += [k for k in by_lower if name.lower() in k and k not in close][: 5 - len(close)]
    hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
    where = f" and there is no folder {Path(data_dir) / name}" if data_dir is not None else ""
    return f"unknown task or group {name!r}{where}{hint} (`harness tasks` lists them)"
