"""Issue 27's command-line guards: what a command writes to is checked before any work (exit 2
naming the flag; only a failed gate exits 1), nothing to report replaces no report, a trailing
slash or an existing folder means a folder, Ctrl-C is one line and exit 130, and a baseline holding
a task twice names its files. Each test reads the exit code, the message and the files on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import InputError
from tests.helpers import make_result, scores

SCORES = scores(np.linspace(0.2, 0.9, 8))


def results_folder(folder: Path, model: str = "m", task: str = "BEIR/scifact") -> Path:
    """A folder with one handmade results file (per-query scores, no model run)."""
    from harness.results import save_result

    save_result(make_result(model, task, {"scifact": SCORES}), folder)
    return folder


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes): what a failed command must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """An existing file where a command expects a folder."""
    path = tmp_path / "taken"
    path.write_text("keep me\n")
    return path


# --------------------------------------------------------------------------- 3. outputs checked first


def test_evaluate_output_naming_a_file_fails_before_the_model_loads(tmp_path, a_file, capsys):
    """The model does not exist and the tasks are unknown: the error is about --output all the same,
    so nothing was loaded before the check."""
    before = files_under(tmp_path)
    argv = ["evaluate", "--model", str(tmp_path / "no-such-model"), "--tasks", "no-such-task"]
    assert main([*argv, "--output", str(a_file), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--output: {a_file} is a file, not a folder" in err and "Traceback" not in err
    assert main([*argv, "--output", str(a_file / "results"), "--quiet"]) == 2  # a file on the way
    assert (
        f"--output: {a_file} is a file, not a folder (on the way to {a_file / 'results'})"
        in capsys.readouterr().err
    )
    assert main([*argv, "--output", str(tmp_path / "out"), "--cache-dir", str(a_file), "--quiet"]) == 2
    assert f"--cache-dir: {a_file} is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "runs").write_text("not a folder\n")
    before = files_under(tmp_path)
    assert main([*argv, "--output", str(tmp_path / "out"), "--save-run", "--quiet"]) == 2
    assert f"--output: {tmp_path / 'out' / 'runs'} is a file, not a folder" in capsys.readouterr().err
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "leaderboard", "{results}", "--no-plots", "--output", "{file}"],
        ["report", "table", "{results}", "--output", "{file}"],
        ["report", "card", "{results}", "--model", "m", "--output", "{file}/card.md"],
        ["export", "{results}", "--output", "{file}/scores.csv"],
        ["mteb", "import", "{missing}", "--output", "{file}"],
        ["mteb", "export", "{results}", "--output", "{file}"],
        ["check", "--baseline", "{results}", "--candidate", "{results}", "--json", "{folder}"],
        ["check", "--baseline", "{results}", "--candidate", "{results}", "--junit", "{folder}/"],
        ["check", "--baseline", "{missing}", "--candidate", "{missing}", "--json", "{file}/check.json"],
    ],
    ids=lambda argv: " ".join(argv[:2]) + " " + argv[-2],
)
def test_an_output_that_cannot_be_written_is_exit_2_naming_the_flag(tmp_path, a_file, argv, capsys):
    """Before any work (the inputs are not even read: ``{missing}`` does not exist), an error naming
    the flag, exit 2 (never 1, a failed gate's code), nothing written or replaced."""
    folder = tmp_path / "a-folder"
    folder.mkdir()
    results = results_folder(tmp_path / "results")
    values = {"results": results, "file": a_file, "folder": folder, "missing": tmp_path / "missing"}
    before = files_under(tmp_path)
    assert main([arg.format(**values) for arg in argv]) == 2
    err = capsys.readouterr().err
    flag = argv[-2]
    if "{folder}" in argv[-1]:
        assert f"{flag}: {folder}" in err and "is a folder: name the file to write" in err
    else:
        assert f"{flag}: {a_file} is a file, not a folder" in err
    assert "Traceback" not in err
    assert files_under(tmp_path) == before


# --------------------------------------------------------------------------- 4. nothing to report


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "leaderboard", "{empty}", "--no-plots", "--output", "{reports}"],
        ["report", "table", "{empty}", "--output", "{reports}"],
        ["report", "card", "{empty}", "--model", "m", "--output", "{reports}/leaderboard.md"],
        ["export", "{empty}", "--output", "{reports}/leaderboard.md"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_nothing_to_report_is_exit_2_and_keeps_the_existing_report(tmp_path, argv, capsys):
    empty, reports = tmp_path / "empty", tmp_path / "reports"
    empty.mkdir()
    reports.mkdir()
    (reports / "leaderboard.md").write_text("# the leaderboard of yesterday\n")
    (reports / "leaderboard.html").write_text("<html>yesterday</html>\n")
    before = files_under(tmp_path)
    assert main([arg.format(empty=empty, reports=reports) for arg in argv]) == 2
    assert f"{empty}: no results files there: nothing to report" in capsys.readouterr().err
    assert files_under(tmp_path) == before


def test_render_leaderboard_of_no_results_writes_nothing(tmp_path):
    from harness.report import render_leaderboard

    (tmp_path / "leaderboard.md").write_text("kept\n")
    with pytest.raises(InputError, match="nothing to report"):
        render_leaderboard([], tmp_path, plots=False)
    assert files_under(tmp_path) == {"leaderboard.md": b"kept\n"}
    with pytest.raises(InputError, match="nothing to report"):
        render_leaderboard([], tmp_path / "new", plots=False)
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- 7. Ctrl-C


def test_an_interrupt_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    import harness.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.run, "evaluate", interrupted)
    code = main(["evaluate", "--model", "bm25", "--tasks", "x", "--output", str(tmp_path / "out"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 130
    assert captured.err.splitlines() == [
        "interrupted: finished results files and cache entries are kept; run the same command again to resume"
    ]
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- 9. a task twice


def test_a_baseline_holding_a_task_twice_names_its_files_and_a_named_file_wins(tmp_path, capsys):
    """Same model, same task, two files: ``--baseline-model`` cannot tell them apart, so the error
    names both files; naming one beside the folder picks it."""
    base = results_folder(tmp_path / "base")
    first = base / "m__BEIR_scifact.json"
    copy = base / "older" / "m__BEIR_scifact.json"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    cand = results_folder(tmp_path / "cand", model="c")
    argv = ["check", "--baseline", str(base), "--candidate", str(cand)]
    for extra in ([], ["--baseline-model", "m"]):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert f"--baseline: holds task 'BEIR/scifact' of model 'm' more than once in {first}, {copy}" in err
        assert "name the file to compare as --baseline FILE" in err and "--baseline-model" not in err
    assert (
        main(
            [
                "check",
                "--baseline",
                str(base),
                str(copy),
                "--candidate",
                str(cand),
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert [t["verdict"] for t in report["tasks"]] == ["ok"]


def test_two_models_of_a_task_still_suggest_the_model_flag_with_the_files(tmp_path, capsys):
    base = results_folder(results_folder(tmp_path / "base", model="x"), model="y")
    cand = results_folder(tmp_path / "cand", model="c")
    assert main(["check", "--baseline", str(base), "--candidate", str(cand)]) == 2
    err = capsys.readouterr().err
    assert f"models ['x', 'y']) in {base / 'x__BEIR_scifact.json'}, {base / 'y__BEIR_scifact.json'}" in err
    assert err.rstrip().endswith("select one model with --baseline-model")
    assert main(["check", "--baseline", str(base), "--candidate", str(cand), "--baseline-model", "y"]) == 0


# --------------------------------------------------------------------------- 12. a folder for a file


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["report", "card", "{results}", "--model", "m"], "m__model_card.md"),
        (["export", "{results}"], "per_query.csv"),
    ],
    ids=["report card", "export"],
)
def test_a_trailing_slash_or_an_existing_folder_means_a_folder(tmp_path, argv, name, capsys):
    results = results_folder(tmp_path / "results")
    command = [arg.format(results=results) for arg in argv]
    assert main([*command, "--output", f"{tmp_path / 'newdir'}/"]) == 0
    assert (tmp_path / "newdir").is_dir() and (tmp_path / "newdir" / name).is_file()
    assert f"wrote {tmp_path / 'newdir' / name}" in capsys.readouterr().out
    (tmp_path / "existing").mkdir()
    assert main([*command, "--output", str(tmp_path / "existing")]) == 0
    assert [p.name for p in (tmp_path / "existing").iterdir()] == [name]
    assert main([*command, "--output", str(tmp_path / "plain.out")]) == 0  # a file name stays a file
    assert (tmp_path / "plain.out").is_file()
