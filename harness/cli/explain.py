"""``harness explain A B``: why two results of one task differ (``harness.explain``), as text or
JSON. It explains and never gates: exit 0, or 2 for unreadable files or results of different tasks."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.common import command
from harness.errors import InputError

if TYPE_CHECKING:
    from harness.explain import Difference, Explanation, Mover, Side
    from harness.results import Result

PUBLISHED_DIR = Path("results") / "published"


def register(sub: argparse._SubParsersAction, name: str) -> None:
    p = command(
        sub,
        name,
        "why two results of one task differ: settings, data, conventions, per-query deltas",
        [
            "harness explain results/run-a/m__BEIR_scifact.json results/run-b/m__BEIR_scifact.json",
            "harness explain results/GTE-ModernColBERT-v1__BEIR_scifact.json "
            "--published GTE-ModernColBERT-v1",
            "harness explain a.json b.json --json > why.json",
        ],
        description="Explain why result B's score differs from result A's (one task): every setting "
        "that differs (named as its flag; those that cannot change the scores apart), the data "
        "fingerprints and sizes, the metric conventions, the per-query delta distribution (B - A) "
        "with a 95% bootstrap CI and paired tests, and the subsets and queries that move the score "
        "most. Against a published row (B under results/published, or --published MODEL) it compares "
        "A with the settings the model registry records for that row. Always exit 0 (it is no gate); "
        "2 when a file is unreadable or A and B are results of different tasks.",
    )
    p.add_argument("a", type=Path, metavar="A", help="a results file")
    p.add_argument("b", type=Path, metavar="B", nargs="?", help="a results file, a run or a published row")
    p.add_argument("--published", metavar="MODEL", help="instead of B: MODEL's published row of A's task")
    p.add_argument(
        "--published-dir", type=Path, default=PUBLISHED_DIR, help="where --published looks for rows"
    )
    p.add_argument("--top", type=int, default=10, help="subsets and queries listed as moving the score most")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON instead of text")
    p.set_defaults(func=_cmd_explain)


def _cmd_explain(args: argparse.Namespace) -> int:
    from harness.errors import positive_int
    from harness.explain import explain
    from harness.results import load_result

    top = positive_int(args.top, "--top")
    if (args.b is None) == (args.published is None):
        raise InputError("name B or --published MODEL (one of them)", field="B")
    a = load_result(args.a)
    b = load_result(args.b) if args.b is not None else published_row(a, args.published, args.published_dir)
    found = explain(a, b, top=top)
    print(json.dumps(found.to_dict(), indent=2) if args.json else explanation_text(found))
    return 0


def published_row(run: Result, model: str, folder: Path) -> Result:
    """``model``'s published row of ``run``'s task under ``folder``, the newest if several (a row under
    any name or alias of the model's registry entry matches); InputError naming the models that have
    a row of the task."""
    from harness.models import find_model
    from harness.report.catalogue import is_published
    from harness.results import load_results

    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder of published rows", field="--published-dir")
    info = find_model(model)
    rows = [r for r in load_results(folder) if is_published(r) and r.task_name == run.task_name]
    chosen = [
        r for r in rows if r.model_id.lower() == model.lower() or (info and find_model(r.model_id) == info)
    ]
    if not chosen:
        have = sorted({r.model_id for r in rows}) or "none"
        raise InputError(
            f"no published row of {model!r} for task {run.task_name!r} in {folder} "
            f"(models with a row of the task: {have})",
            field="--published",
        )
    return max(chosen, key=lambda r: r.created)


def explanation_text(found: Explanation) -> str:
    """The explanation as the terminal shows it: one block per part, the numbers to 4 decimals."""
    a, b = found.a, found.b
    lines = [
        f"A: {a.label} ({a.model}{', published' if a.published else ''})",
        f"B: {b.label} ({b.model}{', published' if b.published else ''})",
        f"task {found.task}: A {a.score:.4f}, B {b.score:.4f}, delta (B - A) {found.delta:+.4f}",
    ]
    return "\n".join(
        [*lines, *_conventions(found), *_settings(found), *_registry(found), *_data(found), *_deltas(found)]
    )


def _conventions(found: Explanation) -> list[str]:
    a, b = found.a, found.b
    same = (a.convention, a.main_metric) == (b.convention, b.main_metric)
    lines = ["", f"metric: A {_metric(a)}, B {_metric(b)}"]
    if not same:
        lines.append("  the scores are of different metrics or conventions: they are not comparable as is")
        if found.a_in_b_metric is not None:
            lines.append(f"  A in B's metric and convention: {found.a_in_b_metric:.4f}")
    return lines


def _settings(found: Explanation) -> list[str]:
    changing = [d for d in found.differences if d.changes_scores]
    other = [d for d in found.differences if not d.changes_scores]
    lines = ["", f"settings that can change the scores: {len(changing)} differ"]
    lines += _difference_rows(changing) or ["  none"]
    if other:
        lines.append("settings that cannot (bookkeeping, one value asked differently, a new name):")
        lines += _difference_rows(other)
    if found.a.published or found.b.published:
        lines.append("  (a published row records its task's fields only)")
    return lines


def _difference_rows(differences: Sequence[Difference]) -> list[str]:
    from harness.console import plain_table

    rows = [(d.name, _value(d.a), _value(d.b), ", ".join(d.fields)) for d in differences]
    return _indent(plain_table(("setting", "A", "B", "fields"), rows)) if rows else []


def _registry(found: Explanation) -> list[str]:
    from harness.console import plain_table

    check = found.registry
    if check is None:
        return []
    side = "B" if found.a.published else "A"
    if check.entry is None:
        return ["", f"the registry records no model {check.row_model!r}: no loader settings to compare"]
    lines = [
        "",
        f"{side} against the registry's {check.entry!r} ({check.hub_id}), the published row's model:",
    ]
    if not check.differences:
        return [*lines, "  no setting the registry records differs"]
    rows = [(d.name, _value(d.run), _value(d.registry), _value(d.ran_with)) for d in check.differences]
    table = plain_table(("setting", f"{side} asked", "registry", f"{side} ran with"), rows)
    return [*lines, *_indent(table), "  (- : the checkpoint's own value, or not recorded)"]


def _data(found: Explanation) -> list[str]:
    from harness.console import plain_table

    rows = [(s.name, *map(_value, s.n_queries), s.fingerprint, *map(_score, s.scores)) for s in found.subsets]
    header = ("subset", "queries A", "queries B", "data fingerprints", "A", "B")
    lines = ["", "data:", *_indent(plain_table(header, rows))]
    if found.a.source != found.b.source:
        lines.append(f"  sources: A {found.a.source or '-'}, B {found.b.source or '-'}")
    return lines


def _deltas(found: Explanation) -> list[str]:
    lines = [""]
    d = found.deltas
    if d is not None:
        lo, hi = d.ci95
        quantiles = ", ".join(f"{q} {v:+.4f}" for q, v in d.quantiles.items())
        better, worse, equal = d.better_worse_equal
        lines += [
            f"per-query delta (B - A) over {d.n_paired} paired queries:",
            f"  mean {d.mean:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}] (bootstrap within subsets), "
            f"p = {_p(d.permutation_pvalue)} (sign-flip), {_p(d.t_pvalue)} (paired t)",
            f"  quantiles: {quantiles}",
            f"  B better on {better}, worse on {worse}, equal on {equal}",
        ]
    if len(found.top_subsets) > 1:
        lines += ["subsets moving the score most:", *_movers(found.top_subsets)]
    if found.top_queries:
        lines += ["queries moving the score most:", *_movers(found.top_queries)]
    elif d is not None:
        lines.append("no query scores differently")
    return lines + [f"note: {n}" for n in found.notes]


def _movers(movers: Sequence[Mover]) -> list[str]:
    """Subsets (no query) or queries with both scores and their share of the task delta."""
    from harness.console import plain_table

    queries = movers[0].query is not None
    rows = [
        (
            m.subset,
            *([m.query or ""] if queries else []),
            f"{m.a:.4f}",
            f"{m.b:.4f}",
            f"{m.contribution:+.4f}",
        )
        for m in movers
    ]
    header = ("subset", *(["query"] if queries else []), "A", "B", "share of delta")
    return _indent(plain_table(header, rows))


def _metric(side: Side) -> str:
    from harness.metrics import metric_label

    return f"{metric_label(side.main_metric)} ({'trec_eval' if side.convention == 'trec' else 'card'})"


def _indent(text: str) -> list[str]:
    return [f"  {line}" for line in text.splitlines()]


def _value(value: Any) -> str:
    return "-" if value is None else repr(value) if isinstance(value, str) else str(value)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
