"""``harness check``: the regression gate over two sets of results files (exit 1 on a failure)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.common import command, writable_file
from harness.errors import HarnessError, InputError

if TYPE_CHECKING:
    from harness.results import Result


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "regression gate: candidate results vs a baseline (exit 1 on regression)",
        [
            "harness check --baseline results/baseline --candidate results/   # the baseline's files "
            "and published rows are never candidates",
            "harness check --baseline base/ --candidate new/ --abs-tol 0.01 --tolerance BEIR/nq=0.02 "
            "--junit gate.xml --markdown gate.md",
            "harness check --baseline results/ --baseline-model M --candidate results/ --pair-by variant "
            "--abs-tol 0.01   # every variant of M (PLAID, rerank, --pool-factor ...) against M's exact runs",
        ],
        description="Compare candidate results with a baseline, task by task, with paired tests. Exit "
        "codes: 0 the gate passes; 1 a task regressed (or is inconclusive with --fail-on inconclusive, "
        "or is missing from the candidate without --allow-missing); 2 bad input or usage, including "
        "a comparison of nothing (an empty side, no task in common). Published rows and the baseline's "
        "own files (a baseline folder inside the candidate folder) are left out of the candidate side.",
    )
    sides = "results files or folders; a file named here wins, for its task, over the folders' others"
    p.add_argument("--baseline", nargs="+", type=Path, required=True, help=sides)
    p.add_argument("--candidate", nargs="+", type=Path, required=True, help=sides)
    p.add_argument("--baseline-model", help="pick one model when the baseline folder holds several")
    p.add_argument("--candidate-model", help="pick one model when the candidate folder holds several")
    p.add_argument(
        "--pair-by",
        choices=["task", "variant"],
        default="task",
        help="task (default): one run per task on each side, paired by task (the models may differ: "
        "--baseline exact.json --candidate pool2.json gates a variant against its exact run); variant: "
        "the candidate side's runs of the baseline's model (same fingerprint: compression variants, "
        "PLAID, rerank), several per task, each against the baseline's run of its task",
    )
    p.add_argument("--abs-tol", type=float, default=0.005, help="allowed absolute drop (default 0.005)")
    p.add_argument("--rel-tol", type=float, help="allowed relative drop (the larger of the two applies)")
    p.add_argument(
        "--tolerance", action="append", default=[], metavar="TASK=DROP", help="per-task allowed drop"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument(
        "--test",
        choices=["permutation", "t"],
        default="permutation",
        help="paired test over per-query scores: sign-flip permutation or paired t-test",
    )
    p.add_argument(
        "--resamples", type=int, default=10000, help="sign flips of the permutation test, resamples of the CI"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sign flips and the bootstrap")
    p.add_argument(
        "--fail-on",
        choices=["regression", "inconclusive"],
        default="regression",
        help="'inconclusive' also fails on a drop beyond the tolerance that is not significant "
        "(default: regression only)",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="pass even when the candidate lacks a task of the baseline",
    )
    p.add_argument("--fail-on-missing", action="store_true", help=argparse.SUPPRESS)  # now the default
    p.add_argument("--json", help="also write the report as JSON (a file)")
    p.add_argument(
        "--junit",
        help="also write the report as JUnit XML (a file): a failing verdict is a <failure>, an "
        "inconclusive drop that passes a <skipped>",
    )
    p.add_argument(
        "--markdown",
        help="also write the report as markdown (a file; a CI job summary, e.g. $GITHUB_STEP_SUMMARY's)",
    )
    p.set_defaults(func=_cmd_check)


RENDERERS = {"--json": "to_json", "--junit": "to_junit_xml", "--markdown": "to_markdown"}


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.check import check
    from harness.fileio import write_text_atomic

    outputs = {flag: getattr(args, flag[2:]) for flag in RENDERERS}
    reports = {flag: writable_file(path, flag) for flag, path in outputs.items() if path}  # before any work
    baseline = _one_per_task(_side(args.baseline), "baseline", args.baseline_model)
    candidate, notes = _candidate_side(args.candidate, baseline, args.candidate_model, args.pair_by)
    per_task = {}
    for item in args.tolerance:
        task, _, value = item.rpartition("=")
        try:
            per_task[task] = float(value)
        except ValueError:
            raise HarnessError(f"--tolerance {item!r}: expected TASK=NUMBER") from None
    report = check(
        baseline,
        candidate,
        abs_tol=args.abs_tol,
        rel_tol=args.rel_tol,
        per_task_tol=per_task,
        alpha=args.alpha,
        n_resamples=args.resamples,
        seed=args.seed,
        test=args.test,
        fail_on=("regression", "inconclusive") if args.fail_on == "inconclusive" else ("regression",),
        allow_missing=args.allow_missing,
        pair_by=args.pair_by,
    )
    report = replace(report, notes=notes)
    print(report.to_text())
    for flag, path in reports.items():
        write_text_atomic(path, getattr(report, RENDERERS[flag])())
    return report.exit_code


def _side(paths: list[Path]) -> list[Result]:
    """One side's results: its files named explicitly win, for their tasks, over what its folders
    hold (to pick one of two files of a task)."""
    from harness.results import load_results

    named = load_results([p for p in paths if not p.is_dir()])
    tasks = {r.task_name for r in named}
    return named + [r for r in load_results([p for p in paths if p.is_dir()]) if r.task_name not in tasks]


def _candidate_side(
    paths: list[Path], baseline: list[Result], model: str | None, pair_by: str = "task"
) -> tuple[list[Result], list[str]]:
    """The candidate's results (:func:`_side`) without published rows and the baseline's own files
    (:func:`harness.check.compare.candidate_runs`), with ``--pair-by variant`` only the runs of the
    baseline's model (:func:`harness.check.compare.variants_of`, several per task allowed), and
    notes on what was left out. Nothing left is an InputError saying so."""
    from harness.check.compare import candidate_runs, select_model, variants_of

    results, notes = candidate_runs(_side(paths), baseline)
    if pair_by == "variant":
        results, more = variants_of(results, baseline)
        notes += more
    if notes and not results:
        raise InputError(
            f"holds no runs to check: {'; '.join(notes)}; name the folder or files of the runs",
            field="--candidate",
        )
    if pair_by == "variant":
        return (select_model(results, model, "--candidate-model") if model else results), notes
    return _one_per_task(results, "candidate", model), notes


def _one_per_task(results: list[Result], side: str, model: str | None) -> list[Result]:
    """``model``'s results only (``--<side>-model``); a task still held twice is an InputError naming
    the files that hold it."""
    from harness.check.compare import repeated_task_error, repeated_tasks, select_model

    if model:
        results = select_model(results, model, f"--{side}-model")
    for task, repeated in repeated_tasks(results).items():
        files = sorted({str(r.file) for r in repeated if r.file is not None})
        raise repeated_task_error(side, task, [r.model_id for r in repeated], files)
    return results
