"""Reports from results files: the model card (YAML model-index + tables) and the leaderboard.

Conventions shared with ``results/published/``:

* NanoBEIR tasks are ``Nano<Dataset>`` (card convention), BEIR tasks ``BEIR/<name>``,
  LongEmbed tasks ``LongEmbed/<task>``.
* An *average-only* figure (a published AVG without its per-dataset numbers) is a result
  whose task name is the benchmark name (``BEIR``, ``LongEmbed``), with one subset named
  ``AVG`` whose table holds the single metric ``avg`` (= ``task.main_metric``).
* Rows of one size group are compared with each other; a result's group is
  ``model.size_group`` or, failing that, derived from ``model.parameters`` and the bounds
  written in the group labels (``"Small Models (<25M)"``).
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import yaml

from harness.fileio import write_bytes_atomic, write_text_atomic
from harness.results import Result
from harness.types import InputError

NANOBEIR_DATASETS = (
    "NanoClimateFEVER",
    "NanoDBPedia",
    "NanoFEVER",
    "NanoFiQA2018",
    "NanoHotpotQA",
    "NanoMSMARCO",
    "NanoNFCorpus",
    "NanoNQ",
    "NanoQuoraRetrieval",
    "NanoSCIDOCS",
    "NanoArguAna",
    "NanoSciFact",
    "NanoTouche2020",
)
CARD_METRICS = tuple(
    [f"accuracy@{k}" for k in (1, 3, 5, 10)]
    + [f"precision@{k}" for k in (1, 3, 5, 10)]
    + [f"recall@{k}" for k in (1, 3, 5, 10)]
    + ["ndcg@10", "mrr@10", "map@100"]
)
# (column label in the card's BEIR table, harness task name), in the card's order.
BEIR_CARD_COLUMNS = (
    ("MS MARCO", "BEIR/msmarco"),
    ("SciFact", "BEIR/scifact"),
    ("Touche", "BEIR/webis-touche2020"),
    ("FiQA", "BEIR/fiqa"),
    ("TREC-COVID", "BEIR/trec-covid"),
    ("NQ", "BEIR/nq"),
    ("DBPedia", "BEIR/dbpedia-entity"),
)
LONGEMBED_TASKS = ("narrativeqa", "summ_screen_fd", "qmsum", "2wikimqa", "passkey", "needle")
DEFAULT_SIZE_GROUPS = ("Large Models (>100M)", "Medium Models (<35M)", "Small Models (<25M)")
AVERAGE_SUBSET = "AVG"
AVERAGE_METRIC = "avg"
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
FAMILIES = ("NanoBEIR", "BEIR", "LongEmbed", "Other")


# --------------------------------------------------------------------------- selection helpers


def family(task_name: str) -> str:
    """Benchmark a task belongs to: NanoBEIR, BEIR, LongEmbed or Other."""
    if task_name in NANOBEIR_DATASETS or task_name.startswith("Nano"):
        return "NanoBEIR"
    for name in ("BEIR", "LongEmbed"):
        if task_name == name or task_name.startswith(name + "/"):
            return name
    return "Other"


def is_average_only(result: Result) -> bool:
    """A published benchmark average without per-dataset numbers (module docstring)."""
    return len(result.subsets) == 1 and result.subsets[0].name == AVERAGE_SUBSET


def is_published(result: Result) -> bool:
    return result.model.get("kind") == "published" or result.published is not None


def _prefer(results: Iterable[Result]) -> dict[tuple[str, str], Result]:
    """One result per (model id, task): a run beats a published figure, then the newest wins."""
    chosen: dict[tuple[str, str], Result] = {}
    for r in results:
        old = chosen.get((r.model_id, r.task_name))
        if old is None or (not is_published(r), r.created) > (not is_published(old), old.created):
            chosen[(r.model_id, r.task_name)] = r
    return chosen


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


def _group_order(label: str) -> float:
    """Sort key putting large groups first (as the card does) and unknown ones last."""
    bound = _bound(label)
    if bound is None:
        return math.inf
    op, value = bound
    return -(value * 1000 if op == ">" else value)


def _decimals(values: Iterable[float], cap: int = 4) -> int:
    """Digits that show published figures as printed (0.416, 0.480 -> 3), at most ``cap``."""
    digits = [
        len(t.split(".")[1]) if "." in t and "e" not in t else cap for t in map(repr, map(float, values))
    ]
    return min(cap, max(digits, default=cap))


# --------------------------------------------------------------------------- model card


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
    chosen = _prefer(r for r in results if r.model_id == model_name and r.task_name in NANOBEIR_DATASETS)
    table: dict[str, dict[str, float]] = {}
    for name in NANOBEIR_DATASETS:
        result = chosen.get((model_name, name))
        if result is None:
            continue
        row = {}
        for metric in CARD_METRICS:
            values = [s.card.get(metric) if s.card else None for s in result.subsets]
            if any(v is None for v in values):
                raise InputError(f"card metric {metric!r} missing", field=f"{name}.subsets.card.{metric}")
            row[metric] = float(np.mean(values))
        table[name] = row
    missing = [name for name in NANOBEIR_DATASETS if name not in table]
    if missing:  # the card's NanoBEIR mean is over all 13: a partial mean would be mislabelled
        raise InputError(f"no results for {', '.join(missing)} (model {model_name!r})", field="task.name")
    table["NanoBEIR_mean"] = {m: float(np.mean([table[d][m] for d in table])) for m in CARD_METRICS}
    return table


def card_model_index(
    results: Sequence[Result], model_name: str, *, display_name: str | None = None, score_name: str = "MaxSim"
) -> dict[str, Any]:
    """``{"model-index": [...]}`` in the card's structure, naming and order (see the seed card)."""

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
            "task": {"type": "py-late-information-retrieval", "name": "Py Late Information Retrieval"},
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
    score_name: str = "MaxSim",
    front_matter: Mapping[str, Any] | None = None,
) -> str:
    """The card's YAML front matter, ``---`` delimited: ``front_matter`` (default: the seed card's
    keys and order) with ``metrics`` and ``model-index`` filled from the results."""
    header = dict(CARD_FRONT_MATTER if front_matter is None else front_matter)
    header["metrics"] = [_metric_type(m, score_name) for m in CARD_METRICS]
    header.update(card_model_index(results, model_name, display_name=display_name, score_name=score_name))
    body = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=10**6)
    return f"---\n{body}---\n"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = [":---"] + [":---:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def _bold(text: str, on: bool) -> str:
    return f"**{text}**" if on and text else text


def nanobeir_markdown_table(results: Sequence[Result], model_name: str, *, decimals: int = 4) -> str:
    """Rows: the NanoBEIR datasets and their mean (bold); columns: the 15 card metrics."""
    table = nanobeir_card_metrics(results, model_name)
    header = ["Dataset", *[_metric_display(m, "x").split(" ", 1)[1] for m in CARD_METRICS]]
    rows = []
    for name, row in table.items():
        is_mean = name == "NanoBEIR_mean"
        label = "NanoBEIR mean" if is_mean else name
        rows.append(
            [_bold(label, is_mean), *[_bold(f"{row[m]:.{decimals}f}", is_mean) for m in CARD_METRICS]]
        )
    return _markdown_table(header, rows)


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
    chosen = _prefer(relevant)
    is_model = {m: m == model_name or m.startswith(model_name + " (") for m, _ in chosen}
    model_ids = [m for m in dict.fromkeys(m for m, _ in chosen) if is_model[m] or _any_published(chosen, m)]
    labels = [g for r in relevant if (g := r.model.get("size_group"))]
    rows = []
    for model_id in model_ids:
        mine = {task: r for (m, task), r in chosen.items() if m == model_id}
        values = [mine[t].main_score if t in mine else None for t in tasks]
        note = ""
        if average_task in mine:
            average = mine[average_task].main_score
        elif all(v is not None for v in values):
            average, note = float(np.mean(values)), "mean of the columns shown"
        else:
            average = None
        info = next(iter(mine.values())).model
        group = next((r.model.get("size_group") for r in mine.values() if r.model.get("size_group")), None)
        group = group or size_group_for(info.get("parameters"), labels or DEFAULT_SIZE_GROUPS)
        rows.append(_CardRow(model_id, group, [average, *values], is_model[model_id], note))
    return rows


def _any_published(chosen: Mapping[tuple[str, str], Result], model_id: str) -> bool:
    return any(is_published(r) for (m, _), r in chosen.items() if m == model_id)


def _card_table(rows: list[_CardRow], header: Sequence[str], decimals: int = 3) -> str:
    """Markdown table grouped by size (large first); the best value per group and column in bold."""
    groups = sorted(dict.fromkeys(r.group for r in rows), key=lambda g: (_group_order(g), g))
    out = []
    for group in groups:
        members = [r for r in rows if r.group == group]
        # the highlighted model first, then the others by their first column (AVG), best first
        members.sort(
            key=lambda r: (not r.highlight, -(r.values[0] if r.values[0] is not None else -math.inf))
        )
        best = [
            max((r.values[i] for r in members if r.values[i] is not None), default=None)
            for i in range(len(header) - 1)
        ]
        out.append([f"**{group}**", *[""] * (len(header) - 1)])
        for r in members:
            cells = [
                _bold(f"{v:.{decimals}f}" + ("\\*" if i == 0 and r.note else ""), v == best[i])
                if v is not None
                else "–"
                for i, v in enumerate(r.values)
            ]
            out.append([_bold(r.name, r.highlight), *cells])
    return _markdown_table(header, out)


def render_model_card(results: Sequence[Result], model_name: str, *, display_name: str | None = None) -> str:
    """Markdown model card: YAML front matter, NanoBEIR table, BEIR and LongEmbed tables placing the
    model among the published rows of its size group (best per group in bold, as the card does)."""
    name = display_name or model_name.rstrip("/").rsplit("/", 1)[-1]
    parts = [
        render_card_yaml(results, model_name, display_name=display_name),
        f"\n# {name}\n",
        "\n## Evaluation\n",
    ]
    parts += ["\n### NanoBEIR\n\n", nanobeir_markdown_table(results, model_name)]
    beir = _card_rows(results, model_name, [t for _, t in BEIR_CARD_COLUMNS], "BEIR")
    if any(r.highlight for r in beir):
        header = ["Model", "AVG", *[label for label, _ in BEIR_CARD_COLUMNS]]
        parts += ["\n### **Results on BEIR**\n\n", _card_table(beir, header)]
    long = _card_rows(results, model_name, [f"LongEmbed/{t}" for t in LONGEMBED_TASKS], "LongEmbed")
    if any(r.highlight for r in long):
        for row in long:  # the card shows the AVG only
            del row.values[1:]
        parts += ["\n### **Results on LongEmbed**\n\n", _card_table(long, ["Model", "AVG"])]
    if any(r.note for r in beir + long):
        parts.append(
            "\n\\* mean of the per-dataset columns computed here; the published AVG figures are taken as "
            "reported (the card's BEIR AVG is not the mean of the seven columns shown).\n"
        )
    parts.append(
        "\nNanoBEIR: card convention (sentence-transformers metrics). BEIR: nDCG@10, trec_eval convention. "
        "LongEmbed: mean of the six task scores.\n"
    )
    return "".join(parts)


# --------------------------------------------------------------------------- confidence intervals


def bootstrap_ci(
    strata: Sequence[tuple[np.ndarray, float]], *, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Stratified percentile bootstrap CI of ``sum_s w_s * mean(x_s)``.

    Queries are resampled with replacement within each stratum (a dataset or subset) and the
    weighted sum recomputed; the CI is the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the
    ``n_resamples`` replicates (numpy's linear interpolation). Seeded, so deterministic.
    """
    rng = np.random.default_rng(seed)
    replicates = np.zeros(n_resamples)
    for values, weight in strata:
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        block = max(1, (1 << 21) // max(n, 1))
        for start in range(0, n_resamples, block):
            size = min(block, n_resamples - start)
            replicates[start : start + size] += weight * values[rng.integers(0, n, size=(size, n))].mean(
                axis=1
            )
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _strata(result: Result, weight: float) -> list[tuple[np.ndarray, float]] | None:
    """Per-query strata of a task score (subset weight 1/S), None if any subset lacks per-query scores."""
    if not all(s.per_query for s in result.subsets):
        return None
    share = weight / len(result.subsets)
    return [(np.fromiter(s.per_query.values(), dtype=np.float64), share) for s in result.subsets]


# --------------------------------------------------------------------------- leaderboard


@dataclass
class Cell:
    value: float | None
    decimals: int = 4
    ci: tuple[float, float] | None = None
    bold: bool = False

    def text(self) -> str:
        return "–" if self.value is None else f"{self.value:.{self.decimals}f}"


@dataclass
class Row:
    model_id: str
    published: bool
    group: str
    cells: list[Cell]
    parameters: int | None = None
    throughput: float | None = None  # document tokens encoded per second
    summary: float | None = None  # headline score: Mean, else Reported AVG, else the only dataset

    @property
    def label(self) -> str:
        return self.model_id + (" †" if self.published else "")


@dataclass
class Table:
    family: str
    columns: list[str]  # value columns (after the model column)
    datasets: int  # how many of the columns are datasets (the rest: Mean, Reported AVG)
    rows: list[Row] = field(default_factory=list)

    @property
    def groups(self) -> list[str]:
        return sorted(dict.fromkeys(r.group for r in self.rows), key=lambda g: (_group_order(g), g))

    def rows_of(self, group: str) -> list[Row]:
        return [r for r in self.rows if r.group == group]


def _dataset_order(fam: str, names: Iterable[str]) -> list[str]:
    names = set(names)
    known = {
        "NanoBEIR": list(NANOBEIR_DATASETS),
        "BEIR": [t for _, t in BEIR_CARD_COLUMNS],
        "LongEmbed": [f"LongEmbed/{t}" for t in LONGEMBED_TASKS],
    }.get(fam, [])
    return [n for n in known if n in names] + sorted(names - set(known))


def _column_label(task: str) -> str:
    labels = {t: label for label, t in BEIR_CARD_COLUMNS}
    if task in labels:
        return labels[task]
    if task in NANOBEIR_DATASETS:
        return task[len("Nano") :]
    return task.split("/", 1)[1] if "/" in task else task


def leaderboard_tables(
    results: Sequence[Result], *, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> list[Table]:
    """One table per benchmark family: dataset columns, ``Mean`` (when any row has every dataset)
    and ``Reported AVG`` (when average-only results exist); rows grouped by size, bold = best in group.

    Row key: (model id, published?) so a rerun sits beside the published figure it reproduces.
    ``Mean`` is the unweighted mean over the dataset columns (``np.mean`` in column order, which for
    NanoBEIR is the card's ``NanoBEIR_mean``); its CI bootstraps every dataset's queries jointly.
    """
    tables = []
    for fam in FAMILIES:
        members = [r for r in results if family(r.task_name) == fam]
        if not members:
            continue
        datasets = _dataset_order(fam, {r.task_name for r in members if not is_average_only(r)})
        has_avg = any(is_average_only(r) for r in members)
        by_key: dict[tuple[str, bool], dict[str, Result]] = {}
        for r in sorted(members, key=lambda r: r.created):
            by_key.setdefault((r.model_id, is_published(r)), {})[r.task_name] = r
        has_mean = len(datasets) > 1 and any(all(d in tasks for d in datasets) for tasks in by_key.values())
        columns = [_column_label(d) for d in datasets] + ["Mean"] * has_mean + ["Reported AVG"] * has_avg
        table = Table(fam, columns, len(datasets))
        labels = [g for r in members if (g := r.model.get("size_group"))] or list(DEFAULT_SIZE_GROUPS)
        published_digits = _decimals(r.main_score for r in members if is_published(r))
        for (model_id, published), tasks in by_key.items():
            digits = published_digits if published else 4
            cells = [_task_cell(tasks.get(d), digits, n_resamples, seed, level) for d in datasets]
            if has_mean:
                cells.append(_mean_cell([tasks.get(d) for d in datasets], n_resamples, seed, level))
            if has_avg:
                avg = next((r for r in tasks.values() if is_average_only(r)), None)
                cells.append(Cell(avg.main_score, digits) if avg else Cell(None))
            models = [r.model for r in tasks.values()]
            group = next((m["size_group"] for m in models if m.get("size_group")), None)
            parameters = next((m["parameters"] for m in models if m.get("parameters")), None)
            headline = cells[len(datasets) :] if len(datasets) > 1 else cells
            table.rows.append(
                Row(
                    model_id,
                    published,
                    group or size_group_for(parameters, labels),
                    cells,
                    parameters,
                    _throughput(tasks.values()),
                    next((c.value for c in headline if c.value is not None), None),
                )
            )
        ordered = []
        for group in table.groups:
            rows = sorted(table.rows_of(group), key=lambda r: (-_or(r.summary, -math.inf), r.label))
            for i in range(len(columns)):
                best = max((r.cells[i].value for r in rows if r.cells[i].value is not None), default=None)
                for r in rows:
                    r.cells[i].bold = r.cells[i].value is not None and r.cells[i].value == best
            ordered += rows
        table.rows = ordered
        tables.append(table)
    return tables


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _task_cell(result: Result | None, digits: int, n_resamples: int, seed: int, level: float) -> Cell:
    if result is None:
        return Cell(None)
    strata = _strata(result, 1.0)
    ci = bootstrap_ci(strata, n_resamples=n_resamples, seed=seed, level=level) if strata else None
    return Cell(result.main_score, digits, ci)


def _mean_cell(results: list[Result | None], n_resamples: int, seed: int, level: float) -> Cell:
    if any(r is None for r in results):
        return Cell(None)
    value = float(np.mean([r.main_score for r in results]))
    strata = [_strata(r, 1.0 / len(results)) for r in results]
    ci = None
    if all(s is not None for s in strata):
        ci = bootstrap_ci([x for s in strata for x in s], n_resamples=n_resamples, seed=seed, level=level)
    return Cell(value, 4, ci)


def _throughput(results: Iterable[Result]) -> float | None:
    """Document tokens encoded per second over the results that timed their encoding."""
    tokens = seconds = 0.0
    for r in results:
        n, s = (r.tokens or {}).get("documents"), (r.timings or {}).get("encode_documents_s")
        if n and s and s > 0:
            tokens, seconds = tokens + n, seconds + s
    return tokens / seconds if seconds else None


def _ci_text(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def leaderboard_markdown(tables: Sequence[Table], figures: Sequence[tuple[str, str]], method: str) -> str:
    parts = ["# Leaderboard\n\n", method, "\n"]
    for table in tables:
        header = ["Model", *table.columns]
        rows = []
        for group in table.groups:
            rows.append([f"**{group}**", *[""] * len(table.columns)])
            for r in table.rows_of(group):
                cells = []
                for c in r.cells:
                    text = _bold(c.text(), c.bold and c.value is not None)
                    cells.append(text + (f" ({_ci_text(c.ci)})" if c.ci else ""))
                rows.append([r.label.replace("|", "\\|"), *cells])
        parts += [f"\n## {table.family}\n\n", _markdown_table(header, rows)]
    if figures:
        parts.append("\n## Plots\n\n")
        parts += [f"![{caption}]({name})\n\n" for name, caption in figures]
    return "".join(parts)


def leaderboard_html(
    tables: Sequence[Table], figures: Sequence[tuple[str, str, bytes]], method: str, title: str
) -> str:
    """One self-contained page: inline CSS/JS (sortable headers), plots as base64 PNG."""
    esc = html.escape
    body = [f'<p class="note">{esc(method)}</p>']
    for table in tables:
        ncols = len(table.columns) + 1
        head = '<th data-type="text">Model</th>' + "".join(
            f'<th data-type="number">{esc(c)}</th>' for c in table.columns
        )
        body.append(f'<h2 id="{_slug(table.family)}">{esc(table.family)}</h2>')
        body.append(
            f'<div class="scroll"><table class="sortable" id="table-{_slug(table.family)}">'
            f"<thead><tr>{head}</tr></thead>"
        )
        for group in table.groups:
            label = f'<tr class="group"><th colspan="{ncols}">{esc(group)}</th></tr>'
            body.append(f'<tbody data-group="{esc(group)}">{label}')
            for r in table.rows_of(group):
                name = esc(r.model_id) + (
                    ' <span class="pub" title="published figure">†</span>' if r.published else ""
                )
                cells = [f'<td data-sort="{esc(r.model_id)}">{name}</td>']
                for c in r.cells:
                    text = esc(c.text())
                    if c.bold:
                        text = f"<b>{text}</b>"
                    if c.ci:
                        text += f'<span class="ci">{esc(_ci_text(c.ci))}</span>'
                    sort = "" if c.value is None else repr(c.value)
                    cells.append(f'<td data-sort="{sort}">{text}</td>')
                body.append(f'<tr class="row">{"".join(cells)}</tr>')
            body.append("</tbody>")
        body.append("</table></div>")
    if figures:
        body.append("<h2>Plots</h2>")
        for name, caption, png in figures:
            data = base64.b64encode(png).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(caption)} ({esc(name)})</figcaption></figure>"
            )
    template = Template((resources.files("harness") / "templates" / "leaderboard.html").read_text("utf-8"))
    meta = f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by harness."
    return template.substitute(title=esc(title), meta=esc(meta), body="\n".join(body))


def _save_figure(fig: Any, out_dir: Path, stem: str) -> bytes:
    """Write ``stem.png`` and ``stem.svg`` atomically; returns the PNG bytes."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "harness"}):
        outputs = {}
        for fmt in ("png", "svg"):
            buffer = io.BytesIO()
            fig.savefig(
                buffer,
                format=fmt,
                dpi=110,
                bbox_inches="tight",
                metadata={"Software": None} if fmt == "png" else {"Date": None},
            )
            outputs[fmt] = buffer.getvalue()
            write_bytes_atomic(out_dir / f"{stem}.{fmt}", outputs[fmt])
    return outputs["png"]


def leaderboard_figures(
    tables: Sequence[Table], out_dir: Path, max_models: int = 12
) -> list[tuple[str, str, bytes]]:
    """Per-dataset bars (with CI whiskers), headline score vs parameters and vs encoding throughput.

    Returns (PNG file name, caption, PNG bytes) for each figure written (PNG + SVG) under ``out_dir``.
    """
    import matplotlib
    from matplotlib.figure import Figure  # the OO API: no pyplot state, no GUI backend

    figures = []
    for table in tables:
        rows = [r for r in table.rows if any(c.value is not None for c in r.cells[: table.datasets])]
        if not rows or not table.datasets:
            continue
        rows = sorted(rows, key=lambda r: -(r.summary or 0.0))[:max_models]
        fig = Figure(figsize=(max(6.0, 0.6 * table.datasets * max(1, len(rows)) ** 0.5 + 3), 4.5))
        ax = fig.subplots()
        width = 0.8 / len(rows)
        x = np.arange(table.datasets)
        colors = matplotlib.colormaps["tab10" if len(rows) <= 10 else "tab20"].colors
        for i, r in enumerate(rows):
            cells = r.cells[: table.datasets]
            offsets = x + (i - (len(rows) - 1) / 2) * width
            values = [np.nan if c.value is None else c.value for c in cells]
            ax.bar(offsets, values, width, label=r.label, color=colors[i % len(colors)])
            whiskers = [(o, c) for o, c in zip(offsets, cells, strict=True) if c.ci and c.value is not None]
            if whiskers:  # 95% CI where per-query scores exist
                ax.errorbar(
                    [o for o, _ in whiskers],
                    [c.value for _, c in whiskers],
                    yerr=np.array([[c.value - c.ci[0], c.ci[1] - c.value] for _, c in whiskers]).T,
                    fmt="none",
                    ecolor="black",
                    capsize=2,
                    linewidth=0.8,
                )
        ax.set_xticks(x, table.columns[: table.datasets], rotation=45, ha="right")
        ax.set_ylabel("main score (per task)")
        ax.set_title(f"{table.family}: per-dataset scores")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        stem = f"{_slug(table.family)}_per_dataset"
        figures.append(
            (f"{stem}.png", f"{table.family} per-dataset scores", _save_figure(fig, out_dir, stem))
        )
    for attr, stem, xlabel in (
        ("parameters", "score_vs_parameters", "parameters"),
        ("throughput", "score_vs_throughput", "document tokens encoded per second"),
    ):
        points = [(t.family, r) for t in tables for r in t.rows if getattr(r, attr) and r.summary is not None]
        if not points:
            continue
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        for fam in dict.fromkeys(f for f, _ in points):
            mine = [r for f, r in points if f == fam]
            ax.scatter([getattr(r, attr) for r in mine], [r.summary for r in mine], label=fam)
            for r in mine:
                ax.annotate(
                    r.label,
                    (getattr(r, attr), r.summary),
                    fontsize=6,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean score (or reported AVG)")
        ax.set_title(f"Average score vs {xlabel}")
        ax.legend(fontsize=8)
        figures.append((f"{stem}.png", f"average score vs {xlabel}", _save_figure(fig, out_dir, stem)))
    return figures


def render_leaderboard(
    results: Sequence[Result],
    out_dir: Path = Path("reports"),
    *,
    title: str = "Retrieval leaderboard",
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    plots: bool = True,
) -> tuple[Path, Path]:
    """Write ``leaderboard.md``, ``leaderboard.html`` (self-contained) and the plots (PNG + SVG) to
    ``out_dir``; returns (markdown path, html path)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = leaderboard_tables(results, n_resamples=n_resamples, seed=seed, level=level)
    method = (
        f"Scores are each task's main metric (NanoBEIR: card convention; BEIR, LongEmbed: trec_eval). "
        f"Bold: best in the size group. In parentheses: {level:.0%} confidence interval, a stratified "
        f"percentile bootstrap over queries ({n_resamples} resamples, seed {seed}), shown where per-query "
        f"scores exist. † published figure, transcribed, not run. "
        f"Mean: unweighted mean over the dataset columns."
    )
    figures = leaderboard_figures(tables, out_dir) if plots else []
    md_path, html_path = out_dir / "leaderboard.md", out_dir / "leaderboard.html"
    write_text_atomic(md_path, leaderboard_markdown(tables, [(n, c) for n, c, _ in figures], method))
    write_text_atomic(html_path, leaderboard_html(tables, figures, method, title))
    return md_path, html_path
