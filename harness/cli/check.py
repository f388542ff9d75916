"""``harness check``: the regression gate over two sets of results files (exit 1 on a failure)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import command
from harness.errors import HarnessError


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
    p.add_argument("--baseline", nargs="+", type=Path, required=True, help="results files or folders")
    p.add_argument("--candidate", nargs="+", type=Path, required=True, help="results files or folders")
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
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument("--junit", type=Path, help="also write the report as JUnit XML")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.check import check, select_model
    from harness.fileio import write_text_atomic
    from harness.results import Result, load_results

    baseline: list[Result] = load_results(args.baseline)
    candidate: list[Result] = load_results(args.candidate)
    if args.baseline_model:
        baseline = select_model(baseline, args.baseline_model, "--baseline-model")
    if args.candidate_model:
        candidate = select_model(candidate, args.candidate_model, "--candidate-model")
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
    if args.json:
        write_text_atomic(args.json, report.to_json())
    if args.junit:
        write_text_atomic(args.junit, report.to_junit_xml())
    return report.exit_code
