"""Rendering: the leaderboard as markdown and as one self-contained HTML page, with the quality
against cost section (``tables.tradeoff_tables``), and ``render_leaderboard`` that writes them with
the figures (the tables as CSV / LaTeX / markdown files: ``harness.report.formats``)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template

from harness.errors import InputError
from harness.fileio import write_text_atomic
from harness.metrics import metric_label
from harness.report.figures import leaderboard_figures
from harness.report.formats import (
    SIGNIFICANCE_MARK,
    cell_markdown,
    ci_text,
    column_notes,
    markdown_table,
    model_markdown,
)
from harness.report.tables import (
    ALPHA,
    Cell,
    Row,
    Table,
    TradeoffRow,
    TradeoffTable,
    leaderboard_tables,
    tradeoff_tables,
)
from harness.results import Result

ABOVE_MARK = "▴"  # significantly above the model's exact run (▾: below)
TRADEOFF_NOTE = (
    "Quality against cost: per task, every run of a model (exact, PLAID, rerank, compression variants), "
    f"cheapest first. {SIGNIFICANCE_MARK} / {ABOVE_MARK}: significantly below / above the model's exact "
    f"run (paired sign-flip test over the queries, p < {ALPHA}); Δ: the difference from it; overlap@10: "
    "the share of the exact top 10 in the run's top 10 (its fidelity record). Bytes per document token: "
    "for PLAID the index's disk bytes per stored token vector (mean over subsets); for exact search and "
    "reranks the vector's (truncate_dim or dim) dimensions x 4 bytes (float32; 2 for a bf16 / fp16 "
    "encoder; a rerank's first stage not counted); both divided by the pool factor (vectors kept per "
    "token read). QPS: every query searched at once; p95: single-query latency after a warm-up (the "
    "efficiency record)."
)
TRADEOFF_COLUMNS = ["Δ vs exact", "overlap@10", "bytes/token", "QPS", "p95 ms"]


def tradeoff_cells(row: TradeoffRow) -> tuple[str, str, list[str]]:
    """A trade-off row's run (``exact`` named), its score with the mark against the exact run, and the
    other columns (``TRADEOFF_COLUMNS``) as text; ``–`` where unknown."""
    mark = "" if not row.cell.significant else ABOVE_MARK if (row.delta or 0.0) > 0 else SIGNIFICANCE_MARK
    score = row.cell.text() + mark + (f" ({ci_text(row.cell.ci)})" if row.cell.ci else "")

    def number(value: float | None, fmt: str) -> str:
        return "–" if value is None else format(value, fmt)

    rest = [number(row.delta, "+.4f"), number(row.overlap_at_10, ".3f"), number(row.bytes_per_token, ".1f")]
    rest += [number(row.qps, ".1f"), number(row.p95_ms, ".2f")]
    return row.run + (" (exact)" if row.exact else ""), score, rest


def tradeoff_markdown(tables: Sequence[TradeoffTable]) -> str:
    """The quality against cost section (empty without trade-off tables)."""
    if not tables:
        return ""
    parts = ["\n## Quality against cost\n\n", TRADEOFF_NOTE, "\n"]
    for table in tables:
        header = ["Run", metric_label(table.metric), *TRADEOFF_COLUMNS]
        cells = map(tradeoff_cells, table.rows)
        rows = [[run.replace("|", "\\|"), score, *rest] for run, score, rest in cells]
        parts += [f"\n### {table.task}\n\n", markdown_table(header, rows)]
    return "".join(parts)


def leaderboard_markdown(
    tables: Sequence[Table],
    figures: Sequence[tuple[str, str]],
    method: str,
    tradeoffs: Sequence[TradeoffTable] = (),
) -> str:
    parts = ["# Leaderboard\n\n", method, "\n"]
    for table in tables:
        header = ["Model", *table.columns]
        rows = []
        for group in table.groups:
            rows.append([f"**{group}**", *[""] * len(table.columns)])
            for r in table.rows_of(group):
                rows.append([model_markdown(r), *map(cell_markdown, r.cells)])
        parts += [f"\n## {table.family}\n\n", markdown_table(header, rows)]
        parts += [f"\n{note}\n" for note in column_notes(table) + table.notes]
    parts.append(tradeoff_markdown(tradeoffs))
    if figures:
        parts.append("\n## Plots\n\n")
        parts += [f"![{caption}]({name})\n\n" for name, caption in figures]
    return "".join(parts)


def _cell_html(cell: Cell) -> str:
    esc = html.escape
    text = esc(cell.text())
    if cell.bold:
        text = f"<b>{text}</b>"
    if cell.significant:
        why = f"p = {cell.p_value:.2g} against {cell.reference} (paired t-test, Holm-corrected)"
        text += f'<sup class="sig" title="{esc(why)}">{SIGNIFICANCE_MARK}</sup>'
    title = ""
    if cell.ci:
        text += f'<span class="ci">{esc(ci_text(cell.ci))}</span>'
        title = f' title="CI {esc(ci_text(cell.ci))}"'
    sort = "" if cell.value is None else repr(cell.value)
    return f'<td data-sort="{sort}"{title}>{text}</td>'


def _model_html(row: Row) -> str:
    esc = html.escape
    name = esc(row.model_id + row.version)
    if row.url:
        name = f'<a href="{esc(row.url)}" title="{esc(row.url)}">{name}</a>'
    if row.published:
        source = f"published figure, transcribed: {row.source}" if row.source else "published figure"
        mark = "† MTEB" if row.origin == "MTEB" else "†"
        name += f' <span class="pub" title="{esc(source)}">{mark}</span>'
    return f'<td data-sort="{esc(row.model_id)}" title="{esc(row.label)}">{name}</td>'


def _row_html(row: Row, cells: Sequence[Cell]) -> str:
    cells_html = "".join(map(_cell_html, cells))
    return f'<tr class="row" data-model="{html.escape(row.model_id)}">{_model_html(row)}{cells_html}</tr>'


def _metrics_html(table: Table) -> str:
    """Every card-convention metric of every dataset column, one small table per dataset, inside a
    collapsed ``<details>``; empty when no row has them."""
    esc = html.escape
    parts = []
    for i, column in enumerate(table.columns[: table.datasets]):
        rows = [r for r in table.rows if i < len(r.metrics) and r.metrics[i]]
        if not rows:
            continue
        names = list(dict.fromkeys(m for r in rows for m in r.metrics[i]))
        head = '<th data-type="text">Model</th>' + "".join(
            f'<th data-type="number">{esc(m)}</th>' for m in names
        )
        body = []
        for r in rows:
            cells = [Cell(r.metrics[i].get(m), table.decimals) for m in names]
            body.append(_row_html(r, cells))
        parts.append(
            f"<h3>{esc(column)}</h3>"
            f'<div class="scroll"><table class="sortable metrics"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
    if not parts:
        return ""
    return (
        f'<details id="metrics-{table.slug}"><summary>All metrics per dataset (card convention: '
        f"mean over a dataset's subsets)</summary>{''.join(parts)}</details>"
    )


def _tradeoff_html(tables: Sequence[TradeoffTable]) -> str:
    """The quality against cost section as sortable tables (empty without trade-off tables)."""
    esc = html.escape
    if not tables:
        return ""
    body = ['<h2 id="quality-against-cost">Quality against cost</h2>']
    body.append(f'<p class="legend">{esc(TRADEOFF_NOTE)}</p>')
    for table in tables:
        columns = ["Run", metric_label(table.metric), *TRADEOFF_COLUMNS]
        kinds = ["text", *["number"] * (len(columns) - 1)]
        head = "".join(f'<th data-type="{k}">{esc(c)}</th>' for c, k in zip(columns, kinds, strict=True))
        rows = []
        for row in table.rows:
            run, score, rest = tradeoff_cells(row)
            values = [row.cell.value, row.delta, row.overlap_at_10, row.bytes_per_token, row.qps, row.p95_ms]
            cells = [f'<td data-sort="{esc(run)}">{esc(run)}</td>']
            for value, text in zip(values, [score, *rest], strict=True):
                cells.append(f'<td data-sort="{"" if value is None else repr(value)}">{esc(text)}</td>')
            rows.append(f'<tr class="row" data-model="{esc(row.run)}">{"".join(cells)}</tr>')
        body.append(f'<h3>{esc(table.task)}</h3><div class="scroll">')
        body.append(f'<table class="sortable" id="cost-{table.slug}">')
        body.append(f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    return "\n".join(body)


def leaderboard_html(
    tables: Sequence[Table],
    figures: Sequence[tuple[str, str, bytes]],
    method: str,
    title: str,
    level: float = 0.95,
    tradeoffs: Sequence[TradeoffTable] = (),
) -> str:
    """One self-contained page (works from ``file://``): inline CSS/JS (sortable headers, a model
    filter, a CI toggle, light and dark themes), plots as base64 PNG; links only to model pages."""
    esc = html.escape
    body = [f'<p class="note">{esc(method)}</p>']
    for table in tables:
        ncols = len(table.columns) + 1
        head = '<th data-type="text">Model</th>' + "".join(
            f'<th data-type="number">{esc(c)}</th>' for c in table.columns
        )
        body.append(f'<h2 id="{table.slug}">{esc(table.family)}</h2>')
        body.append(
            f'<div class="scroll"><table class="sortable" id="table-{table.slug}">'
            f"<thead><tr>{head}</tr></thead>"
        )
        for group in table.groups:
            label = f'<tr class="group"><th colspan="{ncols}">{esc(group)}</th></tr>'
            body.append(f'<tbody data-group="{esc(group)}">{label}')
            for r in table.rows_of(group):
                body.append(_row_html(r, r.cells))
            body.append("</tbody>")
        body.append("</table></div>")
        body += [f'<p class="legend">{esc(note)}</p>' for note in column_notes(table) + table.notes]
        body.append(_metrics_html(table))
    body.append(_tradeoff_html(tradeoffs))
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
    return template.substitute(title=esc(title), meta=esc(meta), body="\n".join(body), level=f"{level:.0%}")


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
    ``out_dir``; returns (markdown path, html path). No results is an InputError, before anything
    is written: an existing report is never replaced by an empty one."""
    if not results:
        raise InputError("no results: nothing to report (an existing report is kept)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = leaderboard_tables(results, n_resamples=n_resamples, seed=seed, level=level)
    tradeoffs = tradeoff_tables(results, n_resamples=n_resamples, seed=seed, level=level)
    method = (
        f"Scores are each task's main metric (NanoBEIR: card convention; BEIR, LongEmbed: trec_eval). "
        f"Bold: best in the size group, where it has two values or more. "
        f"{SIGNIFICANCE_MARK}: significantly below the group's best run on that dataset (two-sided "
        f"paired t-test over its queries, Holm-corrected over the group's comparisons, p < {ALPHA}); "
        f"only runs with per-query scores are compared. {level:.0%} confidence intervals (a stratified "
        f"percentile bootstrap over queries, {n_resamples} resamples, seed {seed}) where per-query "
        f"scores exist. † published figure, transcribed, not run."
    )
    figures = leaderboard_figures(tables, out_dir, tradeoffs=tradeoffs) if plots else []
    md_path, html_path = out_dir / "leaderboard.md", out_dir / "leaderboard.html"
    captions = [(name, caption) for name, caption, _ in figures]
    write_text_atomic(md_path, leaderboard_markdown(tables, captions, method, tradeoffs))
    write_text_atomic(html_path, leaderboard_html(tables, figures, method, title, level, tradeoffs))
    return md_path, html_path
