"""Rendering: markdown tables (the card's format), the leaderboard as markdown and as one
self-contained HTML page, and ``render_leaderboard`` that writes them with the figures."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from harness.errors import InputError
from harness.fileio import write_text_atomic
from harness.report.figures import leaderboard_figures
from harness.report.tables import ALPHA, Cell, Row, Table, leaderboard_tables
from harness.results import Result


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, first column left-aligned, the others centred (the card's format)."""
    align = [":---"] + [":---:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


TABLE_FORMATS = {"csv": "csv", "latex": "tex", "markdown": "md"}  # --format -> file suffix


def table_frame(table: Table) -> Any:
    """One leaderboard table as a pandas DataFrame: a row per model (index: its label, † for a
    published figure), its size group, then the table's columns as floats (NaN: no result)."""
    import pandas as pd

    data = [[row.group] + [cell.value for cell in row.cells] for row in table.rows]
    frame = pd.DataFrame(data, columns=["group", *table.columns], index=[row.label for row in table.rows])
    frame.index.name = "model"
    return frame


def format_table(table: Table, fmt: str) -> str:
    """``table`` as CSV (full precision), LaTeX (booktabs, the table's precision, best per group in
    bold) or markdown (the leaderboard's own)."""
    if fmt == "csv":
        return table_frame(table).to_csv(lineterminator="\n")
    if fmt == "markdown":
        header = ["Model", "Group", *table.columns]
        rows = [[r.label, r.group] + [bold(c.text(), c.bold) for c in r.cells] for r in table.rows]
        return markdown_table(header, rows)
    if fmt == "latex":
        frame = table_frame(table).astype(object)
        for i, row in enumerate(table.rows):
            for j, cell in enumerate(row.cells):
                text = "--" if cell.value is None else cell.text()
                frame.iat[i, j + 1] = f"\\textbf{{{text}}}" if cell.bold and cell.value is not None else text
        frame = frame.reset_index()  # "model" a column: one header line
        for column in ("model", "group"):
            frame[column] = frame[column].map(_latex_escape)
        frame.columns = [_latex_escape(str(c)) for c in frame.columns]
        return frame.to_latex(index=False, escape=False, column_format="ll" + "r" * len(table.columns))
    raise ValueError(f"unknown table format {fmt!r}")


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"}
_LATEX_SPECIAL |= {"~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def bold(text: str, on: bool) -> str:
    return f"**{text}**" if on and text else text


def _ci_text(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}"


SIGNIFICANCE_MARK = "▾"  # significantly below the size group's best run


def _cell_markdown(cell: Cell) -> str:
    text = bold(cell.text(), cell.bold) + (SIGNIFICANCE_MARK if cell.significant else "")
    return text + (f" ({_ci_text(cell.ci)})" if cell.ci else "")


def leaderboard_markdown(tables: Sequence[Table], figures: Sequence[tuple[str, str]], method: str) -> str:
    parts = ["# Leaderboard\n\n", method, "\n"]
    for table in tables:
        header = ["Model", *table.columns]
        rows = []
        for group in table.groups:
            rows.append([f"**{group}**", *[""] * len(table.columns)])
            for r in table.rows_of(group):
                rows.append([r.label.replace("|", "\\|"), *map(_cell_markdown, r.cells)])
        parts += [f"\n## {table.family}\n\n", markdown_table(header, rows)]
        parts += [f"\n{note}\n" for note in _column_notes(table) + table.notes]
    if figures:
        parts.append("\n## Plots\n\n")
        parts += [f"![{caption}]({name})\n\n" for name, caption in figures]
    return "".join(parts)


def _column_notes(table: Table) -> list[str]:
    """What the table's derived columns mean, for the notes under it."""
    notes = []
    if "Mean" in table.columns:
        notes.append(
            f"Mean: the unweighted mean of the {table.datasets} dataset columns, computed here "
            "(only for rows that have all of them)."
        )
    if "Reported AVG" in table.columns:
        notes.append(
            "Reported AVG: the average a model card publishes, transcribed as printed; it may "
            "average datasets not shown here, so it is not comparable with Mean."
        )
    return notes


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
        text += f'<span class="ci">{esc(_ci_text(cell.ci))}</span>'
        title = f' title="CI {esc(_ci_text(cell.ci))}"'
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


def leaderboard_html(
    tables: Sequence[Table],
    figures: Sequence[tuple[str, str, bytes]],
    method: str,
    title: str,
    level: float = 0.95,
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
        body += [f'<p class="legend">{esc(note)}</p>' for note in _column_notes(table) + table.notes]
        body.append(_metrics_html(table))
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
    method = (
        f"Scores are each task's main metric (NanoBEIR: card convention; BEIR, LongEmbed: trec_eval). "
        f"Bold: best in the size group, where it has two values or more. "
        f"{SIGNIFICANCE_MARK}: significantly below the group's best run on that dataset (two-sided "
        f"paired t-test over its queries, Holm-corrected over the group's comparisons, p < {ALPHA}); "
        f"only runs with per-query scores are compared. {level:.0%} confidence intervals (a stratified "
        f"percentile bootstrap over queries, {n_resamples} resamples, seed {seed}) where per-query "
        f"scores exist. † published figure, transcribed, not run."
    )
    figures = leaderboard_figures(tables, out_dir) if plots else []
    md_path, html_path = out_dir / "leaderboard.md", out_dir / "leaderboard.html"
    write_text_atomic(md_path, leaderboard_markdown(tables, [(n, c) for n, c, _ in figures], method))
    write_text_atomic(html_path, leaderboard_html(tables, figures, method, title, level))
    return md_path, html_path
