"""Regression check, the comparison: candidate results against baseline results, task by task.

For each task present on both sides (matched by task name; the models may differ):

* ``delta = candidate.main_score - baseline.main_score``;
* the per-query scores are aligned on (subset, query id) and their differences
  ``d_q = cand_q - base_q`` reweighted to ``d'_q = d_q * N * w_q`` with ``w_q = 1 / (S * n_s)``
  (S subsets, n_s aligned queries in the query's subset, N in all), so ``mean(d') == delta`` for the
  task score, an unweighted mean of subset means (for one subset ``d' = d``);
* a paired t-test on ``d'`` (two-sided; identical to ``scipy.stats.ttest_rel``);
* a sign-flip permutation test of ``mean(d')`` (two-sided; exact over all 2^N sign
  vectors when ``2^N <= n_resamples``, else ``n_resamples`` seeded random flips with
  the +1 correction, the definitions of ``scipy.stats.permutation_test``).

Verdicts: ``regression`` when ``-delta > tolerance`` and the chosen test's p-value < alpha;
``inconclusive`` when the drop is beyond the tolerance but not significant (too few or too noisy
queries to tell); ``improvement`` for a significant gain beyond the tolerance; otherwise ``ok``.
Without per-query data on both sides (published baselines) the verdict uses the tolerance alone
and says so.

The gate (``CheckReport.exit_code``): 1 when a task's verdict is one of ``fail_on`` (regression,
and inconclusive when asked) or, unless ``allow_missing``, when the candidate lacks a task of the
baseline; else 0. Comparing nothing (an empty side, no task in common) is an InputError (exit 2 in
the CLI): a gate that checked nothing never passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.check.report import CheckReport, TaskCheck
from harness.errors import InputError
from harness.results import Result
from harness.stats import paired_t_test, sign_flip_test

TESTS = ("permutation", "t")
FAILING_VERDICTS = ("regression", "inconclusive")


def select_model(results: list[Result], model_id: str, flag: str = "--baseline-model") -> list[Result]:
    """The results of one model (for a baseline folder that holds several models)."""
    chosen = [r for r in results if r.model_id == model_id]
    if not chosen:
        models = sorted({r.model_id for r in results})
        raise InputError(f"no results for model {model_id!r} (the folder holds {models})", field=flag)
    return chosen


def repeated_tasks(results: list[Result]) -> dict[str, list[Result]]:
    """The tasks that ``results`` hold more than once, each with its results (in order)."""
    by_task: dict[str, list[Result]] = {}
    for r in results:
        by_task.setdefault(r.task_name, []).append(r)
    return {task: rs for task, rs in by_task.items() if len(rs) > 1}


def repeated_task_error(side: str, task: str, models: list[str], files: Sequence[str] = ()) -> InputError:
    """What to do about a side holding ``task`` more than once: pick one model when the results
    are of several (``--<side>-model``), else one file (name it as ``--<side>``)."""
    where = f" in {', '.join(files)}" if files else ""
    if len(set(models)) > 1:
        message = (
            f"holds task {task!r} twice (models {sorted(set(models))}){where}; select one model with "
            f"--{side}-model"
        )
    else:
        message = (
            f"holds task {task!r} of model {models[0]!r} more than once{where}; name the file to "
            f"compare as --{side} FILE (a file named there wins over its folder's others for its task)"
        )
    return InputError(message, field=f"--{side}")


def _by_task(results: list[Result], side: str) -> dict[str, Result]:
    if not results:
        raise InputError("holds no results: there is nothing to compare", field=f"--{side}")
    for task, repeated in repeated_tasks(results).items():
        raise repeated_task_error(side, task, [r.model_id for r in repeated])
    return {r.task_name: r for r in results}


def paired_differences(baseline: Result, candidate: Result) -> tuple[np.ndarray, list[str]]:
    """Reweighted per-query differences ``d'`` (module docstring) and notes on alignment."""
    notes: list[str] = []
    base = {s.name: s.per_query for s in baseline.subsets}
    cand = {s.name: s.per_query for s in candidate.subsets}
    if set(base) != set(cand):
        notes.append(f"subsets differ: baseline {sorted(base)}, candidate {sorted(cand)}")
    parts = []
    for name in [n for n in base if n in cand]:
        shared = [q for q in base[name] if q in cand[name]]
        dropped = len(base[name]) + len(cand[name]) - 2 * len(shared)
        if dropped:
            notes.append(f"subset {name!r}: {dropped} query id(s) on one side only, left out of the tests")
        if shared:
            parts.append(np.array([cand[name][q] - base[name][q] for q in shared], dtype=np.float64))
    if not parts:
        return np.zeros(0), notes
    total = sum(len(p) for p in parts)
    weighted = [p * (total / (len(parts) * len(p))) for p in parts]
    return np.concatenate(weighted), notes


def check(
    baseline: list[Result],
    candidate: list[Result],
    *,
    abs_tol: float = 0.005,
    rel_tol: float | None = None,
    per_task_tol: dict[str, float] | None = None,
    alpha: float = 0.05,
    n_resamples: int = 10000,
    seed: int = 0,
    test: str = "permutation",
    fail_on: Sequence[str] = ("regression",),
    allow_missing: bool = False,
) -> CheckReport:
    """Compare candidate to baseline task by task (module docstring).

    Tolerance of a task: ``per_task_tol[task]`` if given, else ``max(abs_tol, rel_tol * |baseline|)``
    (``abs_tol`` alone when ``rel_tol`` is None). ``test`` picks the p-value behind the verdict;
    ``fail_on`` the verdicts that fail the gate ("regression", "inconclusive"). Each side may hold
    one result per task name (use :func:`select_model` first).
    """
    if test not in TESTS:
        raise InputError(f"must be one of {TESTS}", field="--test")
    unknown = set(fail_on) - set(FAILING_VERDICTS)
    if unknown or not fail_on:
        raise InputError(f"must be among {FAILING_VERDICTS}, got {sorted(fail_on)}", field="--fail-on")
    base, cand = _by_task(baseline, "baseline"), _by_task(candidate, "candidate")
    if not set(base) & set(cand):
        raise InputError(
            f"no task is in both (baseline: {sorted(base)}, candidate: {sorted(cand)}): nothing to compare",
            field="--candidate",
        )
    checks = []
    for name in [n for n in base if n in cand]:
        b, c = base[name], cand[name]
        if per_task_tol and name in per_task_tol:
            tol = per_task_tol[name]
        else:
            tol = abs_tol if rel_tol is None else max(abs_tol, rel_tol * abs(b.main_score))
        checks.append(_compare(b, c, tol, alpha, n_resamples, seed, test))
    return CheckReport(
        tasks=checks,
        missing_in_candidate=[n for n in base if n not in cand],
        missing_in_baseline=[n for n in cand if n not in base],
        alpha=alpha,
        test=test,
        n_resamples=n_resamples,
        seed=seed,
        # failing on inconclusive drops fails on the significant ones too
        fail_on=("regression", "inconclusive") if "inconclusive" in fail_on else ("regression",),
        allow_missing=allow_missing,
    )


def _compare(
    b: Result, c: Result, tol: float, alpha: float, n_resamples: int, seed: int, test: str
) -> TaskCheck:
    notes = []
    for key in ("main_metric", "convention"):
        if getattr(b.task, key) != getattr(c.task, key):
            notes.append(
                f"{key} differs: baseline {getattr(b.task, key)!r}, candidate {getattr(c.task, key)!r}"
            )
    revisions = b.model.revision, c.model.revision
    if any(revisions):
        notes.append(
            "model revisions: baseline {}, candidate {}".format(*(r or "unknown" for r in revisions))
        )
    fp_b, fp_c = b.task.dataset_fingerprints, c.task.dataset_fingerprints
    if fp_b and fp_c and fp_b != fp_c:
        notes.append("dataset fingerprints differ: the two runs did not see the same data")
    delta = c.main_score - b.main_score
    d, align_notes = paired_differences(b, c)
    notes.extend(align_notes)
    t_p = perm_p = None
    if len(d) >= 2:
        t_p = paired_t_test(d)
        perm_p = sign_flip_test(d, n_resamples=n_resamples, seed=seed)
        basis = "tolerance+test"
        chosen = perm_p if test == "permutation" else t_p
        significant = chosen is not None and not math.isnan(chosen) and chosen < alpha
    else:
        sides = [
            side for side, r in (("baseline", b), ("candidate", c)) if not any(s.per_query for s in r.subsets)
        ]
        why = f"no per-query scores in {' and '.join(sides)}" if sides else "fewer than 2 aligned queries"
        notes.append(f"{why}: verdict from the tolerance alone")
        basis, significant = "tolerance only", True
    if -delta > tol:
        verdict = "regression" if significant else "inconclusive"
    elif delta > tol and significant:
        verdict = "improvement"
    else:
        verdict = "ok"
    return TaskCheck(
        task=b.task_name,
        baseline_model=b.model_id,
        candidate_model=c.model_id,
        metric=b.task.main_metric,
        baseline_score=b.main_score,
        candidate_score=c.main_score,
        delta=delta,
        tolerance=tol,
        n_paired=len(d),
        t_pvalue=t_p,
        permutation_pvalue=perm_p,
        verdict=verdict,
        basis=basis,
        notes=notes,
        baseline_revision=revisions[0],
        candidate_revision=revisions[1],
    )
