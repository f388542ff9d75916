"""The leaderboard's tables as files for other tools: one tidy CSV (``pandas.read_csv`` reads it
back), a LaTeX ``table`` per benchmark (booktabs, compiles with pdflatex under OT1 or T1) and
markdown; the markdown pieces the leaderboard page and the model card share."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from harness.report.tables import ALPHA, Cell, Row, Table

TABLE_FORMATS = {"csv": "csv", "latex": "tex", "markdown": "md"}  # --format -> file suffix
SIGNIFICANCE_MARK = "▾"  # significantly below the size group's best run
CSV_NAME = "leaderboard.csv"  # the one CSV file: every benchmark's rows
TIDY_COLUMNS = [
    "benchmark", "group", "model", "revision", "published", "origin", "column",
    "value", "ci_low", "ci_high", "best", "significant", "p_value", "reference",
]  # fmt: skip


# ------------------------------------------------------------------ markdown


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, first column left-aligned, the others centred (the card's format)."""
    align = [":---"] + [":---:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def bold(text: str, on: bool) -> str:
    """``**text**`` when ``on`` (and ``text`` is not empty)."""
    return f"**{text}**" if on and text else text


def ci_text(ci: tuple[float, float] | None) -> str:
    """``low–high`` to 3 decimals; empty without an interval."""
    return "" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}"


def cell_markdown(cell: Cell, ci: bool = True) -> str:
    """The cell's value, bold when best, ▾ when significantly below the best, then its interval
    in parentheses when ``ci`` and it has one."""
    text = bold(cell.text(), cell.bold) + (SIGNIFICANCE_MARK if cell.significant else "")
    return text + (f" ({ci_text(cell.ci)})" if ci and cell.ci else "")


def model_markdown(row: Row) -> str:
    """The row's label (``†`` for a published figure) as a markdown cell."""
    return row.label.replace("|", "\\|")


def column_notes(table: Table) -> list[str]:
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


def _markdown(table: Table, ci: bool) -> str:
    header = ["Model", "Group", *table.columns]
    rows = [[model_markdown(r), r.group, *(cell_markdown(c, ci) for c in r.cells)] for r in table.rows]
    return markdown_table(header, rows)


# ------------------------------------------------------------------ CSV


def table_frame(tables: Table | Sequence[Table]) -> Any:
    """The tables as one tidy pandas DataFrame (``TIDY_COLUMNS``): a row per shown value (a cell
    without a result has none), in the tables' order; ``value`` at full precision, ``best`` the
    bold cells, ``significant`` the ▾ cells (``p_value``: Holm-adjusted, against ``reference``)."""
    import pandas as pd

    records = [
        _record(table, row, column, cell)
        for table in ([tables] if isinstance(tables, Table) else tables)
        for row in table.rows
        for column, cell in zip(table.columns, row.cells, strict=True)
        if cell.value is not None
    ]
    return pd.DataFrame(records, columns=TIDY_COLUMNS)


def _record(table: Table, row: Row, column: str, cell: Cell) -> list[object]:
    low, high = cell.ci or (None, None)
    return [
        table.family, row.group, row.model_id, row.revision, row.published, row.origin, column,
        cell.value, low, high, cell.bold, cell.significant, cell.p_value, cell.reference,
    ]  # fmt: skip


def _csv(tables: Sequence[Table]) -> str:
    return str(table_frame(tables).to_csv(index=False, lineterminator="\n"))


# ------------------------------------------------------------------ LaTeX

_LATEX = {c: "\\" + c for c in "&%$#_{}"} | {
    "\\": r"\textbackslash{}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",  # OT1 has no < or > glyph: a bare one prints as ¡ / ¿
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "[": "{[}",  # never an optional argument of the \\ before it
    "]": "{]}",
    "†": r"\dag{}",
    SIGNIFICANCE_MARK: r"$^{\bigtriangledown}$",
    "–": "--",
    "—": "---",
    "’": "'",
    "‘": "`",
    "×": r"$\times$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "…": r"\ldots{}",
}


def latex_text(text: str) -> str:
    """``text`` as LaTeX that pdflatex typesets as written under OT1 or T1 with only the kernel
    (``\\dag`` for †, ``$^{\\bigtriangledown}$`` for ▾); any other non-ASCII character is spelled
    in ASCII (``é`` -> ``e``), else ``?``."""
    return "".join(_LATEX.get(c, c if c.isascii() else _ascii(c)) for c in text)


def _ascii(char: str) -> str:
    plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
    return latex_text(plain) if plain else "?"


def _latex_cell(cell: Cell, ci: bool, decimals: int) -> str:
    if cell.value is None:
        return "--"
    text = f"\\textbf{{{cell.text()}}}" if cell.bold else cell.text()
    text += latex_text(SIGNIFICANCE_MARK) if cell.significant else ""
    if ci and cell.ci:
        text += f" {{\\scriptsize [{cell.ci[0]:.{decimals}f}, {cell.ci[1]:.{decimals}f}]}}"
    return text


def _caption(table: Table, ci: bool, level: float) -> str:
    """The caption's plain text: what the numbers are, then a legend of the markers the table uses."""
    cells = [c for r in table.rows for c in r.cells]
    parts = [f"{table.family}: each task's main metric, by size group."]
    if any(c.bold for c in cells):
        parts.append("Bold: best in its size group.")
    if any(c.significant for c in cells):
        parts.append(
            f"{SIGNIFICANCE_MARK}: significantly below the group's best run (paired t-test over "
            f"queries, Holm-corrected, p < {ALPHA})."
        )
    if ci and any(c.ci for c in cells):
        parts.append(f"Brackets: {level:.0%} bootstrap confidence interval over queries.")
    if any(r.published for r in table.rows):
        parts.append("†: published figure, transcribed, not run.")
    return " ".join(parts + column_notes(table) + table.notes)


# Shrinks a table wider than the line to its width when graphicx is loaded (natural size without);
# a document may define \harnessfit before the first \input to do otherwise.
_FIT = (
    r"\providecommand{\harnessfit}[1]{\sbox0{#1}\ifdim\wd0>\linewidth"
    r"\ifdefined\resizebox\resizebox{\linewidth}{!}{\usebox0}\else\usebox0\fi\else\usebox0\fi}"
)


def latex_table(table: Table, *, ci: bool = False, level: float = 0.95) -> str:
    """A complete ``table`` float (needs ``\\usepackage{booktabs}``; with graphicx a table wider
    than the line shrinks to fit): caption with the legend, ``\\label{tab:<slug>}``, a
    ``\\multicolumn`` row naming each size group and ``\\midrule`` between groups, bold best, ▾ as
    ``$^{\\bigtriangledown}$``, ``\\dag`` for published rows, ``--`` for no result, and with ``ci``
    each interval in brackets after its value."""
    width = len(table.columns) + 1
    lines = [
        f"% {latex_text(table.family)}: written by harness; needs \\usepackage{{booktabs}} (with graphicx a "
        "wide table shrinks to the line)",
        r"\begin{table}[htbp]",
        r"\centering",
        r"\small",
        f"\\caption[{latex_text(table.family)}]{{{latex_text(_caption(table, ci, level))}}}",
        f"\\label{{tab:{table.slug}}}",
        _FIT,
        f"\\harnessfit{{%\n\\begin{{tabular}}{{l{'r' * len(table.columns)}}}",
        r"\toprule",
        " & ".join(["Model", *map(latex_text, table.columns)]) + r" \\",
    ]
    for group in table.groups:
        lines += [r"\midrule", f"\\multicolumn{{{width}}}{{l}}{{\\textit{{{latex_text(group)}}}}} \\\\"]
        for row in table.rows_of(group):
            cells = [_latex_cell(c, ci, table.decimals) for c in row.cells]
            lines.append(" & ".join([latex_text(row.label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the formats


def format_table(table: Table, fmt: str, *, ci: bool = False, level: float = 0.95) -> str:
    """One table as tidy CSV (``table_frame``), a LaTeX ``table`` (``latex_table``) or markdown
    (bold best, ▾; with ``ci`` each interval after its value)."""
    if fmt == "csv":
        return _csv([table])
    if fmt == "latex":
        return latex_table(table, ci=ci, level=level)
    if fmt == "markdown":
        return _markdown(table, ci)
    raise ValueError(f"unknown table format {fmt!r}")


def table_files(
    tables: Sequence[Table], fmt: str, *, ci: bool = False, level: float = 0.95
) -> dict[str, str]:
    """File name -> text: CSV one tidy ``leaderboard.csv`` of every table; LaTeX and markdown one
    ``<slug>.tex`` / ``<slug>.md`` per table."""
    if fmt == "csv":
        return {CSV_NAME: _csv(tables)}
    return {f"{t.slug}.{TABLE_FORMATS[fmt]}": format_table(t, fmt, ci=ci, level=level) for t in tables}


def tables_text(tables: Sequence[Table], fmt: str, *, ci: bool = False, level: float = 0.95) -> str:
    """Every table as one text in the format's own syntax (standard output): one CSV; the LaTeX
    tables one after another (each opens with a ``%`` comment naming its benchmark); the markdown
    tables each under a ``# <benchmark>`` heading."""
    if fmt == "markdown":
        return "\n".join(f"# {t.family}\n\n{format_table(t, fmt, ci=ci)}" for t in tables)
    return "\n".join(table_files(tables, fmt, ci=ci, level=level).values())
