"""``harness export``: per-query scores of results files as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import command, output_file, output_option
from harness.errors import InputError


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
    output_option(p, None, "CSV file to write, or - for standard output (required)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from harness.export import per_query_csv, write_per_query_csv
    from harness.results import load_results

    if args.output is None:
        raise InputError("required: the CSV file to write, or - for standard output", field="--output")
    results = load_results(args.results)
    if not results:
        raise InputError("no results files there", field=" ".join(map(str, args.results)))
    if str(args.output) == "-":
        sys.stdout.write(per_query_csv(results))
    else:
        path = write_per_query_csv(results, output_file(args.output))
        print(f"wrote {path} ({len(results)} results files)")
    return 0
