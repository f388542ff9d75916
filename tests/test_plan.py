"""The plan (settings checked before any work) and the one ranking rule at every cut of the pipeline.

References: pytrec_eval (trec_eval's own ordering) for what a cut ranking must keep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from harness.cli import main
from harness.plan import EvalSettings, load_first_stage
from harness.ranking import rank
from harness.retrieve import BM25Retriever, Embedder, ExactRetriever, RunFileRetriever
from harness.run import evaluate
from harness.types import InputError, Texts, TokenEmbeddings
from tests.helpers import REPO_ROOT, needs_scifact, small_beir


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("k", -1, "--k"),
        ("k", 0, "--k"),
        ("batch_size", 0, "--batch-size"),
        ("batch_size", -5, "--batch-size"),
        ("rerank_depth", 0, "--rerank-depth"),
        ("document_length", 0, "--document-length"),
        ("query_length", -1, "--query-length"),
        ("plaid_nbits", 3, "--nbits"),
        ("plaid_n_probe", 0, "--n-probe"),
        ("plaid_n_full_scores", 0, "--n-full-scores"),
        ("plaid_centroid_score_threshold", "high", "--centroid-score-threshold"),
        ("index", "hnsw", "--index"),
        ("scoring", "sum", "--scoring"),
        ("dtype", "int8", "--dtype"),
        ("executor", "dask", "--executor"),
        ("workers", 0, "--workers"),
        ("workers", 2, "--workers"),  # without --executor ray
        ("ray_address", "auto", "--ray-address"),  # without --executor ray
        ("shard_size", 0, "--shard-size"),
        ("device", "gpu0", "--device"),
    ],
)
def test_bad_settings_name_their_flag(field: str, value: object, flag: str) -> None:
    with pytest.raises(InputError, match=f"^{flag}: "):
        EvalSettings(**{field: value})


def test_ray_and_cuda_settings_are_checked_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import torch

    if not torch.cuda.is_available():  # a local CUDA run needs a GPU here
        with pytest.raises(InputError, match="^--device: no CUDA device is visible"):
            EvalSettings(device="cuda")
    if importlib.util.find_spec("ray") is not None:  # the [ray] extra
        with pytest.raises(InputError, match="^--executor: Ray workers write into the embedding cache"):
            EvalSettings(executor="ray", cache_dir=None)
        assert EvalSettings(device="cuda:1", executor="ray").device == "cuda:1"  # workers bring GPUs
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "ray" else real(n, *a))
    with pytest.raises(InputError, match=r"^--executor: ray is not installed: pip install .*\[ray\]"):
        EvalSettings(executor="ray")


class NeverEncoder:
    """An encoder that must not be used: settings fail first."""

    name, multi_vector, fingerprint = "never", True, "0" * 64

    def settings(self) -> dict:
        raise AssertionError("settings() called: the run got past validation")

    def encode(self, *args, **kwargs):
        raise AssertionError("encode() called: the run got past validation")

    def parameter_count(self) -> int:
        return 0


def test_settings_fail_before_model_and_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A bad value fails at once: no model is loaded, no data read, no encoding (a missing model
    folder and a missing data folder would have failed otherwise)."""
    with pytest.raises(InputError, match="^--k: must be a positive integer, got -1$"):
        evaluate(NeverEncoder(), ["nowhere"], data_dir=tmp_path / "missing", k=-1, output_dir=None)
    code = main(["evaluate", "--model", str(tmp_path / "no-model"), "--tasks", "x", "--k", "-1", "--quiet"])
    assert code == 2 and "--k" in capsys.readouterr().err


def _trec(qrels: dict, run: dict, measures: set[str]) -> dict:
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def test_run_file_first_stage_cuts_ties_by_doc_id_descending(tmp_path: Path) -> None:
    """The first stage's top k of a run file with many ties is what trec_eval ranks first in the
    whole run: P@k and nDCG@k of the cut run equal pytrec_eval's on the full run (tolerance 0).
    The old cut (ties by doc id ascending) fails this on these runs."""
    rng = np.random.default_rng(0)
    doc_ids = [f"d{i:03d}" for i in range(60)]
    query_ids = [f"q{i}" for i in range(25)]
    run = {
        q: {d: float(rng.integers(0, 4)) for d in rng.choice(doc_ids, 40, replace=False)} for q in query_ids
    }
    qrels = {
        q: {d: int(rng.integers(1, 3)) for d in rng.choice(doc_ids, 6, replace=False)} for q in query_ids
    }
    first = RunFileRetriever(tmp_path / "run.trec", run)
    docs, queries = Texts(doc_ids, doc_ids), Texts(query_ids, query_ids)
    for k in (1, 5, 10):
        ranking, _ = first.search(queries, docs, k)
        cut = {
            q: {doc_ids[i]: float(s) for s, i in zip(row_s, row_i, strict=True) if i >= 0}
            for q, row_s, row_i in zip(query_ids, ranking.scores, ranking.indices, strict=True)
        }
        measures = {f"P.{k}", f"ndcg_cut.{k}"}
        assert _trec(qrels, cut, measures) == _trec(qrels, run, measures)
        assert {q: list(c) for q, c in rank(cut).items()} == rank(run, k)


def test_exact_and_bm25_cuts_keep_the_higher_doc_ids_among_duplicates(tmp_path: Path) -> None:
    """Duplicate documents tie exactly; at the k-th cut the pipeline keeps the ones trec_eval
    ranks first (doc id descending), whatever their position in the corpus."""

    class Echo:  # one vector per text: a one-hot of its first word, so duplicates tie exactly
        name, multi_vector, fingerprint = "echo", False, "e" * 64

        def settings(self) -> dict:
            return {}

        def parameter_count(self) -> int:
            return 0

        def encode(self, texts, *, is_query, batch_size=32, show_progress=True):
            assert isinstance(texts, list)  # what a Hugging Face tokenizer takes, cached or not
            words = ["alpha", "beta", "gamma"]
            rows = [np.eye(3, dtype=np.float32)[words.index(t.split()[0])][None] for t in texts]
            return TokenEmbeddings.from_list(rows, 3)

    doc_ids = ["z9", "a1", "m5", "b2", "y8"]  # positions and id order disagree
    docs = Texts(doc_ids, ["alpha x", "beta", "alpha x", "gamma", "alpha x"])
    queries = Texts(["q"], ["alpha x"])
    exact, _ = ExactRetriever(Embedder(Echo(), show_progress=False)).search(queries, docs, 2)
    cached, _ = ExactRetriever(Embedder(Echo(), tmp_path, show_progress=False)).search(queries, docs, 2)
    lexical, _ = BM25Retriever(show_progress=False).search(queries, docs, 2)
    for ranking in (exact, cached, lexical):
        assert [doc_ids[i] for i in ranking.indices[0]] == ["z9", "y8"]  # of the tied z9, m5, y8


def test_first_stage_model_gets_the_runs_loading_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = {}
    monkeypatch.setattr("harness.plan.load_encoder", lambda source, **kw: seen.update(kw) or NeverEncoder())
    settings = EvalSettings(
        first_stage="org/dense-model", trust_remote_code=True, dtype="bfloat16", max_memory="1GiB"
    )
    load_first_stage(settings)
    assert seen == {
        "device": "cpu",
        "dtype": "bfloat16",
        "trust_remote_code": True,
        "max_memory": 1024**3,
        "attn_implementation": None,
        "kernels": "auto",
    }
    with pytest.raises(InputError, match=r"bad\.trec:1: .*score"):  # a run file is read and checked up front
        (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 x tag\n")
        load_first_stage(EvalSettings(first_stage=str(tmp_path / "bad.trec")))


@needs_scifact
def test_bm25_model_ignores_the_first_stage_without_loading_it(tmp_path: Path) -> None:
    """BM25 reranks nothing: a first stage named beside it is not loaded (a Hub id would fail here)."""
    small_beir(tmp_path / "data" / "mini", n_docs=30, n_queries=3)
    kwargs = dict(data_dir=tmp_path / "data", output_dir=None, show_progress=False)
    [plain] = evaluate("bm25", ["mini"], **kwargs)
    [named] = evaluate("bm25", ["mini"], first_stage="org/not-on-this-machine", **kwargs)
    assert named.retrieval == plain.retrieval and named.subsets[0].trec == plain.subsets[0].trec


@needs_scifact
def test_rerank_on_a_card_task_scores_like_pylate(bert_checkpoint, tmp_path: Path) -> None:
    """A first stage on a NanoBEIR-style task: ``pylate`` scoring reranks (it used to fail with a
    stray chunk-size argument) and equals exact search when the first stage passes every doc."""
    small_beir(tmp_path / "data" / "NanoSciFact", n_docs=40, n_queries=5, split="train")
    kwargs = dict(
        data_dir=tmp_path / "data", output_dir=None, cache_dir=tmp_path / "cache", show_progress=False
    )
    [exact] = evaluate(str(bert_checkpoint), ["NanoSciFact"], **kwargs)
    [reranked] = evaluate(
        str(bert_checkpoint), ["NanoSciFact"], first_stage="bm25", rerank_depth=1000, **kwargs
    )
    assert reranked.retrieval.params["scoring"] == exact.retrieval.params["scoring"] == "pylate"
    assert reranked.retrieval.method == "rerank" and "pylate_chunk_size" not in reranked.retrieval.params
    # rerank pads to each query's candidates, exact search to the corpus chunk: with every doc a
    # candidate they are the same chunk, so the same numbers
    assert reranked.subsets[0].card == pytest.approx(exact.subsets[0].card, abs=1e-9)


def test_run_file_first_stage_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A run of another dataset is an error before anything is encoded; unknown doc ids are counted
    in a warning; a missing path is a missing run file (not a Hub id); bad bytes name their line."""
    docs, queries = Texts(["d1", "d2", "d3"], ["a", "b", "c"]), Texts(["q1", "q2"], ["x", "y"])
    path = tmp_path / "run.trec"
    foreign = RunFileRetriever(path, {"q1": {"other1": 1.0, "other2": 0.5}})
    with pytest.raises(InputError, match=r"run\.trec: none of its 2 doc ids is in the corpus"):
        foreign.search(queries, docs, 2)
    with pytest.raises(InputError, match=r"run\.trec: names none of the 2 queries"):
        RunFileRetriever(path, {"q9": {"d1": 1.0}}).search(queries, docs, 2)
    partly = RunFileRetriever(path, {"q1": {"d1": 1.0, "zz": 0.9, "d3": 0.5}, "q2": {"yy": 1.0}})
    with caplog.at_level("WARNING", logger="harness"):
        ranking, _ = partly.search(queries, docs, 2)
    assert "2 of 4 doc ids are not in the corpus" in caplog.text
    assert ranking.indices.tolist() == [[0, -1], [-1, -1]]  # cut to 2 first, then the unknown dropped

    with pytest.raises(InputError, match=r"^runs/x\.trec: run file not found$"):
        load_first_stage(EvalSettings(first_stage="runs/x.trec"))
    (tmp_path / "latin1.trec").write_bytes(b"q1 Q0 d1 1 1.0 t\nq1 Q0 d\xe9 2 0.5 t\n")
    with pytest.raises(InputError, match=r"latin1\.trec:2: not UTF-8"):
        load_first_stage(EvalSettings(first_stage=str(tmp_path / "latin1.trec")))


def test_messages_say_where_in_the_users_terms(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A file's field with its line, a flag by its name; no internal field paths (``task.name``)."""
    from harness.report import render_model_card
    from harness.results import load_results

    assert str(InputError("expected a string", file="c.jsonl", line=2, field="text")) == (
        "c.jsonl:2: field 'text': expected a string"
    )
    assert (
        str(InputError("must be a positive integer, got 0", field="--k"))
        == "--k: must be a positive integer, got 0"
    )
    published = load_results([REPO_ROOT / "results" / "published"])
    partial = [r for r in published if r.task_name != "NanoClimateFEVER"]  # a NanoBEIR mean of 12 would lie
    with pytest.raises(InputError) as err:
        render_model_card(partial, "mxbai-edge-colbert-v0-17m")
    assert str(err.value).startswith("model 'mxbai-edge-colbert-v0-17m' has no NanoBEIR results for ")
    assert "NanoClimateFEVER" in str(err.value)
    with pytest.raises(
        InputError, match=r"^--tasks: unknown task or group 'NanoSciFakt'.*did you mean NanoSciFact"
    ):
        evaluate(NeverEncoder(), ["NanoSciFakt"], output_dir=None)
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "exit codes: 0 success" in help_text and "1 'harness check' found a failure" in help_text


def test_first_stage_model_folder_by_absolute_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A model folder given by an absolute path is a model, not a missing run file."""
    seen = []
    monkeypatch.setattr(
        "harness.plan.load_encoder", lambda source, **kw: seen.append(source) or NeverEncoder()
    )
    (tmp_path / "dense-model").mkdir()
    load_first_stage(EvalSettings(first_stage=str(tmp_path / "dense-model")))
    assert seen == [str(tmp_path / "dense-model")]
