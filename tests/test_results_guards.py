"""Results never lost or misfiled (issue "Nothing lost, nothing misfiled"): two models never share a
results file, repeated tasks run once, the BM25 baseline takes --model-name, reports say which of
two disagreeing results they show, and the Python API takes one path or name where it takes many."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from harness.cli import main
from harness.errors import InputError
from harness.report import leaderboard_tables, render_leaderboard
from harness.results import Results, load_result, load_results, save_result
from tests.helpers import make_result, needs_scifact, small_beir


@pytest.fixture
def data_dir(tmp_path):
    small_beir(tmp_path / "data" / "mini", n_docs=60, n_queries=6)
    return tmp_path / "data"


def _bm25(data_dir, out, *extra) -> int:
    flags = ["--tasks", "mini", "--data-dir", str(data_dir), "--output", str(out), "--no-cache", "--quiet"]
    return main(["evaluate", "--model", "bm25", *flags, *extra])


@needs_scifact
@pytest.mark.parametrize(("first", "second"), [("org/model", "org_model"), ("a|b", "a_b")])
def test_a_model_never_replaces_another_models_results(data_dir, tmp_path, capsys, first, second):
    """Names that make one file name: the second run is refused before any work, naming the file and
    the model it holds; the first model's file keeps its bytes (not 'reused' by the other model)."""
    out = tmp_path / "out"
    assert _bm25(data_dir, out, "--model-name", first) == 0
    [file] = out.glob("*.json")
    before = file.read_bytes()
    capsys.readouterr()
    assert _bm25(data_dir, out, "--model-name", second) == 2
    err = capsys.readouterr().err
    assert str(file) in err and f"holds the results of model {first!r}" in err and "--model-name" in err
    assert file.read_bytes() == before and list(out.glob("*.json")) == [file]


@needs_scifact
def test_bm25_is_filed_under_model_name_and_repeated_tasks_run_once(data_dir, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="harness"):
        assert _bm25(data_dir, out, "--model-name", "my-bm25", "--tasks", "mini", "mini") == 0
    assert [p.name for p in out.glob("*.json")] == ["my-bm25__mini.json"]
    assert load_result(out / "my-bm25__mini.json").model.id == "my-bm25"
    assert "--tasks names mini more than once: each runs once" in caplog.text
    summary = capsys.readouterr().out
    assert summary.count("\nmini ") == 1 and summary.endswith(f"results: {out / 'my-bm25__mini.json'}\n")


def test_same_named_model_with_other_weights_is_noted(tmp_path, caplog):
    from harness.plan import _check_owner

    result = make_result("m", "T", {"T": {"q": 0.5}})
    path = save_result(replace(result, model=replace(result.model, fingerprint="a" * 64)), tmp_path)
    with caplog.at_level(logging.WARNING, logger="harness"):
        _check_owner(path, "m", "T", "b" * 64)  # same model and task: replaced, with a note
    assert "other weights" in caplog.text and "aaaaaaaaaaaa" in caplog.text
    with pytest.raises(InputError, match="holds the results of model 'm' on 'T'"):
        _check_owner(path, "m", "U", "a" * 64)


def test_disagreeing_results_are_named_in_the_leaderboard(tmp_path, caplog):
    """Two files of one model and task with different scores: the page says which one it shows
    (the newer) and where both came from; agreeing copies say nothing."""
    older = replace(
        make_result("m", "BEIR/scifact", {"scifact": {"q": 0.5}}), created="2026-01-01T00:00:00+00:00"
    )
    newer = replace(
        make_result("m", "BEIR/scifact", {"scifact": {"q": 0.7}}), created="2026-02-01T00:00:00+00:00"
    )
    save_result(older, tmp_path / "a"), save_result(newer, tmp_path / "b")
    results = load_results([tmp_path / "a", tmp_path / "b"])
    with caplog.at_level(logging.WARNING, logger="harness"):
        [table] = leaderboard_tables(results, n_resamples=10)
    [note] = table.notes
    assert (
        "0.5000" in note and "0.7000" in note and str(tmp_path / "b") in note and "shown: the newer" in note
    )
    assert note in caplog.text
    assert table.rows[0].cells[0].value == pytest.approx(0.7)
    render_leaderboard(results, tmp_path / "page", n_resamples=10)
    assert note in (tmp_path / "page" / "leaderboard.md").read_text()
    [agreeing] = leaderboard_tables(
        [older, replace(older, created="2026-03-01T00:00:00+00:00")], n_resamples=10
    )
    assert agreeing.notes == []


def test_load_results_takes_one_path_or_many(tmp_path, monkeypatch):
    save_result(make_result("m", "T", {"T": {"q": 0.5}}), tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    for given in ("runs", tmp_path / "runs", ["runs"], (p for p in [tmp_path / "runs"])):
        loaded = load_results(given)
        assert isinstance(loaded, Results) and [r.model_id for r in loaded] == ["m"]
        assert loaded[0].file is not None and loaded[0].file.resolve() == tmp_path / "runs" / "m__T.json"
    with pytest.raises(InputError, match="is a folder: load_results"):
        load_result(tmp_path / "runs")


@needs_scifact
def test_evaluate_takes_one_task_name_and_returns_results(data_dir):
    from harness import evaluate

    results = evaluate("bm25", "mini", data_dir=data_dir, output_dir=None, show_progress=False)
    assert isinstance(results, Results) and [r.task_name for r in results] == ["mini"]
    frame = results.to_dataframe()
    assert set(frame["task"]) == {"mini"} and len(repr(results[0])) < 100


@needs_scifact
def test_truncated_texts_are_recorded_and_survive_the_cache(bert_checkpoint, data_dir, tmp_path):
    """``tokens.documents_truncated``: the documents cut at --document-length, counted by the encoder
    (every SciFact abstract is longer than 16 tokens), the same when the second run reads the cache."""
    from harness import evaluate

    kwargs = dict(data_dir=data_dir, cache_dir=tmp_path / "cache", show_progress=False, document_length=16)
    fresh, cached = (
        evaluate(str(bert_checkpoint), "mini", output_dir=tmp_path / d, **kwargs)[0] for d in "ab"
    )
    assert cached.timings["sources"]["encode_documents_s"] == "cache"
    n_docs = len((data_dir / "mini" / "corpus.jsonl").read_text().splitlines())
    assert fresh.tokens["documents_truncated"] == cached.tokens["documents_truncated"] == n_docs
    assert fresh.tokens["queries_truncated"] == cached.tokens["queries_truncated"] is not None


def test_a_library_template_heading_is_not_a_name(tmp_path):
    """PyLate saves an unnamed model with the card heading ``# PyLate``: two such checkpoints would
    share one results file; the folder names them instead. A real one-word title still counts."""
    from harness.checkpoints.files import checkpoint_name

    for folder, heading, expected in (
        ("held-out-minilm", "# PyLate", "held-out-minilm"),
        ("ettin-17m", "# SentenceTransformer", "ettin-17m"),
        ("run-3", "# my-colbert", "my-colbert"),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "README.md").write_text(
            f"---\nlibrary_name: PyLate\n---\n\n{heading}\n\nText.\n"
        )
        assert checkpoint_name(tmp_path / folder) == expected


@needs_scifact
def test_an_approximate_run_sits_beside_the_exact_run(ettin_like_checkpoint, data_dir, tmp_path):
    """PLAID and rerank runs are named for their search ("ettin (PLAID 2-bit)"): into one --output
    they leave the exact run's file as it was (and the fidelity record can point at it)."""
    from harness import evaluate

    kwargs = dict(
        data_dir=data_dir, output_dir=tmp_path / "out", cache_dir=tmp_path / "cache", show_progress=False
    )
    exact = evaluate(str(ettin_like_checkpoint), "mini", save_run=True, **kwargs)[0]
    saved = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
    plaid = evaluate(str(ettin_like_checkpoint), "mini", index="plaid", plaid_nbits=2, **kwargs)[0]
    rerank = evaluate(str(ettin_like_checkpoint), "mini", first_stage="bm25", rerank_depth=20, **kwargs)[0]
    assert (
        plaid.model_id == f"{exact.model_id} (PLAID 2-bit)"
        and rerank.model_id == f"{exact.model_id} (rerank bm25)"
    )
    files = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
    assert len(files) == 3 and set(saved) <= set(files)
    assert load_result(tmp_path / "out" / saved[0]).main_score == exact.main_score
    assert plaid.fidelity is not None and plaid.fidelity.reference_file is not None
