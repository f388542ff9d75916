"""``harness check``: the regression gate over two sets of results files (exit 1 on a failure)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.common import command, writable_file
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.results import Result


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "regression gate: candidate results vs a baseline (exit 1 on regression)",
        [
            "harness check --baseline results/main --candidate results/pr",
            "harness check --baseline base/ --candidate new/ --abs-tol 0.01 --tolerance BEIR/nq=0.02 "
            "--junit gate.xml",
        ],
        description="Compare candidate results with a baseline, task by task, with paired tests. Exit "
        "codes: 0 the gate passes; 1 a task regressed (or is inconclusive with --fail-on inconclusive, "
        "or is missing from the candidate without --allow-missing); 2 bad input or usage, including "
        "a comparison of nothing (an empty side, no task in common).",
    )
    sides = "results files or folders; a file named here wins, for its task, over the folders' others"
    p.add_argument("--baseline", nargs="+", type=Path, required=True, help=sides)
    p.add_argument("--candidate", nargs="+", type=Path, required=True, help=sides)
    p.add_argument("--baseline-model", help="pick one model when the baseline folder holds several")
    p.add_argument("--candidate-model", help="pick one model when the candidate folder holds several")
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
    p.add_argument("--resamples", type=int, default=10000, help="permutation test: random sign flips")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation test's flips")
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
    p.add_argument("--junit", help="also write the report as JUnit XML (a file)")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.check import check
    from harness.fileio import write_text_atomic

    outputs = (("--json", args.json), ("--junit", args.junit))
    reports = {flag: writable_file(path, flag) for flag, path in outputs if path}  # checked before any work
    baseline = _side(args.baseline, "baseline", args.baseline_model)
    candidate = _side(args.candidate, "candidate", args.candidate_model)
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
    )
    print(report.to_text())
    if "--json" in reports:
        write_text_atomic(reports["--json"], report.to_json())
    if "--junit" in reports:
        write_text_atomic(reports["--junit"], report.to_junit_xml())
    return report.exit_code


def _side(paths: list[Path], side: str, model: str | None) -> list[Result]:
    """One side's results: its files named explicitly win, for their tasks, over what its folders
    hold (to pick one of two files of a task); then ``model``'s only (``--<side>-model``). A task
    still held twice is an InputError naming the files that hold it."""
    from harness.check.compare import repeated_task_error, repeated_tasks, select_model
    from harness.results import load_results

    named = load_results([p for p in paths if not p.is_dir()])
    tasks = {r.task_name for r in named}
    results = named + [r for r in load_results([p for p in paths if p.is_dir()]) if r.task_name not in tasks]
    if model:
        results = select_model(results, model, f"--{side}-model")
    for task, repeated in repeated_tasks(results).items():
        models = [r.model_id for r in repeated]
        raise repeated_task_error(side, task, models, _files_holding(paths, task, set(models)))
    return results


def _files_holding(paths: list[Path], task: str, models: set[str]) -> list[str]:
    """The JSON files under ``paths`` that hold ``task`` of one of ``models`` (for an error message)."""
    from harness.results import read_json

    files = sorted({f for p in paths for f in ([p] if not p.is_dir() else p.rglob("*.json"))})
    return [str(f) for f in files if _holds(read_json(f), task, models)]


def _holds(data: object, task: str, models: set[str]) -> bool:
    """Whether a decoded JSON file is a result of ``task`` by one of ``models``."""
    try:
        return data["task"]["name"] == task and data["model"]["id"] in models  # type: ignore[index]
    except (KeyError, TypeError):  # not a results file (a check report)
        return False
