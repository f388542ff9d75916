"""Issue 28, items 1-3: the CI gate as a user wires it. The README's commands run in order on a fresh
folder; an inconclusive drop is visible in JUnit XML; ``check --markdown``; the GitHub Actions example
(examples/github-actions.yml) parses and its ``harness`` commands run in order on a small setup."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.check import check
from harness.cli import main
from harness.results import load_result, save_result
from tests.helpers import REPO_ROOT, SCIFACT, make_result, needs_scifact, scores, small_beir

README = REPO_ROOT / "README.md"
WORKFLOW = REPO_ROOT / "examples" / "github-actions.yml"
VENV_BIN = Path(sys.executable).parent
# The README's commands that are not the harness's, and why the README test leaves them out.
NOT_RUN = {
    "make evaluate": "downloads mxbai-edge-colbert-v0-17m and NanoBEIR from the Hub (network)",
    "make test": "runs this test suite, this test included",
}


# --------------------------------------------------------------------------- commands as written


def shell_lines(script: str) -> list[str]:
    """A shell script's commands: continuation lines joined, blank and comment-only lines dropped."""
    joined = re.sub(r"\\\n", " ", script)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def readme_commands() -> list[str]:
    """The commands of the README's fenced ``bash`` blocks, in order."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text("utf-8"), flags=re.S | re.M)
    return [line for block in blocks for line in shell_lines(block)]


def run_line(line: str) -> int:
    """A ``harness ...`` command line run in this process as bash would call it: bash expands its
    words (quotes, ``$VAR``, ``$(...)``, comments) here, then ``harness.cli.main`` runs them."""
    assert line.startswith("harness "), line
    expand = ["bash", "-c", "printf '%s\\0' " + line.removeprefix("harness ")]
    words = subprocess.run(expand, capture_output=True, text=True, check=True).stdout.split("\0")[:-1]
    return main(words)


def shell_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, folder: Path, **values: str) -> None:
    """Commands run in ``folder`` with the venv's commands first on PATH, a fresh embedding cache, no
    network for the Hub, and the environment ``values``."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for name, value in {
        "HARNESS_CACHE_DIR": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        **values,
    }.items():
        monkeypatch.setenv(name, value)


def fresh_checkout(tmp_path: Path) -> Path:
    """A folder as a fresh clone has it for the README: the committed results (baseline, published
    rows) and ``../shared/data/beir/scifact`` beside it."""
    root = tmp_path / "main"
    for part in ("baseline", "published"):
        shutil.copytree(REPO_ROOT / "results" / part, root / "results" / part)
    beir = tmp_path / "shared" / "data" / "beir"
    beir.mkdir(parents=True)
    (beir / "scifact").symlink_to(SCIFACT.resolve())
    return root


# --------------------------------------------------------------------------- 1. the README's commands


def test_the_readme_commands_are_the_ones_the_tests_run_or_skip():
    commands = readme_commands()
    harness = [c for c in commands if c.startswith("harness ")]
    others = [c.split("#")[0].strip() for c in commands if not c.startswith("harness ")]
    assert others == list(NOT_RUN)
    assert [c.split()[1] for c in harness] == ["evaluate", "check", "report"]


def test_the_readme_gate_passes_on_a_results_folder_holding_baseline_and_published(
    tmp_path, monkeypatch, capsys
):
    """``harness check --baseline results/baseline --candidate results/`` as the README writes it:
    ``results/`` also holds the baseline's file and the published rows of the same task, which are
    never candidates (exit 2 before); ``--candidate-model`` picks from what is left. The runs stand
    in for the README's evaluations: the offline one (the baseline's file copied) and ``make
    evaluate``'s (a NanoBEIR task the baseline lacks: a note, not a failure)."""
    root = fresh_checkout(tmp_path)
    shutil.copy(root / "results" / "baseline" / "all-MiniLM-L6-v2__BEIR_scifact.json", root / "results")
    nano = make_result("mxbai-edge-colbert-v0-17m", "NanoSciFact", {"s": scores(np.linspace(0, 1, 50))})
    save_result(nano, root / "results")
    (gate,) = [c for c in readme_commands() if c.startswith("harness check")]
    shell_here(monkeypatch, tmp_path, root)
    assert run_line(gate) == 0
    out = capsys.readouterr().out
    assert re.search(r"BEIR/scifact .* ok\n", out) and "missing in baseline: NanoSciFact" in out
    assert re.search(
        r"left out of the candidate: \d+ published row\(s\) and 1 of the baseline's own files", out
    )
    assert run_line(gate + " --candidate-model all-MiniLM-L6-v2") == 0
    capsys.readouterr()
    for run in ("all-MiniLM-L6-v2__BEIR_scifact.json", "mxbai-edge-colbert-v0-17m__NanoSciFact.json"):
        (root / "results" / run).unlink()  # nothing but non-candidates left
    assert run_line(gate) == 2
    assert "--candidate: holds no runs to check: left out of the candidate" in capsys.readouterr().err


def test_a_baseline_file_named_inside_the_candidate_folder_is_not_a_candidate(tmp_path, capsys):
    folder = tmp_path / "results"
    base = save_result(make_result("m", "t", {"s": scores(np.linspace(0.2, 0.9, 50))}), folder / "main")
    save_result(make_result("m", "t", {"s": scores(np.linspace(0.2, 0.9, 50) - 0.1)}), folder / "pr")
    assert main(["check", "--baseline", str(base), "--candidate", str(folder)]) == 1  # the pr's drop
    assert "REGRESSION" in capsys.readouterr().out


@pytest.mark.slow
@needs_scifact
def test_the_readme_commands_run_in_order_on_a_fresh_folder(tmp_path, monkeypatch, capsys):
    """The README's ``harness`` commands, in order, in a fresh folder (the committed results,
    SciFact beside it): the offline evaluation (~2 min), the gate against the committed baseline, the
    leaderboard. Not run (``NOT_RUN``): ``make evaluate`` needs the network; ``make test`` is this
    suite. ``make evaluate-offline`` is the README's evaluate line itself (a comment there).

    The evaluation is also the suite's published-figure check: all-MiniLM-L6-v2's SciFact nDCG@10
    is 0.6451 ± 0.0005 (the MTEB figure, rounded to 4 digits; 0.64508 measured with
    sentence-transformers), and every per-query nDCG@10 equals the committed baseline's to 1e-6
    (float32 encodings may differ in the last bits across CPUs' BLAS kernels, while any real change
    to the harness moves a query by far more)."""
    root = fresh_checkout(tmp_path)
    shell_here(monkeypatch, tmp_path, root)
    for line in [c for c in readme_commands() if c.startswith("harness ")]:
        assert run_line(line) == 0, line
    out = capsys.readouterr().out
    assert "results: results/all-MiniLM-L6-v2__BEIR_scifact.json" in out
    assert re.search(r"BEIR/scifact .* ok\n", out)
    ours = load_result(root / "results" / "all-MiniLM-L6-v2__BEIR_scifact.json")
    baseline = load_result(root / "results" / "baseline" / "all-MiniLM-L6-v2__BEIR_scifact.json")
    assert abs(ours.subsets[0].trec["ndcg@10"] - 0.6451) <= 0.0005
    assert ours.task.split == "test" and ours.subsets[0].n_queries == 300 and ours.tokens["documents"] > 0
    assert ours.subsets[0].per_query == pytest.approx(baseline.subsets[0].per_query, abs=1e-6)
    assert (root / "reports" / "leaderboard.html").is_file() and (
        root / "reports" / "leaderboard.md"
    ).is_file()


# --------------------------------------------------------------------------- 2. JUnit XML


def verdict_results() -> tuple[list, list]:
    """Baseline and candidate of four tasks whose verdicts are regression, inconclusive, ok and
    improvement (300 queries each)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.9, 300)
    noise = rng.choice([-0.4, 0.4], size=base.size)
    shifts = {
        "drop": base - 0.05 + rng.normal(0, 0.01, base.size),
        "noisy-drop": base + noise - noise.mean() - 0.035,  # 3.5 points, not significant
        "same": base,
        "gain": base + 0.05 + rng.normal(0, 0.01, base.size),
    }
    baseline = [make_result("a", task, {"s": scores(base)}) for task in shifts]
    candidate = [make_result("b", task, {"s": scores(values)}) for task, values in shifts.items()]
    return baseline, candidate


def junit_cases(xml: str) -> tuple[ET.Element, dict[str, ET.Element]]:
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    return suite, {case.get("name", ""): case for case in suite.iter("testcase")}


def test_an_inconclusive_drop_is_skipped_in_junit_and_a_regression_fails():
    baseline, candidate = verdict_results()
    report = check(baseline, candidate)
    assert [t.verdict for t in report.tasks] == ["regression", "inconclusive", "ok", "improvement"]
    suite, cases = junit_cases(report.to_junit_xml())
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    assert cases["drop"].find("failure").get("type") == "regression"
    skipped = cases["noisy-drop"].find("skipped")
    assert skipped is not None and cases["noisy-drop"].find("failure") is None
    assert skipped.get("message", "").startswith("inconclusive: ndcg@10: ") and "-0.0350" in skipped.get(
        "message"
    )
    assert all(
        cases[t].find("skipped") is None and cases[t].find("failure") is None for t in ("same", "gain")
    )

    strict = check(baseline, candidate, fail_on=("regression", "inconclusive"))
    suite, cases = junit_cases(strict.to_junit_xml())
    assert (suite.get("failures"), suite.get("skipped")) == ("2", "0")
    assert cases["noisy-drop"].find("failure").get("type") == "inconclusive"


# --------------------------------------------------------------------------- 3. --markdown


def markdown_rows(text: str) -> dict[str, list[str]]:
    """The markdown table's rows by task (first cell), header and separator left out."""
    rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells] for cells in rows[1:]}


def test_check_markdown_has_a_row_per_task_with_ci_p_value_and_verdict(tmp_path, capsys):
    baseline, candidate = verdict_results()
    for side, results in (("base", baseline), ("cand", candidate)):
        for result in results:
            save_result(result, tmp_path / side)
    summary = tmp_path / "summary" / "check.md"
    argv = ["check", "--baseline", str(tmp_path / "base"), "--candidate", str(tmp_path / "cand")]
    assert main([*argv, "--markdown", str(summary)]) == 1
    text = summary.read_text("utf-8")
    assert text.startswith("### Retrieval check: **failed** (exit code 1)\n")
    assert "| task | metric | baseline | candidate | delta | 95% CI | p-value | verdict |" in text
    rows = markdown_rows(text)
    report = check(baseline, candidate)
    assert set(rows) == {"drop", "noisy-drop", "same", "gain"}
    for t in report.tasks:
        task, metric, base, cand, delta, ci, p_value, verdict = rows[t.task]
        assert (metric, base, cand, delta) == (
            "nDCG@10",
            f"{t.baseline_score:.4f}",
            f"{t.candidate_score:.4f}",
            f"{t.delta:+.4f}",
        )
        low, high = (float(x) for x in ci.strip("[]").split(", "))
        assert low <= t.delta <= high
        assert p_value == f"{t.permutation_pvalue:.4g}"
    verdicts = {"drop": "❌ **regression**", "noisy-drop": "⚠️ inconclusive", "same": "✅ ok"}
    assert {task: cells[-1] for task, cells in rows.items()} == verdicts | {"gain": "⬆️ improvement"}
    assert "1 regression(s), 1 inconclusive in 4 task(s)" in text
    capsys.readouterr()
    strict = tmp_path / "strict.md"
    assert main([*argv, "--fail-on", "inconclusive", "--markdown", str(strict)]) == 1
    assert markdown_rows(strict.read_text("utf-8"))["noisy-drop"][-1] == "⚠️ **inconclusive**"


def test_check_markdown_output_is_checked_before_any_work(tmp_path, capsys):
    """A folder for --markdown is exit 2 naming the flag before the (missing) inputs are read."""
    folder = tmp_path / "a-folder"
    folder.mkdir()
    missing = str(tmp_path / "missing")
    for target in (str(folder), str(tmp_path / "new") + "/"):
        assert main(["check", "--baseline", missing, "--candidate", missing, "--markdown", target]) == 2
        assert "--markdown: " in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]


# --------------------------------------------------------------------------- 3. the workflow


def workflow_commands(workflow: dict, job: str) -> list[str]:
    """The ``harness`` command lines of a job's ``run:`` steps, in order."""
    steps = workflow["jobs"][job]["steps"]
    return [
        line
        for step in steps
        if "run" in step
        for line in shell_lines(step["run"])
        if line.startswith("harness ")
    ]


def test_the_workflow_parses_and_caches_evaluates_checks_reports_and_refreshes():
    workflow = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    assert set(workflow["jobs"]) == {"gate", "refresh-baseline"}
    assert (
        "workflow_dispatch" in workflow[True] and "pull_request" in workflow[True]
    )  # `on:` is YAML 1.1's True
    uses = {step.get("uses", "").split("@")[0]: step for step in workflow["jobs"]["gate"]["steps"]}
    assert "${{ env.HARNESS_CACHE_DIR }}" in uses["actions/cache"]["with"]["path"]
    assert uses["actions/upload-artifact"]["with"]["path"] == "reports/"
    gate = workflow_commands(workflow, "gate")
    assert [c.split()[1] for c in gate] == ["evaluate", "check", "report"]
    assert '--markdown "$GITHUB_STEP_SUMMARY"' in gate[1] and "--junit" in gate[1]
    assert [c.split()[1] for c in workflow_commands(workflow, "refresh-baseline")] == ["evaluate"]


@needs_scifact
def test_the_workflow_harness_commands_run_in_order_on_a_small_setup(tmp_path, monkeypatch):
    """The refresh job's commands make the baseline, then the gate job's evaluate the candidate,
    check it (markdown to $GITHUB_STEP_SUMMARY, JUnit, JSON) and write the leaderboard page: BM25
    over a small BEIR folder, with the env vars of the workflow's env block."""
    workflow = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    root = tmp_path / "repo"
    small_beir(root / "data" / "mini", n_docs=200, n_queries=20)
    summary = tmp_path / "step_summary.md"
    values = {"MODEL": "bm25", "MODEL_NAME": "bm25", "TASKS": "mini", "DATA_DIR": "data"}
    values |= {"BASELINE_DIR": "results/baseline", "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    assert set(workflow["env"]) == {*values, "HARNESS_SPEC"}  # what pip installs: not the commands'
    shell_here(monkeypatch, tmp_path, root, GITHUB_STEP_SUMMARY=str(summary), **values)
    for job in ("refresh-baseline", "gate"):
        for line in workflow_commands(workflow, job):
            assert run_line(line) == 0, line
    assert load_result(root / "results" / "baseline" / "bm25__mini.json").model_id == "bm25"
    assert (
        load_result(root / "results" / "candidate" / "bm25-candidate__mini.json").subsets[0].n_queries == 20
    )
    rows = markdown_rows(summary.read_text("utf-8"))
    assert list(rows) == ["mini"] and rows["mini"][-1] == "✅ ok" and rows["mini"][4] == "+0.0000"
    suite, cases = junit_cases((root / "reports" / "check.xml").read_text("utf-8"))
    assert suite.get("failures") == "0" and list(cases) == ["mini"]
    assert all((root / "reports" / name).is_file() for name in ("check.json", "leaderboard.html"))
    assert "bm25-candidate" in (root / "reports" / "leaderboard.md").read_text("utf-8")
