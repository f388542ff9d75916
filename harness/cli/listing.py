"""``harness tasks | models | results``: what is registered, and what results files hold."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.common import command, load_nonempty, metric_text
from harness.errors import InputError

if TYPE_CHECKING:
    from harness.results import Result


def register_tasks(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "list registered tasks (convention, metric, split, published size) and groups with members",
        ["harness tasks", "harness tasks --group NanoBEIR"],
    )
    p.add_argument("--group", help="only this group's tasks")
    p.set_defaults(func=_cmd_tasks)


def _cmd_tasks(args: argparse.Namespace) -> int:
    from harness.console import plain_table
    from harness.tasks import get_task, list_groups, list_tasks

    groups = list_groups()
    if args.group:
        match = next((g for g in groups if g.lower() == args.group.lower()), None)
        if match is None:
            raise InputError(f"unknown group (known: {', '.join(groups)})", field="--group")
        groups = {match: groups[match]}
        tasks = [get_task(name) for name in groups[match]]
    else:
        tasks = list_tasks()

    def size(n: int | None) -> str:
        return "-" if n is None else f"{n:,}"

    rows = [
        (t.name, t.convention, t.main_metric, t.eval_split, size(t.n_queries), size(t.n_documents))
        for t in tasks
    ]
    print(plain_table(("task", "convention", "metric", "split", "queries", "documents"), rows))
    for name, members in groups.items():
        print(f"\ngroup {name} ({len(members)} tasks): {', '.join(members)}")
    print(
        "\nsizes: the evaluation split as published (- where not recorded); "
        "any BEIR-layout folder under --data-dir is a task too"
    )
    return 0


def register_models(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "list registered models (evaluate --model <name> loads one at its pinned revision)",
        ["harness models", "harness evaluate --model GTE-ModernColBERT-v1 --tasks NanoBEIR"],
    )
    p.set_defaults(func=_cmd_models)


def _cmd_models(args: argparse.Namespace) -> int:
    from harness.console import plain_table
    from harness.models import list_models

    rows = [
        (
            m.name,
            m.kind,
            m.hub_id + (f"@{m.revision[:12]}" if m.revision else ""),
            f"{m.parameters / 1e6:.1f}M" if m.parameters else "-",
            m.size_group or "-",
            ", ".join(f"{k}={v!r}" for k, v in m.overrides.items()) or "-",
        )
        for m in list_models()
    ]
    print(plain_table(("name", "kind", "hub id", "parameters", "size group", "loader settings"), rows))
    return 0


def register_results(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "list what results files or folders hold: model, task, main metric and score, when (and the "
        "settings that tell runs of one model and task apart)",
        ["harness results results/", "harness results results/ results/published"],
    )
    p.add_argument("paths", nargs="+", type=Path, help="results files or folders (searched recursively)")
    p.set_defaults(func=_cmd_results)


def _cmd_results(args: argparse.Namespace) -> int:
    from harness.console import plain_table
    from harness.explain import distinguishing_settings, setting_values

    results = load_nonempty(args.paths)
    extra = distinguishing_settings(results)  # what tells runs of one model and task apart
    rows = [
        (
            r.model_id + (" †" if r.published else ""),
            r.task_name,
            metric_text(r),
            f"{r.main_score:.4f}",
            str(sum(s.n_queries for s in r.subsets) or "-"),  # a published figure: not known
            r.retrieval.method,
            *(_setting_cell(setting_values(r).get(name)) for name in extra),
            *_cost_cells(r),
            r.created[:10],
        )
        for r in sorted(results, key=lambda r: (r.model_id, r.task_name, r.created))
    ]
    header = ("model", "task", "metric", "score", "queries", "retrieval", *extra, "p95 ms", "QPS", "created")
    print(plain_table(header, rows))
    models = len({r.model_id for r in results})
    print(f"{len(results)} results files, {models} models; † published figures (transcribed, not run)")
    print("p95 ms: a query searched alone (its encoding not included); QPS: all queries searched at once")
    return 0


def _cost_cells(result: Result) -> tuple[str, str]:
    """p95 single-query latency (ms) and batched QPS from the efficiency record; ``-`` where not
    recorded (published figures, older files, ``--latency-queries 0``)."""
    cost = result.efficiency
    p95 = cost.single.p95_ms if cost and cost.single else None
    qps = cost.batched.qps if cost else None
    return ("-" if p95 is None else f"{p95:.2f}"), ("-" if qps is None else f"{qps:,.0f}")


def _setting_cell(value: object) -> str:
    """A setting's value in a listing: ``-`` when not recorded, long texts (fingerprints) cut to 12."""
    text = "-" if value is None else str(value)
    return text if len(text) <= 16 else text[:12] + "…"
