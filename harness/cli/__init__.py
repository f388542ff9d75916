"""Command line: ``harness evaluate | tasks | models | results | report | check | explain | export |
mteb``.

One module per command or command family registers its parser (``COMMANDS``: name -> the
function adding it); ``main`` parses, sets up the terminal and runs the command, turning a
``HarnessError`` into exit code 2 and an interrupt (Ctrl-C) into one line and exit code 130.
All of the harness's printing happens under here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from harness import __version__
from harness.cli import check, evaluate, explain, export, listing, mteb, report
from harness.cli.common import HelpFormatter, terminal, wrap
from harness.errors import HarnessError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: dict[str, Callable[[argparse._SubParsersAction, str], None]] = {
    "evaluate": evaluate.register,
    "tasks": listing.register_tasks,
    "models": listing.register_models,
    "results": listing.register_results,
    "report": report.register,
    "check": check.register,
    "explain": explain.register,
    "export": export.register,
    "mteb": mteb.register,
}

EPILOG = """examples:
  harness evaluate --model ./my-colbert --tasks scifact --data-dir ../shared/data/beir
  harness report leaderboard results/ results/published
  harness <command> --help      # each command's options, defaults and examples

exit codes: 0 success ('harness explain' always: it explains why two results differ, it is no gate);
1 'harness check' found a failure (a regression, ...); 2 bad input or usage; 130 interrupted (Ctrl-C)"""

INTERRUPTED = (
    "interrupted: finished results files and cache entries are kept; run the same command again to resume"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description=wrap(
            "Evaluate retrieval models (ColBERT first) on NanoBEIR, BEIR and LongEmbed; report and "
            "check the results."
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, register in COMMANDS.items():
        register(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with terminal(quiet=getattr(args, "quiet", False)):
        try:
            return args.func(args)
        except HarnessError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C: no traceback; atomic writes leave nothing half-written
            print(INTERRUPTED, file=sys.stderr)
            return 130
