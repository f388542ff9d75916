"""The model card: the YAML model-index in PyLate's card structure, naming and order (checked
against the seed card; a dense model's in sentence-transformers' own: :class:`CardLibrary`), and the
NanoBEIR / BEIR / LongEmbed tables placing the model among the published rows of its size group."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.errors import InputError
from harness.fileio import write_text_atomic
from harness.metrics import CARD_METRICS, metric_label
from harness.models import find_model
from harness.report.catalogue import (
    DEFAULT_SIZE_GROUPS,
    beir_card_columns,
    group_order,
    is_published,
    longembed_tasks,
    nanobeir_datasets,
    prefer,
    size_group_for,
)
from harness.report.formats import bold, markdown_table
from harness.results import Result, result_filename

# The card's front matter around model-index (mxbai-edge-colbert-v0-17m), in its order.
CARD_FRONT_MATTER: dict[str, Any] = {
    "language": ["en"],
    "tags": [
        "ColBERT",
        "PyLate",
        "sentence-transformers",
        "sentence-similarity",
        "feature-extraction",
        "generated_from_trainer",
        "transformers",
    ],
    "pipeline_tag": "sentence-similarity",
    "library_name": "PyLate",
    "metrics": None,  # filled with the prefixed metric names
    "model-index": None,  # filled by card_model_index
    "license": "apache-2.0",
}


@dataclass(frozen=True)
class CardLibrary:
    """What a card says of the library that loads the model: ``library_name`` and tags in the front
    matter, the score-function prefix of the metric names and the model-index task of each dataset."""

    library_name: str
    tags: tuple[str, ...]
    score_name: str
    task_type: str
    task_name: str


# PyLate's card (the seed); sentence-transformers' for a dense model (its "cosine_ndcg@10" metrics of
# InformationRetrievalEvaluator, task "information-retrieval").
PYLATE = CardLibrary(
    "PyLate",
    tuple(CARD_FRONT_MATTER["tags"]),
    "MaxSim",
    "py-late-information-retrieval",
    "Py Late Information Retrieval",
)
SENTENCE_TRANSFORMERS = CardLibrary(
    "sentence-transformers",
    tuple(t for t in PYLATE.tags if t not in ("ColBERT", "PyLate")),
    "cosine",
    "information-retrieval",
    "Information Retrieval",
)


def card_library(results: Sequence[Result], model_name: str) -> CardLibrary:
    """The model's library by its kind: the kind its runs record (``colbert`` / ``dense``), else the
    registry's; sentence-transformers for a dense model, PyLate otherwise."""
    kinds = [
        r.model.kind for r in results if r.model_id == model_name and r.model.kind in ("colbert", "dense")
    ]
    info = find_model(model_name)
    kind = kinds[-1] if kinds else info.kind if info else "colbert"
    return SENTENCE_TRANSFORMERS if kind == "dense" else PYLATE


def _metric_type(metric: str, score_name: str) -> str:
    return f"{score_name}_{metric}"


def _metric_display(metric: str, score_name: str) -> str:
    """Display name as the card writes it: ``MaxSim_ndcg@10`` -> ``Maxsim Ndcg@10``."""
    return _metric_type(metric, score_name).replace("_", " ").title()


def _yaml_number(value: float) -> float | int:
    """Whole numbers as ints, the way the card writes ``value: 1``."""
    return int(value) if float(value).is_integer() else float(value)


def nanobeir_card_metrics(results: Sequence[Result], model_name: str) -> dict[str, dict[str, float]]:
    """Card metrics per NanoBEIR dataset (card order) for ``model_name``, plus ``"NanoBEIR_mean"``.

    Per dataset: the mean over its subsets of each card metric (one subset in NanoBEIR).
    The mean is ``np.mean`` over the datasets present, in card order — the same aggregation
    (sentence-transformers' ``NanoBEIREvaluator`` ``aggregate_fn=np.mean``) that produced the card.
    """
    datasets = nanobeir_datasets()
    if not datasets:
        raise InputError("no NanoBEIR tasks are registered (is the package installed with its entry points?)")
    chosen = prefer(r for r in results if r.model_id == model_name and r.task_name in datasets)
    table: dict[str, dict[str, float]] = {}
    for name in datasets:
        result = chosen.get((model_name, name))
        if result is None:
            continue
        row = {}
        for metric in CARD_METRICS:
            values = [s.card.get(metric) if s.card else None for s in result.subsets]
            if any(v is None for v in values):
                raise InputError(f"the {name} result of {model_name!r} holds no card metric {metric!r}")
            row[metric] = float(np.mean([v for v in values if v is not None]))  # none is None
        table[name] = row
    missing = [name for name in datasets if name not in table]
    if missing:  # the card's NanoBEIR mean is over all 13: a partial mean would be mislabelled
        raise InputError(
            f"model {model_name!r} has no NanoBEIR results for {', '.join(missing)}: the card's NanoBEIR "
            "mean is over all 13 datasets (evaluate them with --tasks NanoBEIR)"
        )
    table["NanoBEIR_mean"] = {m: float(np.mean([table[d][m] for d in table])) for m in CARD_METRICS}
    return table


def card_model_index(
    results: Sequence[Result],
    model_name: str,
    *,
    display_name: str | None = None,
    library: CardLibrary | None = None,
) -> dict[str, Any]:
    """``{"model-index": [...]}`` in the card's structure, naming and order (see the seed card), in
    ``library``'s terms (default: :func:`card_library`)."""
    library = library or card_library(results, model_name)
    score_name = library.score_name

    def metrics(row: dict[str, float]) -> list[dict[str, Any]]:
        return [
            {
                "type": _metric_type(m, score_name),
                "value": _yaml_number(row[m]),
                "name": _metric_display(m, score_name),
            }
            for m in CARD_METRICS
        ]

    table = nanobeir_card_metrics(results, model_name)
    mean = table.pop("NanoBEIR_mean")
    entries = [
        {
            "task": {"type": library.task_type, "name": library.task_name},
            "dataset": {"name": name, "type": name},
            "metrics": metrics(row),
        }
        for name, row in table.items()
    ]
    entries.append(
        {
            "task": {"type": "nano-beir", "name": "Nano BEIR"},
            "dataset": {"name": "NanoBEIR mean", "type": "NanoBEIR_mean"},
            "metrics": metrics(mean),
        }
    )
    name = display_name or model_name.rstrip("/").rsplit("/", 1)[-1]
    return {"model-index": [{"name": name, "results": entries}]}


def render_card_yaml(
    results: Sequence[Result],
    model_name: str,
    *,
    display_name: str | None = None,
    library: CardLibrary | None = None,
    front_matter: Mapping[str, Any] | None = None,
) -> str:
    """The card's YAML front matter, ``---`` delimited: ``front_matter`` (default: the seed card's
    keys and order, ``library``'s name and tags: :func:`card_library`) with ``metrics`` and
    ``model-index`` filled from the results when the model has NanoBEIR results (the card's
    model-index holds those only)."""
    library = library or card_library(results, model_name)
    own = {"tags": list(library.tags), "library_name": library.library_name}
    header = dict(CARD_FRONT_MATTER | own if front_matter is None else front_matter)
    if _has_nanobeir(results, model_name):
        header["metrics"] = [_metric_type(m, library.score_name) for m in CARD_METRICS]
        header.update(card_model_index(results, model_name, display_name=display_name, library=library))
    else:  # the placeholders would read as empty values
        header = {k: v for k, v in header.items() if k not in ("metrics", "model-index")}
    body = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=10**6)
    return f"---\n{body}---\n"


def _has_nanobeir(results: Sequence[Result], model_name: str) -> bool:
    datasets = set(nanobeir_datasets())
    return any(r.model_id == model_name and r.task_name in datasets for r in results)


def nanobeir_markdown_table(results: Sequence[Result], model_name: str, *, decimals: int = 4) -> str:
    """Rows: the NanoBEIR datasets and their mean (bold); columns: the 15 card metrics."""
    table = nanobeir_card_metrics(results, model_name)
    header = ["Dataset", *[_metric_display(m, "x").split(" ", 1)[1] for m in CARD_METRICS]]
    rows = []
    for name, row in table.items():
        is_mean = name == "NanoBEIR_mean"
        label = "NanoBEIR mean" if is_mean else name
        rows.append([bold(label, is_mean), *[bold(f"{row[m]:.{decimals}f}", is_mean) for m in CARD_METRICS]])
    return markdown_table(header, rows)


@dataclass
class _CardRow:
    name: str
    group: str
    values: list[float | None]
    highlight: bool
    note: str = ""


def _card_rows(
    results: Sequence[Result], model_name: str, tasks: Sequence[str], average_task: str
) -> list[_CardRow]:
    """Rows for a card table: AVG then ``tasks``; the model (and its ``model (variant)`` ids) highlighted."""
    relevant = [r for r in results if r.task_name in (*tasks, average_task)]
    chosen = prefer(relevant)
    is_model = {m: m == model_name or m.startswith(model_name + " (") for m, _ in chosen}
    model_ids = [m for m in dict.fromkeys(m for m, _ in chosen) if is_model[m] or _any_published(chosen, m)]
    labels = [g for r in relevant if (g := r.model.size_group)]
    rows = []
    for model_id in model_ids:
        mine = {task: r for (m, task), r in chosen.items() if m == model_id}
        values = [mine[t].main_score if t in mine else None for t in tasks]
        note = ""
        if average_task in mine:
            average = mine[average_task].main_score
        elif all(v is not None for v in values):
            average, note = float(np.mean([v for v in values if v is not None])), "mean of the columns shown"
        else:
            average = None
        info = next(iter(mine.values())).model
        group = next((r.model.size_group for r in mine.values() if r.model.size_group), None)
        group = group or size_group_for(info.parameters, labels or DEFAULT_SIZE_GROUPS)
        rows.append(_CardRow(model_id, group, [average, *values], is_model[model_id], note))
    return rows


def _any_published(chosen: Mapping[tuple[str, str], Result], model_id: str) -> bool:
    return any(is_published(r) for (m, _), r in chosen.items() if m == model_id)


def _card_table(rows: list[_CardRow], header: Sequence[str], decimals: int = 3) -> str:
    """Markdown table grouped by size (large first); the best value per group and column in bold."""
    groups = sorted(dict.fromkeys(r.group for r in rows), key=lambda g: (group_order(g), g))
    out = []
    for group in groups:
        members = [r for r in rows if r.group == group]
        # the highlighted model first, then the others by their first column (AVG), best first
        members.sort(
            key=lambda r: (not r.highlight, -(r.values[0] if r.values[0] is not None else -math.inf))
        )
        best = [
            max((v for r in members if (v := r.values[i]) is not None), default=None)
            for i in range(len(header) - 1)
        ]
        out.append([f"**{group}**", *[""] * (len(header) - 1)])
        for r in members:
            cells = [
                bold(f"{v:.{decimals}f}" + ("\\*" if i == 0 and r.note else ""), v == best[i])
                if v is not None
                else "–"
                for i, v in enumerate(r.values)
            ]
            out.append([bold(r.name, r.highlight), *cells])
    return markdown_table(header, out)


def render_model_card(results: Sequence[Result], model_name: str, *, display_name: str | None = None) -> str:
    """Markdown model card for whatever benchmarks the model has: YAML front matter (model-index from
    NanoBEIR), the NanoBEIR table, BEIR and LongEmbed tables placing the model among the published
    rows of its size group (best per group in bold, as the card does). InputError when the results
    hold nothing of the model. Without results on those benchmarks, the Evaluation section says so
    and lists the model's other tasks (ad-hoc datasets) with their scores."""
    if not any(r.model_id == model_name for r in results):
        raise InputError(f"no results of model {model_name!r} (ids are as stored in the results files)")
    name = display_name or model_name.rstrip("/").rsplit("/", 1)[-1]
    parts = [
        render_card_yaml(results, model_name, display_name=display_name),
        f"\n# {name}\n",
        "\n## Evaluation\n",
    ]
    tables = len(parts)
    if _has_nanobeir(results, model_name):
        parts += ["\n### NanoBEIR\n\n", nanobeir_markdown_table(results, model_name)]
    columns = beir_card_columns()
    beir = _card_rows(results, model_name, [t for _, t in columns], "BEIR")
    if any(r.highlight for r in beir):
        header = ["Model", "AVG", *[label for label, _ in columns]]
        parts += ["\n### **Results on BEIR**\n\n", _card_table(beir, header)]
    long = _card_rows(results, model_name, list(longembed_tasks()), "LongEmbed")
    if any(r.highlight for r in long):
        for row in long:  # the card shows the AVG only
            del row.values[1:]
        parts += ["\n### **Results on LongEmbed**\n\n", _card_table(long, ["Model", "AVG"])]
    if any(r.note for r in beir + long):
        parts.append(
            "\n\\* mean of the per-dataset columns computed here; the published AVG figures are taken as "
            "reported (the card's BEIR AVG is not the mean of the seven columns shown).\n"
        )
    if len(parts) == tables:
        return "".join([*parts, _other_tasks(results, model_name)])
    parts.append(
        "\nNanoBEIR: card convention (sentence-transformers metrics). BEIR: nDCG@10, trec_eval convention. "
        "LongEmbed: mean of the six task scores.\n"
    )
    return "".join(parts)


def _other_tasks(results: Sequence[Result], model_name: str) -> str:
    """The Evaluation section of a model without results on the card's benchmarks: why there is no
    table, and its tasks (ad-hoc datasets, tasks outside the card's tables) with main metric and score."""
    mine = prefer(r for r in results if r.model_id == model_name)
    rows = [
        [task, f"{metric_label(r.task.main_metric)} ({r.task.convention})", f"{r.main_score:.4f}"]
        for (_, task), r in sorted(mine.items())
    ]
    return (
        "\nNo results on the card's benchmarks (NanoBEIR, BEIR, LongEmbed) were given, so no table places "
        "this model among published ones. Its results are on other tasks (ad-hoc datasets: no published "
        "figure compares with them):\n\n" + markdown_table(["Task", "Metric", "Score"], rows)
    )


def write_card_after_full_nanobeir(results: Sequence[Result], output: Path | None) -> list[Path]:
    """After ``harness evaluate``: for each model whose ``results`` cover every NanoBEIR dataset, its
    model card (model-index YAML + tables, :func:`render_model_card`) written next to the results,
    as ``<output>/<model>__model_card.md`` (``result_filename``'s name); nothing without an output
    folder or a full NanoBEIR run. Returns the paths written."""
    datasets = set(nanobeir_datasets())
    by_model: dict[str, set[str]] = {}
    for r in results:
        by_model.setdefault(r.model_id, set()).add(r.task_name)
    written = []
    for model, tasks in by_model.items():
        if output and datasets and datasets <= tasks:
            path = output / result_filename(model, "model_card").replace(".json", ".md")
            write_text_atomic(path, render_model_card(results, model))
            written.append(path)
    return written
