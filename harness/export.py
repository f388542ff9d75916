"""Exports of results files: per-query CSV. (TREC run files: ``harness.runfile``.)"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from harness.fileio import write_text_atomic
from harness.results import Result


def per_query_csv(results: Sequence[Result]) -> str:
    """CSV text with columns model, task, subset, query_id, metric, score: one row per query of
    every subset of every result (the score of its task's main metric, the one results keep per
    query), in the order given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "task", "subset", "query_id", "metric", "score"])
    for result in results:
        metric = result.task["main_metric"]
        for subset in result.subsets:
            for qid, score in subset.per_query.items():
                writer.writerow([result.model_id, result.task_name, subset.name, qid, metric, repr(score)])
    return buffer.getvalue()


def write_per_query_csv(results: Result | Sequence[Result], path: Path) -> Path:
    """:func:`per_query_csv` of ``results`` (one or several) written atomically to ``path``."""
    write_text_atomic(Path(path), per_query_csv([results] if isinstance(results, Result) else results))
    return Path(path)
