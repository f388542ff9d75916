"""``harness mteb import | export``: MTEB results files in, a run in MTEB's layout out."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import command, load_nonempty, output_option, writable_folder
from harness.errors import InputError


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "MTEB results files: import as leaderboard rows, export a run for an MTEB submission",
        [
            "harness mteb import ../results/results/lightonai__GTE-ModernColBERT-v1 --output results/mteb",
            "harness mteb export results/ --output mteb-submission/",
        ],
        description="MTEB interop: 'import' reads MTEB results files (their results-repository layout) "
        "into harness results files marked as published figures with their source; 'export' writes "
        "harness runs in MTEB's layout (<org>__<model>/<revision>/<Task>.json + model_meta.json).",
    )
    kinds = p.add_subparsers(dest="kind", required=True)
    imp = command(
        kinds,
        "import",
        "MTEB results files or folders -> harness results files (published rows, trec convention)",
        [
            "harness mteb import results-repo/results/lightonai__GTE-ModernColBERT-v1 --output results/mteb",
            "harness mteb import SciFact.json --model-name my-model --output results/mteb",
        ],
    )
    imp.add_argument("paths", nargs="+", type=Path, help="MTEB results files or folders")
    imp.add_argument(
        "--model-name", help="model id for the rows (default: model_meta.json, else the folders)"
    )
    output_option(imp, Path("results/mteb"), "folder for the harness results files")
    imp.set_defaults(func=_cmd_mteb_import)
    exp = command(
        kinds,
        "export",
        "harness runs -> MTEB results files, ready for a pull request to MTEB's results repository",
        [
            "harness mteb export results/ --output mteb-submission/",
            "harness mteb export results/m__BEIR_scifact.json --model-name org/my-model --output out/",
        ],
    )
    exp.add_argument("results", nargs="+", type=Path, help="harness results files or folders")
    exp.add_argument(
        "--model-name", help="MTEB model name, org/name (default: the registered Hub id, else the id)"
    )
    output_option(exp, Path("mteb-results"), "folder for <org>__<model>/<revision>/<Task>.json")
    exp.set_defaults(func=_cmd_mteb_export)


def _cmd_mteb_import(args: argparse.Namespace) -> int:
    from harness.mteb import import_mteb_results
    from harness.results import save_result

    folder = writable_folder(args.output, "--output")
    rows = [r for path in args.paths for r in import_mteb_results(path, model_id=args.model_name)]
    if not rows:
        raise InputError("no MTEB retrieval results there", field=" ".join(map(str, args.paths)))
    for r in rows:
        save_result(r, folder)
    print(f"wrote {len(rows)} results files (published rows from MTEB) to {folder}/")
    return 0


def _cmd_mteb_export(args: argparse.Namespace) -> int:
    from harness.mteb import export_mteb

    folder = writable_folder(args.output, "--output")
    runs = [r for r in load_nonempty(args.results) if r.published is None]
    if not runs:
        raise InputError("no harness runs there (published figures are not exported)", field="results")
    written = [p for r in runs for p in export_mteb(r, folder, model_name=args.model_name)]
    print(f"wrote {len(written)} MTEB files under {folder}/")
    return 0
