"""``harness export``: per-query scores of results files as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import command, is_stdout, load_nonempty, output_option, writable_file
from harness.errors import InputError

DEFAULT_NAME = "per_query.csv"  # the file written into a folder given as --output


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "per-query scores of results files as CSV (TREC run files: evaluate --save-run)",
        [
            "harness export results/ --output per_query.csv",
            "harness export results/m__BEIR_scifact.json --output - | head",
        ],
    )
    p.add_argument("results", type=Path, nargs="+", help="results files, or folders holding them")
    output_option(
        p,
        None,
        f"CSV file to write, a folder (existing, or ending in /) for {DEFAULT_NAME} in it, or - for "
        "standard output (required)",
    )
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from harness.export import per_query_csv, write_per_query_csv

    if args.output is None:
        raise InputError("required: the CSV file to write, or - for standard output", field="--output")
    path = None if is_stdout(args.output) else writable_file(args.output, "--output", DEFAULT_NAME)
    results = load_nonempty(args.results)
    if path is None:
        sys.stdout.write(per_query_csv(results))
    else:
        write_per_query_csv(results, path)
        print(f"wrote {path} ({len(results)} results files)")
    return 0
