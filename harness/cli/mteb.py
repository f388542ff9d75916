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
            "harness mteb export results/bm25__BEIR_scifact.json --model-name my-org/bm25s --output out/",
        ],
        description="Write harness runs as MTEB TaskResult files + model_meta.json, which MTEB's loaders "
        "read. A model needs an 'org/name' (--model-name where the registry has none); a run without a "
        "model revision is filed as no_revision_available unless --revision pins one. Files whose task "
        "has no MTEB task are skipped with a note. Runs of one model that MTEB files under one task "
        "(LoTTE's domains, MLDR's languages) share its file, one entry per HF subset. The notes also say "
        "what a pull request to MTEB's results repository still needs (MTEB did not run these figures).",
    )
    exp.add_argument("results", nargs="+", type=Path, help="harness results files or folders")
    exp.add_argument(
        "--model-name", help="MTEB model name, org/name (default: the registered Hub id, else the id)"
    )
    exp.add_argument(
        "--revision",
        help="the model's revision: its Hub commit (default: the run's; none: no_revision_available)",
    )
    output_option(exp, Path("mteb-results"), "folder for <org>__<model>/<revision>/<Task>.json")
    exp.set_defaults(func=_cmd_mteb_export)


def _cmd_mteb_import(args: argparse.Namespace) -> int:
    from harness.mteb import dropped_keys, import_mteb_results
    from harness.results import save_result

    folder = writable_folder(args.output, "--output")
    imports = [import_mteb_results(path, model_id=args.model_name) for path in args.paths]
    rows = [r for found in imports for r in found]
    if not rows:
        raise InputError("no MTEB retrieval results there", field=" ".join(map(str, args.paths)))
    for r in rows:
        save_result(r, folder)
    print(f"wrote {len(rows)} results files (published rows from MTEB) to {folder}/")
    dropped = {key for found in imports for keys in found.dropped.values() for key in keys}
    if dropped:
        print(f"note: MTEB keys with no harness metric, not kept: {dropped_keys(dropped)}")
    return 0


def _cmd_mteb_export(args: argparse.Namespace) -> int:
    from harness.mteb import mteb_tasks_for, plan_export

    folder = writable_folder(args.output, "--output")
    runs = [r for r in load_nonempty(args.results) if r.published is None]
    if not runs:
        raise InputError("no harness runs there (published figures are not exported)", field="results")
    mapped = [r for r in runs if mteb_tasks_for(r.task_name)]
    adhoc = [r for r in runs if not mteb_tasks_for(r.task_name)]
    notes = [f"skipped {r.file or r.model_id}: {r.task_name} has no MTEB task" for r in adhoc]
    if not mapped:
        raise InputError(f"no run there is of a task MTEB has ({len(adhoc)} skipped)", field="results")
    # every run checked before any file is written; runs of one MTEB task share its file
    written = plan_export(mapped, folder, model_name=args.model_name, revision=args.revision).write()
    notes += written.notes
    print(f"wrote {len(written)} MTEB files under {folder}/")
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    return 0
