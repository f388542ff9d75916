"""``harness report card | leaderboard | table``: reports from results files."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import command, output_file, output_option
from harness.errors import InputError


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
    output_option(card, None, "markdown file to write (default: print it)")
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
        "the leaderboard's tables as CSV, LaTeX or markdown",
        [
            "harness report table results/ results/published --format latex --output tables/",
            "harness report table results/ --format markdown   # to standard output",
        ],
    )
    table.add_argument("results", nargs="+", type=Path, help="results files or folders (published rows too)")
    table.add_argument("--format", choices=["csv", "latex", "markdown"], default="csv", help="table format")
    output_option(table, Path("-"), "folder for one file per table (<benchmark>.csv|tex|md), or - for stdout")
    table.set_defaults(func=_cmd_report_table)


def _cmd_report_table(args: argparse.Namespace) -> int:
    from harness.fileio import write_text_atomic
    from harness.report import TABLE_FORMATS, format_table, leaderboard_tables
    from harness.results import load_results

    tables = leaderboard_tables(load_results(args.results))
    if not tables:
        raise InputError("no results files there", field=" ".join(map(str, args.results)))
    for table in tables:
        text = format_table(table, args.format)
        if str(args.output) == "-":
            print(f"# {table.family}\n{text}")
        else:
            path = args.output / f"{table.slug}.{TABLE_FORMATS[args.format]}"
            write_text_atomic(path, text)
            print(f"wrote {path}")
    return 0


def _cmd_report_card(args: argparse.Namespace) -> int:
    from harness.fileio import write_text_atomic
    from harness.report import render_model_card
    from harness.results import load_results

    text = render_model_card(load_results(args.results), args.model, display_name=args.display_name)
    if args.output:
        write_text_atomic(output_file(args.output), text)
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def _cmd_report_leaderboard(args: argparse.Namespace) -> int:
    from harness.report import render_leaderboard
    from harness.results import load_results

    md, html = render_leaderboard(
        load_results(args.results), args.output, title=args.title, plots=not args.no_plots
    )
    print(f"wrote {md} and {html}")
    return 0
