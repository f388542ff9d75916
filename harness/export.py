"""Exports of a results file: per-query CSV. (TREC run files: ``harness.runfile``.)"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from harness.fileio import write_text_atomic
from harness.results import Result


def write_per_query_csv(result: Result, path: Path) -> Path:
    """CSV with columns model, task, subset, query_id, metric, score (the task's main metric)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "task", "subset", "query_id", "metric", "score"])
    metric = result.task["main_metric"]
    for subset in result.subsets:
        for qid, score in subset.per_query.items():
            writer.writerow([result.model_id, result.task_name, subset.name, qid, metric, repr(score)])
    write_text_atomic(Path(path), buffer.getvalue())
    return Path(path)
