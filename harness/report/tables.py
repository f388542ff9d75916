"""The leaderboard's table model: one table per benchmark family, rows grouped by size, cells
with 95% bootstrap intervals (``harness.stats.bootstrap_ci``) and significance against the group's
best run (paired t-test, Holm-corrected: ``harness.stats``) where per-query scores exist; and the
trade-off tables (:func:`tradeoff_tables`): per task, each model's runs (exact, PLAID, rerank,
compression variants) by cost, against the model's exact run."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.fidelity import base_name, is_approximate, line_key, paired_delta, run_label, variant_label
from harness.models import ModelInfo, find_model
from harness.records import ModelRecord
from harness.report.catalogue import (
    DEFAULT_SIZE_GROUPS,
    FAMILIES,
    conflict_note,
    dataset_order,
    decimals,
    family,
    group_order,
    is_average_only,
    is_published,
    label,
    origin,
    registered_name,
    size_group_for,
)
from harness.results import Result
from harness.stats import bootstrap_ci, holm, paired_t_test

ALPHA = 0.05  # significance level of the markers (after Holm's correction)


@dataclass
class Cell:
    value: float | None
    decimals: int = 4
    ci: tuple[float, float] | None = None
    bold: bool = False
    p_value: float | None = None  # Holm-adjusted, paired t-test against the group's best run
    reference: str | None = None  # the label of that best run
    queries: dict[str, float] | None = field(default=None, repr=False)  # "subset\0query id" -> score

    def text(self) -> str:
        return "–" if self.value is None else f"{self.value:.{self.decimals}f}"

    @property
    def rounded(self) -> float | None:
        """The value as shown: what "best" compares, so equal-looking cells are all bold or none."""
        return None if self.value is None else round(self.value, self.decimals)

    @property
    def significant(self) -> bool:
        """Significantly below the group's best run at ``ALPHA`` (Holm-corrected)."""
        return self.p_value is not None and self.p_value < ALPHA


@dataclass
class Row:
    model_id: str
    published: bool
    group: str
    cells: list[Cell]
    parameters: int | None = None
    throughput: float | None = None  # document tokens encoded per second
    summary: float | None = None  # headline score: Mean, else Reported AVG, else the only dataset
    revision: str | None = None  # the Hub commit the row's results were made with ("mixed": several)
    url: str | None = None  # the model's Hub page, when the registry knows its Hub id
    metrics: list[dict[str, float]] = field(default_factory=list)  # per dataset column: card metrics
    source: str | None = None  # where a published row's figures come from (a model card, MTEB files)
    origin: str = "run"  # catalogue.origin: "run", "card" or "MTEB"

    @property
    def version(self) -> str:
        """`` @abc1234`` for a known commit, empty otherwise."""
        return f" @{self.revision[:7]}" if self.revision else ""

    @property
    def label(self) -> str:
        return self.model_id + self.version + {"run": "", "card": " †", "MTEB": " † MTEB"}[self.origin]


@dataclass
class Table:
    family: str
    columns: list[str]  # value columns (after the model column)
    datasets: int  # how many of the columns are datasets (the rest: Mean, Reported AVG)
    rows: list[Row] = field(default_factory=list)
    decimals: int = 4  # one precision for every number of the table
    notes: list[str] = field(default_factory=list)  # what the reader must know: results that disagree

    @property
    def slug(self) -> str:
        """The family as an id / file-name part (:func:`slug`)."""
        return slug(self.family)

    @property
    def groups(self) -> list[str]:
        return sorted(dict.fromkeys(r.group for r in self.rows), key=lambda g: (group_order(g), g))

    def rows_of(self, group: str) -> list[Row]:
        return [r for r in self.rows if r.group == group]


def slug(text: str) -> str:
    """``text`` as an id / file-name part: lower case, runs of other characters as "_"."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def leaderboard_tables(
    results: Sequence[Result], *, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> list[Table]:
    """One table per benchmark family: dataset columns, ``Mean`` (when any row has every dataset)
    and ``Reported AVG`` (when average-only results exist); rows grouped by size.

    Row key: (model, origin) so a rerun sits beside the published figure it reproduces (and a
    model card's figures beside MTEB's); a model is named as the registry names it, so one model
    filed under an alias (the card's ``snowflake-s``) is one row and one colour everywhere.
    ``Mean`` is the unweighted mean over the dataset columns (``np.mean`` in column order, which for
    NanoBEIR is the card's ``NanoBEIR_mean``); its CI bootstraps every dataset's queries jointly.
    One precision per table: the published figures' (3 decimals on the card), else 4. Bold: the
    best value of a column within a size group (as shown), only where the group has two values or
    more to compare.
    """
    tables = []
    for fam in FAMILIES:
        members = [r for r in results if family(r.task_name) == fam]
        if not members:
            continue
        datasets = dataset_order(fam, {r.task_name for r in members if not is_average_only(r)})
        has_avg = any(is_average_only(r) for r in members)
        by_key: dict[tuple[str, str], dict[str, Result]] = {}
        notes = []
        for r in sorted(members, key=lambda r: r.created):  # the newest of one model and task is shown
            row = by_key.setdefault((registered_name(r.model_id), origin(r)), {})
            if r.task_name in row and (note := conflict_note(row[r.task_name], r)):
                notes.append(note)
            row[r.task_name] = r
        has_mean = len(datasets) > 1 and any(all(d in tasks for d in datasets) for tasks in by_key.values())
        columns = [label(d) for d in datasets] + ["Mean"] * has_mean + ["Reported AVG"] * has_avg
        digits = decimals(r.main_score for r in members if is_published(r))
        table = Table(fam, columns, len(datasets), decimals=digits, notes=notes)
        labels = [g for r in members if (g := r.model.size_group)] or list(DEFAULT_SIZE_GROUPS)
        for (model_id, kind), tasks in by_key.items():
            cells = [_task_cell(tasks.get(d), digits, n_resamples, seed, level) for d in datasets]
            if has_mean:
                cells.append(_mean_cell([tasks.get(d) for d in datasets], digits, n_resamples, seed, level))
            if has_avg:
                avg = next((r for r in tasks.values() if is_average_only(r)), None)
                cells.append(Cell(avg.main_score, digits) if avg else Cell(None, digits))
            models = [r.model for r in tasks.values()]
            info = find_model(model_id)  # the registry's size and group, so a model sits in one group
            group = (info and info.size_group) or next((m.size_group for m in models if m.size_group), None)
            parameters = next((m.parameters for m in models if m.parameters), None)
            parameters = parameters or (info.parameters if info else None)
            headline = cells[len(datasets) :] if len(datasets) > 1 else cells
            table.rows.append(
                Row(
                    model_id,
                    kind != "run",
                    group or size_group_for(parameters, labels),
                    cells,
                    parameters,
                    _throughput(tasks.values()),
                    next((c.value for c in headline if c.value is not None), None),
                    _revision(models),
                    _hub_page(model_id, info),
                    [_card_metrics(tasks.get(d)) for d in datasets],
                    next((r.published.get("source") for r in tasks.values() if r.published), None),
                    kind,
                )
            )
        ordered = []
        for group in table.groups:
            rows = sorted(table.rows_of(group), key=lambda r: (-_or(r.summary, -math.inf), r.label))
            for i in range(len(columns)):
                _mark(rows, i)
            ordered += rows
        table.rows = ordered
        tables.append(table)
    return tables


def _mark(rows: list[Row], column: int) -> None:
    """Bold the best value(s) of ``column`` among ``rows`` (one size group) when there are two
    values or more; give every other run with per-query scores on the same queries as the best run
    its Holm-adjusted p-value of a paired t-test against that run (two-sided; the family: the
    comparisons of this column in this group)."""
    cells = [r.cells[column] for r in rows]
    shown = [r for c in cells if (r := c.rounded) is not None]
    if len(shown) >= 2:
        for c in cells:
            c.bold = c.value is not None and c.rounded == max(shown)
    runs = [(r, c, c.queries) for r, c in zip(rows, cells, strict=True) if c.queries]
    if len(runs) < 2:
        return
    best_row, best, best_q = max(runs, key=lambda run: _or(run[1].value, -math.inf))
    others = [(c, q) for _, c, q in runs if c is not best and q.keys() == best_q.keys()]
    keys = list(best_q)
    p_values = [paired_t_test(np.array([best_q[k] - q[k] for k in keys])) for _, q in others]
    for (c, _), p in zip(others, holm(p_values), strict=True):
        c.p_value, c.reference = (None, None) if math.isnan(p) else (p, best_row.label)


def _hub_page(model_id: str, info: ModelInfo | None) -> str | None:
    """The model's Hub page: its registered Hub id's, else the id's when it reads as one
    (``org/name``); None for other names (a local folder's)."""
    hub_id = info.hub_id if info else model_id if re.fullmatch(r"[\w.-]+/[\w.-]+", model_id) else None
    return f"https://huggingface.co/{hub_id}" if hub_id else None


def _card_metrics(result: Result | None) -> dict[str, float]:
    """The card-convention metrics of a task (mean over its subsets), empty when not all subsets
    have them (a transcribed figure holds the main metric only)."""
    if result is None:
        return {}
    cards = [s.card for s in result.subsets if s.card]
    if len(cards) < len(result.subsets):
        return {}
    names = [m for m in cards[0] if all(m in c for c in cards)]
    return {m: float(np.mean([c[m] for c in cards])) for m in names}


def _revision(models: Iterable[ModelRecord]) -> str | None:
    """The one Hub commit of a row's results, "mixed" when they differ, None when unknown."""
    known = {m.revision for m in models if m.revision}
    return known.pop() if len(known) == 1 else ("mixed" if known else None)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _task_cell(result: Result | None, digits: int, n_resamples: int, seed: int, level: float) -> Cell:
    if result is None:
        return Cell(None, digits)
    strata = _strata(result, 1.0)
    ci = bootstrap_ci(strata, n_resamples=n_resamples, seed=seed, level=level) if strata else None
    queries = _weighted_queries(result) if strata else None
    return Cell(result.main_score, digits, ci, queries=queries)


def _weighted_queries(result: Result) -> dict[str, float]:
    """Per-query scores (key ``subset\0query id``) scaled by ``N / (S n_s)`` (N queries in all, S
    subsets, n_s in the query's subset): their plain mean is the task score (the mean of subset
    means), so a paired test over them tests the difference the table shows. One subset: unscaled."""
    total, n_subsets = sum(len(s.per_query) for s in result.subsets), len(result.subsets)
    return {
        f"{s.name}\0{q}": v * (total / (n_subsets * len(s.per_query))) if n_subsets > 1 else v
        for s in result.subsets
        for q, v in s.per_query.items()
    }


def _mean_cell(results: list[Result | None], digits: int, n_resamples: int, seed: int, level: float) -> Cell:
    known = [r for r in results if r is not None]
    if len(known) < len(results):
        return Cell(None, digits)
    value = float(np.mean([r.main_score for r in known]))
    strata = [s for r in known if (s := _strata(r, 1.0 / len(known))) is not None]
    ci = None
    if len(strata) == len(known):
        ci = bootstrap_ci([x for s in strata for x in s], n_resamples=n_resamples, seed=seed, level=level)
    return Cell(value, digits, ci)


def _strata(result: Result, weight: float) -> list[tuple[np.ndarray, float]] | None:
    """Per-query strata of a task score (subset weight 1/S), None if any subset lacks per-query scores."""
    if not all(s.per_query for s in result.subsets):
        return None
    share = weight / len(result.subsets)
    return [(np.fromiter(s.per_query.values(), dtype=np.float64), share) for s in result.subsets]


def _throughput(results: Iterable[Result]) -> float | None:
    """Document tokens encoded per second over the results whose encoding was measured by their own
    run (a timing carried from a cache, or of unknown origin, says nothing about this run's speed)."""
    tokens = seconds = 0.0
    for r in results:
        timings = r.timings or {}
        n, s = (r.tokens or {}).get("documents"), timings.get("encode_documents_s")
        sources = timings.get("sources")  # {timing: "measured" | "cache" | ...}
        measured = isinstance(sources, dict) and sources.get("encode_documents_s") == "measured"
        if measured and n and s and s > 0:
            tokens, seconds = tokens + n, seconds + s
    return tokens / seconds if seconds else None


# --------------------------------------------------------------------------- quality against cost

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}  # bytes of one vector dimension


@dataclass
class TradeoffRow:
    """One run of a model on a task: ``line`` joins the runs of one model (fingerprint, else id) named
    ``model``; ``label`` says how this run differs (``harness.fidelity.variant_label``), ``run`` names it
    in full; ``cell`` holds the main score, its CI and, against the model's exact run (``exact``: this is
    it), the p-value of the paired sign-flip test; ``delta`` the difference from that run; the costs
    (None: not recorded) and the fidelity record's overlap@10."""

    line: str
    model: str
    label: str
    run: str
    exact: bool
    cell: Cell
    bytes_per_token: float | None
    qps: float | None
    p95_ms: float | None
    delta: float | None = None
    overlap_at_10: float | None = None

    @property
    def cost(self) -> tuple[float, float, float]:
        """The order of the table: bytes per token, then p95 latency, then 1/QPS (unknown: last)."""
        per_query = 1 / self.qps if self.qps else math.inf
        return _or(self.bytes_per_token, math.inf), _or(self.p95_ms, math.inf), per_query


@dataclass
class TradeoffTable:
    task: str
    metric: str
    rows: list[TradeoffRow]  # cheapest first (TradeoffRow.cost)

    @property
    def slug(self) -> str:
        return slug(self.task)


def tradeoff_tables(
    results: Sequence[Result], *, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> list[TradeoffTable]:
    """Per task on which a model has two runs or more and a cost is known: a row per run of a model
    (published figures and BM25 left out), sorted by cost (:attr:`TradeoffRow.cost`; ties by name).
    A run other than its model's exact run (the newest plain exact one) carries its delta and the
    paired sign-flip test's p-value against it (``harness.fidelity.paired_delta``: the numbers of
    ``harness check`` and of the fidelity record)."""
    runs = [r for r in results if r.published is None and r.model.kind in ("colbert", "dense")]
    tables = []
    for task in sorted({r.task_name for r in runs}):
        lines: dict[str, list[Result]] = {}
        for r in sorted((r for r in runs if r.task_name == task), key=lambda r: r.created):
            lines.setdefault(line_key(r), []).append(r)
        if all(len(members) < 2 for members in lines.values()):
            continue
        rows = []
        for key, members in lines.items():
            exact = next((r for r in reversed(members) if not is_approximate(r.model, r.retrieval)), None)
            name = base_name((exact or members[0]).model_id)
            rows += [_tradeoff_row(key, name, r, exact, n_resamples, seed, level) for r in members]
        metric = next(iter(lines.values()))[0].task.main_metric
        if any(r.bytes_per_token or r.qps or r.p95_ms for r in rows):  # a cost to trade against
            tables.append(TradeoffTable(task, metric, sorted(rows, key=lambda r: (r.cost, r.run))))
    return tables


def _tradeoff_row(
    line: str, model: str, r: Result, exact: Result | None, n_resamples: int, seed: int, level: float
) -> TradeoffRow:
    cell = _task_cell(r, 4, n_resamples, seed, level)
    cell.queries, delta = None, None
    if exact is not None and r is not exact:
        paired = paired_delta(exact, r, level=level, n_resamples=n_resamples, seed=seed)
        cell.p_value, cell.reference, delta = paired.permutation_p, run_label(exact), paired.delta
    cost, single = r.efficiency, r.efficiency.single if r.efficiency else None
    qps, p95 = cost.batched.qps if cost else None, single.p95_ms if single else None
    overlap, size = r.fidelity.overlap_at_10 if r.fidelity else None, bytes_per_token(r)
    names = variant_label(r), run_label(r)
    return TradeoffRow(line, model, *names, r is exact, cell, size, qps, p95, delta, overlap)


def bytes_per_token(result: Result) -> float | None:
    """What a document token costs to keep searchable: PLAID, the index's disk bytes per stored
    vector (mean over subsets); else the vector's (truncate_dim or dim) x ``DTYPE_BYTES``; both over
    the pool factor (vectors kept per token read). None for a dense model or without the sizes."""
    settings, index = result.model.settings, result.retrieval.index
    per: float | None = None
    if index:
        sizes = [v.get("bytes_per_token_total") if isinstance(v, dict) else None for v in index.values()]
        known = [float(s) for s in sizes if isinstance(s, (int, float))]
        per = float(np.mean(known)) if known and len(known) == len(sizes) else None
    elif result.model.kind == "colbert" and isinstance(settings.get("dim"), int):
        width = settings.get("truncate_dim") or settings["dim"]
        per = width * DTYPE_BYTES.get(settings.get("dtype") or "float32", 4)
    return None if per is None else per / float(settings.get("pool_factor") or 1)
