"""Regression check with paired tests: ``compare`` (pairing, tests, verdicts; :func:`check`) ->
``report`` (the outcome, the gate's exit code, and its text / JSON / JUnit XML / markdown renderings)."""

from harness.check.compare import (
    FAILING_VERDICTS,
    TESTS,
    candidate_runs,
    check,
    paired_differences,
    select_model,
)
from harness.check.report import REPORT_KIND, CheckReport, TaskCheck

__all__ = [
    "FAILING_VERDICTS",
    "REPORT_KIND",
    "TESTS",
    "CheckReport",
    "TaskCheck",
    "candidate_runs",
    "check",
    "paired_differences",
    "select_model",
]
