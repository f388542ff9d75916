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
  the +1 correction, the definitions of ``scipy.stats.permutation_test``);
* the delta's ``1 - alpha`` percentile bootstrap CI (``n_resamples`` resamples of the queries
  within each subset, seeded).

Verdicts: ``regression`` when ``-delta > tolerance`` and the chosen test's p-value < alpha;
``inconclusive`` when the drop is beyond the tolerance but not significant (too few or too noisy
queries to tell); ``improvement`` for a significant gain beyond the tolerance; otherwise ``ok``.
Without per-query data on both sides (published baselines) the verdict uses the tolerance alone
and says so.

Pairing (``pair_by``): ``task`` (the default) pairs one run per task on each side; the models may
differ, so a compression variant or an index gates against its exact run file to file
(``--baseline exact.json --candidate pool2.json``). ``variant``: the candidate side holds the runs
of the baseline's model (``model (pool 2)``, PLAID, rerank: :func:`variants_of`), a task several
times, each checked against the baseline's run of its task (``harness check --baseline results/
--baseline-model M --candidate results/ --pair-by variant``). The numbers are
:func:`harness.fidelity.paired_delta`'s, shared with the fidelity record and ``harness explain``.

The gate (``CheckReport.exit_code``): 1 when a task's verdict is one of ``fail_on`` (regression,
and inconclusive when asked) or, unless ``allow_missing``, when the candidate lacks a task of the
baseline; else 0. Comparing nothing (an empty side, no task in common) is an InputError (exit 2 in
the CLI): a gate that checked nothing never passes. Published rows and the baseline's own files are
never candidates: the CLI leaves them out of the candidate side (:func:`candidate_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.check.report import CheckReport, TaskCheck
from harness.errors import InputError
from harness.fidelity import aligned_differences as aligned_differences  # shared with explain
from harness.fidelity import delta_ci as delta_ci
from harness.fidelity import line_key, paired_delta, reweighted, run_label
from harness.results import Result

TESTS = ("permutation", "t")
PAIRINGS = ("task", "variant")  # --pair-by
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
    parts, notes = aligned_differences(baseline, candidate)
    return reweighted(parts), notes


def candidate_runs(candidate: list[Result], baseline: list[Result]) -> tuple[list[Result], list[str]]:
    """The candidate side without what is never a candidate: published rows (figures transcribed,
    not run) and the baseline's own files (a baseline folder inside the candidate folder, as in
    ``--baseline results/baseline --candidate results/``); a note says what was left out."""
    own = {r.file.resolve() for r in baseline if r.file is not None}
    published = [r for r in candidate if r.published is not None]
    of_baseline = [r for r in candidate if r.published is None and r.file and r.file.resolve() in own]
    left_out = {id(r) for r in published + of_baseline}
    parts = [
        f"{len(rs)} {what}"
        for rs, what in ((published, "published row(s)"), (of_baseline, "of the baseline's own files"))
        if rs
    ]
    notes = [f"left out of the candidate: {' and '.join(parts)} (never runs to check)"] if parts else []
    return [r for r in candidate if id(r) not in left_out], notes


def variants_of(candidate: list[Result], baseline: list[Result]) -> tuple[list[Result], list[str]]:
    """The candidate runs of the baseline's model (``--pair-by variant``): the same
    :func:`harness.fidelity.line_key` (model fingerprint, else the id before any `` (...)`` suffix)
    as a baseline run; a note says how many other runs were left out."""
    keys = {line_key(r) for r in baseline}
    kept = [r for r in candidate if line_key(r) in keys]
    other = len(candidate) - len(kept)
    note = f"left out of the candidate: {other} run(s) of other models (--pair-by variant)"
    return kept, [note] if other else []


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
    pair_by: str = "task",
) -> CheckReport:
    """Compare candidate to baseline task by task (module docstring).

    Tolerance of a task: ``per_task_tol[task]`` if given, else ``max(abs_tol, rel_tol * |baseline|)``
    (``abs_tol`` alone when ``rel_tol`` is None). ``test`` picks the p-value behind the verdict;
    ``fail_on`` the verdicts that fail the gate ("regression", "inconclusive"). ``pair_by``
    ``task``: each side holds one result per task name (use :func:`select_model` first); ``variant``:
    the candidate side may hold a task several times (the variants of the baseline's model:
    :func:`variants_of`), each run checked against the baseline's run of its task, the check named
    ``task [run]`` (:func:`harness.fidelity.run_label`).
    """
    if pair_by not in PAIRINGS:
        raise InputError(f"must be one of {PAIRINGS}", field="--pair-by")
    if test not in TESTS:
        raise InputError(f"must be one of {TESTS}", field="--test")
    unknown = set(fail_on) - set(FAILING_VERDICTS)
    if unknown or not fail_on:
        raise InputError(f"must be among {FAILING_VERDICTS}, got {sorted(fail_on)}", field="--fail-on")
    variants = pair_by == "variant"
    base = _by_task(baseline, "baseline")
    cand = {r.task_name: r for r in candidate} if variants and candidate else _by_task(candidate, "candidate")
    if not set(base) & set(cand):
        raise InputError(
            f"no task is in both (baseline: {sorted(base)}, candidate: {sorted(cand)}): nothing to compare",
            field="--candidate",
        )
    checks = []
    for c in candidate if variants else [cand[n] for n in base if n in cand]:
        if c.task_name not in base:
            continue
        b = base[c.task_name]
        if per_task_tol and c.task_name in per_task_tol:
            tol = per_task_tol[c.task_name]
        else:
            tol = abs_tol if rel_tol is None else max(abs_tol, rel_tol * abs(b.main_score))
        checks.append(_compare(b, c, tol, alpha, n_resamples, seed, test, variants))
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
    b: Result, c: Result, tol: float, alpha: float, n_resamples: int, seed: int, test: str, label_runs: bool
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
    paired = paired_delta(b, c, level=1 - alpha, n_resamples=n_resamples, seed=seed)
    delta, t_p, perm_p = paired.delta, paired.t_p, paired.permutation_p
    notes.extend(paired.notes)
    if paired.n >= 2:
        basis = "tolerance+test"
        chosen = perm_p if test == "permutation" else t_p
        significant = chosen is not None and chosen < alpha
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
        task=f"{b.task_name} [{run_label(c)}]" if label_runs else b.task_name,  # several runs of a task
        baseline_model=b.model_id,
        candidate_model=run_label(c) if label_runs else c.model_id,
        metric=b.task.main_metric,
        baseline_score=b.main_score,
        candidate_score=c.main_score,
        delta=delta,
        tolerance=tol,
        n_paired=paired.n,
        t_pvalue=t_p,
        permutation_pvalue=perm_p,
        verdict=verdict,
        basis=basis,
        delta_ci=paired.ci,
        notes=notes,
        baseline_revision=revisions[0],
        candidate_revision=revisions[1],
    )
