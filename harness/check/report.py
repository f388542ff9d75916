"""The check's outcome: one :class:`TaskCheck` per task, the :class:`CheckReport` with the gate
(``exit_code``), and its renderings: a text table, JSON and JUnit XML."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.console import plain_table

REPORT_KIND = "harness-check-report"  # in the JSON report, which is not a results file


@dataclass
class TaskCheck:
    """The comparison of one task."""

    task: str
    baseline_model: str
    candidate_model: str
    metric: str
    baseline_score: float
    candidate_score: float
    delta: float
    tolerance: float
    n_paired: int
    t_pvalue: float | None
    permutation_pvalue: float | None
    verdict: str  # "ok" | "regression" | "inconclusive" | "improvement"
    basis: str  # "tolerance+test" | "tolerance only"
    notes: list[str] = field(default_factory=list)
    baseline_revision: str | None = None  # the Hub commits the two models were loaded at, when known
    candidate_revision: str | None = None


@dataclass
class CheckReport:
    """All task comparisons plus the tasks found on one side only."""

    tasks: list[TaskCheck]
    missing_in_candidate: list[str]
    missing_in_baseline: list[str]
    alpha: float
    test: str
    n_resamples: int
    seed: int
    fail_on: tuple[str, ...] = ("regression",)
    allow_missing: bool = False

    @property
    def regressions(self) -> list[TaskCheck]:
        return [t for t in self.tasks if t.verdict == "regression"]

    @property
    def failures(self) -> list[TaskCheck]:
        """The tasks whose verdict fails the gate (``fail_on``)."""
        return [t for t in self.tasks if t.verdict in self.fail_on]

    @property
    def exit_code(self) -> int:
        """1 when a task fails the gate or (unless ``allow_missing``) the candidate lacks a task; else 0."""
        return 1 if self.failures or (self.missing_in_candidate and not self.allow_missing) else 0

    def to_dict(self) -> dict:
        return {
            "kind": REPORT_KIND,
            "alpha": self.alpha,
            "test": self.test,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "fail_on": list(self.fail_on),
            "allow_missing": self.allow_missing,
            "exit_code": self.exit_code,
            "tasks": [asdict(t) for t in self.tasks],
            "missing_in_candidate": self.missing_in_candidate,
            "missing_in_baseline": self.missing_in_baseline,
        }

    def to_json(self) -> str:
        return json.dumps(_finite(self.to_dict()), indent=2) + "\n"

    def to_text(self) -> str:
        """A fixed-width table, one line per task, then notes and missing tasks."""
        header = ("task", "baseline", "candidate", "delta", "tol", "n", "p(t)", "p(perm)", "verdict")
        rows = [
            (
                t.task,
                f"{t.baseline_score:.4f}",
                f"{t.candidate_score:.4f}",
                f"{t.delta:+.4f}",
                f"{t.tolerance:.4f}",
                str(t.n_paired),
                _p(t.t_pvalue),
                _p(t.permutation_pvalue),
                t.verdict.upper() if t.verdict in self.fail_on else t.verdict,
            )
            for t in self.tasks
        ]
        lines = plain_table(header, rows).split("\n")
        for t in self.tasks:
            lines.extend(f"note: {t.task}: {note}" for note in t.notes)
        if self.missing_in_candidate:
            allowed = " (allowed)" if self.allow_missing else " (fails the gate; --allow-missing to accept)"
            lines.append("missing in candidate: " + ", ".join(self.missing_in_candidate) + allowed)
        if self.missing_in_baseline:
            lines.append("missing in baseline: " + ", ".join(self.missing_in_baseline))
        inconclusive = sum(t.verdict == "inconclusive" for t in self.tasks)
        lines.append(
            f"{len(self.regressions)} regression(s), {inconclusive} inconclusive in {len(self.tasks)} "
            f"task(s); alpha={self.alpha}, significance from the {self.test} test; fails on "
            f"{' and '.join(self.fail_on)}; exit code {self.exit_code}"
        )
        return "\n".join(lines) + "\n"

    def to_junit_xml(self) -> str:
        """JUnit XML: one testcase per task, <failure> for a regression, <skipped> for a missing task."""
        suite = ET.Element(
            "testsuite",
            name="harness.check",
            tests=str(len(self.tasks) + len(self.missing_in_candidate) + len(self.missing_in_baseline)),
            failures=str(len(self.failures) + (0 if self.allow_missing else len(self.missing_in_candidate))),
            errors="0",
            skipped=str(
                len(self.missing_in_baseline) + (len(self.missing_in_candidate) if self.allow_missing else 0)
            ),
        )
        for t in self.tasks:
            case = ET.SubElement(suite, "testcase", classname="harness.check", name=t.task)
            summary = (
                f"{t.metric}: {t.baseline_score:.4f} -> {t.candidate_score:.4f} "
                f"({t.delta:+.4f}, tol {t.tolerance}), p(t)={_p(t.t_pvalue)}, "
                f"p(perm)={_p(t.permutation_pvalue)}, basis: {t.basis}"
            )
            if t.verdict in self.fail_on:
                failure = ET.SubElement(case, "failure", message=f"{t.verdict}: {summary}", type=t.verdict)
                failure.text = "\n".join([summary, *t.notes])
            else:
                ET.SubElement(case, "system-out").text = "\n".join([f"{t.verdict}: {summary}", *t.notes])
        for side, names in (("candidate", self.missing_in_candidate), ("baseline", self.missing_in_baseline)):
            for name in names:
                case = ET.SubElement(suite, "testcase", classname="harness.check", name=name)
                if side == "candidate" and not self.allow_missing:
                    ET.SubElement(case, "failure", message="task missing in candidate", type="missing")
                else:
                    ET.SubElement(case, "skipped", message=f"task missing in {side}")
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _p(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


def _finite(value: Any) -> Any:
    """JSON has no NaN: map non-finite floats to None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
