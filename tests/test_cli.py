"""The command line explains itself: every option has help and its default, every command has
examples; every ``EvalSettings`` flag comes from its field (help, default, the flag its errors
name); ``--quiet`` prints the summary and nothing else (in a subprocess, so third-party bars
would show); ``harness tasks`` sizes; ``harness results``."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.flags import FIELD_DEFAULT, flag_default, flag_fields, from_flags
from harness.settings import EvalSettings, flag_of
from harness.types import InputError
from tests.helpers import REPO_ROOT, SCIFACT, needs_scifact, small_beir


def _commands(
    parser: argparse.ArgumentParser, path: str = "harness"
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser with its command line, depth first."""
    out = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out += _commands(child, f"{path} {name}")
    return out


def test_every_option_has_help_and_shows_its_default_and_every_command_has_examples():
    commands = _commands(build_parser())
    assert len(commands) >= 10
    for path, parser in commands:
        text = parser.format_help()
        assert "`" not in text, path  # no raw reST markup
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if leaf or path == "harness":
            examples = text.split("examples:\n", 1)
            assert len(examples) == 2, f"{path}: no examples"
            lines = [line.strip() for line in examples[1].split("\n\n")[0].splitlines() if line.strip()]
            assert 1 <= len(lines) <= 3 and all(line.startswith("harness ") for line in lines), (path, lines)
        for action in parser._actions:
            if isinstance(
                action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction
            ):
                continue
            if action.help == argparse.SUPPRESS:
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"{path} {name}: no help"
            if (
                action.option_strings
                and action.default not in ([],)
                and action.default is not None
                and action.default is not False
            ):
                # the help line as printed states the default
                options = text[text.index("options:") :]
                start = re.search(
                    rf"^  (?:-\w[^,]*, )?{re.escape(action.option_strings[0])}\b", options, re.M
                )
                block = options[start.start() :].split("\n  -")[0]
                assert "default" in block, f"{path} {name}: default {action.default!r} not shown"


def test_one_spelling_for_outputs():
    """``--output`` everywhere something is written; the old ``--out`` still works but is not shown."""
    for path, parser in _commands(build_parser()):
        text = parser.format_help()
        assert "--out " not in text and "--out\n" not in text, path
        writes = any("--output" in a.option_strings for a in parser._actions)
        if path in (
            "harness evaluate",
            "harness report card",
            "harness report leaderboard",
            "harness export",
        ):
            assert writes, path


def _evaluate_parser() -> argparse.ArgumentParser:
    return dict(_commands(build_parser()))["harness evaluate"]


SETTING_FLAGS = {f.name: (f, flag) for f, flag in flag_fields(EvalSettings)}
# a value each checked setting refuses; the other flags take any value of their type
INVALID = {
    "batch_size": 0,
    "device": "gpu0",
    "dtype": "int8",
    "scoring": "sum",
    "index": "hnsw",
    "first_stage": " ",
    "rerank_depth": -1,
    "plaid_nbits": 3,
    "plaid_n_probe": 0,
    "plaid_centroid_score_threshold": "high",
    "plaid_n_full_scores": 0,
    "k": 0,
    "document_length": 0,
    "query_length": -1,
    "max_memory": "lots",
    "attention": "flash",
    "kernels": "fast",
    "executor": "dask",
    "ray_address": "auto",  # without --executor ray
    "workers": 0,
    "shard_size": 0,
    "latency_queries": -1,
    "pool_factor": 1,
    "truncate_dim": 0,
    "quantize": "int4",
}
ANY_VALUE = {"split", "data_dir", "output_dir", "cache_dir", "overwrite", "save_run", "trust_remote_code"}
ANY_VALUE |= {"model_name", "query_prompt", "document_prompt", "revision"}


def test_every_setting_flag_is_classified_and_the_flags_defaults_are_the_settings():
    """A new flag field needs its invalid value here; the evaluate flags left alone give the
    settings' defaults, field by field."""
    assert set(INVALID) | ANY_VALUE == set(SETTING_FLAGS) and not set(INVALID) & ANY_VALUE
    assert all(f.metadata.get("check") is None for name, (f, _) in SETTING_FLAGS.items() if name in ANY_VALUE)
    args = _evaluate_parser().parse_args([])
    assert from_flags(EvalSettings, vars(args)).record() == EvalSettings().record()


@pytest.mark.parametrize("name", list(SETTING_FLAGS))
def test_setting_flag_is_in_evaluate_help_with_its_default(name: str):
    f, flag = SETTING_FLAGS[name]
    parser = _evaluate_parser()
    [action] = [a for a in parser._actions if flag.name in a.option_strings]
    assert action.dest == name and action.help == flag.help
    default = flag_default(f, flag)
    assert action.default == default
    if flag.default is FIELD_DEFAULT:  # the flag's default is the field's, not a copy of it
        assert default == getattr(EvalSettings(), name)
    options = parser.format_help()[parser.format_help().index("options:") :]
    start = re.search(rf"^  {re.escape(flag.name)}\b", options, re.M)
    assert start, f"{flag.name} not in harness evaluate --help"
    block = " ".join(options[start.start() :].split("\n  -")[0].split())
    said = {f"default {default}", f"default: {default}", f"{default} (default"}
    if default == "default":  # the PLAID threshold's: by --k
        said = {"default by --k"}
    shown = any(text in block for text in said)
    # --kernels's help names its choice "default", so the formatter appends no default (--help as it was)
    assert shown == (default not in (None, False) and name != "kernels"), block


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_setting_names_its_flag(name: str):
    flag = SETTING_FLAGS[name][1].name
    assert flag_of(name) == flag
    with pytest.raises(InputError, match=f"^{re.escape(flag)}: "):
        EvalSettings(**{name: INVALID[name]})


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@needs_scifact
@pytest.mark.parametrize("model", ["colbert", "dense", "bm25"])
def test_quiet_run_prints_only_the_summary_ending_with_the_results_path(
    model, ettin_like_checkpoint, minilm_dense_model, tmp_path
):
    """A whole run (load, encode, index, search, metrics, files) with --quiet, in a subprocess whose
    stderr is not a terminal (tqdm would print there): the summary table and the results line only."""
    data = small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=8)
    model_arg = {"colbert": str(ettin_like_checkpoint), "dense": str(minilm_dense_model), "bm25": "bm25"}[
        model
    ]
    extra = ["--index", "plaid"] if model == "colbert" else []
    out = tmp_path / "results"
    args = ["evaluate", "--model", model_arg, "--tasks", "mini", "--data-dir", str(data.parent)]
    args += ["--output", str(out), "--cache-dir", str(tmp_path / "cache"), *extra, "--quiet"]
    done = _run(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    [path] = out.glob("*.json")
    assert lines[0].split() == ["task", "metric", "score", "queries", "seconds"]
    assert re.fullmatch(r"mini\s+nDCG@10 \(trec_eval\)\s+\d\.\d{4}\s+8\s+\d+\.\d", lines[2]), lines
    assert lines[3:] == [f"results: {path}"]


@needs_scifact
def test_tasks_lists_groups_with_members_and_sizes_that_match_the_data():
    """``harness tasks``: the SciFact row's sizes are the real data's (300 test queries with
    judgements, 5183 documents); every group lists its members."""
    from harness.tasks import list_groups

    done = _run(["tasks"], REPO_ROOT)
    assert done.returncode == 0, done.stderr
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("BEIR/scifact "))
    queries = {line.split("\t")[0] for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    documents = sum(1 for line in (SCIFACT / "corpus.jsonl").open() if line.strip())
    assert row[-2:] == [f"{len(queries):,}", f"{documents:,}"]
    for name, members in list_groups().items():
        assert f"group {name} ({len(members)} tasks): {', '.join(members)}" in done.stdout


def test_results_lists_what_a_folder_holds(capsys):
    published = REPO_ROOT / "results" / "published"
    assert main(["results", str(published.parent), str(published)]) == 0  # a folder and its subfolder
    out = capsys.readouterr().out
    files = list(published.parent.rglob("*.json"))  # each once
    assert f"{len(files)} results files" in out
    assert re.search(r"ColBERTv2 †\s+BEIR/scifact\s+nDCG@10 \(trec_eval\)\s+0\.6930\s+-\s", out), out
    assert main(["results", str(published / "nothing-here")]) == 2


@needs_scifact
def test_a_reused_result_says_so_in_the_summary(tmp_path, capsys):
    data = small_beir(tmp_path / "data" / "mini", n_docs=40, n_queries=5)
    args = ["evaluate", "--model", "bm25", "--tasks", "mini", "--data-dir", str(data.parent)]
    args += ["--output", str(tmp_path / "out"), "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()[2].split()
    assert first[-1] != "reused" and float(first[-1]) >= 0
    assert main(args) == 0
    again = capsys.readouterr().out.splitlines()[2].split()
    assert again[:-1] == first[:-1] and again[-1] == "reused"


def test_output_under_a_file_is_a_clear_error(tmp_path, capsys):
    """A folder given for a file means the default name inside it (tests/test_cli_guards.py); a path
    whose parent is a file cannot be written: exit 2 naming the flag, nothing written."""
    from harness.results import ModelRecord, Result, RetrievalRecord, SubsetScores, TaskRecord, save_result

    task = TaskRecord("T", "trec", "ndcg@10", "test")
    save_result(
        Result(
            ModelRecord("m"),
            task,
            RetrievalRecord("exact"),
            [SubsetScores("T", 1, None, {"ndcg@10": 1.0}, {})],
        ),
        tmp_path / "r",
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    for args in (["export", str(tmp_path / "r")], ["report", "card", str(tmp_path / "r"), "--model", "m"]):
        assert main([*args, "--output", str(blocker / "out.txt")]) == 2
        assert "--output" in capsys.readouterr().err
    assert blocker.read_text() == "keep"


def test_quiet_does_not_outlive_its_command(tmp_path, monkeypatch):
    """``main([..., "--quiet"])`` in a process (a notebook, a test) turns bars off for that command
    only: TQDM_DISABLE is restored, so the caller's later bars show."""
    from harness.console import bars_allowed

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert (
        main(["evaluate", "--model", "bm25", "--tasks", "nothing", "--data-dir", str(tmp_path), "--quiet"])
        == 2
    )
    assert "TQDM_DISABLE" not in os.environ and bars_allowed()
