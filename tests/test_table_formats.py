"""``harness report table``: the tidy CSV read back by pandas with the tables' values, LaTeX tables
compiled by pdflatex (OT1 and T1) with their groups, markers and intervals, markdown with markers."""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.report import leaderboard_tables
from harness.report.formats import (
    CSV_NAME,
    SIGNIFICANCE_MARK,
    format_table,
    latex_text,
    table_files,
    tables_text,
)
from harness.report.tables import Table
from harness.results import Result, load_results, save_result
from tests.helpers import REPO_ROOT, make_result

PUBLISHED = REPO_ROOT / "results" / "published"
ODD_NAME = "lab/colbert_v2&co #1 ~50% {x^y} [é]"  # every character LaTeX treats specially
PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None, reason="pdflatex not installed (make system-deps installs texlive-latex-recommended)"
)


def _run(model: str, task: str, delta: float, seed: int) -> Result:
    """A 17M-parameter run with 60 per-query scores: a base draw (seed 0) + ``delta`` + noise."""
    base = np.random.default_rng(0).uniform(0.3, 0.9, 60)
    noise = np.random.default_rng(seed).normal(0.0, 0.03, 60)
    scores = {f"q{i}": float(v) for i, v in enumerate(base + delta + noise)}
    result = make_result(model, task, {task.split("/")[-1]: scores})
    return replace(result, model=replace(result.model, parameters=17_000_000))


@pytest.fixture(scope="module")
def runs() -> list[Result]:
    """Three small runs on two BEIR datasets beside the published rows: one clearly below the best
    (significant), one with a name full of LaTeX's special characters."""
    return [
        _run(model, task, delta, seed)
        for task in ("BEIR/scifact", "BEIR/nq")
        for model, delta, seed in (("run-best", 0.0, 1), ("run-worse", -0.15, 2), (ODD_NAME, -0.01, 3))
    ]


@pytest.fixture(scope="module")
def tables(runs) -> list[Table]:
    return leaderboard_tables([*load_results([PUBLISHED]), *runs])  # the CLI's defaults


@pytest.fixture(scope="module")
def runs_folder(runs, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    for result in runs:
        save_result(result, folder)
    return folder


def _cli(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["report", "table", *args]) == 0
    return capsys.readouterr().out


# ------------------------------------------------------------------ CSV


def test_csv_is_one_tidy_table_pandas_reads_back(tables, runs_folder, tmp_path, capsys):
    """No comment or blank lines: ``pandas.read_csv`` reads the file and standard output alike, a row
    per shown value with the cell's value (full precision), interval and markers, the model name
    without ``†`` and ``published`` a bool."""
    out = tmp_path / "csv"
    _cli(capsys, str(PUBLISHED), str(runs_folder), "--output", str(out))
    assert sorted(p.name for p in out.iterdir()) == [CSV_NAME]
    printed = _cli(capsys, str(PUBLISHED), str(runs_folder))
    assert printed == (out / CSV_NAME).read_text()
    frame = pd.read_csv(io.StringIO(printed))
    assert frame["published"].dtype == bool and frame["best"].dtype == bool
    assert not frame["model"].str.contains("†").any()
    expected = [
        ((t.family, r.group, r.model_id, r.published, column), c)
        for t in tables
        for r in t.rows
        for column, c in zip(t.columns, r.cells, strict=True)
        if c.value is not None
    ]
    assert len(frame) == len(expected)
    for row, (keys, cell) in zip(frame.itertuples(), expected, strict=True):
        assert (row.benchmark, row.group, row.model, row.published, row.column) == keys
        assert row.value == cell.value and row.best == cell.bold and row.significant == cell.significant
        p_value = math.nan if cell.p_value is None else cell.p_value
        shown = [*(cell.ci or (math.nan, math.nan)), p_value]
        assert np.array_equal([row.ci_low, row.ci_high, row.p_value], shown, equal_nan=True)
    assert frame["significant"].any() and frame["ci_low"].notna().any() and frame["published"].any()
    assert ODD_NAME in set(frame["model"])


# ------------------------------------------------------------------ LaTeX


def test_latex_text_escapes_for_pdflatex_under_ot1():
    """``<``/``>`` as text symbols (OT1 has no glyph for them), † and ▾ as kernel commands, every
    special character escaped, nothing but ASCII left."""
    assert latex_text("Small Models (<25M)") == r"Small Models (\textless{}25M)"
    assert latex_text(">100M") == r"\textgreater{}100M"
    assert latex_text("a † b") == r"a \dag{} b"
    assert latex_text(SIGNIFICANCE_MARK) == r"$^{\bigtriangledown}$"
    assert latex_text(r"_&%$#{}~^\[é]") == (
        r"\_\&\%\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}{[}e{]}"
    )
    assert latex_text("–✓").isascii()


def test_latex_table_carries_groups_markers_and_intervals(tables):
    """One ``table`` float per benchmark: caption with the legend, label, a ``\\multicolumn`` row per
    size group after a ``\\midrule``, a line per model, bold best, the significance marker, ``\\dag``
    per published row and with ``ci`` an interval per cell that has one."""
    beir = next(t for t in tables if t.family == "BEIR")
    cells = [c for r in beir.rows for c in r.cells]
    assert any(c.significant for c in cells) and any(c.ci for c in cells)
    for table in tables:
        latex = format_table(table, "latex", ci=True)
        body = latex.split(r"\toprule", 1)[1]  # the rows, after the caption's legend
        cells = [c for r in table.rows for c in r.cells]
        assert latex.isascii() and "<" not in body and ">" not in body
        assert latex.count(r"\begin{table}") == 1 and latex.count(r"\end{table}") == 1
        assert r"\caption[" in latex and f"\\label{{tab:{table.slug}}}" in latex
        assert body.count(r"\midrule") == body.count(r"\multicolumn") == len(table.groups)
        assert body.count("\\\\") == 1 + len(table.groups) + len(table.rows)
        assert body.count(r"\dag") == sum(r.published for r in table.rows)
        assert body.count(r"\textbf{") == sum(c.bold for c in cells)
        assert body.count(r"^{\bigtriangledown}$") == sum(c.significant for c in cells)
        assert body.count(r"{\scriptsize [") == sum(c.ci is not None for c in cells)
        assert all(c.text() in latex for c in cells if c.value is not None)
        assert r"{\scriptsize" not in format_table(table, "latex")  # intervals only when asked


def _compile(folder: Path, inputs: list[str], preamble: str) -> str:
    """pdflatex over an article with ``preamble`` that ``\\input``s the files (lost characters are
    errors, every page's boxes go to the log); fonts it makes stay in ``folder``. Returns the log."""
    body = "\n".join(f"\\input{{{name}}}" for name in inputs)
    document = (
        f"\\documentclass{{article}}\n{preamble}\n\\tracinglostchars=3\n\\showoutput\n"
        f"\\begin{{document}}\nTable~\\ref{{tab:beir}}.\n{body}\n\\listoftables\n\\end{{document}}\n"
    )
    (folder / "doc.tex").write_text(document, "ascii")
    env = {**os.environ, "TEXMFVAR": str(folder / "texmf-var")}
    for _ in range(2):  # the second pass resolves \ref and the list of tables
        done = subprocess.run(
            [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=folder,
            env=env,
            capture_output=True,
            encoding="latin-1",  # TeX's terminal output is bytes
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-3000:]
    assert (folder / "doc.pdf").stat().st_size > 0
    return (folder / "doc.log").read_text("latin-1")


@needs_pdflatex
@pytest.mark.parametrize(
    "preamble",
    [r"\usepackage{booktabs}", r"\usepackage[T1]{fontenc}\usepackage{booktabs}\usepackage{graphicx}"],
    ids=["OT1", "T1-graphicx"],
)
def test_latex_files_and_standard_output_compile_with_pdflatex(
    tables, runs_folder, tmp_path, capsys, preamble
):
    """The per-benchmark files (``--output DIR``) and standard output (``--output -``: only LaTeX,
    comments as ``%``) compile with ``--ci`` in a document that loads booktabs, under OT1 (where a
    bare ``<`` prints as ``¡``: the boxes in the log show every ``<``/``>`` set in a symbol font) and
    T1; with graphicx the wide tables (NanoBEIR) shrink to the line."""
    out = tmp_path / "tex"
    _cli(capsys, str(PUBLISHED), str(runs_folder), "--format", "latex", "--ci", "--output", str(out))
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(table_files(tables, "latex"))
    printed = _cli(capsys, str(PUBLISHED), str(runs_folder), "--format", "latex", "--ci")
    assert printed == tables_text(tables, "latex", ci=True)
    assert all(line.startswith(("%", "\\")) or " & " in line for line in printed.splitlines() if line)
    (out / "stdout.tex").write_text(printed, "ascii")
    log = _compile(out, [*names, "stdout.tex"], preamble)
    assert "Undefined" not in log and "Missing character" not in log
    angles = re.findall(r"^\.+\\(\w+)/\S+ [<>]$", log, re.MULTILINE)  # the font of each < and >
    assert angles and "OT1" not in angles
    assert ("Overfull \\hbox" in log) == ("graphicx" not in preamble)


# ------------------------------------------------------------------ markdown


def test_markdown_tables_carry_markers_and_headings(tables, runs_folder, capsys):
    """Markdown: a line per model under a ``# <benchmark>`` heading, bold best, ▾, intervals with
    ``--ci``."""
    printed = _cli(capsys, str(PUBLISHED), str(runs_folder), "--format", "markdown", "--ci")
    assert printed == tables_text(tables, "markdown", ci=True)
    for table in tables:
        markdown = format_table(table, "markdown")
        assert f"# {table.family}\n\n{format_table(table, 'markdown', ci=True)}" in printed
        assert len(markdown.splitlines()) == 2 + len(table.rows)
    beir = format_table(next(t for t in tables if t.family == "BEIR"), "markdown", ci=True)
    assert SIGNIFICANCE_MARK in beir and "**" in beir and "–" in beir and "\\|" not in beir
