"""``harness report card | leaderboard | table``: reports from results files."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import (
    command,
    is_stdout,
    load_nonempty,
    output_option,
    writable_file,
    writable_folder,
)


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "model card, leaderboard page or tables from results files",
        [
            "harness report card results/ results/published --model mxbai-edge-colbert-v0-17m",
            "harness report leaderboard results/ results/published --output reports/",
            "harness report table results/ results/published --format latex --output tables/",
        ],
        description="Reports from results files: a model card, a leaderboard page with figures, or "
        "the leaderboard's tables as CSV / LaTeX / markdown.",
    )
    kinds = p.add_subparsers(dest="kind", required=True)
    card = command(
        kinds,
        "card",
        "model-index YAML + NanoBEIR/BEIR/LongEmbed tables for one model, in the model card's format",
        [
            "harness report card results/ results/published --model mxbai-edge-colbert-v0-17m",
            "harness report card results/ --model my-colbert --display-name 'My ColBERT' --output card.md",
        ],
    )
    card.add_argument("results", nargs="+", type=Path, help="results files or folders (published rows too)")
    card.add_argument("--model", required=True, help="model id as stored in the results files")
    card.add_argument("--display-name", help="name shown in the card (default: last part of --model)")
    output_option(
        card,
        None,
        "markdown file to write, or a folder (existing, or ending in /) for <model>__model_card.md "
        "in it (default: print it)",
    )
    card.set_defaults(func=_cmd_report_card)
    board = command(
        kinds,
        "leaderboard",
        "leaderboard as markdown + one self-contained HTML page + figures (PNG, SVG)",
        [
            "harness report leaderboard results/ results/published",
            "harness report leaderboard results/ --output site/ --title 'Edge ColBERT models' --no-plots",
        ],
    )
    board.add_argument("results", nargs="+", type=Path, help="results files or folders (published rows too)")
    output_option(board, Path("reports"), "folder for leaderboard.md, leaderboard.html and the figures")
    board.add_argument("--title", default="Retrieval leaderboard", help="page title")
    board.add_argument("--no-plots", action="store_true", help="tables only (no figures)")
    board.set_defaults(func=_cmd_report_leaderboard)
    table = command(
        kinds,
        "table",
        "the leaderboard's tables as one tidy CSV, LaTeX tables (booktabs) or markdown",
        [
            "harness report table results/ results/published --format latex --ci --output tables/",
            "harness report table results/ results/published > leaderboard.csv   # tidy CSV",
            "harness report table results/ --format markdown   # to standard output",
        ],
        description="CSV: one tidy table, a row per value (benchmark, group, model, revision, "
        "published, origin, column, value, ci_low, ci_high, best, significant, p_value, reference), "
        "that pandas.read_csv reads back. LaTeX: a table float per benchmark (caption, "
        "label tab:<benchmark>, a midrule between size groups) for \\input after "
        "\\usepackage{booktabs}; it compiles with pdflatex. Markdown: one table per benchmark.",
    )
    table.add_argument("results", nargs="+", type=Path, help="results files or folders (published rows too)")
    table.add_argument("--format", choices=["csv", "latex", "markdown"], default="csv", help="table format")
    table.add_argument(
        "--ci",
        action="store_true",
        help="LaTeX and markdown: each 95%% interval after its value (CSV has them)",
    )
    output_option(
        table,
        Path("-"),
        "folder for leaderboard.csv, or one <benchmark>.tex|md per table; - for standard output "
        "(the format only: LaTeX comments start with %%)",
    )
    table.set_defaults(func=_cmd_report_table)


def _cmd_report_table(args: argparse.Namespace) -> int:
    from harness.fileio import write_text_atomic
    from harness.report import leaderboard_tables
    from harness.report.formats import table_files, tables_text

    folder = None if is_stdout(args.output) else writable_folder(args.output, "--output")
    tables = leaderboard_tables(load_nonempty(args.results))  # every task has a table ("Other")
    if folder is None:
        print(tables_text(tables, args.format, ci=args.ci), end="")
        return 0
    for name, text in table_files(tables, args.format, ci=args.ci).items():
        write_text_atomic(folder / name, text)
        print(f"wrote {folder / name}")
    return 0


def _cmd_report_card(args: argparse.Namespace) -> int:
    from harness.fileio import write_text_atomic
    from harness.report import render_model_card
    from harness.results import result_filename

    # the name evaluate gives the card it writes beside the results
    name = result_filename(args.model, "model_card").removesuffix(".json") + ".md"
    path = None if args.output is None else writable_file(args.output, "--output", name)
    text = render_model_card(load_nonempty(args.results), args.model, display_name=args.display_name)
    if path is None:
        print(text)
    else:
        write_text_atomic(path, text)
        print(f"wrote {path}")
    return 0


def _cmd_report_leaderboard(args: argparse.Namespace) -> int:
    from harness.report import render_leaderboard

    folder = writable_folder(args.output, "--output")
    md, html = render_leaderboard(
        load_nonempty(args.results), folder, title=args.title, plots=not args.no_plots
    )
    print(f"wrote {md} and {html}")
    return 0
