"""``harness evaluate``: its flags are the ``EvalSettings`` fields' (``harness.settings``), plus
the few that are no setting (model, tasks, no cache, quiet); then the summary, the model card after
a full NanoBEIR run, and where the results went."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from harness.cli.common import command, metric_text, output_option, writable_folder
from harness.flags import Flag, flag_default, flag_fields, from_flags
from harness.settings import EvalSettings

DEFAULT_MODEL = "mixedbread-ai/mxbai-edge-colbert-v0-17m"

# The flags that are no setting, each at its place among the settings' flags (Flag.order).
OWN_FLAGS: list[tuple[int, str, dict[str, Any]]] = [
    (
        0,
        "--model",
        {"default": DEFAULT_MODEL, "help": "local folder, Hugging Face id or 'bm25' (default %(default)s)"},
    ),
    (
        65,
        "--tasks",
        {
            "nargs": "+",
            "default": ["NanoBEIR"],
            "help": "task names, groups (NanoBEIR, BEIR, BEIR-card, LongEmbed: see 'harness tasks') or BEIR "
            "folders under --data-dir (a folder named as a registered dataset is that task)",
        },
    ),
    (265, "--no-cache", {"action": "store_true", "help": "encode cold and keep nothing"}),
    (1000, "--quiet", {"action": "store_true", "help": "print only the final summary (no bars, no notes)"}),
]


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "evaluate a model on tasks and write one results file per task",
        [
            "harness evaluate   # mxbai-edge-colbert-v0-17m on NanoBEIR (Hub), results/ + model card",
            "harness evaluate --model ./my-colbert --tasks scifact --data-dir ../shared/data/beir",
            "harness evaluate --model ./my-colbert --tasks BEIR/msmarco --index plaid --executor ray",
        ],
    )
    settings = [(flag.order, flag.name, _arguments(f, flag)) for f, flag in flag_fields(EvalSettings)]
    for _, flag, kwargs in sorted([*settings, *OWN_FLAGS], key=lambda item: item[0]):
        if flag == "--output":  # the one spelling of an output, with the old --out
            output_option(p, kwargs["default"], kwargs["help"], dest=kwargs["dest"])
        else:
            p.add_argument(flag, **kwargs)
    p.set_defaults(func=_cmd_evaluate)


def _arguments(f: dataclasses.Field, flag: Flag) -> dict[str, Any]:
    """``add_argument``'s keywords for a settings field's flag: its value lands under the field's
    name, its placeholder in ``--help`` is the flag's (``--n-probe N_PROBE``)."""
    kwargs = {"dest": f.name, "default": flag_default(f, flag), "help": flag.help}
    placeholder = None if flag.action or flag.choices else flag.name.lstrip("-").replace("-", "_").upper()
    given = {"type": flag.type, "choices": flag.choices, "action": flag.action, "metavar": placeholder}
    return kwargs | {key: value for key, value in given.items() if value is not None}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.report.card import write_card_after_full_nanobeir
    from harness.run import evaluate

    others: dict[str, Any] = {"show_progress": not args.quiet}
    if args.no_cache:
        others["cache_dir"] = None
    settings = from_flags(EvalSettings, vars(args), **others)
    _check_writable(settings)
    if args.quiet and settings.executor == "ray":
        import ray  # noqa: F401  (it sets its loggers' levels when imported)

        logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notices
    results = evaluate(args.model, args.tasks, settings)
    print(summary_table(results))
    for path in write_card_after_full_nanobeir(results, settings.output_dir):
        print(f"model card: {path}")
    print(_results_line(results, settings.output_dir))
    return 0


def _check_writable(settings: EvalSettings) -> None:
    """What the run writes to, checked before the model and the tasks load: the results folder (and
    its runs/ with --save-run) and the embedding cache."""
    output = settings.output_dir
    runs = output / "runs" if output and settings.save_run else None
    for folder, flag in ((output, "--output"), (runs, "--output"), (settings.cache_dir, "--cache-dir")):
        if folder is not None:
            writable_folder(folder, flag)


def _results_line(results: list, output: Path) -> str:
    """Where the results went: the file of a single task, else the folder and how many files."""
    from harness.results import result_filename

    if len(results) == 1:
        return f"results: {output / result_filename(results[0].model_id, results[0].task_name)}"
    return f"results: {output}/ ({len(results)} files)"


def summary_table(results: list) -> str:
    """Plain-text table: task, metric (convention), score, queries, seconds ("reused" for a finished
    results file the run returned as it was)."""
    from harness.console import plain_table

    rows = [
        (
            r.task_name,
            metric_text(r),
            f"{r.main_score:.4f}",
            str(sum(s.n_queries for s in r.subsets)),
            "reused" if r.reused else f"{(r.timings.get('total_s') or 0):.1f}",
        )
        for r in results
    ]
    return plain_table(("task", "metric", "score", "queries", "seconds"), rows)
