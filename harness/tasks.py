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
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from harness.data import load_beir_tree
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
    splits (MTEB's ``"default"`` subset) with the harness subset it scores. Its main score is the
    harness task's main metric."""

    name: str
    splits: tuple[tuple[str, str], ...]


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
    reg = _registry()
    out: dict[str, Task] = {}
    for raw in names:
        for name in filter(None, (n.strip() for n in raw.split(","))):
            key = name.lower()
            if key in reg.tasks:
                found = [reg.tasks[key]]
            elif key in reg.groups:
                found = [reg.tasks[m.lower()] for m in reg.groups[key].members]
            elif data_dir is not None and (Path(data_dir) / name).is_dir():
                found = [_registered_folder(name, data_dir) or folder_task(Path(data_dir) / name, name)]
            else:
                raise InputError(_unknown_message(name, data_dir), field="--tasks")
            for task in found:
                out.setdefault(task.name, task)
    return list(out.values())


def _registered_folder(name: str, data_dir: str | Path) -> Task | None:
    """The one registered task whose ``folder_name`` is ``name``, so the same data always lands in
    the same table; None when no task, or several, have it."""
    matches = [t for t in _registry().tasks.values() if t.folder_name == name]  # the loader reads that folder
    if len(matches) != 1:
        return None
    log.info("%s: the registered task %s (its folder under %s)", name, matches[0].name, data_dir)
    return matches[0]


def folder_task(path: str | Path, name: str | None = None) -> Task:
    """An ad-hoc BEIR-folder task: trec convention, nDCG@10, split ``test``.

    A folder without ``corpus.jsonl`` whose subfolders are BEIR folders (like CQADupStack)
    gives one subset per subfolder.
    """
    path = Path(path)

    def loader(split: str, local: Path | None, cache_dir: Path | None) -> list[Dataset]:
        return load_beir_tree(local or path, split)

    return Task(name or path.name, path.name, "trec", "ndcg@10", "test", True, loader, f"BEIR folder {path}")


def _unknown_message(name: str, data_dir: str | Path | None = None) -> str:
    reg = _registry()
    known = [t.name for t in reg.tasks.values()] + [g.name for g in reg.groups.values()]
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)
    close += [k for k in by_lower if name.lower() in k and k not in close][: 5 - len(close)]
    hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
    where = f" and there is no folder {Path(data_dir) / name}" if data_dir is not None else ""
    return f"unknown task or group {name!r}{where}{hint} (`harness tasks` lists them)"
