"""Exports of results files: per-query CSV. (TREC run files: ``harness.runfile``.)"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from harness.fileio import write_text_atomic
from harness.results import Result


def per_query_csv(results: Sequence[Result]) -> str:
    """CSV text with columns model, task, subset, query_id, convention, metric, score: one row per
    query, metric and convention of every subset of every result, in the order given (every metric
    the run computed; a results file of an earlier version keeps only its task's main metric)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "task", "subset", "query_id", "convention", "metric", "score"])
    for result in results:
        task = result.task
        for subset in result.subsets:
            tables = subset.per_query_metrics or {task.convention: {task.main_metric: subset.per_query}}
            for convention, metrics in tables.items():
                for metric, scores in metrics.items():
                    for qid, score in scores.items():
                        row = [result.model_id, result.task_name, subset.name, qid, convention, metric]
                        writer.writerow([*row, repr(score)])
    return buffer.getvalue()


def write_per_query_csv(results: Result | Sequence[Result], path: Path) -> Path:
    """:func:`per_query_csv` of ``results`` (one or several) written atomically to ``path``."""
    write_text_atomic(Path(path), per_query_csv([results] if isinstance(results, Result) else results))
    return Path(path)
