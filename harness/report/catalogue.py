"""What reports show and how they group results: the benchmark catalogue, read from the task
registry only (the report families are the groups with ``report_order``: their datasets in order,
their column labels, their tables in the model card), which results are published figures or
averages only, and the size groups rows are compared within.

Conventions shared with ``results/published/``:

* A family's tasks are the members of its registry group (or are named ``<family>/<task>``).
* An *average-only* figure (a published AVG without its per-dataset numbers) is a result
  whose task name is the family's name, with one subset named ``AVG`` whose table holds the
  single metric ``avg`` (= ``task.main_metric``).
* Rows of one size group are compared with each other; a result's group is
  ``model.size_group`` or, failing that, derived from ``model.parameters`` and the bounds
  written in the group labels (``"Small Models (<25M)"``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from typing import Any

from harness.errors import InputError
from harness.models import find_model
from harness.mteb import SOURCE_PREFIX as MTEB_SOURCE
from harness.results import Result
from harness.tasks import CardTable, TaskGroup, get_task, report_groups

log = logging.getLogger(__name__)

OTHER = "Other"  # the family of tasks in no report group
DEFAULT_SIZE_GROUPS = ("Large Models (>100M)", "Medium Models (<35M)", "Small Models (<25M)")
AVERAGE_SUBSET = "AVG"
AVERAGE_METRIC = "avg"


def families() -> tuple[str, ...]:
    """The report families in report order (one leaderboard table each), then ``Other``."""
    return (*(g.name for g in report_groups()), OTHER)


def __getattr__(name: str) -> Any:
    if name == "FAMILIES":  # families(), for importers of the former constant
        return families()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _family_group(fam: str) -> TaskGroup | None:
    return next((g for g in report_groups() if g.name == fam), None)


def card_group(table: CardTable) -> TaskGroup | None:
    """The family shown as ``table`` in the model card (``TaskGroup.card_table``), if one is."""
    return next((g for g in report_groups() if g.card_table == table), None)


def _card_tasks(table: CardTable) -> tuple[str, ...]:
    group = card_group(table)
    return group.report_columns if group is not None else ()


def nanobeir_datasets() -> tuple[str, ...]:
    """The tasks of the card's metrics table and model-index, in the card's order."""
    return _card_tasks("metrics")


def longembed_tasks() -> tuple[str, ...]:
    """The tasks of the card's average-only table, in the card's order."""
    return _card_tasks("average")


def beir_card_columns() -> tuple[tuple[str, str], ...]:
    """(column label, task name) of the card's per-dataset table, in its order."""
    return tuple((label(name), name) for name in _card_tasks("columns"))


def label(task_name: str) -> str:
    """A task's column label: the registered task's, else the name after "/"."""
    try:
        return get_task(task_name).short_label
    except InputError:  # an unregistered name (a local folder, another registry)
        return task_name.rsplit("/", 1)[-1]


def family(task_name: str) -> str:
    """Benchmark a task belongs to: a report family when it is one of the family group's tasks,
    named ``<family>/...``, or the family's own average-only result; else Other."""
    for group in report_groups():
        suite = group.name
        if task_name == suite or task_name.startswith(suite + "/") or task_name in group.members:
            return suite
    return OTHER


def dataset_order(fam: str, names: Iterable[str]) -> list[str]:
    """``names`` in the order of the family's columns (``TaskGroup.columns``), then the others sorted."""
    names = set(names)
    group = _family_group(fam)
    known = list(group.report_columns) if group is not None else []
    return [n for n in known if n in names] + sorted(names - set(known))


def is_average_only(result: Result) -> bool:
    """A published benchmark average without per-dataset numbers (module docstring)."""
    return len(result.subsets) == 1 and result.subsets[0].name == AVERAGE_SUBSET


def is_published(result: Result) -> bool:
    return result.model.kind == "published" or result.published is not None


def origin(result: Result) -> str:
    """Where a result's figures come from: ``"run"`` (this harness), ``"MTEB"`` (imported MTEB
    results files) or ``"card"`` (transcribed from a model card): rows of different origins of one
    model stay apart."""
    if not is_published(result):
        return "run"
    return "MTEB" if (result.published or {}).get("source", "").startswith(MTEB_SOURCE) else "card"


def prefer(results: Iterable[Result]) -> dict[tuple[str, str], Result]:
    """One result per (model id, task): a run beats a published figure, then the newest wins; two
    runs of differing scores are logged (:func:`conflict_note`)."""
    chosen: dict[tuple[str, str], Result] = {}
    for r in results:
        old = chosen.get((r.model_id, r.task_name))
        if old is None or (not is_published(r), r.created) > (not is_published(old), old.created):
            chosen[(r.model_id, r.task_name)] = r
            if old is not None and is_published(old) == is_published(r):
                conflict_note(old, r)
        elif is_published(old) == is_published(r):
            conflict_note(r, old)
    return chosen


def registered_name(model_id: str) -> str:
    """The model registry's name for ``model_id`` (an alias such as ``snowflake-s`` resolved), else
    ``model_id`` itself."""
    info = find_model(model_id)
    return info.name if info else model_id


def conflict_note(dropped: Result, shown: Result) -> str | None:
    """When two results of one model and task score differently, a note (also logged) saying which
    one is shown and why (the newer); None when they agree."""
    if dropped.main_score == shown.main_score:
        return None
    where = {id(r): f" ({r.file})" if r.file else "" for r in (dropped, shown)}
    note = (
        f"{shown.model_id} on {label(shown.task_name)}: two results differ: "
        f"{dropped.main_score:.4f}{where[id(dropped)]} made {dropped.created}, "
        f"{shown.main_score:.4f}{where[id(shown)]} made {shown.created}; shown: the newer."
    )
    log.warning("%s", note)
    return note


def _bound(label: str) -> tuple[str, float] | None:
    """``("<", 25e6)`` from ``"Small Models (<25M)"``; None when the label holds no bound."""
    match = re.search(r"\(\s*([<>])\s*(\d+(?:\.\d+)?)\s*([MB])\s*\)", label)
    if not match:
        return None
    return match.group(1), float(match.group(2)) * (1e6 if match.group(3) == "M" else 1e9)


def size_group_for(parameters: int | None, labels: Iterable[str] = DEFAULT_SIZE_GROUPS) -> str:
    """The group whose bound fits ``parameters``: the tightest ``<X`` above it, else the largest
    ``>X`` below it; "Other sizes" if none fits, "Unknown size" without a parameter count."""
    if parameters is None:
        return "Unknown size"
    bounds = [(b, label) for label in labels if (b := _bound(label))]
    below = [(v, label) for (op, v), label in bounds if op == "<" and parameters < v]
    if below:
        return min(below)[1]
    above = [(v, label) for (op, v), label in bounds if op == ">" and parameters > v]
    return max(above)[1] if above else "Other sizes"


def group_order(label: str) -> float:
    """Sort key putting large groups first (as the card does) and unknown ones last."""
    bound = _bound(label)
    if bound is None:
        return math.inf
    op, value = bound
    return -(value * 1000 if op == ">" else value)


def decimals(values: Iterable[float], cap: int = 4) -> int:
    """Digits that show published figures as printed (0.416, 0.480 -> 3), at most ``cap``."""
    digits = [
        len(t.split(".")[1]) if "." in t and "e" not in t else cap for t in map(repr, map(float, values))
    ]
    return min(cap, max(digits, default=cap))
