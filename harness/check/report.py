"""The check's outcome: one :class:`TaskCheck` per task, the :class:`CheckReport` with the gate
(``exit_code``), and its renderings: a text table, JSON, JUnit XML and markdown (a CI job summary).

In JUnit XML a verdict that fails the gate is a ``<failure>``; an inconclusive drop that does not is
``<skipped message="inconclusive: ...">``, the one non-passing state every common reporter shows
(GitLab, Jenkins, the GitHub Actions reporters); a passing ``<testcase>`` would read as green."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.console import plain_table
from harness.metrics import metric_label

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
    delta_ci: tuple[float, float] | None = None  # the delta's (1 - alpha) bootstrap CI; None without pairs

    def summary(self) -> str:
        """One line: the scores, delta, its CI, the tolerance, both p-values and the basis."""
        return (
            f"{self.metric}: {self.baseline_score:.4f} -> {self.candidate_score:.4f} "
            f"({self.delta:+.4f}, CI {_ci(self.delta_ci)}, tol {self.tolerance}), "
            f"p(t)={_p(self.t_pvalue)}, p(perm)={_p(self.permutation_pvalue)}, basis: {self.basis}"
        )


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
    notes: list[str] = field(default_factory=list)  # about the inputs (what a side left out)

    @property
    def level(self) -> float:
        """The confidence level of the delta CIs: ``1 - alpha``."""
        return 1 - self.alpha

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
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(_finite(self.to_dict()), indent=2) + "\n"

    def to_text(self) -> str:
        """A fixed-width table, one line per task, then notes and missing tasks."""
        ci = f"{self.level:.0%} CI"
        header = ("task", "baseline", "candidate", "delta", ci, "tol", "n", "p(t)", "p(perm)", "verdict")
        rows = [
            (
                t.task,
                f"{t.baseline_score:.4f}",
                f"{t.candidate_score:.4f}",
                f"{t.delta:+.4f}",
                _ci(t.delta_ci),
                f"{t.tolerance:.4f}",
                str(t.n_paired),
                _p(t.t_pvalue),
                _p(t.permutation_pvalue),
                t.verdict.upper() if t.verdict in self.fail_on else t.verdict,
            )
            for t in self.tasks
        ]
        lines = plain_table(header, rows).split("\n")
        lines.extend(f"note: {note}" for note in self.notes)
        for t in self.tasks:
            lines.extend(f"note: {t.task}: {note}" for note in t.notes)
        if self.missing_in_candidate:
            allowed = " (allowed)" if self.allow_missing else " (fails the gate; --allow-missing to accept)"
            lines.append("missing in candidate: " + ", ".join(self.missing_in_candidate) + allowed)
        if self.missing_in_baseline:
            lines.append("missing in baseline: " + ", ".join(self.missing_in_baseline))
        lines.append(self._tally())
        return "\n".join(lines) + "\n"

    def _tally(self) -> str:
        inconclusive = sum(t.verdict == "inconclusive" for t in self.tasks)
        return (
            f"{len(self.regressions)} regression(s), {inconclusive} inconclusive in {len(self.tasks)} "
            f"task(s); alpha={self.alpha}, significance from the {self.test} test; fails on "
            f"{' and '.join(self.fail_on)}; exit code {self.exit_code}"
        )

    def to_junit_xml(self) -> str:
        """JUnit XML: one testcase per task; ``<failure>`` for a verdict that fails the gate (and a
        task missing in the candidate unless allowed), ``<skipped>`` for an inconclusive drop that
        does not and for a task on one side only that is allowed; the rest pass."""
        cases = [self._task_case(t) for t in self.tasks] + self._missing_cases()
        suite = ET.Element(
            "testsuite",
            name="harness.check",
            tests=str(len(cases)),
            failures=str(sum(c.find("failure") is not None for c in cases)),
            errors="0",
            skipped=str(sum(c.find("skipped") is not None for c in cases)),
        )
        suite.extend(cases)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def _task_case(self, t: TaskCheck) -> ET.Element:
        case = ET.Element("testcase", classname="harness.check", name=t.task)
        summary = t.summary()
        if t.verdict in self.fail_on:
            failure = ET.SubElement(case, "failure", message=f"{t.verdict}: {summary}", type=t.verdict)
            failure.text = "\n".join([summary, *t.notes])
            return case
        if t.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {summary}")
        ET.SubElement(case, "system-out").text = "\n".join([f"{t.verdict}: {summary}", *t.notes])
        return case

    def _missing_cases(self) -> list[ET.Element]:
        cases = []
        for side, names in (("candidate", self.missing_in_candidate), ("baseline", self.missing_in_baseline)):
            for name in names:
                case = ET.Element("testcase", classname="harness.check", name=name)
                if side == "candidate" and not self.allow_missing:
                    ET.SubElement(case, "failure", message="task missing in candidate", type="missing")
                else:
                    ET.SubElement(case, "skipped", message=f"task missing in {side}")
                cases.append(case)
        return cases

    def to_markdown(self) -> str:
        """A markdown summary (a CI job's, e.g. ``$GITHUB_STEP_SUMMARY``): the gate's outcome, one
        table row per task and metric (baseline, candidate, delta, CI, p-value, verdict), notes."""
        outcome = "passed" if self.exit_code == 0 else "**failed**"
        header = ["task", "metric", "baseline", "candidate", "delta", f"{self.level:.0%} CI", "p-value"]
        lines = [
            f"### Retrieval check: {outcome} (exit code {self.exit_code})",
            "",
            "| " + " | ".join([*header, "verdict"]) + " |",
            "|---|---|---:|---:|---:|---|---:|---|",
        ]
        for t in self.tasks:
            p_value = t.permutation_pvalue if self.test == "permutation" else t.t_pvalue
            cells = [
                _md(t.task),
                metric_label(t.metric),
                f"{t.baseline_score:.4f}",
                f"{t.candidate_score:.4f}",
                f"{t.delta:+.4f}",
                _ci(t.delta_ci),
                _p(p_value),
                self._verdict_md(t.verdict),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"p-value: the {self.test} test's, two-sided. {self._tally()}."]
        notes = [*self.notes, *(f"{t.task}: {note}" for t in self.tasks for note in t.notes)]
        notes += [f"missing in candidate: {_md(n)}" for n in self.missing_in_candidate]
        notes += [f"missing in baseline: {_md(n)}" for n in self.missing_in_baseline]
        if notes:
            lines += ["", *(f"- {note}" for note in notes)]
        return "\n".join(lines) + "\n"

    def _verdict_md(self, verdict: str) -> str:
        mark = _MARKS[verdict]
        return f"{mark} **{verdict}**" if verdict in self.fail_on else f"{mark} {verdict}"


_MARKS = {"ok": "✅", "improvement": "⬆️", "inconclusive": "⚠️", "regression": "❌"}


def _md(text: str) -> str:
    """A table cell's text: pipes escaped."""
    return text.replace("|", "\\|")


def _ci(ci: tuple[float, float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _p(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


def _finite(value: Any) -> Any:
    """JSON has no NaN: map non-finite floats to None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
