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

from harness.fileio import write_text_atomic
from harness.report.figures import leaderboard_figures
from harness.report.tables import Table, leaderboard_tables
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
                    text = bold(c.text(), c.bold and c.value is not None)
                    cells.append(text + (f" ({_ci_text(c.ci)})" if c.ci else ""))
                rows.append([r.label.replace("|", "\\|"), *cells])
        parts += [f"\n## {table.family}\n\n", markdown_table(header, rows)]
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
        body.append(f'<h2 id="{table.slug}">{esc(table.family)}</h2>')
        body.append(
            f'<div class="scroll"><table class="sortable" id="table-{table.slug}">'
            f"<thead><tr>{head}</tr></thead>"
        )
        for group in table.groups:
            label = f'<tr class="group"><th colspan="{ncols}">{esc(group)}</th></tr>'
            body.append(f'<tbody data-group="{esc(group)}">{label}')
            for r in table.rows_of(group):
                name = esc(r.model_id + r.version) + (
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
