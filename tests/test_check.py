"""Regression check: verdicts on synthetic per-query scores, p-values against scipy, report formats."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats

from harness.check import check, paired_differences, select_model
from harness.stats import paired_t_test, sign_flip_test
from harness.types import InputError
from tests.helpers import make_result, scores


@pytest.fixture
def base_scores() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.2, 0.9, 300)


def test_consistent_drop_is_a_regression(base_scores):
    rng = np.random.default_rng(1)
    worse = base_scores - 0.03 + rng.normal(0, 0.01, base_scores.size)
    report = check(
        [make_result("a", "BEIR/scifact", {"scifact": scores(base_scores)})],
        [make_result("b", "BEIR/scifact", {"scifact": scores(worse)})],
    )
    (task,) = report.tasks
    assert task.verdict == "regression" and report.exit_code == 1
    assert task.delta == pytest.approx(np.mean(worse) - np.mean(base_scores), abs=1e-12)
    assert task.permutation_pvalue < 0.05 and task.t_pvalue < 0.05


def test_noise_of_the_same_mean_size_is_inconclusive(base_scores):
    """Same mean drop (0.03 > tolerance) but per-query noise so large the drop is not significant:
    inconclusive, which passes the gate unless asked to fail on it."""
    rng = np.random.default_rng(2)
    d = rng.choice([-0.4, 0.4], size=base_scores.size)
    d = d - d.mean() - 0.03
    report = check(
        [make_result("a", "BEIR/scifact", {"scifact": scores(base_scores)})],
        [make_result("b", "BEIR/scifact", {"scifact": scores(base_scores + d)})],
    )
    (task,) = report.tasks
    assert task.delta == pytest.approx(-0.03, abs=1e-12)
    assert task.permutation_pvalue > 0.05 and task.verdict == "inconclusive" and report.exit_code == 0
    strict = check(
        [make_result("a", "BEIR/scifact", {"scifact": scores(base_scores)})],
        [make_result("b", "BEIR/scifact", {"scifact": scores(base_scores + d)})],
        fail_on=("regression", "inconclusive"),
    )
    assert strict.exit_code == 1 and "INCONCLUSIVE" in strict.to_text()
    assert ET.fromstring(strict.to_junit_xml()).find("testsuite").get("failures") == "1"


def test_significant_drop_within_tolerance_passes(base_scores):
    report = check(
        [make_result("a", "t", {"s": scores(base_scores)})],
        [make_result("b", "t", {"s": scores(base_scores - 0.004)})],
    )
    assert report.tasks[0].permutation_pvalue < 0.05 and report.tasks[0].verdict == "ok"
    tight = check(
        [make_result("a", "t", {"s": scores(base_scores)})],
        [make_result("b", "t", {"s": scores(base_scores - 0.004)})],
        per_task_tol={"t": 0.001},
    )
    assert tight.tasks[0].verdict == "regression" and tight.tasks[0].tolerance == 0.001
    relative = check(
        [make_result("a", "t", {"s": scores(base_scores)})],
        [make_result("b", "t", {"s": scores(base_scores - 0.004)})],
        abs_tol=0.0,
        rel_tol=0.1,
    )
    assert relative.tasks[0].tolerance == pytest.approx(0.1 * np.mean(base_scores))


def test_improvement_is_not_a_failure(base_scores):
    report = check(
        [make_result("a", "t", {"s": scores(base_scores)})],
        [make_result("b", "t", {"s": scores(base_scores + 0.05)})],
    )
    assert report.tasks[0].verdict == "improvement" and report.exit_code == 0


def test_published_baseline_falls_back_to_tolerance(base_scores):
    baseline = [make_result("pub", "t", {"s": scores(base_scores)}, published=True)]
    drop = check(baseline, [make_result("b", "t", {"s": scores(base_scores - 0.01)})])
    assert drop.tasks[0].basis == "tolerance only" and drop.tasks[0].verdict == "regression"
    assert drop.tasks[0].t_pvalue is None and "no per-query scores in baseline" in drop.to_text()
    small = check(baseline, [make_result("b", "t", {"s": scores(base_scores - 0.001)})])
    assert small.tasks[0].verdict == "ok" and small.exit_code == 0


def test_t_test_equals_scipy_ttest_rel(base_scores):
    rng = np.random.default_rng(3)
    cand = base_scores + rng.normal(-0.01, 0.05, base_scores.size)
    report = check(
        [make_result("a", "t", {"s": scores(base_scores)})], [make_result("b", "t", {"s": scores(cand)})]
    )
    reference = stats.ttest_rel(cand, base_scores).pvalue
    # same formula, different operation order: agreement to 1e-10 relative (float64 rounding)
    assert report.tasks[0].t_pvalue == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize("n", [8, 11, 13])
def test_exact_sign_flip_equals_scipy(n):
    """With 2^n <= n_resamples both enumerate every sign vector: identical up to float rounding."""
    d = np.random.default_rng(n).normal(0.04, 0.1, n)
    reference = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=10000)
    assert sign_flip_test(d, n_resamples=10000) == pytest.approx(reference.pvalue, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.002, 0.004, 0.006])
def test_random_sign_flip_agrees_with_scipy(shift):
    """Monte Carlo on both sides (different random streams): |p - p_scipy| within 4 standard errors
    of the difference of two independent estimates, sqrt(2 p (1 - p) / N), plus 2/N for the +1 rule."""
    d = np.random.default_rng(4).normal(shift, 0.05, 200)
    n = 10000
    ours = sign_flip_test(d, n_resamples=n, seed=0)
    reference = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=n, vectorized=True, random_state=0
    ).pvalue
    assert 0.01 < reference < 0.9  # the comparison is informative only away from 0 and 1
    assert abs(ours - reference) <= 4 * math.sqrt(2 * reference * (1 - reference) / n) + 2 / n
    assert sign_flip_test(d, n_resamples=n, seed=0) == ours  # seeded


def test_subsets_are_weighted_like_the_task_score():
    """Task score = mean of subset means; the reweighted differences average to exactly the delta."""
    rng = np.random.default_rng(5)
    base = {"s1": scores(rng.uniform(size=10)), "s2": scores(rng.uniform(size=40))}
    cand = {name: {q: v - rng.uniform(0, 0.1) for q, v in pq.items()} for name, pq in base.items()}
    b, c = make_result("a", "LongEmbed/passkey", base), make_result("b", "LongEmbed/passkey", cand)
    d, notes = paired_differences(b, c)
    assert not notes and len(d) == 50
    assert float(np.mean(d)) == pytest.approx(c.main_score - b.main_score, abs=1e-12)
    assert paired_t_test(d) == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-10)


def test_missing_tasks_queries_and_formats(base_scores):
    baseline = [
        make_result("a", "t1", {"s": scores(base_scores)}),
        make_result("a", "only-baseline", {"s": scores(base_scores)}),
    ]
    candidate = [
        make_result("b", "t1", {"s": scores(base_scores[:-5] - 0.05)}),
        make_result("b", "only-candidate", {"s": scores(base_scores)}),
    ]
    report = check(baseline, candidate)
    assert report.missing_in_candidate == ["only-baseline"] and report.missing_in_baseline == [
        "only-candidate"
    ]
    assert report.tasks[0].n_paired == base_scores.size - 5
    assert any("5 query id(s) on one side only" in note for note in report.tasks[0].notes)
    assert report.exit_code == 1
    text = report.to_text()
    assert "missing in candidate: only-baseline" in text and "REGRESSION" in text
    data = json.loads(report.to_json())
    assert data["exit_code"] == 1 and data["tasks"][0]["verdict"] == "regression"
    root = ET.fromstring(report.to_junit_xml())
    suite = root.find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"t1", "only-baseline", "only-candidate"}
    assert cases["t1"].find("failure") is not None and suite.get("failures") == "2"
    assert cases["only-baseline"].find("failure") is not None  # missing in the candidate fails the gate
    assert cases["only-candidate"].find("skipped") is not None

    # a task the candidate lacks fails the gate unless allowed
    strict = check(baseline, [make_result("b", "t1", {"s": scores(base_scores)})])
    assert strict.exit_code == 1 and strict.missing_in_candidate == ["only-baseline"]
    assert ET.fromstring(strict.to_junit_xml()).find("testsuite").get("failures") == "1"
    ok = check(baseline, [make_result("b", "t1", {"s": scores(base_scores)})], allow_missing=True)
    assert ok.exit_code == 0 and ok.missing_in_candidate == ["only-baseline"]
    assert ET.fromstring(ok.to_junit_xml()).find("testsuite").get("failures") == "0"


def test_a_gate_that_compares_nothing_fails(base_scores, tmp_path, capsys):
    """An empty baseline, or no task in common, is an error (exit 2 with the reason), never a pass."""
    from harness.cli import main
    from harness.results import save_result

    with pytest.raises(InputError, match="^--baseline: holds no results"):
        check([], [make_result("b", "t", {"s": scores(base_scores)})])
    with pytest.raises(InputError, match="no task is in both"):
        check(
            [make_result("a", "t", {"s": scores(base_scores)})],
            [make_result("b", "u", {"s": scores(base_scores)})],
        )
    (tmp_path / "empty").mkdir()
    save_result(make_result("b", "t", {"s": scores(base_scores)}), tmp_path / "cand")
    assert main(["check", "--baseline", str(tmp_path / "empty"), "--candidate", str(tmp_path / "cand")]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_duplicate_task_needs_a_model_filter(base_scores):
    baseline = [make_result(m, "t", {"s": scores(base_scores)}, published=True) for m in ("x", "y")]
    candidate = [make_result("b", "t", {"s": scores(base_scores)})]
    with pytest.raises(InputError, match="^--baseline: holds task 't' twice .* with --baseline-model$"):
        check(baseline, candidate)
    assert check(select_model(baseline, "y"), candidate).tasks[0].baseline_model == "y"
    with pytest.raises(InputError):
        select_model(baseline, "z")


def test_check_reports_beside_results_are_not_results(base_scores, tmp_path, capsys):
    """`check --json` written into a results folder: the next reader of that folder skips it with a
    note instead of failing on it (a broken results file is still an error)."""
    from harness.cli import main
    from harness.results import load_results, save_result

    folder = tmp_path / "results"
    save_result(make_result("a", "t", {"s": scores(base_scores)}), folder)
    save_result(make_result("b", "t", {"s": scores(base_scores)}), tmp_path / "cand")
    code = main(
        [
            "check",
            "--baseline",
            str(folder),
            "--candidate",
            str(tmp_path / "cand"),
            "--json",
            str(folder / "check.json"),
        ]
    )
    assert code == 0 and json.loads((folder / "check.json").read_text())["kind"] == "harness-check-report"
    assert [r.model_id for r in load_results([folder])] == ["a"]
    assert main(["report", "leaderboard", str(folder), "--out", str(tmp_path / "board"), "--no-plots"]) == 0
    assert "check.json: not a results file" in capsys.readouterr().out
    (folder / "broken.json").write_text('{"schema_version": 1}')
    with pytest.raises(InputError, match="broken.json"):
        load_results([folder])


def test_failing_on_inconclusive_keeps_failing_on_regressions(base_scores):
    report = check(
        [make_result("a", "t", {"s": scores(base_scores)})],
        [make_result("b", "t", {"s": scores(base_scores - 0.2)})],
        fail_on=("inconclusive",),
    )
    assert report.tasks[0].verdict == "regression" and report.exit_code == 1
